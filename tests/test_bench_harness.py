"""The benchmark harness (:mod:`benchmarks.harness`) on benchmarks made for the test: a missed
target, an assertion or any exception is a FAIL and the run goes on; :class:`Skip` is counted
as SKIP, never as PASS; the summary lists every PASS, FAIL and SKIP; the exit status of
``python -m benchmarks`` is non-zero when a target failed. Nothing here times real work.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:              # benchmarks/ is a package at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import Case, Skip, target  # noqa: E402


@pytest.fixture
def registry(monkeypatch):
    """An empty registry for the test's own benchmarks (the real ones are left alone)."""
    fresh: list = []
    monkeypatch.setattr(harness, "REGISTRY", fresh)
    monkeypatch.setattr(harness, "RESULTS", [])
    return fresh


def _register(registry, name, factory):
    factory.__name__ = name
    factory.__module__ = "benchmarks.bench_fake"
    registry.append(factory)
    return factory


def _fast_case(name, target_ratio=0.0, check=None, candidate=None):
    return Case(name=name, baseline=lambda: sum(range(2000)),
                candidate=candidate or (lambda: sum(range(2000))), target=target_ratio,
                check=check, repeats=1)


def _summary(out: str) -> list[str]:
    return out.split("\nsummary\n", 1)[1].rstrip().splitlines()


def test_every_outcome_is_counted_and_the_run_goes_on(registry, capsys):
    ran = []

    def agreeing(rb, rc):
        assert rb == rc
        target("quality bound", True, "0.1 <= 0.2")
        target("time limit", False, "3 s > 2 s")

    def broken_check(rb, rc):
        assert rb != rc, "the two results differ by 7"

    def boom():
        raise RuntimeError("CUDA out of memory\nsecond line of the message")

    def no_data():
        raise Skip("needs the MNIST test split (set DIFFNOTES_DATA)")

    _register(registry, "good", lambda: _fast_case("good case", check=agreeing))
    _register(registry, "assertion", lambda: _fast_case("assertion case", check=broken_check))
    _register(registry, "exception", lambda: _fast_case("exception case", candidate=boom))
    _register(registry, "missed", lambda: _fast_case("missed case", target_ratio=1e9))
    _register(registry, "skip_factory", no_data)
    _register(registry, "skip_candidate", lambda: _fast_case("skip case", candidate=no_data))
    _register(registry, "broken_factory", lambda: 1 / 0)
    _register(registry, "last", lambda: ran.append(1) or _fast_case("last case"))

    fails = harness.run()
    out = capsys.readouterr().out
    assert ran == [1]                                     # nothing stopped the run
    statuses = [(status, name) for status, name, _ in harness.RESULTS]
    assert statuses == [
        ("PASS", "quality bound"), ("FAIL", "time limit"),
        ("FAIL", "assertion case"), ("FAIL", "exception case"), ("FAIL", "missed case"),
        ("SKIP", "skip_factory"), ("SKIP", "skip case"), ("FAIL", "broken_factory"),
    ]
    assert fails == 5
    summary = _summary(out)
    assert summary[-1] == "1 passed, 5 failed, 2 skipped"
    assert "  FAIL  assertion case: AssertionError: the two results differ by 7" in summary
    assert "  FAIL  exception case: RuntimeError: CUDA out of memory" in summary
    assert any(s.startswith("  FAIL  missed case: speed ratio") and "target >= 1e+09x" in s
               for s in summary)
    assert "  SKIP  skip_factory: needs the MNIST test split (set DIFFNOTES_DATA)" in summary
    assert "  FAIL  broken_factory: ZeroDivisionError: division by zero" in summary
    assert "  PASS  quality bound: 0.1 <= 0.2" in summary
    assert len(summary) == len(statuses) + 1              # one line each, and the count
    # a case without a target is information only: no PASS is counted for it
    assert not any(name in ("good case", "last case") for _, name in statuses)


def test_a_met_speed_target_passes(registry, capsys):
    _register(registry, "fast", lambda: Case("fast case", baseline=lambda: sum(range(20000)),
                                             candidate=lambda: None, target=1.0, repeats=3))
    assert harness.run() == 0
    assert harness.RESULTS[0][:2] == ("PASS", "fast case")
    assert _summary(capsys.readouterr().out)[-1] == "1 passed, 0 failed, 0 skipped"


def test_selection_runs_no_other_benchmark(registry, capsys):
    called = []
    _register(registry, "dsb_two_moons", lambda: called.append("dsb") or _fast_case("dsb"))
    _register(registry, "images_digits", lambda: called.append("img") or _fast_case("img"))
    assert harness.run(["dsb"]) == 0 and called == ["dsb"]
    assert harness.run(["bench_fake"]) == 0 and called == ["dsb", "dsb", "img"]
    called.clear()
    capsys.readouterr()
    assert harness.run(["no-such-benchmark"]) == 1 and called == []
    summary = _summary(capsys.readouterr().out)
    assert summary[0].startswith("  FAIL  selection: no benchmark name contains")
    assert "dsb_two_moons" in summary[0]


def test_run_starts_from_a_clean_slate(registry, capsys):
    _register(registry, "missed", lambda: _fast_case("missed", target_ratio=1e9))
    assert harness.run() == 1 and harness.run() == 1
    assert len(harness.RESULTS) == 1
    capsys.readouterr()


def test_require_mnist_skips_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFNOTES_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DIFFNOTES_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    with pytest.raises(Skip) as why:
        harness.require_mnist()
    message = str(why.value)
    assert message.startswith("needs the MNIST test split (set DIFFNOTES_DATA): ")
    assert "\n" not in message


def test_timed_keeps_the_best_time():
    times = {}
    fn = harness.timed(lambda: 42, times, "k")
    assert fn() == 42 and fn() == 42
    assert 0 <= times["k"] < 1


def test_exit_status_of_the_command():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "no-such-benchmark"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "0 passed, 1 failed, 0 skipped" in proc.stdout
