r"""Stochastic differential equations for diffusion models: forward noising, reverse-time
sampling and the probability-flow ODE (Chapter 3).

A forward SDE on :math:`[0, T]` is a drift and a diffusion coefficient,

.. math:: dX_t = f(X_t, t)\,dt + g(t)\,dW_t .

Any user-defined pair is an :class:`SDE` and is simulated by Euler-Maruyama
(:meth:`SDE.simulate`); its 1-D marginals solve the Fokker-Planck equation
(:func:`fokker_planck_1d`). The *linear* SDEs, :math:`f(x, t) = -a(t)\,x`, have a Gaussian
transition kernel :math:`X_t \mid X_0 = x_0 \sim \mathcal N(\alpha(t) x_0, \sigma(t)^2 I)` in
closed form (:class:`LinearSDE`): the Ornstein-Uhlenbeck process :class:`OU` (Chapter 2's
Ehrenfest limit), :class:`VPSDE`, :class:`SubVPSDE` and :class:`VESDE`.

Given a score :math:`s(x, t) \approx \nabla_x \log p_t(x)`, the time reversal
(Anderson, 1982) runs from :math:`T` down to 0,

.. math:: dX_t = \bigl[f(X_t, t) - g(t)^2 s(X_t, t)\bigr]\,dt + g(t)\,d\bar W_t ,

and the probability-flow ODE :math:`\dot x = f(x, t) - \tfrac12 g(t)^2 s(x, t)` has the same
marginals. Samplers: :func:`euler_maruyama`, :func:`predictor_corrector`,
:func:`probability_flow` (SciPy's ``solve_ivp``, with its number of function evaluations),
:func:`heun_flow` (the same ODE in a fixed number of second-order Heun steps on the EDM time
grid of Karras et al., 2022) and :func:`log_likelihood` (the instantaneous change of
variables).

A *score function* is a callable ``score(x, t)`` taking points of shape ``(m, d)`` and a float
time and returning an array of shape ``(m, d)``, such as
:meth:`diffnotes.mixtures.GaussianMixture.score_function` or a trained network wrapped by
:func:`diffnotes.score.score_function`. :func:`euler_maruyama` and
:func:`predictor_corrector` also run on torch tensors (on any device) when the starting points
are a tensor and ``rng`` a ``torch.Generator``; :func:`heun_flow` runs on torch tensors
whenever the starting points are one.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import schedules
from ._checks import as_rng, positive_float, positive_int, real_array

__all__ = [
    "OU",
    "SDE",
    "VESDE",
    "VPSDE",
    "FlowRun",
    "LinearSDE",
    "SampleRun",
    "SubVPSDE",
    "euler_maruyama",
    "fokker_planck_1d",
    "heun_flow",
    "log_likelihood",
    "predictor_corrector",
    "probability_flow",
]


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _xp(x):
    """The array module of ``x``: numpy, or torch for a tensor (same names for exp, sqrt...)."""
    if _is_torch(x):
        import torch

        return torch
    return np


def _check_t(t, name="t"):
    t = real_array(t, name)
    if np.any(t < 0):
        raise ValueError(f"{name} must be >= 0, got min {t.min():.3g}")
    return t


# --------------------------------------------------------------------------------------------
# Forward SDEs
# --------------------------------------------------------------------------------------------
class SDE:
    r"""A forward SDE :math:`dX_t = f(X_t, t)\,dt + g(t)\,dW_t` on ``[0, T]``.

    Parameters
    ----------
    drift : callable
        ``drift(x, t)`` for points ``x`` of shape ``(m, d)`` and a float ``t``, returning an
        array of shape ``(m, d)``.
    diffusion : callable
        ``diffusion(t)``, a non-negative float (the noise is isotropic).
    T : float
        The time horizon.
    name : str
        Shown in ``repr`` and figure titles.
    """

    def __init__(self, drift: Callable, diffusion: Callable, T: float = 1.0, name: str = "SDE"):
        if not callable(drift) or not callable(diffusion):
            raise ValueError("drift and diffusion must be callables: drift(x, t), diffusion(t)")
        self._drift_fn, self._diffusion_fn = drift, diffusion
        self.T = positive_float(T, "T")
        self.name = str(name)

    def __repr__(self) -> str:
        return self.name

    # unchecked coefficients (the samplers validate once, then call these in their loops)
    def _f(self, x, t):
        return self._drift_fn(x, t)

    def _g(self, t):
        return self._diffusion_fn(t)

    def drift(self, x, t: float):
        """The drift :math:`f(x, t)` at points ``x`` of shape ``(m, d)``."""
        return self._f(_points(x), positive_float(t, "t", allow_zero=True))

    def diffusion(self, t: float) -> float:
        """The diffusion coefficient :math:`g(t)`."""
        return float(self._g(positive_float(t, "t", allow_zero=True)))

    def reverse_drift(self, x, t: float, score: Callable):
        r"""Drift of the reverse-time SDE, :math:`f(x, t) - g(t)^2 s(x, t)` (integrated from
        ``T`` down to 0)."""
        x = _points(x)
        t = positive_float(t, "t", allow_zero=True)
        return self._f(x, t) - self._g(t) ** 2 * score(x, t)

    def flow_drift(self, x, t: float, score: Callable):
        r"""Velocity of the probability-flow ODE, :math:`f(x, t) - \tfrac12 g(t)^2 s(x, t)`."""
        x = _points(x)
        t = positive_float(t, "t", allow_zero=True)
        return self._f(x, t) - 0.5 * self._g(t) ** 2 * score(x, t)

    def simulate(self, x0, rng, *, t_end: float | None = None, n_steps: int = 1000,
                 record: int = 0):
        """Euler-Maruyama from ``x0`` (shape ``(m, d)``) at time 0 to ``t_end`` (default ``T``).

        Returns the points at ``t_end``, or with ``record = k > 0`` a pair ``(times, path)``
        of ``k + 1`` equally spaced snapshots (``path`` of shape ``(k + 1, m, d)``).
        """
        x = _points(x0, "x0").copy()
        rng = as_rng(rng)
        t_end = self.T if t_end is None else positive_float(t_end, "t_end")
        n_steps = positive_int(n_steps, "n_steps")
        keep = _recorder(n_steps, record)
        dt = t_end / n_steps
        times, path = [], []
        for i in range(n_steps + 1):
            t = i * dt
            if i in keep:
                times.append(t)
                path.append(x.copy())
            if i == n_steps:
                break
            x = x + self._f(x, t) * dt + self._g(t) * np.sqrt(dt) * rng.standard_normal(x.shape)
        _finite(x, "SDE.simulate", "the drift or diffusion returned non-finite values, or the "
                "step is too large for this drift: increase n_steps")
        return (np.array(times), np.stack(path)) if keep else x


class LinearSDE(SDE):
    r"""A linear SDE :math:`dX = -a(t) X\,dt + g(t)\,dW` whose transition kernel is Gaussian:
    :math:`X_t \mid X_0 = x_0 \sim \mathcal N\bigl(\alpha(t) x_0, \sigma(t)^2 I\bigr)` with
    :math:`\alpha(t) = e^{-\int_0^t a}` and
    :math:`\sigma(t)^2 = \int_0^t \alpha(t)^2\alpha(s)^{-2} g(s)^2\,ds`.

    Subclasses give :math:`a`, :math:`g^2`, :math:`\alpha`, :math:`\sigma` and the prior's
    standard deviation; use :class:`OU`, :class:`VPSDE`, :class:`SubVPSDE` or :class:`VESDE`.
    Their unchecked coefficient methods accept NumPy arrays and torch tensors alike.
    """

    prior_std: float = 1.0

    def __init__(self, T: float, name: str):
        self.T = positive_float(T, "T")
        self.name = name

    # --- subclasses: a(t), g(t)^2, alpha(t), sigma(t) (unchecked; numpy or torch) ---
    def _a(self, t):
        raise NotImplementedError

    def _g2(self, t):
        raise NotImplementedError

    def _alpha_sigma(self, t):
        raise NotImplementedError

    def _f(self, x, t):
        return -self._a(t) * x

    def _g(self, t):
        return _xp(t).sqrt(self._g2(t))

    def alpha_sigma(self, t):
        r"""The kernel's scale :math:`\alpha(t)` and noise level :math:`\sigma(t)` (arrays
        shaped like ``t``, or floats)."""
        t = _check_t(t)
        a, s = self._alpha_sigma(t)
        return (float(a), float(s)) if np.ndim(t) == 0 else (a, s)

    def marginal(self, x0, t):
        r"""Mean :math:`\alpha(t) x_0` and standard deviation :math:`\sigma(t)` of
        :math:`X_t \mid X_0 = x_0`; ``x0`` of shape ``(m, d)`` and ``t`` a float or of shape
        ``(m,)``. Returns ``(mean, std)`` with shapes ``(m, d)`` and ``(m, 1)`` (or a float)."""
        x0 = _points(x0, "x0")
        t = _check_t(t)
        if t.ndim > 1 or (t.ndim == 1 and t.shape != x0.shape[:1]):
            raise ValueError(f"t must be a float or have shape ({x0.shape[0]},), got {t.shape}")
        a, s = self._alpha_sigma(t)
        if t.ndim == 1:
            return a[:, None] * x0, s[:, None]
        return float(a) * x0, float(s)

    def sample_marginal(self, x0, t, rng, *, return_noise: bool = False):
        r"""Draw :math:`X_t = \alpha(t) x_0 + \sigma(t)\varepsilon` (and, with
        ``return_noise``, the standard normal :math:`\varepsilon` used)."""
        mean, std = self.marginal(x0, t)
        eps = as_rng(rng).standard_normal(mean.shape)
        xt = mean + std * eps
        return (xt, eps) if return_noise else xt

    def prior_sample(self, n: int, d: int, rng):
        r"""``n`` draws of the prior :math:`\mathcal N(0, \sigma_T^2 I)` that sampling starts
        from, shape ``(n, d)``; with a ``torch.Generator`` as ``rng``, a tensor on its device."""
        n = positive_int(n, "n")
        d = positive_int(d, "d")
        if _is_torch(rng):
            import torch

            return self.prior_std * torch.randn(n, d, generator=rng, device=rng.device)
        return self.prior_std * as_rng(rng).standard_normal((n, d))

    def prior_log_prob(self, x) -> np.ndarray:
        """Log density of the prior at points ``x`` of shape ``(m, d)``; shape ``(m,)``."""
        x = _points(x)
        v = self.prior_std**2
        return -0.5 * (np.sum(x * x, axis=1) / v + x.shape[1] * np.log(2 * np.pi * v))


class OU(LinearSDE):
    r"""The Ornstein-Uhlenbeck process :math:`dX = -\lambda(t) X\,dt + \sqrt{2\lambda(t)}\,dW`:
    the scaling limit of the Ehrenfest process of Chapter 2 on the same ``schedule``
    (:mod:`diffnotes.schedules`; the default is :math:`\lambda = 1`, i.e.
    :math:`dX = -X\,dt + \sqrt 2\,dW`). With the clock :math:`\Theta(t) = \int_0^t\lambda`,
    :math:`\alpha = e^{-\Theta}` and :math:`\sigma^2 = 1 - e^{-2\Theta}`; the prior is
    :math:`\mathcal N(0, I)`.

    Note the noise: :math:`\sigma(t)` is a *standard deviation*. Scaling the Gaussian noise by
    the variance :math:`1 - e^{-2\Theta}` instead of its square root is a classic bug.
    """

    def __init__(self, schedule: schedules.Schedule | None = None, T: float = 5.0):
        self.schedule = schedules.as_schedule(schedule)
        super().__init__(T, f"OU({self.schedule!r}, T={T:g})")

    def _a(self, t):
        return self.schedule._lam(t)

    def _g2(self, t):
        return 2 * self.schedule._lam(t)

    def _alpha_sigma(self, t):
        xp = _xp(t)
        theta = self.schedule._theta(t)
        return xp.exp(-theta), xp.sqrt(-xp.expm1(-2 * theta))


class VPSDE(OU):
    r"""The variance-preserving SDE :math:`dX = -\tfrac12\beta(t) X\,dt + \sqrt{\beta(t)}\,dW`,
    :math:`\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})` on ``[0, 1]``
    (Song et al., 2021). It is :class:`OU` on the schedule :func:`diffnotes.schedules.vp`
    (:math:`\lambda = \beta/2`): :math:`\alpha = e^{-\frac12\int_0^t\beta}`,
    :math:`\sigma^2 = 1 - \alpha^2`.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0):
        super().__init__(schedules.vp(beta_min, beta_max), T)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.name = f"VPSDE(beta_min={beta_min:g}, beta_max={beta_max:g})"


class SubVPSDE(VPSDE):
    r"""The sub-VP SDE of Song et al. (2021):
    :math:`dX = -\tfrac12\beta X\,dt + \sqrt{\beta(t)(1 - e^{-2\int_0^t\beta})}\,dW`. Same
    :math:`\alpha` as :class:`VPSDE`, smaller noise :math:`\sigma = 1 - \alpha^2` (so
    :math:`\sigma^2 \le 1 - \alpha^2`); prior :math:`\mathcal N(0, I)`.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0):
        super().__init__(beta_min, beta_max, T)
        self.name = f"SubVPSDE(beta_min={beta_min:g}, beta_max={beta_max:g})"

    def _g2(self, t):
        theta = self.schedule._theta(t)                  # = (1/2) int beta
        return 2 * self.schedule._lam(t) * -_xp(t).expm1(-4 * theta)

    def _alpha_sigma(self, t):
        xp = _xp(t)
        theta = self.schedule._theta(t)
        return xp.exp(-theta), -xp.expm1(-2 * theta)


class VESDE(LinearSDE):
    r"""The variance-exploding SDE :math:`dX = g(t)\,dW` with
    :math:`g(t)^2 = \frac{d}{dt}\sigma_{\min}^2 r^{2t}`, :math:`r = \sigma_{\max}/\sigma_{\min}`
    on ``[0, 1]`` (Song et al., 2021). Exactly :math:`\alpha = 1` and
    :math:`\sigma(t)^2 = \sigma_{\min}^2 (r^{2t} - 1)`; the prior is
    :math:`\mathcal N(0, \sigma_{\max}^2 I)`, which matches :math:`p_T` when
    :math:`\sigma_{\max}` is much larger than the spread of the data.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0):
        sigma_min = positive_float(sigma_min, "sigma_min")
        sigma_max = positive_float(sigma_max, "sigma_max")
        if not sigma_max > sigma_min:
            raise ValueError(f"sigma_max must be > sigma_min, got sigma_min={sigma_min:g}, "
                             f"sigma_max={sigma_max:g}")
        super().__init__(T, f"VESDE(sigma_min={sigma_min:g}, sigma_max={sigma_max:g})")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.prior_std = sigma_max
        self._log_r = float(np.log(sigma_max / sigma_min))

    def _a(self, t):
        return 0.0 * t

    def _g2(self, t):
        u = t / self.T
        return self.sigma_min**2 * _xp(t).exp(2 * self._log_r * u) * 2 * self._log_r / self.T

    def _alpha_sigma(self, t):
        xp = _xp(t)
        u = t / self.T
        return 1.0 + 0.0 * t, self.sigma_min * xp.sqrt(xp.expm1(2 * self._log_r * u))


# --------------------------------------------------------------------------------------------
# Helpers shared by the samplers
# --------------------------------------------------------------------------------------------
def _points(x, name: str = "x"):
    x = real_array(x, name, ndim=2)
    return x


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


def _finite(x, where, why):
    ok = bool(_xp(x).all(_xp(x).isfinite(x)))
    if not ok:
        raise FloatingPointError(f"{where} produced non-finite values: {why}")


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


def _recorder(n_steps, record):
    record = positive_int(record, "record", minimum=0, maximum=n_steps)
    return set(np.linspace(0, n_steps, record + 1).round().astype(int)) if record else set()


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


# --------------------------------------------------------------------------------------------
# Fokker-Planck equation in one dimension (an independent check of any 1-D SDE)
# --------------------------------------------------------------------------------------------
def fokker_planck_1d(sde: SDE, x, p0, times, *, rtol: float = 1e-8,
                     atol: float = 1e-10) -> np.ndarray:
    r"""Solve the Fokker-Planck equation of a 1-D SDE,

    .. math:: \partial_t p = -\partial_x\bigl(f(x, t)\,p\bigr)
              + \tfrac12 g(t)^2\,\partial_x^2 p ,

    on the uniform grid ``x`` (cell centres, zero flux through both ends) from the density
    ``p0`` on that grid, by finite volumes (upwind-free central fluxes) and a stiff ODE solver
    (BDF). Returns the densities at ``times`` (non-decreasing, from 0), shape
    ``(len(times), len(x))``. The grid must be fine enough to resolve ``p`` and wide enough that
    ``p`` is negligible at its ends; accuracy is second order in the grid spacing.
    """
    from scipy.integrate import solve_ivp
    from scipy.sparse import diags

    if not isinstance(sde, SDE):
        raise ValueError(f"sde must be a diffnotes.sde.SDE, got {type(sde).__name__}")
    x = real_array(x, "x", ndim=1)
    if x.size < 5:
        raise ValueError(f"x must have at least 5 grid points, got {x.size}")
    dx = np.diff(x)
    if not np.all(dx > 0) or not np.allclose(dx, dx[0], rtol=1e-6):
        raise ValueError("x must be a uniform, increasing grid")
    h = float(dx[0])
    p0 = real_array(p0, "p0", ndim=1)
    if p0.shape != x.shape:
        raise ValueError(f"p0 must have the shape of x {x.shape}, got {p0.shape}")
    if np.any(p0 < 0):
        raise ValueError("p0 must be non-negative")
    times = real_array(times, "times", ndim=1)
    if np.any(times < 0) or np.any(np.diff(times) < 0):
        raise ValueError("times must be non-negative and non-decreasing")
    faces = 0.5 * (x[1:] + x[:-1])                                    # interior faces

    def rhs(t, p):
        f_face = np.asarray(sde._f(faces[:, None], t), float)[:, 0]
        D = 0.5 * float(sde._g(t)) ** 2
        # a NaN here would make the solver's step-size control loop forever
        _finite(np.append(f_face, D), "fokker_planck_1d",
                f"the drift or diffusion returned non-finite values at t = {t:g}")
        # flux through each interior face: advection (average of the two cells) + diffusion
        flux = f_face * 0.5 * (p[1:] + p[:-1]) - D * (p[1:] - p[:-1]) / h
        dp = np.zeros_like(p)
        dp[:-1] -= flux / h
        dp[1:] += flux / h
        return dp

    if times.size == 0 or times[-1] == 0:
        return np.tile(p0, (times.size, 1))
    n = x.size
    sparsity = diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(n, n))
    sol = solve_ivp(rhs, (0.0, float(times[-1])), p0, method="BDF",
                    t_eval=times, rtol=rtol, atol=atol, jac_sparsity=sparsity)
    if not sol.success:
        raise FloatingPointError(f"fokker_planck_1d: the solver failed ({sol.message})")
    return sol.y.T
