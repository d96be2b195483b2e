"""Benchmark: training recipes of the digits network, judged by the ODE sampler against the SDE
(issue 13, item 4; :mod:`diffnotes.images.recipes`).

``images_digits_recipe`` trains every recipe of :data:`diffnotes.images.recipes.RECIPES` for
seeds 0 and 1 (the noise loss at uniform times, which was the ``digits`` preset, with one
change each: the density of the training times, the velocity loss, three times the steps),
and scores 300 samples of Euler-Maruyama at 1000 steps, Heun at 25 steps (51 evaluations)
and Heun at 9 (19) by the book's protocol. It prints, per recipe and seed, the
noise-prediction error at a few times and the FD of each sampler with its ratio to EM-1000,
then the mean ratio over the seeds. Targets: the preset's recipe (now the velocity loss) and
the best recipe each reach Heun-25 <= 1.10x EM-1000 on the mean of the two seeds (issue 13's
target). The row times training the noise loss (baseline) against the velocity recipe
(candidate), seed 0; information. About ten minutes on one idle core.
"""

import numpy as np

from diffnotes.images import recipes
from diffnotes.images.config import PRESETS

from .harness import Case, benchmark, target
from .harness import one_thread as _one_thread

SEEDS = (0, 1)
BOUND = 1.10
_RUNS = {}


def _run(name, seed):
    if (name, seed) not in _RUNS:
        _RUNS[(name, seed)] = recipes.recipe_run(name, seed)
    return _RUNS[(name, seed)]


def _print(name, seed, r):
    err = ", ".join(f"t={t:g}: {e:.3f}" for t, e in r["error"].items())
    em, h25, h9 = r["em1000"], r["heun25"], r["heun9"]
    print(f"  {name:40s} seed {seed}: train {r['train_seconds']:5.1f} s; noise error {err}")
    print(f"  {'':40s} FD EM-1000 {em[0]:5.2f} +- {em[1]:.2f}, Heun-25 {h25[0]:5.2f} "
          f"({h25[2]:.2f} +- {h25[3]:.2f} x EM), Heun-9 {h9[0]:5.2f} ({h9[2]:.2f} x EM); "
          f"floor {r['floor'][0]:.2f} +- {r['floor'][1]:.2f}")


@benchmark
def images_digits_recipe():
    noise, velocity = list(recipes.RECIPES)[0], "velocity loss, uniform t"
    preset = PRESETS["digits"]
    default = next(n for n, ch in recipes.RECIPES.items() if preset.replace(**ch) == preset)

    def check(_, __):
        means = {}
        for name in recipes.RECIPES:
            rows = [_run(name, s) for s in SEEDS]
            for s, r in zip(SEEDS, rows, strict=True):
                _print(name, s, r)
            means[name] = float(np.mean([r["heun25"][2] for r in rows]))
            print(f"  {name:40s} Heun-25 / EM-1000, mean of seeds {SEEDS}: "
                  f"{means[name]:.3f}")
        best = min(means, key=means.get)
        for label, name in (("the preset's recipe", default), ("the best recipe", best)):
            ok = means[name] <= BOUND
            target(f"images recipe: {label} ({name}) Heun-25 <= {BOUND:.2f}x EM-1000",
                   ok, f"mean over seeds {SEEDS}: {means[name]:.3f}")

    return Case(
        name="images: digits recipes, noise vs velocity loss (train + score)",
        baseline=_one_thread(lambda: _run(noise, 0)),
        candidate=_one_thread(lambda: _run(velocity, 0)),
        target=0.0,
        check=_one_thread(check),
        repeats=1,
    )
