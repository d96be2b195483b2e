r"""Command line of :mod:`diffnotes.images`: ``python -m diffnotes.images {train,sample} ...``.

Examples::

    python -m diffnotes.images train --preset digits --out runs/digits
    python -m diffnotes.images train --preset mnist8k --out runs/mnist8k --device cpu
    torchrun --nproc_per_node 4 -m diffnotes.images train --preset mnist --out runs/mnist
    python -m diffnotes.images sample --model runs/digits/model.pt --sampler heun \
        --steps 18 --n 64 --out grid.png

Mistakes (a missing model, an output path that cannot be written, a bad number, missing data, a
folder holding another run) are found before any work starts and reported on one line of
stderr with the fix, exit status 2. ``train`` resumes from ``OUT/checkpoint.pt`` and says from
which step; a finished run is not trained again (``--overwrite`` starts afresh); Ctrl-C lets
the current step finish, writes a checkpoint and prints the command that resumes (exit
status 130). ``sample`` writes a PNG grid enlarged (nearest neighbour) to at least 400 pixels
wide, or a ``.npy`` array of pixel levels.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..score import PARAMETERIZATIONS
from .config import T_SAMPLINGS, WEIGHTINGS
from .plotting import MIN_WIDTH
from .training import PRESETS

PROG = "python -m diffnotes.images"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TRAIN_FIELDS = {"steps": "training steps", "batch_size": "global minibatch size (all "
                "processes together)", "ckpt_every": "write checkpoint.pt every this many "
                "steps", "seed": "random seed (initial weights, batches, noise)",
                "warmup": "linear learning-rate warm-up steps", "lr": "peak learning rate",
                "ema_decay": "decay of the moving average of the weights, in [0, 1)"}

TRAIN_CHOICES = {
    "parameterization": (PARAMETERIZATIONS, "what the network predicts"),
    "weighting": (WEIGHTINGS, "the loss: sigma2 the noise loss, velocity the velocity loss"),
    "t_sampling": (T_SAMPLINGS, "how training draws its noise levels"),
}


class UserError(Exception):
    """A mistake of the user's, reported on one line with its fix (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):                      # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _whole(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = "whole number"
    return parse


def _real(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def _parser():
    p = _Parser(prog=PROG, description="Train and sample the image score models of Chapter 5 "
                "of diffnotes.", epilog=__doc__.split("Examples::")[1].split("Mistakes")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,sample}",
                           parser_class=_Parser)
    t = sub.add_parser("train", help="train a U-Net (resumes from OUT/checkpoint.pt)",
                       description="Train the U-Net of a preset by denoising score matching. "
                       "Run the same command again to resume an interrupted run.")
    t.add_argument("--preset", choices=sorted(PRESETS), default="digits",
                   help="digits: 8x8 digits, a minute on one CPU core (default); "
                   "digits-cond: the same, class-conditional (guidance); mnist8k, "
                   "mnist8k-cond: the shipped MNIST networks' configurations; mnist: the "
                   "60000 training images, for a GPU")
    t.add_argument("--out", required=True, help="folder for checkpoint.pt and model.pt "
                   "(created)")
    t.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: CUDA if "
                   "there is a GPU, else the CPU)")
    t.add_argument("--data-dir", default=None, help="folder with the MNIST files (default: "
                   "$DIFFNOTES_DATA, then the download cache)")
    t.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true",
                   help="discard the run already in OUT (checkpoint.pt, model.pt) and train "
                   "afresh")
    t.add_argument("--threads", type=_whole(1), default=None,
                   help="torch CPU threads (default: torch's own choice)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    for f, what in TRAIN_FIELDS.items():
        t.add_argument("--" + f.replace("_", "-"), type=_real if f in ("lr", "ema_decay")
                       else _whole(0 if f in ("seed", "warmup") else 1), default=None,
                       help=f"{what} (default: the preset's, "
                       f"{', '.join(f'{k} {getattr(c, f)}' for k, c in PRESETS.items())})")
    for f, (choices, what) in TRAIN_CHOICES.items():
        t.add_argument("--" + f.replace("_", "-"), choices=choices, default=None,
                       help=f"{what} (default: the preset's, "
                       f"{', '.join(f'{k} {getattr(c, f)}' for k, c in PRESETS.items())})")

    s = sub.add_parser("sample", help="sample images from a trained model",
                       description="Draw images from a trained model with one of the three "
                       "samplers of Chapter 5.")
    s.add_argument("--model", required=True, help="model.pt or checkpoint.pt written by train, "
                   "or the folder holding them")
    s.add_argument("--sampler", choices=["em", "heun", "ehrenfest"], default="heun",
                   help="em: Euler-Maruyama on the reverse SDE; heun: the second-order "
                   "probability-flow ODE (default); ehrenfest: the Ehrenfest process on the "
                   "pixel levels")
    s.add_argument("--steps", type=_whole(1), default=None, help="sampler steps (default per "
                   "sampler: em 1000, heun 18, ehrenfest 200)")
    s.add_argument("--n", type=_whole(1), default=64, help="number of images (default 64)")
    s.add_argument("--seed", type=_whole(0), default=0, help="random seed (default 0)")
    s.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: CUDA if "
                   "there is a GPU, else the CPU)")
    s.add_argument("--scale", type=_whole(1), default=None, help="enlarge each pixel of a "
                   f"picture to SCALE x SCALE (default: the least making it {MIN_WIDTH} px "
                   "wide)")
    s.add_argument("--out", required=True, help="a picture of the grid (.png, .jpg, .tif) or "
                   "a .npy array of pixel levels")
    return p


# ------------------------------------------------------------------------------- checks
def _writable_folder(folder: Path, option: str) -> None:
    """Create ``folder`` if needed and check that a file can be written in it."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder}: exists and is not a folder; choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise UserError(f"{option} {folder}: cannot write there ({err.strerror or err}); "
                        "choose a folder you can write to") from None


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:160] if text else type(err).__name__


def _device(name):
    from ..utils import device

    try:
        return device(name)
    except ValueError as err:
        raise UserError(f"--device {name}: {err}") from None


def _python() -> str:
    """How to call this interpreter: ``python`` if that is it on PATH, else its full path."""
    found = shutil.which("python")
    if found and os.path.abspath(found) == os.path.abspath(sys.executable):
        return "python"
    return shlex.quote(sys.executable)


def _command(argv, world: int) -> str:
    """The command line that runs ``argv`` again (without ``--overwrite``)."""
    rest = [a for a in argv if a not in ("--overwrite", "--no-resume")]
    head = (f"torchrun --nproc_per_node {world} -m diffnotes.images" if world > 1
            else f"{_python()} -m diffnotes.images")
    return f"{head} {shlex.join(rest)}"


def _train_config(args):
    base = PRESETS[args.preset]
    overrides = {f: getattr(args, f) for f in (*TRAIN_FIELDS, *TRAIN_CHOICES)
                 if getattr(args, f) is not None}
    for f, v in overrides.items():                 # each on its own, to name its option
        try:
            base.replace(**{f: v})
        except ValueError as err:
            raise UserError(f"--{f.replace('_', '-')} {v}: {err}") from None
    try:
        return base.replace(**overrides)
    except ValueError as err:
        raise UserError(str(err)) from None


def _check_data(config, data_dir, world: int) -> None:
    from .training import dataset

    try:
        x, _, _ = dataset(config.dataset, "train", data_dir=data_dir)
    except (OSError, ValueError, ImportError) as err:
        raise UserError(f"the {config.dataset} training images cannot be read: "
                        f"{_first_line(err)} (pass "
                        "--data-dir or set DIFFNOTES_DATA to a folder with the MNIST files)"
                        ) from None
    n = x.shape[0]
    if config.batch_size % world:
        raise UserError(f"--batch-size {config.batch_size}: must be divisible by the number of "
                        f"processes ({world})")
    if config.batch_size > n:
        raise UserError(f"--batch-size {config.batch_size}: larger than the {config.dataset} "
                        f"training set ({n} images); choose at most {n}")


def _run_state(out: Path, config):
    """``None`` (nothing there), or the step of the checkpoint in ``out`` of ``config``."""
    from .training import load_checkpoint

    ckpt_path, model_path = out / "checkpoint.pt", out / "model.pt"
    fix = "use another --out, or --overwrite to discard it"
    if not ckpt_path.is_file():
        if model_path.is_file():
            raise UserError(f"--out {out}: holds model.pt but no checkpoint.pt; {fix}")
        return None
    try:
        ckpt = load_checkpoint(ckpt_path)
    except Exception as err:  # noqa: BLE001 -- unreadable for any reason: the same advice
        why = _first_line(err) if isinstance(err, ValueError) else "not a torch file of ours"
        raise UserError(f"--out {out}: {ckpt_path.name} cannot be read ({why}); {fix}") \
            from None
    if ckpt.get("config") != config.to_dict():
        old = ckpt.get("config", {})
        diff = ", ".join(f"{k} {old.get(k)} there, {v} now" for k, v in config.to_dict().items()
                         if old.get(k) != v)
        raise UserError(f"--out {out}: holds a run of another configuration ({diff}); {fix}, "
                        "or repeat that run's options to resume it")
    return int(ckpt["step"])


# ------------------------------------------------------------------------------ commands
def _train(args, argv) -> int:
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if rank == 0 else \
        (lambda msg: None)
    config = _train_config(args)
    _device(args.device)
    out = Path(args.out)
    _writable_folder(out, "--out")
    step = None if args.overwrite else _run_state(out, config)
    if step == config.steps and (out / "model.pt").is_file():
        say(f"{out}: this run is complete ({step} of {config.steps} steps); the model is "
            f"{out / 'model.pt'}. Sample it with: {_python()} -m diffnotes.images sample "
            f"--model {shlex.quote(str(out / 'model.pt'))} --out grid.png  (to train it "
            "again from scratch, add --overwrite)")
        return 0
    _check_data(config, args.data_dir, world)

    from .training import Interrupted, train

    if step is not None:
        say(f"resuming {out} from step {step} of {config.steps} ({out / 'checkpoint.pt'})")
    else:
        say(f"training the {args.preset} preset for {config.steps} steps into {out}")
    resume = _command(argv, world)
    try:
        r = train(config, out=out, resume=not args.overwrite, device=args.device,
                  data_dir=args.data_dir, progress=not args.no_progress,
                  cpu_threads=args.threads)
    except Interrupted as err:
        say(f"interrupted after step {err.step} of {err.steps}; checkpoint written to "
            f"{err.checkpoint}. Resume with:\n  {resume}")
        return 130
    except KeyboardInterrupt:
        say("interrupted before the step could finish (a second Ctrl-C): nothing new was "
            f"saved. To resume from the last checkpoint, if any:\n  {resume}")
        return 130
    if rank == 0:
        print(json.dumps({"out": args.out, "steps": config.steps,
                          "final_loss": float(r.losses[-100:].mean()),
                          "seconds": round(r.seconds, 1),
                          "images_per_second": round(r.images_per_second, 1), **r.info}))
        say(f"the model is {out / 'model.pt'}; sample it with: {_python()} -m "
            f"diffnotes.images sample --model {shlex.quote(str(out / 'model.pt'))} "
            "--out grid.png")
    return 0


def _model_file(path: Path) -> Path:
    from .training import load_checkpoint

    hint = (f"train one first ({PROG} train --preset digits --out runs/digits) and pass "
            "--model runs/digits/model.pt")
    if path.is_dir():
        found = [path / n for n in ("model.pt", "checkpoint.pt") if (path / n).is_file()]
        if not found:
            raise UserError(f"--model {path}: a folder without model.pt or checkpoint.pt; "
                            f"{hint}")
        path = found[0]
    elif not path.is_file():
        raise UserError(f"--model {path}: no such file; {hint}")
    try:
        load_checkpoint(path)
    except Exception as err:  # noqa: BLE001 -- unreadable for any reason: the same advice
        why = _first_line(err) if isinstance(err, ValueError) else "not a torch file of ours"
        raise UserError(f"--model {path}: cannot be read ({why}); pass a model.pt written "
                        f"by {PROG} train") from None
    return path


def _sample(args) -> int:
    out = Path(args.out)
    suffix = out.suffix.lower()
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give a file name such as {out / 'grid.png'}")
    if suffix not in (".npy", *IMAGE_SUFFIXES):
        raise UserError(f"--out {out}: must end in .npy or one of {', '.join(IMAGE_SUFFIXES)}")
    path = _model_file(Path(args.model))
    _device(args.device)
    _writable_folder(out.parent, "--out")

    from .sampling import sample
    from .training import load_model

    model, config, _ = load_model(path, device=args.device)
    t0 = time.perf_counter()
    try:
        run = sample(model, config, args.n, sampler=args.sampler, n_steps=args.steps,
                     seed=args.seed)
    except ValueError as err:
        raise UserError(str(err)) from None
    seconds = time.perf_counter() - t0
    if suffix == ".npy":
        import numpy as np

        np.save(out, run.pixels)
        shape = list(run.pixels.shape)
    else:
        from .plotting import save_grid

        shape = list(save_grid(run.pixels, config.levels, out, scale=args.scale))
    print(json.dumps({"out": args.out, "model": str(path), "sampler": args.sampler,
                      "n": args.n, "nfe": run.nfe, "seconds": round(seconds, 2),
                      "shape": shape}))
    return 0


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        return _train(args, argv) if args.command == "train" else _sample(args)
    except UserError as err:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
