"""A tiny benchmark harness: time a baseline and a candidate in the same process, print the ratio.

A benchmark is a function decorated with :func:`benchmark` that returns a :class:`Case`: two
zero-argument callables doing the same work (``baseline``, ``candidate``), a ``check`` that the
two results agree, and the ratio ``target`` the candidate should reach.

Every target is reported on its own line as PASS or FAIL and counted, and no missed target stops
the run:

* a speed ratio below ``Case.target`` is a FAIL of that case;
* :func:`target` records a further target (a quality bound, a time limit) as PASS or FAIL;
* an ``AssertionError`` (or any other exception) raised by a case is a FAIL of that case, with
  its one-line message; the run goes on with the next case;
* a case that cannot run here (missing data, no GPU) raises :class:`Skip` with a one-line
  reason, before doing any work where it can (:func:`require_mnist`); it is counted as SKIP,
  never as PASS.

:func:`run` returns the number of FAILs; ``python -m benchmarks`` prints the summary (each
PASS, FAIL and SKIP) and exits non-zero when any target failed. A selection (``python -m
benchmarks dsb images_mnist``) matches the benchmark functions' names and modules *before* they
run, so an unselected benchmark does no work; a selection that matches nothing is a FAIL.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

FULL = os.environ.get("DIFFNOTES_BENCH_FULL", "") not in ("", "0")
"""``DIFFNOTES_BENCH_FULL=1``: the benchmarks' full mode (more samples and steps)."""

REGISTRY: list[Callable[[], Case]] = []
# (status, name, detail) of every target recorded in this run, in order
RESULTS: list[tuple[str, str, str]] = []


class Skip(Exception):
    """Raised by a benchmark (its factory or any of its callables) that cannot run here; the
    message is the one-line reason."""


@dataclass
class Case:
    name: str
    baseline: Callable[[], object]
    candidate: Callable[[], object]
    target: float
    check: Callable[[object, object], None] | None = None
    repeats: int = 3


def benchmark(fn):
    """Register a benchmark (a function returning a Case)."""
    REGISTRY.append(fn)
    return fn


def target(name: str, ok: bool, detail: str = "") -> bool:
    """Record one target of a benchmark as PASS or FAIL (printed in the summary); returns ``ok``."""
    RESULTS.append(("PASS" if ok else "FAIL", name, detail))
    return bool(ok)


def require_mnist():
    """Raise :class:`Skip` unless the MNIST test split can be read without a download."""
    from diffnotes import data

    try:
        data.load_mnist("test", download=False, progress=False)
    except Exception as err:  # noqa: BLE001 -- any reason it cannot be read is a reason to skip
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Skip(f"needs the MNIST test split (set DIFFNOTES_DATA): {first}") from None


def timed(fn, times: dict, key: str):
    """``fn`` wrapped so that its best wall time is kept in ``times[key]`` (for benchmarks that
    report the timings of their baseline and candidate in their own detail lines)."""
    def wrapped():
        t0 = time.perf_counter()
        out = fn()
        times[key] = min(times.get(key, float("inf")), time.perf_counter() - t0)
        return out
    return wrapped


def one_thread(fn):
    """``fn`` run with one torch thread (:func:`diffnotes.utils.torch_threads`): the small
    networks of the benchmarks gain nothing from more, and shared cores make more threads slow."""
    from diffnotes.utils import torch_threads

    def wrapped(*args):
        with torch_threads(1):
            return fn(*args)
    return wrapped


def best_time(fn, repeats):
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _fail(name: str, err: BaseException) -> None:
    if not isinstance(err, AssertionError):
        traceback.print_exc()
    RESULTS.append(("FAIL", name, _one_line(err)))
    print(f"{name:58s} FAIL: {_one_line(err)}")


def selected_by(make, selected) -> bool:
    """Whether the benchmark function ``make`` is selected by the words ``selected`` (none:
    all): a word is part of its name or of its module's."""
    where = f"{make.__module__}.{make.__name__}"
    return not selected or any(s in where for s in selected)


def _run_case(make) -> None:
    try:
        case = make()
    except Skip as why:
        RESULTS.append(("SKIP", make.__name__, str(why)))
        print(f"{make.__name__:58s} SKIP: {why}")
        return
    except Exception as err:  # noqa: BLE001 -- a broken factory is a FAIL, the run goes on
        _fail(make.__name__, err)
        return
    try:
        tb, rb = best_time(case.baseline, max(1, case.repeats - 2))
        tc, rc = best_time(case.candidate, case.repeats)
        if case.check is not None:
            case.check(rb, rc)
    except Skip as why:
        RESULTS.append(("SKIP", case.name, str(why)))
        print(f"{case.name:58s} SKIP: {why}")
        return
    except Exception as err:  # noqa: BLE001 -- a broken case is a FAIL, the run goes on
        _fail(case.name, err)
        return
    ratio = tb / max(tc, 1e-12)
    ok = ratio >= case.target
    if case.target > 0:
        target(case.name, ok, f"speed ratio {ratio:.1f}x (target >= {case.target:g}x)")
    print(f"{case.name:58s} {tb:9.4f}s {tc:9.4f}s {ratio:7.1f}x {case.target:6.0f}x "
          f"{'PASS' if ok else 'FAIL'}")


def run(selected=None) -> int:
    """Run the registered benchmarks (those whose name contains one of ``selected``, if given)
    and print the summary; return the number of failed targets."""
    RESULTS.clear()
    print(f"{'benchmark':58s} {'baseline':>10s} {'candidate':>10s} {'ratio':>8s} {'target':>7s}")
    chosen = [make for make in REGISTRY if selected_by(make, selected)]
    if not chosen:
        target("selection", False, f"no benchmark name contains any of {list(selected)}; "
               f"names: {', '.join(m.__name__ for m in REGISTRY)}")
    for make in chosen:
        _run_case(make)
    counts = {s: sum(r[0] == s for r in RESULTS) for s in ("PASS", "FAIL", "SKIP")}
    print("\nsummary")
    for status, name, detail in RESULTS:
        print(f"  {status}  {name}" + (f": {detail}" if detail else ""))
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return counts["FAIL"]
