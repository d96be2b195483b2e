r"""Reverse-time stochastic samplers (part of :mod:`diffnotes.sde`, Chapter 3):
:func:`euler_maruyama` and :func:`predictor_corrector`, their result :class:`SampleRun`, and the
argument checks shared with the probability-flow samplers. NumPy arrays or torch tensors.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._checks import as_rng, positive_float, positive_int
from ._processes import SDE, _finite, _is_torch, _points, _recorder, _xp

__all__ = ["SampleRun", "euler_maruyama", "predictor_corrector"]


# --------------------------------------------------------------------------------------------
# Helpers shared by the samplers
# --------------------------------------------------------------------------------------------

def _start(x, name="x"):
    """Validate a sampler's starting points (a 2-D array or tensor); return a float copy."""
    if _is_torch(x):
        import torch

        if x.ndim != 2:
            raise ValueError(f"{name} must have shape (m, d), got {tuple(x.shape)}")
        if not torch.all(torch.isfinite(x)):
            raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
        return x.clone()
    return _points(x, name).copy()

def _normal(rng, x):
    if _is_torch(x):
        import torch

        if not isinstance(rng, torch.Generator):
            raise ValueError("rng must be a torch.Generator when x is a torch tensor")
        return torch.randn(x.shape, generator=rng, device=x.device, dtype=x.dtype)
    return rng.standard_normal(x.shape)


def _interval(sde, t_min, t_max):
    if not isinstance(sde, SDE):
        raise ValueError(f"sde must be a diffnotes.sde.SDE, got {type(sde).__name__}")
    t_max = sde.T if t_max is None else positive_float(t_max, "t_max", upper=sde.T)
    t_min = positive_float(t_min, "t_min", allow_zero=True)
    if not t_min < t_max:
        raise ValueError(f"t_min must be < t_max = {t_max:g}, got {t_min:g}")
    return t_min, t_max


def _check_score(score):
    if not callable(score):
        raise ValueError("score must be a callable score(x, t) -> array shaped like x")


@dataclass
class SampleRun:
    """The result of a stochastic sampler.

    Attributes
    ----------
    x : array or tensor of shape (m, d)
        The samples at ``t_min``.
    nfe : int
        Number of score evaluations (each on the whole batch).
    times : ndarray
        The times of the recorded snapshots (empty unless ``record`` was set).
    path : list
        The recorded snapshots, from ``t_max`` down to ``t_min``.
    seconds : float
        Wall time.
    """

    x: object
    nfe: int
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    path: list = field(default_factory=list)
    seconds: float = 0.0



def _copy(x):
    return x.detach().cpu().numpy().copy() if _is_torch(x) else x.copy()


# --------------------------------------------------------------------------------------------
# Reverse-time samplers
# --------------------------------------------------------------------------------------------
def euler_maruyama(sde: SDE, score: Callable, x, rng, *, n_steps: int = 1000,
                   t_min: float = 1e-3, t_max: float | None = None,
                   record: int = 0) -> SampleRun:
    r"""Integrate the reverse-time SDE from ``t_max`` (default ``sde.T``) down to ``t_min`` with
    ``n_steps`` Euler-Maruyama steps of equal size :math:`h`:

    .. math:: x \leftarrow x - h\,\bigl[f(x, t) - g(t)^2 s(x, t)\bigr] + g(t)\sqrt h\,z .

    ``x`` are the starting points (usually :meth:`LinearSDE.prior_sample`), a NumPy array with
    ``rng`` an int seed or Generator, or a torch tensor with ``rng`` a ``torch.Generator``.
    ``record = k`` keeps ``k + 1`` snapshots. The samples approximate :math:`p_{t_{\min}}`.
    """
    return _reverse(sde, score, x, rng, n_steps, 0, None, t_min, t_max, record,
                    "euler_maruyama", "increase n_steps or t_min")


def predictor_corrector(sde: SDE, score: Callable, x, rng, *, n_steps: int = 500,
                        n_corrector: int = 1, snr: float = 0.16, t_min: float = 1e-3,
                        t_max: float | None = None, record: int = 0) -> SampleRun:
    r"""Predictor-corrector sampling (Song et al., 2021): each reverse Euler-Maruyama step
    (the predictor) is followed by ``n_corrector`` Langevin steps at the new time,

    .. math:: x \leftarrow x + \epsilon\, s(x, t) + \sqrt{2\epsilon}\,z, \qquad
              \epsilon = 2\bigl(\mathrm{snr}\,\overline{\|z\|}/\overline{\|s(x, t)\|}\bigr)^2,

    with the norms averaged over the batch, so that the signal-to-noise ratio of a corrector
    step is ``snr``. Costs ``n_steps * (1 + n_corrector)`` score evaluations. Arguments as in
    :func:`euler_maruyama` (which is this sampler with ``n_corrector = 0``).

    The corrector is unadjusted Langevin, biased at a finite step: for the target
    :math:`\mathcal N(0, v)` (score :math:`-x/v`) and a fixed step :math:`\epsilon` its
    stationary variance is :math:`v/(1 - \epsilon/(2v))`; with the ``snr`` rule the step settles at
    :math:`\epsilon = 2\,\mathrm{snr}^2 v/(1 + \mathrm{snr}^2)` and the variance at
    :math:`v(1 + \mathrm{snr}^2)`.
    """
    n_corrector = positive_int(n_corrector, "n_corrector", minimum=0)
    snr = positive_float(snr, "snr")
    return _reverse(sde, score, x, rng, n_steps, n_corrector, snr, t_min, t_max, record,
                    "predictor_corrector", "increase n_steps or lower snr")


def _reverse(sde, score, x, rng, n_steps, n_corrector, snr, t_min, t_max, record, name, hint):
    """The loop shared by the two stochastic samplers: reverse Euler-Maruyama steps, each
    followed by ``n_corrector`` Langevin steps."""
    _check_score(score)
    t_min, t_max = _interval(sde, t_min, t_max)
    n_steps = positive_int(n_steps, "n_steps")
    x = _start(x)
    rng = rng if _is_torch(x) else as_rng(rng)
    xp = _xp(x)
    keep = _recorder(n_steps, record)
    ts = np.linspace(t_max, t_min, n_steps + 1)
    run = SampleRun(x, n_steps * (1 + n_corrector))
    t0 = _time.perf_counter()
    for i in range(n_steps):
        if i in keep:
            run.path.append(_copy(x))
        t, h = float(ts[i]), float(ts[i] - ts[i + 1])
        g = float(sde._g(t))
        x = x - h * (sde._f(x, t) - g * g * score(x, t)) + g * np.sqrt(h) * _normal(rng, x)
        t_next = float(ts[i + 1])
        for _ in range(n_corrector):
            s = score(x, t_next)
            z = _normal(rng, x)
            s_norm = float(xp.mean(xp.sqrt(xp.sum(s * s, **_axis1(x)))))
            z_norm = float(xp.mean(xp.sqrt(xp.sum(z * z, **_axis1(x)))))
            eps = 2 * (snr * z_norm / max(s_norm, 1e-12)) ** 2
            x = x + eps * s + np.sqrt(2 * eps) * z
    _finite(x, name, f"the score returned non-finite values, or the steps are too large: "
            f"{hint}")
    if n_steps in keep:
        run.path.append(_copy(x))
    run.x, run.seconds = x, _time.perf_counter() - t0
    run.times = ts[sorted(keep)] if keep else np.zeros(0)
    return run


def _axis1(x):
    return {"dim": 1} if _is_torch(x) else {"axis": 1}

