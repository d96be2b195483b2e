r"""Training recipes for the digits network compared by what matters to the samplers
(Chapter 5, "Where training spends its effort").

One run (:func:`recipe_run`) trains the ``digits`` preset with some fields changed
(:data:`RECIPES`), then

* measures the network's noise-prediction error
  :math:`\sqrt{\mathbb E\|\hat\varepsilon - \varepsilon\|^2 / d}` on the 300 held-out digits at
  a few times (:data:`ERROR_TIMES`), whatever the parameterisation (the noise is read off the
  score, :math:`\hat\varepsilon = -\sigma s`);
* draws 300 digits with Euler-Maruyama at 1000 steps (the reference) and with Heun at 25 and
  9 steps (51 and 19 evaluations), and scores them by the book's protocol
  (:func:`~diffnotes.images.metrics.quality`, 150 against held-out sets of 150, 6 draws):
  the FD of each sampler and its ratio to EM-1000's, with the spread of the per-draw ratios.

``benchmarks/bench_recipe.py`` runs every recipe for two seeds and prints the table;
:data:`RECIPES_MEASURED` records one such run, which the chapter prints (training five recipes
twice takes about ten minutes of one core, too long for the chapter).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..utils import torch_threads
from . import metrics
from .config import PRESETS, make_sde
from .sampling import sample
from .training import dataset, to_unit, train

__all__ = ["ERROR_TIMES", "RECIPES", "RECIPES_MEASURED", "noise_error", "recipe_run"]

_NOISE = {"parameterization": "noise", "weighting": "sigma2"}
RECIPES = {
    "noise loss, uniform t": _NOISE,
    "noise loss, log-SNR uniform": {**_NOISE, "t_sampling": "logsnr"},
    "noise loss, EDM log-normal": {**_NOISE, "t_sampling": "lognormal"},
    "velocity loss, uniform t": {"parameterization": "velocity", "weighting": "velocity"},
    "noise loss, uniform t, 3x the steps": {**_NOISE, "steps": 2400},
}
"""The recipes compared: the ``digits`` preset with these fields of
:class:`~diffnotes.images.config.TrainConfig` set. The first is the preset as it was before
this comparison (the noise loss); the velocity loss won it and is the preset now."""

ERROR_TIMES = (0.002, 0.01, 0.05, 0.2, 0.6)
"""The times at which :func:`recipe_run` measures the noise-prediction error."""

SAMPLERS = (("em", 1000), ("heun", 25), ("heun", 9))


def noise_error(model, config, x, t: float, generator) -> float:
    r"""The RMS noise-prediction error :math:`\sqrt{\mathbb E\|\hat\varepsilon -
    \varepsilon\|^2/d}` of ``model`` (any parameterisation: :math:`\hat\varepsilon =
    -\sigma s`) on the clean images ``x`` noised to time ``t`` with noise from the torch
    ``generator``."""
    sde = make_sde(config)
    eps = torch.randn(x.shape, generator=generator)
    alpha, sigma = (float(c) for c in sde.alpha_sigma(t))
    with torch.no_grad():
        e_hat = -sigma * model.score(alpha * x + sigma * eps, t, sde)
    return float((e_hat - eps).pow(2).mean().sqrt())


def recipe_run(name: str, seed: int = 0, *, classifier=None, n: int = 300) -> dict:
    """Train the recipe ``name`` of :data:`RECIPES` with ``seed`` on one CPU thread and score
    it (see the module docstring). Returns a dict: ``"train_seconds"``, ``"error"`` (time ->
    RMS noise error), and for each sampler key ``"em1000"``, ``"heun25"``, ``"heun9"`` the
    tuple ``(FD mean, FD spread, FD / FD of EM-1000, spread of the per-draw ratios)``, and
    ``"floor"`` ``(mean, spread)``."""
    if name not in RECIPES:
        raise ValueError(f"name must be one of {', '.join(map(repr, RECIPES))}; got {name!r}")
    with torch_threads(1):
        x_tr, y_tr, _ = dataset("digits", "train")
        x_ev, _, _ = dataset("digits", "eval")
        clf = classifier or metrics.train_classifier(x_tr, y_tr, device="cpu")
        config = PRESETS["digits"].replace(seed=seed, **RECIPES[name])
        t0 = time.perf_counter()
        res = train(config, device="cpu", progress=False)
        row = {"train_seconds": time.perf_counter() - t0}
        gen = torch.Generator().manual_seed(5)
        row["error"] = {t: noise_error(res.ema, config, x_ev, t, gen) for t in ERROR_TIMES}
        qs = {}
        for sampler, k in SAMPLERS:
            run = sample(res.ema, config, n, sampler=sampler, n_steps=k, seed=0)
            qs[f"{sampler}{k}"] = metrics.quality(clf, to_unit(run.pixels, config.levels),
                                                  x_ev, n // 2, n_draws=6, rng=0)
    ref = qs["em1000"]
    for key, q in qs.items():
        ratios = np.array(q.fd.values) / np.array(ref.fd.values)
        row[key] = (q.fd.mean, q.fd.std, q.fd.mean / ref.fd.mean, float(ratios.std(ddof=1)))
    row["floor"] = (ref.floor_fd.mean, ref.floor_fd.std)
    return row


RECIPES_MEASURED = {
    ('noise loss, uniform t', 0): {
        "train_seconds": 81.7,
        "error": {0.002: 0.8882, 0.01: 0.7802, 0.05: 0.6218, 0.2: 0.3981, 0.6: 0.0971},
        "em1000": (11.303, 1.631, 1.0, 0.0),
        "heun25": (11.142, 1.081, 0.986, 0.16),
        "heun9": (11.637, 1.036, 1.03, 0.171),
        "floor": (8.965, 2.643),
    },
    ('noise loss, uniform t', 1): {
        "train_seconds": 73.8,
        "error": {0.002: 0.8927, 0.01: 0.7784, 0.05: 0.6194, 0.2: 0.3963, 0.6: 0.0953},
        "em1000": (9.264, 2.305, 1.0, 0.0),
        "heun25": (12.507, 1.263, 1.35, 0.281),
        "heun9": (13.018, 0.945, 1.405, 0.313),
        "floor": (8.965, 2.643),
    },
    ('noise loss, log-SNR uniform', 0): {
        "train_seconds": 70.5,
        "error": {0.002: 0.759, 0.01: 0.7409, 0.05: 0.6122, 0.2: 0.4129, 0.6: 0.1022},
        "em1000": (11.817, 2.098, 1.0, 0.0),
        "heun25": (15.412, 1.559, 1.304, 0.188),
        "heun9": (16.808, 1.536, 1.422, 0.206),
        "floor": (8.965, 2.643),
    },
    ('noise loss, log-SNR uniform', 1): {
        "train_seconds": 93.8,
        "error": {0.002: 0.7699, 0.01: 0.7448, 0.05: 0.6145, 0.2: 0.4136, 0.6: 0.1008},
        "em1000": (12.873, 2.472, 1.0, 0.0),
        "heun25": (15.768, 1.495, 1.225, 0.128),
        "heun9": (16.406, 1.355, 1.274, 0.156),
        "floor": (8.965, 2.643),
    },
    ('noise loss, EDM log-normal', 0): {
        "train_seconds": 111.4,
        "error": {0.002: 0.8142, 0.01: 0.738, 0.05: 0.5878, 0.2: 0.39, 0.6: 0.1383},
        "em1000": (10.439, 2.144, 1.0, 0.0),
        "heun25": (25.115, 2.772, 2.406, 0.375),
        "heun9": (20.567, 2.704, 1.97, 0.284),
        "floor": (8.965, 2.643),
    },
    ('noise loss, EDM log-normal', 1): {
        "train_seconds": 129.6,
        "error": {0.002: 0.8232, 0.01: 0.7393, 0.05: 0.5912, 0.2: 0.3904, 0.6: 0.1297},
        "em1000": (7.943, 1.941, 1.0, 0.0),
        "heun25": (22.634, 0.664, 2.85, 0.673),
        "heun9": (17.348, 0.939, 2.184, 0.558),
        "floor": (8.965, 2.643),
    },
    ('velocity loss, uniform t', 0): {
        "train_seconds": 140.1,
        "error": {0.002: 0.9055, 0.01: 0.7872, 0.05: 0.6269, 0.2: 0.4023, 0.6: 0.0878},
        "em1000": (11.397, 2.601, 1.0, 0.0),
        "heun25": (11.306, 0.97, 0.992, 0.216),
        "heun9": (12.622, 1.0, 1.107, 0.237),
        "floor": (8.965, 2.643),
    },
    ('velocity loss, uniform t', 1): {
        "train_seconds": 134.6,
        "error": {0.002: 0.9004, 0.01: 0.7852, 0.05: 0.6294, 0.2: 0.4026, 0.6: 0.0876},
        "em1000": (11.613, 3.055, 1.0, 0.0),
        "heun25": (11.207, 1.574, 0.965, 0.239),
        "heun9": (11.709, 1.394, 1.008, 0.241),
        "floor": (8.965, 2.643),
    },
    ('noise loss, uniform t, 3x the steps', 0): {
        "train_seconds": 606.7,
        "error": {0.002: 0.8106, 0.01: 0.7481, 0.05: 0.5902, 0.2: 0.3736, 0.6: 0.0908},
        "em1000": (8.859, 2.101, 1.0, 0.0),
        "heun25": (9.942, 1.174, 1.122, 0.311),
        "heun9": (10.043, 1.243, 1.134, 0.32),
        "floor": (8.965, 2.643),
    },
    ('noise loss, uniform t, 3x the steps', 1): {
        "train_seconds": 468.4,
        "error": {0.002: 0.8103, 0.01: 0.744, 0.05: 0.5895, 0.2: 0.3725, 0.6: 0.0901},
        "em1000": (7.931, 2.107, 1.0, 0.0),
        "heun25": (9.547, 1.687, 1.204, 0.423),
        "heun9": (10.022, 1.638, 1.264, 0.423),
        "floor": (8.965, 2.643),
    },
}
"""Measured :func:`recipe_run` results, ``(recipe, seed) -> row`` (rounded), on one thread of
the 2-core Xeon build machine (torch 2.13.0+cpu) while other jobs shared it (load 4-10, so
``train_seconds`` are 1.5-4x what an idle core takes), 2026-12-01: the rows of the velocity
recipe from :func:`recipe_run` itself, the others from a script doing the same steps (same
seeds, sample seed 0, 300 samples, protocol n = 150 with 6 draws; its error used the raw
output, which for the noise parameterisation is the same). ``python -m benchmarks recipe``
reruns all of them."""
