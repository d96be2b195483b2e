r"""The DSB paper's own 2-D problem (De Bortoli, Thornton, Heng and Doucet, 2021): the s-curve
to a Gaussian, at the scale of its reference code.

The data are scikit-learn's ``make_s_curve`` without noise, columns 0 and 2,
:math:`(\sin\theta,\ \operatorname{sign}(\theta)(\cos\theta - 1))` with
:math:`\theta \sim \mathcal U[-3\pi/2, 3\pi/2]`, centred by the mean of *all* their
coordinates, divided by the standard deviation of all their coordinates, and multiplied by 7.
The reference code takes these constants from its 10,000 points; here they are the law's own:
the pooled mean is 0 (both coordinates are odd in :math:`\theta`) and the pooled variance is
:math:`\tfrac12\bigl(\mathbb E\sin^2\theta + \mathbb E(\cos\theta - 1)^2\bigr)
= \tfrac12\bigl(\tfrac12 + \tfrac32 + \tfrac{4}{3\pi}\bigr)`, so that the scaled data have mean
:math:`m = 0` in each coordinate and scalar variance :math:`v = 49` (:data:`S_CURVE_VAR`).

The prior is :math:`\mathcal N(m, v I)` with those moments (the reference code estimates them
from 100 points), and the reference process is the discretised Ornstein-Uhlenbeck process
towards it, drift :math:`\nabla\log\mathcal N(x; 0, vI) = -x/v`, i.e.
``DSB(2, 20, 0.01, alpha=S_CURVE_ALPHA)``. Its total time
:math:`T = 0.2` is short against the prior's scale: the reference barely moves the data (it adds
noise of variance :math:`2T = 0.4` to data of variance 49), so the first IPF iteration is far
from the bridge and the later ones have to do the transport.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import as_rng, positive_int

__all__ = ["FIRST_HALF_STEP_VARIANTS", "S_CURVE_ALPHA", "S_CURVE_MEASURED", "S_CURVE_SCALE",
           "S_CURVE_SCHEDULES", "S_CURVE_VAR", "first_half_step_ablation", "s_curve",
           "s_curve_prior"]

_POOLED_STD = math.sqrt(0.5 * (0.5 + 1.5 + 4 / (3 * math.pi)))
S_CURVE_SCALE = 7.0
"""The reference code's scaling factor: the data have pooled standard deviation 7."""
S_CURVE_VAR = S_CURVE_SCALE**2
"""The scalar variance :math:`v = 49` of the scaled s-curve, the prior's variance."""
S_CURVE_ALPHA = 1.0 / S_CURVE_VAR
"""The reference drift :math:`-\\alpha x` towards :math:`\\mathcal N(0, vI)`: ``alpha = 1/v``."""


def s_curve(n: int, rng) -> np.ndarray:
    r"""``n`` points of the DSB reference code's s-curve (shape ``(n, 2)``, noise 0): columns
    0 and 2 of scikit-learn's ``make_s_curve`` scaled as in the module docstring, i.e.
    :math:`(7/s)\,(\sin\theta,\ \operatorname{sign}(\theta)(\cos\theta - 1))`,
    :math:`\theta \sim \mathcal U[-3\pi/2, 3\pi/2]`, :math:`s^2 = 1 + 2/(3\pi)`."""
    n = positive_int(n, "n")
    t = 3 * math.pi * (as_rng(rng).uniform(size=n) - 0.5)
    x = np.stack([np.sin(t), np.sign(t) * (np.cos(t) - 1)], axis=1)
    return x * (S_CURVE_SCALE / _POOLED_STD)


def s_curve_prior(n: int, rng) -> np.ndarray:
    r"""``n`` draws of the prior :math:`\mathcal N(0, 49 I_2)` of the s-curve problem."""
    n = positive_int(n, "n")
    return S_CURVE_SCALE * as_rng(rng).standard_normal((n, 2))


FIRST_HALF_STEP_VARIANTS = {
    "old defaults": dict(hidden=128, embed_dim=32, drift_scale=1.0),
    "time embedding (sin s, cos s)": dict(hidden=128, embed_dim=2, drift_scale=1.0),
    "drift scale spread / T": dict(hidden=128, embed_dim=32, drift_scale=None),
    "both, 128 wide": dict(hidden=128, embed_dim=2, drift_scale=None),
    "both, 64 wide (new defaults)": dict(hidden=64, embed_dim=2, drift_scale=None),
}
"""The variants of :func:`first_half_step_ablation`: keyword arguments of ``DSB``."""


def first_half_step_ablation(n_train: int = 1500, *, n: int = 2000, seed: int = 0,
                             variants=None, cache_size: int = 10_000,
                             cache_refresh: int = 100) -> list[dict]:
    r"""The first backward half-step of DSB on the s-curve problem (a score model of the OU
    reference, the same for every IPF run), trained with ``n_train`` Adam steps at the
    reference code's settings (batch 512, lr :math:`10^{-4}`, the given cache) for each of
    ``variants`` (default :data:`FIRST_HALF_STEP_VARIANTS`).

    Returns one dict per variant: ``name``, ``loss`` (the mean-matching loss of the trained
    (averaged) network on one fixed held-out cache of 10,000 reference paths, the same for
    every variant, so that differences between variants are paired; its floor is the variance
    of the regression target's noise, about :math:`2d/\gamma = 400`, so lower means more of
    the drift learned), ``sw2_ref`` (sliced
    :math:`W_2` to ``n`` fresh data points of ``n`` paths run backward from the reference's own
    terminal law, data plus :math:`\mathcal N(0, 2T I)`: how well the reversal is learned),
    ``sw2_prior`` (the same from the prior :math:`\mathcal N(0, 49 I)`: the first IPF
    iteration's samples), ``sw2_prior_mean_last`` (the same with a last step without noise)
    and ``seconds`` (wall time of the training)."""
    import torch

    from .dsb import DSB
    from .dsb_fit import _fit
    from .metrics import sliced_wasserstein2

    n_train = positive_int(n_train, "n_train")
    rows = []
    target = s_curve(n, 1000 + seed)
    rng = np.random.default_rng(2000 + seed)
    model_end = s_curve(n, rng) + math.sqrt(2 * 0.2) * rng.standard_normal((n, 2))
    z = s_curve_prior(n, 3000 + seed)
    for name, kw in (variants or FIRST_HALF_STEP_VARIANTS).items():
        m = DSB(2, 20, 0.01, alpha=S_CURVE_ALPHA, seed=seed, **kw)
        _fit(m, ("backward",), s_curve, s_curve_prior, 1, n_train, 512, 1e-4, 0.999,
             cache_size, cache_refresh, None, seed, None, False, 1)
        h = m.history[-1]
        with torch.no_grad():
            x0 = torch.as_tensor(s_curve(10_000, 4000 + seed), dtype=torch.float32)
            x, s, y = m._cache("backward", x0, torch.Generator().manual_seed(seed))
            loss = float(((m.backward_ema(x, s) - y) ** 2).sum(1).mean())
        rows.append(dict(name=name, loss=loss,
                         sw2_ref=sliced_wasserstein2(m.sample_backward(model_end, seed=1)[0],
                                                     target),
                         sw2_prior=sliced_wasserstein2(m.sample_backward(z, seed=1)[0], target),
                         sw2_prior_mean_last=sliced_wasserstein2(
                             m.sample_backward(z, seed=1, final_noise=False)[0], target),
                         seconds=h.seconds))
    return rows


S_CURVE_MEASURED = {
    "reference code (issue 13)": {"SW2": (1.25, 1.01, 1.23), "cpu": None,
                                  "wall": (68, 84, 86)},
    "DSB, old defaults": {"SW2": (2.148, 1.768, 1.864), "cpu": (50.5, 62.3, 55.8)},
    "DSB, new defaults": {"SW2": (1.658, 1.520), "cpu": (18.9, 22.6)},
    "new defaults, 20,000 steps per half-step": {"SW2": (1.607, 1.563), "cpu": (72.7, 105.6)},
    "new, drift scale N/T = 100": {"SW2": (1.658, 1.560), "cpu": (21.6, 27.6)},
    "  the same, no EMA": {"SW2": (1.676, 1.587), "cpu": (21.3, 24.6)},
    "  the same, networks re-initialised": {"SW2": (1.658, 1.558), "cpu": (20.7, 23.2)},
    "  the same, drift scale 300": {"SW2": (None, 1.671), "cpu": (None, 28.0)},
    "  the same, 128 wide": {"SW2": (1.630, 1.520), "cpu": (48.1, 65.0)},
    "new defaults, lr 1e-3": {"SW2": (1.753, 1.873), "cpu": (24.5, 27.1)},
    "new defaults, cosine lr 1e-4 -> 1e-5": {"SW2": (1.812, None), "cpu": (21.9, None)},
}
"""Measured runs on the s-curve problem at the reference code's settings (``DSB(2, 20, 0.01,
alpha=S_CURVE_ALPHA)``, batch 512, Adam 1e-4, 5000 steps per half-step, cache 10,000 paths
redrawn every 100 steps; seed 0), per IPF iteration: the sliced :math:`W_2` of 2000 samples
(backward from 2000 prior draws, last step with noise) to 2000 fresh data draws (noise floor
about 0.2-0.3), and the CPU seconds of the iteration, one torch thread, on a 2-core machine
shared with other jobs (load average 2-6, so wall times were 1.5-4x the CPU times, and CPU
times under load up to about 1.3x those on a quieter machine: the new defaults' row is from a
load of 1.8, where wall and CPU agreed, 19.0 and 22.7 s; under a load of 6 the same run took
23.4 and 28.8 CPU seconds). The
reference code's row is issue 13's measurement on the same machine (wall seconds). Produced
by ``benchmarks/bench_dsb.py``'s ``s_curve_run``; ``python -m benchmarks dsb_s_curve`` reruns
the default rows."""


S_CURVE_SCHEDULES = {
    "constant 0.01 (T = 0.2), reference settings": {"SW2": (1.658, 1.520)},
    "gammas(20, 0.01, 0.1) (T = 1.1)": {"SW2": (1.479, 1.292, 1.157, 1.042)},
    "gammas(20, 0.01, 0.5) (T = 5.1)": {"SW2": (1.242, 0.844, 0.615, 0.441)},
    "  the same, seed 1": {"SW2": (1.291, 0.881, 0.656, 0.506)},
    "gammas(20, 0.01, 2) (T = 20.1)": {"SW2": (1.300, 1.081, 1.057, 0.885)},
}
"""Measured runs on the s-curve problem with ``DSB``'s defaults and the reference code's
training settings (batch 512, Adam 1e-4, 5000 steps per half-step, cache 10,000 paths
redrawn every 100 steps), for the step schedules named (``dsb.gammas``; 20 steps each), per
IPF iteration: SW2 of 2000 samples to 2000 fresh data draws (noise floor about 0.3 ± 0.17 at
that size). About 19-27 CPU seconds per iteration each. A longer horizon brings the reference
nearer the prior, and IPF then converges faster; the longest schedule's steps of up to 2 are
coarse, and it gains less. ``benchmarks/bench_dsb.py`` (``dsb_s_curve``) reruns the first and
the third row."""
