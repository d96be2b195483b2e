r"""Forward SDEs (part of :mod:`diffnotes.sde`, Chapter 3): the general :class:`SDE`, the linear
SDEs with their Gaussian kernels (:class:`LinearSDE`, :class:`OU`, :class:`VPSDE`,
:class:`SubVPSDE`, :class:`VESDE`) and the 1-D Fokker-Planck solver :func:`fokker_planck_1d`, an
independent check of any 1-D SDE; also the array helpers the samplers share. NumPy (torch
tensors pass through the closed forms).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import schedules
from .._checks import as_rng, positive_float, positive_int, real_array

__all__ = ["OU", "SDE", "VESDE", "VPSDE", "LinearSDE", "SubVPSDE", "fokker_planck_1d"]


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


def _points(x, name: str = "x"):
    x = real_array(x, name, ndim=2)
    return x


def _finite(x, where, why):
    ok = bool(_xp(x).all(_xp(x).isfinite(x)))
    if not ok:
        raise FloatingPointError(f"{where} produced non-finite values: {why}")

def _recorder(n_steps, record):
    record = positive_int(record, "record", minimum=0, maximum=n_steps)
    return set(np.linspace(0, n_steps, record + 1).round().astype(int)) if record else set()

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
