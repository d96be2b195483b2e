"""The command line ``python -m diffnotes.images`` as a new user meets it, and Ctrl-C.

* Every user mistake (bad preset, bad numbers, missing or unreadable model, an output path that
  cannot be written, missing data, a folder holding another run) gives one line on stderr that
  names the option and the fix, exit status 2, no traceback, and is found before training
  starts (the tests replace :func:`train` by a function that fails if called).
* ``train`` interrupted by SIGINT finishes its step, writes a checkpoint and prints the command
  that resumes; that command says it resumes and from which step, and ends with the weights of
  an uninterrupted run, bit for bit (dropout included); a finished run is not trained again;
  ``--overwrite`` trains afresh.
* ``sample`` writes a grid of at least 400 pixels, each pixel a constant block (nearest
  neighbour), and every option has help text.

Runs on one CPU thread with the digits preset cut to 6 steps of 16 images (a second each); one
test sends a real SIGINT to a subprocess.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _shared import TINY

from diffnotes.images import PRESETS, train, training
from diffnotes.images.__main__ import MIN_WIDTH, _command, _parser, main
from diffnotes.images.plotting import grid
from diffnotes.images.training import Interrupted, load_checkpoint
from diffnotes.utils import torch_threads

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--preset", "digits", "--steps", "6", "--batch-size", "16", "--ckpt-every", "4",
         "--threads", "1", "--no-progress", "--device", "cpu"]
CONFIG = PRESETS["digits"].replace(steps=6, batch_size=16, ckpt_every=4)


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    with torch_threads(1):
        train(TINY, out=out, progress=False, device="cpu")
    return out / "model.pt"


@pytest.fixture
def no_training(monkeypatch):
    """Fail if the command starts training."""
    def refuse(*args, **kwargs):
        raise AssertionError("train() was called")

    monkeypatch.setattr(training, "train", refuse)


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _one_line_error(capsys, expect):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "error:" in err, err
    for fragment in expect:
        assert fragment in err, err
    return err


# ------------------------------------------------------------------------ user mistakes
PARSE_ERRORS = [
    (["train", "--preset", "cifar", "--out", "x"], ["--preset", "invalid choice", "digits"]),
    (["train", "--out", "x", "--steps", "0"], ["--steps", ">= 1"]),
    (["train", "--out", "x", "--steps", "many"], ["--steps", "whole number"]),
    (["train", "--out", "x", "--lr", "fast"], ["--lr", "must be a number"]),
    (["train", "--out", "x", "--threads", "0"], ["--threads"]),
    (["train"], ["--out"]),
    (["sample", "--model", "m.pt", "--sampler", "ddim", "--out", "x.png"], ["--sampler"]),
    (["sample", "--model", "m.pt", "--n", "0", "--out", "x.png"], ["--n", ">= 1"]),
    (["sample", "--model", "m.pt", "--steps", "-3", "--out", "x.png"], ["--steps"]),
]


@pytest.mark.parametrize("argv, expect", PARSE_ERRORS)
def test_bad_arguments_are_one_line_errors(argv, expect, capsys, no_training):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    _one_line_error(capsys, expect + ["--help"])


def _train_mistakes(tmp_path, model_file):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    other = tmp_path / "other-run"                   # a run of another configuration
    other.mkdir()
    (other / "checkpoint.pt").write_bytes((model_file.parent / "checkpoint.pt").read_bytes())
    lonely = tmp_path / "lonely"                     # model.pt without its checkpoint
    lonely.mkdir()
    (lonely / "model.pt").write_bytes(model_file.read_bytes())
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "checkpoint.pt").write_text("junk")
    out = str(tmp_path / "run")
    return [
        (["--out", out, "--lr", "0"], ["--lr 0.0", "lr must be"]),
        (["--out", out, "--ema-decay", "1"], ["--ema-decay", "ema_decay"]),
        (["--out", out, "--batch-size", "100000"], ["--batch-size 100000", "at most"]),
        (["--out", out, "--device", "tpu"], ["--device tpu"]),
        (["--out", str(a_file)], ["--out", "not a folder"]),
        (["--out", str(a_file / "run")], ["--out", "cannot write there"]),
        (["--out", out, "--preset", "mnist", "--data-dir", str(tmp_path / "nowhere")],
         ["mnist training images cannot be read", "--data-dir"]),
        (["--out", str(other)], ["another configuration", "--overwrite"]),
        (["--out", str(lonely)], ["model.pt but no checkpoint.pt", "--overwrite"]),
        (["--out", str(junk)], ["cannot be read", "--overwrite"]),
    ]


def test_train_mistakes_are_found_before_any_work(tmp_path, model_file, capsys, no_training):
    for argv, expect in _train_mistakes(tmp_path, model_file):
        assert main(["train", *SMALL, *argv]) == 2, argv
        _one_line_error(capsys, expect)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_sample_mistakes_are_found_before_any_work(tmp_path, model_file, capsys, monkeypatch):
    from diffnotes.images import sampling

    def refuse(*args, **kwargs):
        raise AssertionError("sample() was called")

    monkeypatch.setattr(sampling, "sample", refuse)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a model")
    empty = tmp_path / "empty"
    empty.mkdir()
    good = str(model_file)
    for argv, expect in [
        (["--model", str(tmp_path / "missing.pt"), "--out", "g.png"],
         ["no such file", "train one first", "--preset digits"]),
        (["--model", str(a_file), "--out", "g.png"], ["cannot be read", "model.pt"]),
        (["--model", str(empty), "--out", "g.png"], ["without model.pt"]),
        (["--model", good, "--out", str(tmp_path / "g.gif")], ["--out", ".npy", ".png"]),
        (["--model", good, "--out", str(empty)], ["is a folder"]),
        (["--model", good, "--out", str(a_file / "g.png")], ["not a folder"]),
        (["--model", good, "--out", str(a_file / "sub" / "g.png")], ["cannot write there"]),
        (["--model", good, "--out", str(tmp_path / "g.png"), "--device", "tpu"],
         ["--device tpu"]),
    ]:
        assert main(["sample", *argv]) == 2, argv
        _one_line_error(capsys, expect)
    assert not (tmp_path / "g.png").exists()


def test_every_option_has_help():
    sub = next(a for a in _parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert parser.description, name
        for action in parser._actions:
            assert action.help and len(action.help) > 10, (name, action.dest)
    helps = {a.dest: a.help for a in sub.choices["train"]._actions}
    assert "digits 800" in helps["steps"] and "mnist 30000" in helps["steps"]


# ------------------------------------------------------------ interrupt, resume, finish
def _interrupting_train(monkeypatch, at_step, times=1):
    """Replace :func:`train` by one whose callback sends SIGINT ``times`` times at
    ``at_step``: a Ctrl-C, delivered by the operating system to this process."""
    real = training.train

    def wrapped(*args, **kwargs):
        def ctrl_c(step, loss):
            if step == at_step:
                for _ in range(times):
                    signal.raise_signal(signal.SIGINT)
        return real(*args, callback=ctrl_c, **kwargs)

    monkeypatch.setattr(training, "train", wrapped)
    return real


def test_ctrl_c_then_resume_then_finished(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", *SMALL, "--out", str(out)]
    real = _interrupting_train(monkeypatch, at_step=2)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted after step 3 of 6" in err and "Resume with:" in err, err
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3
    assert not (out / "model.pt").exists()
    command = err.strip().splitlines()[-1].strip()
    words = shlex.split(command)
    assert words[1:3] == ["-m", "diffnotes.images"] and words[3:] == argv, command

    # the printed command resumes, says from where, and ends as an uninterrupted run
    monkeypatch.setattr(training, "train", real)
    assert main(words[3:]) == 0
    captured = capsys.readouterr()
    assert f"resuming {out} from step 3 of 6" in captured.err, captured.err
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert report["resumed_from"] == 3 and report["steps"] == 6
    straight = train(CONFIG, progress=False, device="cpu")
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert all(torch.equal(ckpt["model"][k], v) for k, v in straight.model.state_dict().items())
    assert np.array_equal(ckpt["losses"].numpy(), straight.losses)

    # a finished run is not trained again; it says where the model is
    before = (out / "model.pt").read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("train() was called")

    monkeypatch.setattr(training, "train", refuse)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "this run is complete (6 of 6 steps)" in err and str(out / "model.pt") in err, err
    assert "--overwrite" in err and (out / "model.pt").read_bytes() == before

    # --overwrite trains afresh (the same deterministic run)
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["resume"])
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train", spy)
    assert main([*argv, "--overwrite"]) == 0
    assert calls == [False]
    assert "training the digits preset for 6 steps" in capsys.readouterr().err
    again = load_checkpoint(out / "checkpoint.pt")
    assert all(torch.equal(again["model"][k], v) for k, v in ckpt["model"].items())


def test_a_second_ctrl_c_stops_at_once(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _interrupting_train(monkeypatch, at_step=1, times=2)
    assert main(["train", *SMALL, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "second Ctrl-C" in err and "To resume from the last checkpoint" in err, err
    assert not (out / "checkpoint.pt").exists()     # stopped inside step 1: nothing saved


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_interrupted_api_run_resumes_bit_exact(tmp_path, dropout):
    config = TINY.replace(dropout=dropout)
    straight = train(config, progress=False, device="cpu")

    def ctrl_c(step, loss):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted) as stop:
        train(config, out=tmp_path, progress=False, device="cpu", callback=ctrl_c)
    assert (stop.value.step, stop.value.steps) == (4, 6)
    assert stop.value.checkpoint == tmp_path / "checkpoint.pt"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    resumed = train(config, out=tmp_path, progress=False, device="cpu")
    assert resumed.info["resumed_from"] == 4
    assert _same_state(straight.model, resumed.model) and _same_state(straight.ema, resumed.ema)
    assert np.array_equal(straight.losses, resumed.losses)
    if dropout:          # the masks were drawn: the run differs from one without dropout
        plain = train(TINY, progress=False, device="cpu")
        assert not _same_state(plain.model, straight.model)
    # the handler is gone once train() returns: SIGINT is a KeyboardInterrupt again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupt_without_out_saves_nothing():
    def ctrl_c(step, loss):
        if step == 1:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted, match="nothing saved") as stop:
        train(TINY, progress=False, device="cpu", callback=ctrl_c)
    assert stop.value.step == 2 and stop.value.checkpoint is None


def test_resume_command_under_torchrun():
    argv = ["train", "--preset", "mnist", "--out", "runs/my run", "--overwrite"]
    assert _command(argv, 4) == ("torchrun --nproc_per_node 4 -m diffnotes.images train "
                                 "--preset mnist --out 'runs/my run'")
    assert _command(argv, 1).endswith(" -m diffnotes.images train --preset mnist --out "
                                      "'runs/my run'")


def test_ctrl_c_in_a_subprocess(tmp_path):
    """A real Ctrl-C (SIGINT from outside) on a long run: checkpoint, resume command, 130."""
    out = tmp_path / "long"
    argv = ["train", "--preset", "digits", "--steps", "100000", "--batch-size", "16",
            "--ckpt-every", "10", "--out", str(out), "--device", "cpu", "--threads", "1",
            "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "diffnotes.images", *argv], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stderr.readline()
        assert "training the digits preset for 100000 steps" in line, line
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():    # the loop has run 10 steps
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    step = int(err.split("interrupted after step ")[1].split()[0])
    assert step >= 10 and load_checkpoint(out / "checkpoint.pt")["step"] == step
    command = shlex.split(err.strip().splitlines()[-1])
    assert command[1:] == ["-m", "diffnotes.images", *argv]
    assert os.path.abspath(command[0]) == os.path.abspath(sys.executable) or \
        command[0] == "python"


# ---------------------------------------------------------------------------- sampling
def test_sample_grid_is_readable(tmp_path, model_file, capsys):
    npy, png = tmp_path / "x.npy", tmp_path / "g.png"
    common = ["--model", str(model_file), "--sampler", "heun", "--steps", "2", "--n", "10",
              "--device", "cpu", "--seed", "3"]
    assert main(["sample", *common, "--out", str(npy)]) == 0
    assert main(["sample", *common, "--out", str(png)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    import matplotlib.pyplot as plt

    small = grid(np.load(npy))                  # 10 digits: 4 columns, 3 rows -> 28 x 37
    assert small.shape == (28, 37)
    scale = -(-MIN_WIDTH // small.shape[1])     # the least scale reaching 400 pixels: 11
    image = plt.imread(png)
    assert image.shape[:2] == (28 * scale, 37 * scale) and image.shape[1] >= MIN_WIDTH
    assert report["shape"] == [28 * scale, 37 * scale]
    # nearest neighbour: every pixel a constant block of the grid's grey level
    levels = TINY.levels
    assert np.abs(image[..., 0] * levels - np.kron(small, np.ones((scale, scale)))).max() < 0.6
    assert main(["sample", *common, "--scale", "1", "--out", str(png)]) == 0
    assert plt.imread(png).shape[:2] == small.shape
    # the folder of a run is accepted for --model
    assert main(["sample", *common[2:], "--model", str(model_file.parent),
                 "--out", str(npy)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["model"] == \
        str(model_file)


def test_ctrl_c_while_loading_stops_before_the_first_step(tmp_path, monkeypatch):
    real = training.dataset

    def slow_load(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)         # Ctrl-C while the data are loading
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "dataset", slow_load)
    seen = []
    with pytest.raises(Interrupted) as stop:
        train(TINY, out=tmp_path, progress=False, device="cpu",
              callback=lambda step, loss: seen.append(step))
    assert stop.value.step == 0 and seen == []
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 0


def test_save_grid_enlarges_to_a_readable_width(tmp_path):
    import matplotlib.image as mpimg

    from diffnotes.images.plotting import MIN_WIDTH, save_grid

    pixels = np.random.default_rng(0).integers(0, 17, size=(16, 8, 8))
    shape = save_grid(pixels, 16, tmp_path / "g.png")
    assert shape[1] >= MIN_WIDTH and mpimg.imread(tmp_path / "g.png").shape[:2] == shape
    assert save_grid(pixels, 16, tmp_path / "h.png", scale=1)[1] < MIN_WIDTH
    with pytest.raises(ValueError, match="scale"):
        save_grid(pixels, 16, tmp_path / "x.png", scale=0)
