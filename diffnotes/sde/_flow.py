r"""The probability-flow ODE (part of :mod:`diffnotes.sde`, Chapter 3): adaptive
:func:`probability_flow` (SciPy), fixed-step :func:`heun_flow` on the EDM grid (NumPy or torch),
the likelihood :func:`log_likelihood` by the instantaneous change of variables, and their result
:class:`FlowRun`.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._checks import positive_float, positive_int
from ._processes import SDE, LinearSDE, _finite, _points, _recorder
from ._samplers import _check_score, _copy, _interval, _start

__all__ = ["FlowRun", "heun_flow", "log_likelihood", "probability_flow"]


@dataclass
class FlowRun:
    """The result of :func:`probability_flow`, :func:`heun_flow` or :func:`log_likelihood`.

    Attributes
    ----------
    x : ndarray of shape (m, d), or a tensor from :func:`heun_flow`
        The points at the end time.
    nfe : int
        Number of evaluations of the score on the whole batch (``solve_ivp``'s ``nfev``, times
        ``1 + 2 d`` when finite-difference divergences are computed).
    log_prob : ndarray of shape (m,) or None
        Log-likelihoods, from :func:`log_likelihood`.
    seconds : float
        Wall time.
    times : ndarray
        The times of the recorded snapshots (:func:`heun_flow` with ``record``; else empty).
    path : list
        The recorded snapshots (NumPy arrays), from ``t_max`` down to ``t_min``.
    """

    x: np.ndarray
    nfe: int
    log_prob: np.ndarray | None = None
    seconds: float = 0.0
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    path: list = field(default_factory=list)


def _ode_args(sde, score, t_min, t_max, rtol, atol):
    _check_score(score)
    t_min, t_max = _interval(sde, t_min, t_max)
    rtol = positive_float(rtol, "rtol", upper=0.1)
    atol = positive_float(atol, "atol")
    return t_min, t_max, rtol, atol


def probability_flow(sde: SDE, score: Callable, x, *, t_min: float = 1e-3,
                     t_max: float | None = None, direction: str = "sample",
                     rtol: float = 1e-5, atol: float = 1e-5, method: str = "RK45") -> FlowRun:
    r"""Integrate the probability-flow ODE :math:`\dot x = f(x, t) - \tfrac12 g(t)^2 s(x, t)`
    with :func:`scipy.integrate.solve_ivp` (adaptive steps, tolerances ``rtol``/``atol``),
    all points as one system.

    ``direction = "sample"`` maps points at ``t_max`` (default ``sde.T``) to ``t_min`` (noise
    to data); ``"encode"`` maps points at ``t_min`` to ``t_max`` (data to latents). The map is
    deterministic: the randomness is all in the starting points. ``FlowRun.nfe`` counts the
    score evaluations.
    """
    from scipy.integrate import solve_ivp

    t_min, t_max, rtol, atol = _ode_args(sde, score, t_min, t_max, rtol, atol)
    if direction not in ("sample", "encode"):
        raise ValueError(f"direction must be 'sample' or 'encode', got {direction!r}")
    x = _points(x)
    m, d = x.shape

    def rhs(t, y):
        z = y.reshape(m, d)
        v = (sde._f(z, t) - 0.5 * float(sde._g(t)) ** 2 * score(z, t)).ravel()
        # raise at once: solve_ivp loops forever on a NaN at its first evaluation
        _finite(v, "probability_flow", f"the score returned non-finite values at t = {t:g}")
        return v

    span = (t_max, t_min) if direction == "sample" else (t_min, t_max)
    t0 = _time.perf_counter()
    sol = solve_ivp(rhs, span, x.ravel(), method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise FloatingPointError(f"probability_flow: solve_ivp failed ({sol.message})")
    out = sol.y[:, -1].reshape(m, d)
    _finite(out, "probability_flow", "the score returned non-finite values")
    return FlowRun(out, int(sol.nfev), None, _time.perf_counter() - t0)


_SPACINGS = ("edm", "logsnr", "uniform")
_EDM_RHO = 7.0          # the exponent of the EDM time grid (Karras et al., 2022, eq. 5)
_GRID_POINTS = 4097     # the grid of t on which the noise-to-signal ratio is bracketed


def _log_nsr(sde, t):
    """Log of the noise-to-signal ratio ``sigma(t) / alpha(t)`` (NumPy float64)."""
    alpha, sigma = sde._alpha_sigma(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.asarray(sigma, dtype=float)) - np.log(np.asarray(alpha, dtype=float))


def _flow_grid(sde, n_steps, t_min, t_max, spacing):
    r"""The times :math:`t_0 = t_{\max} > \dots > t_N = t_{\min}` of :func:`heun_flow` and
    :math:`\alpha, \sigma` there (NumPy float64 arrays).

    The noise-to-signal ratio :math:`\rho = \sigma/\alpha` is evaluated on a fine grid of
    ``t``, checked to increase strictly, and each target :math:`\rho_i` is inverted by bisection
    inside its grid cell down to float64 precision, so that the score is called at exactly
    the time of the :math:`\rho_i` the step uses (any SDE; no closed form needed)."""
    grid = np.linspace(t_min, t_max, _GRID_POINTS)
    log_rho = _log_nsr(sde, grid)
    if not np.all(np.isfinite(log_rho)) or not np.all(np.diff(log_rho) > 0):
        raise ValueError(f"heun_flow needs a noise-to-signal ratio sigma(t)/alpha(t) of {sde!r} "
                         f"that is positive, finite and strictly increasing on [t_min, t_max] "
                         f"= [{t_min:g}, {t_max:g}]")
    if spacing == "uniform":
        ts = np.linspace(t_max, t_min, n_steps + 1)
    else:
        u = np.arange(n_steps + 1) / n_steps
        hi, lo = log_rho[-1], log_rho[0]
        if spacing == "edm":        # rho_i^(1/7) uniform from rho_max^(1/7) to rho_min^(1/7)
            r_hi, r_lo = np.exp(hi / _EDM_RHO), np.exp(lo / _EDM_RHO)
            target = _EDM_RHO * np.log(r_hi + u * (r_lo - r_hi))
        else:                       # "logsnr": log rho uniform
            target = hi + u * (lo - hi)
        target = np.clip(target, lo, hi)
        j = np.clip(np.searchsorted(log_rho, target), 1, _GRID_POINTS - 1)
        t_lo, t_hi = grid[j - 1], grid[j]
        for _ in range(60):         # the cell is T / 4096 wide: 60 halvings reach float64 eps
            mid = 0.5 * (t_lo + t_hi)
            below = _log_nsr(sde, mid) < target
            t_lo, t_hi = np.where(below, mid, t_lo), np.where(below, t_hi, mid)
        ts = 0.5 * (t_lo + t_hi)
        ts[0], ts[-1] = t_max, t_min
    alpha, sigma = sde._alpha_sigma(ts)
    return ts, np.asarray(alpha, dtype=float) + 0 * ts, np.asarray(sigma, dtype=float)


def heun_flow(sde: LinearSDE, score: Callable, x, *, n_steps: int = 18, t_min: float = 1e-3,
              t_max: float | None = None, spacing: str = "edm", record: int = 0) -> FlowRun:
    r"""Integrate the probability-flow ODE from ``t_max`` down to ``t_min`` in ``n_steps`` fixed
    steps of Heun's second-order method (Karras et al., 2022, "EDM", Algorithm 1 without
    churn), for any linear SDE.

    With :math:`x_t = \alpha(t) x_0 + \sigma(t)\varepsilon`, the scaled points
    :math:`y = x/\alpha` and the noise-to-signal ratio :math:`\rho = \sigma/\alpha`
    (increasing in :math:`t`) turn the probability-flow ODE into

    .. math:: \frac{dy}{d\rho} = \hat\varepsilon(x, t) = -\sigma(t)\, s(x, t),
              \qquad x = \alpha(t)\, y,\ t = t(\rho),

    For data that are a point mass at :math:`\mu` its solutions are the straight lines
    :math:`y = \mu + c\rho` (:math:`\hat\varepsilon = (y - \mu)/\rho` is constant along
    them), which Heun's method follows exactly. For Gaussian data :math:`\mathcal N(\mu, s^2)`
    they are :math:`y = \mu + c\sqrt{s^2 + \rho^2}`: close to straight for
    :math:`\rho \gg s`, curved where :math:`\rho` is of order :math:`s`. Each step from
    :math:`\rho_i` to :math:`\rho_{i+1}` (:math:`h = \rho_{i+1} - \rho_i < 0`) is an Euler
    predictor and a trapezoidal corrector,

    .. math:: \tilde y = y_i + h\, d_i, \qquad
              y_{i+1} = y_i + \tfrac h2\bigl(d_i + \hat\varepsilon(\alpha_{i+1}\tilde y,
              t_{i+1})\bigr), \qquad d_i = \hat\varepsilon(\alpha_i y_i, t_i),

    the corrector being skipped only on a step to :math:`\rho = 0`, which never happens here
    (:math:`t_{\min} > 0`): the cost is ``2 * n_steps`` score evaluations. The global error is
    :math:`O(N^{-2})` in the number of steps :math:`N`.

    Parameters
    ----------
    sde : LinearSDE
        :class:`OU`, :class:`VPSDE`, :class:`SubVPSDE`, :class:`VESDE` or any linear SDE whose
        :math:`\sigma/\alpha` increases strictly on ``[t_min, t_max]``.
    score : callable
        ``score(x, t)`` for points shaped like ``x`` and a Python float ``t``, returning the
        same kind of array (a tensor on the same device when ``x`` is a tensor).
    x : array or torch tensor of shape (m, d)
        The starting points at ``t_max`` (usually :meth:`LinearSDE.prior_sample`). A NumPy
        input is worked on in float64; a tensor keeps its device and dtype (the time grid is
        computed in NumPy float64 and passed as Python floats).
    n_steps : int, default 18
        Number of Heun steps, from 1 to 100000.
    t_min : float, default 1e-3
        The end time, ``0 < t_min < t_max``.
    t_max : float, optional
        The start time, ``<= sde.T`` (default ``sde.T``).
    spacing : {"edm", "logsnr", "uniform"}, default "edm"
        The time grid. ``"edm"``: :math:`\rho_i^{1/7}` equally spaced from
        :math:`\rho_{\max}^{1/7}` to :math:`\rho_{\min}^{1/7}` (steps concentrated at low
        noise); ``"logsnr"``: :math:`\log\rho_i` equally spaced; ``"uniform"``: :math:`t_i`
        equally spaced.
    record : int, default 0
        With ``record = k > 0``, keep ``k + 1`` snapshots of the points along the path.

    Returns
    -------
    FlowRun
        ``x`` (the points at ``t_min``, the same kind of array as the input), ``nfe`` (the
        number of score calls, ``2 * n_steps``), ``seconds``, and with ``record`` the
        snapshot ``times`` and ``path`` (NumPy arrays, from ``t_max`` down).

    Raises
    ------
    ValueError
        For bad arguments, or an SDE whose :math:`\sigma/\alpha` is not strictly increasing.
    FloatingPointError
        If the points become non-finite (a non-finite score, or too few steps).
    """
    if not isinstance(sde, LinearSDE):
        raise ValueError(f"sde must be a linear SDE of diffnotes.sde (OU, VPSDE, SubVPSDE, "
                         f"VESDE), got {type(sde).__name__}")
    _check_score(score)
    t_min = positive_float(t_min, "t_min")
    t_min, t_max = _interval(sde, t_min, t_max)
    n_steps = positive_int(n_steps, "n_steps", maximum=100_000)
    if not isinstance(spacing, str) or spacing not in _SPACINGS:
        raise ValueError(f"spacing must be one of {', '.join(map(repr, _SPACINGS))}, "
                         f"got {spacing!r}")
    x = _start(x)
    keep = _recorder(n_steps, record)
    ts, alpha, sigma = _flow_grid(sde, n_steps, t_min, t_max, spacing)
    rho = sigma / alpha
    run = FlowRun(x, 0)
    t0 = _time.perf_counter()
    nfe = 0
    y = x / float(alpha[0])
    for i in range(n_steps):
        if i in keep:
            run.path.append(_copy(x))
        t, t_next = float(ts[i]), float(ts[i + 1])
        h = float(rho[i + 1] - rho[i])
        d = -float(sigma[i]) * score(x, t)
        y_next = y + h * d
        nfe += 1
        if rho[i + 1] > 0:                       # Heun's corrector (always, as t_min > 0)
            d_next = -float(sigma[i + 1]) * score(float(alpha[i + 1]) * y_next, t_next)
            y_next = y + (0.5 * h) * (d + d_next)
            nfe += 1
        y = y_next
        x = float(alpha[i + 1]) * y
    _finite(x, "heun_flow", "the score returned non-finite values, or the steps are too "
            "large: increase n_steps or t_min")
    if n_steps in keep:
        run.path.append(_copy(x))
    run.x, run.nfe, run.seconds = x, nfe, _time.perf_counter() - t0
    run.times = ts[sorted(keep)] if keep else np.zeros(0)
    return run


def _fd_divergence(score, h):
    """Divergence of ``score(., t)`` by central differences, one coordinate at a time."""
    def div(z, t):
        m, d = z.shape
        total = np.zeros(m)
        for i in range(d):
            e = np.zeros(d)
            e[i] = h
            total += (score(z + e, t)[:, i] - score(z - e, t)[:, i]) / (2 * h)
        return total
    return div


def log_likelihood(sde: LinearSDE, score: Callable, x, *, t_min: float = 1e-3,
                   t_max: float | None = None, divergence: Callable | None = None,
                   fd_step: float = 1e-4, rtol: float = 1e-6, atol: float = 1e-6,
                   method: str = "RK45") -> FlowRun:
    r"""Log-likelihoods :math:`\log p_{t_{\min}}(x)` of the probability-flow model -- the law
    at ``t_min`` that the ODE carries the prior to, a model of the data noised to ``t_min``
    (not of the clean data, and not the law of the stochastic samplers' output unless the score
    is exact) -- by the instantaneous change of variables (Chen et al., 2018; Song et al.,
    2021):

    .. math:: \log p_{t_{\min}}(x(t_{\min})) = \log p_T(x(T))
              + \int_{t_{\min}}^{T} \nabla\!\cdot v(x(t), t)\,dt ,
              \qquad v = f - \tfrac12 g^2 s ,

    integrating the points and the divergence together from ``t_min`` up to ``t_max``, with the
    prior :math:`\mathcal N(0, \sigma_T^2 I)` in place of :math:`p_T`. The divergence of the
    score is ``divergence(x, t)`` when given, else central differences with step ``fd_step``
    (``2 d`` extra score evaluations: meant for low dimension). With the exact score the result
    is the exact :math:`\log p_{t_{\min}}` up to the prior mismatch at ``T`` and the ODE
    tolerances.
    """
    from scipy.integrate import solve_ivp

    if not isinstance(sde, LinearSDE):
        raise ValueError("sde must be a linear SDE (OU, VPSDE, SubVPSDE, VESDE): the "
                         "likelihood needs the divergence of its drift and its prior")
    t_min, t_max, rtol, atol = _ode_args(sde, score, t_min, t_max, rtol, atol)
    fd_step = positive_float(fd_step, "fd_step", upper=0.1)
    if divergence is not None and not callable(divergence):
        raise ValueError("divergence must be None or a callable divergence(x, t) -> (m,)")
    div_s = _fd_divergence(score, fd_step) if divergence is None else divergence
    x = _points(x)
    m, d = x.shape
    calls = {"n": 0}

    def rhs(t, y):
        z = y[: m * d].reshape(m, d)
        g2 = float(sde._g2(t))
        a = float(sde._a(t))
        v = -a * z - 0.5 * g2 * score(z, t)
        div_v = -a * d - 0.5 * g2 * div_s(z, t)
        calls["n"] += 1
        _finite(v, "log_likelihood", f"the score returned non-finite values at t = {t:g}")
        _finite(div_v, "log_likelihood", f"the divergence is non-finite at t = {t:g}")
        return np.concatenate([v.ravel(), div_v])

    y0 = np.concatenate([x.ravel(), np.zeros(m)])
    t0 = _time.perf_counter()
    sol = solve_ivp(rhs, (t_min, t_max), y0, method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise FloatingPointError(f"log_likelihood: solve_ivp failed ({sol.message})")
    yT = sol.y[:, -1]
    zT, int_div = yT[: m * d].reshape(m, d), yT[m * d:]
    logp = sde.prior_log_prob(zT) + int_div
    _finite(logp, "log_likelihood", "the score returned non-finite values")
    per_eval = 1 + (2 * d if divergence is None else 0)
    return FlowRun(zT, calls["n"] * per_eval, logp, _time.perf_counter() - t0)
