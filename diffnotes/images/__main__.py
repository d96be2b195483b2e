r"""Command line of :mod:`diffnotes.images`: ``python -m diffnotes.images {train,sample} ...``.

Examples::

    python -m diffnotes.images train --preset digits --out runs/digits
    python -m diffnotes.images train --preset mnist8k --out runs/mnist8k --device cpu
    torchrun --nproc_per_node 4 -m diffnotes.images train --preset mnist --out runs/mnist
    python -m diffnotes.images sample --model runs/mnist8k/model.pt --sampler heun \
        --steps 18 --n 64 --out grid.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .training import PRESETS, TrainConfig


def _parser():
    p = argparse.ArgumentParser(prog="python -m diffnotes.images",
                                description="Train and sample the image score models of "
                                            "Chapter 5 of diffnotes.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a U-Net (resumes from OUT/checkpoint.pt)")
    t.add_argument("--preset", choices=sorted(PRESETS), default="digits")
    t.add_argument("--out", required=True, help="folder for checkpoint.pt and model.pt")
    t.add_argument("--device", default=None, help="cpu, cuda or cuda:K (default: CUDA if any)")
    t.add_argument("--data-dir", default=None, help="folder with the MNIST files")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has a "
                   "checkpoint")
    t.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's own choice)")
    t.add_argument("--no-progress", action="store_true")
    for f in ("steps", "batch_size", "ckpt_every", "seed", "warmup"):
        t.add_argument("--" + f.replace("_", "-"), type=int, default=None)
    for f in ("lr", "ema_decay"):
        t.add_argument("--" + f.replace("_", "-"), type=float, default=None)

    s = sub.add_parser("sample", help="sample images from a trained model")
    s.add_argument("--model", required=True, help="model.pt or checkpoint.pt")
    s.add_argument("--sampler", choices=["em", "heun", "ehrenfest"], default="heun")
    s.add_argument("--steps", type=int, default=None, help="sampler steps (default per "
                   "sampler: em 1000, heun 18, ehrenfest 200)")
    s.add_argument("--n", type=int, default=64, help="number of images")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.add_argument("--out", required=True, help="a .png grid, or a .npy array of pixels")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        from .training import train

        overrides = {f: getattr(args, f) for f in ("steps", "batch_size", "ckpt_every",
                                                   "seed", "warmup", "lr", "ema_decay")
                     if getattr(args, f) is not None}
        config: TrainConfig = PRESETS[args.preset].replace(**overrides)
        r = train(config, out=args.out, resume=not args.no_resume, device=args.device,
                  data_dir=args.data_dir, progress=not args.no_progress,
                  cpu_threads=args.threads)
        import os
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps({"out": args.out, "steps": config.steps,
                              "final_loss": float(r.losses[-100:].mean()),
                              "seconds": round(r.seconds, 1),
                              "images_per_second": round(r.images_per_second, 1),
                              **r.info}))
        return 0
    from .sampling import sample
    from .training import load_model

    model, config, _ = load_model(args.model, device=args.device)
    t0 = time.perf_counter()
    run = sample(model, config, args.n, sampler=args.sampler, n_steps=args.steps,
                 seed=args.seed)
    seconds = time.perf_counter() - t0
    if args.out.endswith(".npy"):
        import numpy as np
        np.save(args.out, run.pixels)
    else:
        from .plotting import save_grid
        save_grid(run.pixels, config.levels, args.out)
    print(json.dumps({"out": args.out, "sampler": args.sampler, "n": args.n,
                      "nfe": run.nfe, "seconds": round(seconds, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
