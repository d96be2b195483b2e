r"""Flow matching: probability paths, their exact velocity on Gaussian mixtures, ODE samplers
(Chapter 3; NumPy only -- the learning is in :mod:`diffnotes.flow_train`).

**Paths.** Flow matching (Lipman et al., 2023; Liu et al., 2023) runs time the other way from
the SDEs of :mod:`diffnotes.sde`: noise :math:`x_0 \sim \mathcal N(0, I)` at :math:`t = 0`,
data :math:`x_1 \sim q` at :math:`t = 1` (the convention of the flow-matching library), joined
by the *probability path*

.. math:: x_t = a(t)\,x_1 + b(t)\,x_0, \qquad a(0) = 0 \text{ (or nearly)}, \; a(1) = 1,
   \; b(1) = 0 .

:class:`LinearPath` is the rectified flow :math:`a = t`, :math:`b = 1 - t`. :class:`SDEPath`
is the Gaussian kernel of a linear SDE run backwards: with the time change
:math:`s = T(1 - t)` between the SDE's time :math:`s` and the flow's :math:`t`,
:math:`a(t) = \alpha(s)`, :math:`b(t) = \sigma(s)`; :func:`vp_path` is the one of
:class:`~diffnotes.sde.VPSDE`, where :math:`a(0) = \alpha(T) \approx 0.0066` (so its
:math:`t = 0` law is the prior only up to that).

**Velocities.** A pair :math:`(x_0, x_1)` moves with the *conditional velocity*
:math:`\dot a\,x_1 + \dot b\,x_0` (:meth:`ProbabilityPath.conditional_velocity`); the *marginal
velocity* :math:`v(x, t) = \mathbb E[\dot a\,x_1 + \dot b\,x_0 \mid x_t = x]` moves the whole
law :math:`p_t` of :math:`x_t` (continuity equation :math:`\partial_t p_t + \nabla\cdot(p_t v)
= 0`), so the ODE :math:`\dot x = v(x, t)` carries :math:`\mathcal N(0, I)` at :math:`t = 0` to
the data at :math:`t = 1`. For a Gaussian mixture it is known in closed form
(:func:`exact_velocity`).

**One field, four parameterisations.** Since :math:`x_t \mid x_1 \sim \mathcal N(a x_1, b^2
I)`, the velocity, the score :math:`s = \nabla\log p_t`, the noise prediction
:math:`\hat\varepsilon = \mathbb E[x_0 \mid x_t]` and the data prediction
:math:`\hat x_1 = \mathbb E[x_1 \mid x_t]` are affine in one another: with
:math:`\hat x_1` as pivot,

.. math::
    \hat\varepsilon = \frac{x - a\hat x_1}{b}, \qquad
    s = \frac{a\hat x_1 - x}{b^2}, \qquad
    v = \frac{\dot b}{b}\,x + \Bigl(\dot a - \frac{a\dot b}{b}\Bigr)\hat x_1
      = \frac{\dot a}{a}\,x + \Bigl(\frac{\dot a\,b^2}{a} - b\dot b\Bigr) s

(:meth:`ProbabilityPath.convert`). On an :class:`SDEPath` the last form is, after the time
change, :math:`v(x, t) = -T\,[f(x, s) - \tfrac12 g(s)^2\,\nabla\log q_s(x)]`: the velocity of
flow matching is the probability-flow ODE of Chapter 3 run forward in :math:`t`, so a trained
score model and a trained velocity model are one object in two parameterisations.

**Samplers.** :func:`sample_ode` integrates :math:`\dot x = v(x, t)` with fixed steps by Euler
(order 1), Heun (order 2; its last step to :math:`t = 1` is an Euler step, as in Karras et al.,
2022, so that :math:`v` is never needed at :math:`t = 1`), the explicit midpoint rule (order
2, the flow-matching library's ``"midpoint"``) or DDIM (Song, Meng and Ermon, 2021);
:func:`nfe` counts the velocity evaluations.

**The flow in the coordinates** :math:`y = x/a`, :math:`\rho = b/a`. Along the path
:math:`y_t = x_1 + \rho\,x_0`: every Gaussian path is the same straight line in these
coordinates, run on its own clock :math:`\rho(t)` (:meth:`ProbabilityPath.rho`,
:meth:`ProbabilityPath.time_at_rho`). The marginal flow is therefore

.. math:: \frac{dy}{d\rho} = \mathbb E[x_0 \mid y] = \hat\varepsilon(y, \rho),

one ODE for the linear path, the VP path and every other: they differ only in the time grid a
sampler puts on it. DDIM is Euler's method for this ODE (``method="ddim"``), and EDM's Heun
sampler (:func:`diffnotes.sde.heun_flow`) is Heun's.

A *velocity function* is a callable ``velocity(x, t)`` taking points of shape ``(m, d)`` and a
float time in :math:`[0, 1)` and returning an array of shape ``(m, d)``, such as
:func:`exact_velocity` bound to a mixture (:func:`velocity_function`) or a trained network
(:func:`diffnotes.flow_train.velocity_function`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np

from ._checks import positive_float, positive_int, real_array
from .sde import VPSDE, LinearSDE

__all__ = [
    "KINDS",
    "METHODS",
    "LinearPath",
    "ProbabilityPath",
    "SDEPath",
    "as_path",
    "exact_velocity",
    "nfe",
    "sample_ode",
    "score_to_velocity",
    "velocity_function",
    "velocity_to_score",
    "vp_path",
]

KINDS = ("velocity", "score", "noise", "data")
"""What a field stands for: the velocity, the score, the noise or the data prediction."""

METHODS = ("euler", "heun", "midpoint", "ddim")
"""The fixed-step ODE methods of :func:`sample_ode`."""


def _xp(x):
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _time(t, name="t", *, upper_open=True):
    """A float time in [0, 1) (or [0, 1] with ``upper_open=False``)."""
    if isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise ValueError(f"{name} must be a real number in [0, 1), got {type(t).__name__}")
    t = float(t)
    ok = 0.0 <= t < 1.0 if upper_open else 0.0 <= t <= 1.0
    if not ok:
        rng = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"{name} must be in {rng}, got {t}")
    return t


def _points(x, name="x", dim=None):
    x = real_array(x, name, ndim=2)
    if x.shape[0] < 1 or (dim is not None and x.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, d)"
        raise ValueError(f"{name} must have shape {want} with n >= 1, got {x.shape}")
    return x


def _choice(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# Probability paths
# --------------------------------------------------------------------------------------------
class ProbabilityPath:
    r"""A Gaussian probability path :math:`x_t = a(t)\,x_1 + b(t)\,x_0` on :math:`[0, 1]`.

    Subclasses give :meth:`_coefficients` (unchecked, for NumPy arrays and torch tensors
    alike). :attr:`t_max` is the largest time at which the velocity is finite (training draws
    :math:`t \sim \mathcal U(0, t_{\max})`, sampling may stop there).
    """

    t_max: float = 1.0
    name = "ProbabilityPath"

    def __repr__(self) -> str:
        return self.name

    def _coefficients(self, t):
        """``(a, b, da, db)`` at times ``t`` (unchecked)."""
        raise NotImplementedError

    def coefficients(self, t: float):
        r"""The floats :math:`(a(t), b(t), \dot a(t), \dot b(t))` at a time ``t`` in
        :math:`[0, 1)`."""
        t = _time(t)
        return tuple(float(c) for c in self._coefficients(np.float64(t)))

    def sample(self, x0, x1, t):
        r"""The points :math:`x_t = a(t)\,x_1 + b(t)\,x_0` of the pairs ``(x0, x1)`` (arrays of
        shape ``(n, d)``), at a float time ``t`` in :math:`[0, 1)`."""
        x0, x1 = _pair(x0, x1)
        a, b, _, _ = self.coefficients(t)
        return a * x1 + b * x0

    def conditional_velocity(self, x0, x1, t):
        r"""The velocity :math:`\dot a(t)\,x_1 + \dot b(t)\,x_0` of the pairs ``(x0, x1)``
        along the path, the regression target of flow matching; for :class:`LinearPath`,
        :math:`x_1 - x_0` at every ``t``."""
        x0, x1 = _pair(x0, x1)
        _, _, da, db = self.coefficients(t)
        return da * x1 + db * x0

    def _affine(self, kind, t):
        """``(p, q)`` with ``kind = p x + q x1_hat`` at the time(s) ``t``."""
        a, b, da, db = self._coefficients(t)
        if kind == "data":
            return 0.0 * a, 1.0 + 0.0 * a
        if kind == "noise":
            return 1.0 / b, -a / b
        if kind == "score":
            return -1.0 / b**2, a / b**2
        return db / b, da - a * db / b                                  # velocity

    def _convert(self, value, x, t, source, target):
        """Unchecked :meth:`convert` (``t`` a float, or a column broadcasting with ``x``)."""
        if source == target:
            return value
        p1, q1 = self._affine(source, t)
        p2, q2 = self._affine(target, t)
        x1_hat = (value - p1 * x) / q1
        return p2 * x + q2 * x1_hat

    def convert(self, value, x, t: float, *, source: str, target: str):
        r"""Convert a field at points ``x`` and time ``t`` between the parameterisations
        ``"velocity"``, ``"score"`` (:math:`\nabla\log p_t`), ``"noise"``
        (:math:`\mathbb E[x_0 \mid x_t]`) and ``"data"`` (:math:`\mathbb E[x_1 \mid x_t]`).

        Each is affine in the data prediction, ``kind = p(t) x + q(t) x1_hat`` (module
        docstring), so every conversion goes through ``x1_hat``: the formulas are written once.
        ``value`` and ``x`` are arrays of shape ``(n, d)``, ``t`` a float in :math:`(0, 1)`
        (at :math:`t = 0` the noise carries no information about the data, and at
        :math:`t = 1` the score is singular).
        """
        source = _choice(source, "source", KINDS)
        target = _choice(target, "target", KINDS)
        value, x = _pair(value, x, "value", "x")
        t = _time(t)
        if t == 0.0:
            raise ValueError("t must be in (0, 1) for a conversion, got 0")
        return self._convert(value, x, t, source, target)

    def rho(self, t):
        r"""The noise-to-signal ratio :math:`\rho(t) = b(t)/a(t)` (``inf`` where
        :math:`a = 0`), decreasing from :math:`\rho(0)` to :math:`\rho(1) = 0`; ``t`` a float or
        an array of times in :math:`[0, 1]`."""
        t = real_array(t, "t")
        if np.any(t < 0) or np.any(t > 1):
            raise ValueError("t must be in [0, 1]")
        a, b, _, _ = self._coefficients(t)
        with np.errstate(divide="ignore"):
            r = np.where(a > 0, b / np.where(a > 0, a, 1.0), np.inf)
        return float(r) if r.ndim == 0 else r

    def time_at_rho(self, rho):
        r"""The flow time :math:`t` at which :math:`\rho(t) =` ``rho`` (a float or an array,
        each in :math:`[\rho(t_{\max}), \rho(0)]`): the inverse of :meth:`rho`, by bisection
        (:class:`LinearPath` overrides it with :math:`t = 1/(1 + \rho)`)."""
        r = real_array(rho, "rho")
        lo_r, hi_r = self.rho(self.t_max), self.rho(0.0)
        if np.any(r < lo_r) or np.any(r > hi_r):
            raise ValueError(f"rho must be in [{lo_r:g}, {hi_r:g}] for {self}")
        lo, hi = np.zeros(r.shape), np.full(r.shape, self.t_max)
        for _ in range(60):                              # rho is decreasing in t
            mid = 0.5 * (lo + hi)
            right = self.rho(mid) > r
            lo, hi = np.where(right, mid, lo), np.where(right, hi, mid)
        t = 0.5 * (lo + hi)
        return float(t) if t.ndim == 0 else t

    def prior_sample(self, n: int, d: int, rng) -> np.ndarray:
        r"""``n`` draws of :math:`x_0 \sim \mathcal N(0, I_d)`, where sampling starts."""
        from ._checks import as_rng

        n, d = positive_int(n, "n"), positive_int(d, "d")
        return as_rng(rng).standard_normal((n, d))


class LinearPath(ProbabilityPath):
    r"""The linear (rectified-flow, conditional optimal-transport) path :math:`a = t`,
    :math:`b = 1 - t`: :math:`x_t = t\,x_1 + (1 - t)\,x_0`, conditional velocity
    :math:`x_1 - x_0`, and :math:`v = (\hat x_1 - x)/(1 - t)`. The flow-matching library's
    ``CondOTScheduler`` (Lipman et al., 2023; Liu et al., 2023)."""

    name = "LinearPath()"

    def _coefficients(self, t):
        return t, 1.0 - t, 1.0 + 0.0 * t, -1.0 + 0.0 * t

    def time_at_rho(self, rho):
        r"""The time :math:`t = 1/(1 + \rho)` of the noise-to-signal ratio ``rho`` >= 0."""
        r = real_array(rho, "rho")
        if np.any(r < 0):
            raise ValueError("rho must be >= 0")
        t = 1.0 / (1.0 + r)
        return float(t) if t.ndim == 0 else t


class SDEPath(ProbabilityPath):
    r"""The path of a linear SDE of :mod:`diffnotes.sde` in flow-matching time.

    The SDE noises data from its time :math:`s = 0` to :math:`s = T`; flow matching runs from
    noise at :math:`t = 0` to data at :math:`t = 1`. With :math:`s = T(1 - t)`,

    .. math::
        a(t) = \alpha(s), \quad b(t) = \sigma(s), \quad
        \dot a(t) = T\,\beta_a(s)\,\alpha(s), \quad
        \dot b(t) = -T\,\frac{g(s)^2 - 2\beta_a(s)\sigma(s)^2}{2\sigma(s)},

    where :math:`f(x, s) = -\beta_a(s)\,x` is the SDE's drift and :math:`g` its diffusion
    coefficient (from :math:`d\sigma^2/ds = g^2 - 2\beta_a\sigma^2`). For
    :class:`~diffnotes.sde.VPSDE`, :math:`\beta_a = \beta/2`, :math:`g^2 = \beta` and
    :math:`\dot b = -T\beta\alpha^2/(2\sigma)`. Since :math:`\sigma(0) = 0`, :math:`\dot b` is
    infinite at :math:`t = 1`: the velocity exists on :math:`[0, 1)`, and training and sampling
    stop at :math:`t_{\max} = 1 - t_{\min}/T` (``t_min`` the SDE time the chapter's samplers
    stop at).
    """

    def __init__(self, sde: LinearSDE, t_min: float = 1e-3):
        if not isinstance(sde, LinearSDE):
            raise ValueError(f"sde must be a linear SDE of diffnotes.sde (OU, VPSDE, SubVPSDE, "
                             f"VESDE), got {type(sde).__name__}")
        self.sde = sde
        self.t_min = positive_float(t_min, "t_min")
        if not self.t_min < sde.T:
            raise ValueError(f"t_min must be < sde.T = {sde.T:g}, got {t_min:g}")
        self.t_max = 1.0 - self.t_min / sde.T
        self.name = f"SDEPath({sde})"

    def sde_time(self, t):
        """The SDE time :math:`s = T(1 - t)` of the flow time ``t``."""
        return self.sde.T * (1.0 - t)

    def flow_time(self, s):
        """The flow time :math:`t = 1 - s/T` of the SDE time ``s``."""
        return 1.0 - s / self.sde.T

    def _coefficients(self, t):
        T, s = self.sde.T, self.sde_time(t)
        alpha, sigma = self.sde._alpha_sigma(s)
        beta_a, g2 = self.sde._a(s), self.sde._g2(s)
        return alpha, sigma, T * beta_a * alpha, -T * (g2 - 2 * beta_a * sigma**2) / (2 * sigma)


def vp_path(beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3) -> SDEPath:
    r"""The path of :class:`~diffnotes.sde.VPSDE` (``beta_min``, ``beta_max``, :math:`T = 1`):
    :math:`a(t) = \alpha(1 - t) = e^{-\frac12\int_0^{1-t}\beta}`, :math:`b = \sqrt{1 - a^2}`
    (:class:`SDEPath`)."""
    return SDEPath(VPSDE(beta_min, beta_max), t_min)


def as_path(path) -> ProbabilityPath:
    """``"linear"`` (:class:`LinearPath`), ``"vp"`` (:func:`vp_path`) or a path object."""
    if isinstance(path, ProbabilityPath):
        return path
    if path == "linear":
        return LinearPath()
    if path == "vp":
        return vp_path()
    raise ValueError(f"path must be 'linear', 'vp' or a diffnotes.flow.ProbabilityPath, got "
                     f"{path!r}")


def _pair(a, b, name_a="x0", name_b="x1"):
    a, b = _points(a, name_a), _points(b, name_b)
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the shape of {name_a} {a.shape}, got {b.shape}")
    return a, b


# --------------------------------------------------------------------------------------------
# The exact velocity of a Gaussian mixture
# --------------------------------------------------------------------------------------------
def exact_velocity(mixture, x, t: float, path="linear") -> np.ndarray:
    r"""The marginal velocity :math:`v(x, t) = \mathbb E[\dot a\,x_1 + \dot b\,x_0 \mid x_t =
    x]` of flow matching when the data :math:`x_1` follow a Gaussian mixture.

    Given the component :math:`k` (weight :math:`w_k`, mean :math:`\mu_k`, covariance
    :math:`\Sigma_k`), :math:`(x_t, \dot a x_1 + \dot b x_0)` is jointly Gaussian, so

    .. math::
        v(x, t) = \sum_k r_k(x)\,\Bigl[\dot a\,\mu_k + (a\dot a\,\Sigma_k + b\dot b\,I)
        (a^2\Sigma_k + b^2 I)^{-1}(x - a\mu_k)\Bigr],

    with responsibilities :math:`r_k(x) \propto w_k\,\mathcal N(x; a\mu_k, a^2\Sigma_k + b^2 I)`,
    worked out in each component's eigenbasis (no division by :math:`a` or :math:`b`).

    Parameters
    ----------
    mixture : diffnotes.mixtures.GaussianMixture
        The data distribution (at :math:`t = 1`).
    x : array of shape (n, d)
        Points.
    t : float in [0, 1)
        Flow time (for an :class:`SDEPath`, at most its ``t_max``).
    path : "linear", "vp" or ProbabilityPath

    Returns
    -------
    ndarray of shape (n, d)
    """
    if not hasattr(mixture, "_log_components"):
        raise ValueError(f"mixture must be a diffnotes.mixtures.GaussianMixture, got "
                         f"{type(mixture).__name__}")
    path = as_path(path)
    x = _points(x, "x", mixture.dim)
    t = _time(t)
    if t > path.t_max:
        raise ValueError(f"t must be in [0, {path.t_max:g}] for {path}, got {t}")
    return _exact_velocity(mixture, x, t, path)


def _exact_velocity(mixture, x, t, path):
    a, b, da, db = (float(c) for c in path._coefficients(np.float64(t)))
    m = x.shape[0]
    logc, z = mixture._log_components(x, np.full(m, a), np.full(m, b))     # (K, m), (K, d, m)
    r = np.exp(logc - logc.max(axis=0, keepdims=True))
    r /= r.sum(axis=0, keepdims=True)
    gain = (a * da * mixture._evals[:, :, None] + b * db) * z                # (K, d, m)
    vk = da * mixture.means[:, :, None] + np.einsum("kij,kjm->kim", mixture._evecs, gain)
    return np.einsum("km,kim->mi", r, vk)


def velocity_function(mixture, path="linear") -> Callable:
    """The exact velocity of ``mixture`` as a function ``(x, t) -> exact_velocity(mixture, x,
    t, path)``, the form :func:`sample_ode` takes."""
    path = as_path(path)
    exact_velocity(mixture, mixture.means[:1], 0.0, path)          # validate the arguments

    def velocity(x, t):
        return exact_velocity(mixture, x, t, path)

    return velocity


# --------------------------------------------------------------------------------------------
# Score models as velocity fields and back (SDE paths)
# --------------------------------------------------------------------------------------------
def _sde_path(path):
    if not isinstance(path, SDEPath):
        raise ValueError(f"path must be an SDEPath (a path with an SDE time), got {path!r}")
    return path


def score_to_velocity(score: Callable, path: SDEPath) -> Callable:
    r"""A score function of Chapter 3, ``score(x, s)`` in the SDE's time :math:`s`
    (:meth:`~diffnotes.mixtures.GaussianMixture.score_function`,
    :func:`diffnotes.score.score_function`), as the velocity function ``(x, t)`` of flow
    matching on ``path``: :math:`v(x, t) = \frac{\dot a}{a}x + (\frac{\dot a b^2}{a} -
    b\dot b)\,s(x, T(1 - t))`, i.e. :math:`-T[f - \frac12 g^2 s]`."""
    path = _sde_path(path)
    if not callable(score):
        raise ValueError("score must be a callable score(x, s) -> array shaped like x")

    def velocity(x, t):
        s = path.sde_time(t)
        return path._convert(np.asarray(score(x, s), float), x, t, "score", "velocity")

    return velocity


def velocity_to_score(velocity: Callable, path: SDEPath) -> Callable:
    r"""A velocity function ``velocity(x, t)`` on ``path`` as the score function ``(x, s)`` of
    Chapter 3 (SDE time :math:`s \in (0, T]`), for :func:`diffnotes.sde.euler_maruyama` and the
    other samplers of :mod:`diffnotes.sde`; the inverse of :func:`score_to_velocity`."""
    path = _sde_path(path)
    if not callable(velocity):
        raise ValueError("velocity must be a callable velocity(x, t) -> array shaped like x")

    def score(x, s):
        t = path.flow_time(s)
        return path._convert(np.asarray(velocity(x, t), float), x, t, "velocity", "score")

    return score


# --------------------------------------------------------------------------------------------
# Fixed-step ODE samplers
# --------------------------------------------------------------------------------------------
def nfe(method: str, n_steps: int, t_end: float = 1.0) -> int:
    """The number of velocity evaluations of :func:`sample_ode`: ``n_steps`` for Euler and
    DDIM, ``2 n_steps`` for the midpoint rule, ``2 n_steps - 1`` for Heun ending at
    :math:`t = 1` (``2 n_steps`` when ``t_end < 1``)."""
    method = _choice(method, "method", METHODS)
    n_steps = positive_int(n_steps, "n_steps")
    if method in ("euler", "ddim"):
        return n_steps
    if method == "heun" and t_end >= 1.0:
        return 2 * n_steps - 1
    return 2 * n_steps


def sample_ode(velocity: Callable, x, *, n_steps: int = 10, method: str = "heun",
               t_start: float = 0.0, t_end: float = 1.0, grid=None, path=None):
    r"""Integrate :math:`\dot x = v(x, t)` from ``t_start`` to ``t_end`` in fixed steps.

    Parameters
    ----------
    velocity : callable
        ``velocity(x, t) -> (n, d)``, ``t`` a float.
    x : array of shape (n, d)
        Points at ``t_start`` (e.g. ``path.prior_sample(n, d, rng)``); a torch tensor is
        integrated as one (the velocity must then take and return tensors).
    n_steps : int
        Number of steps (uniform in :math:`t` unless ``grid`` is given).
    method : "euler", "heun", "midpoint" or "ddim"
        Euler (order 1, :math:`x + h v(x, t)`); Heun (order 2: an Euler predictor, then the
        trapezoidal average of the slopes at both ends; a step that ends at :math:`t = 1` stays
        an Euler step); explicit midpoint (order 2, :math:`x + h\,v(x + \frac h2 v(x, t),
        t + \frac h2)`); DDIM (order 1; needs ``path``): Euler in the coordinates
        :math:`y = x/a`, :math:`\rho = b/a`, where the flow reads :math:`dy/d\rho =
        \hat\varepsilon` for every path, i.e. :math:`x_{k+1} = a_{k+1}\hat x_1 +
        b_{k+1}\hat\varepsilon` with both predictions converted from :math:`v(x_k, t_k)`.
    t_start, t_end : floats, 0 <= t_start < t_end <= 1
    grid : array of increasing times, optional
        The time points (``n_steps + 1`` of them, from ``t_start`` to ``t_end``); overrides the
        three arguments above (e.g. ``path.time_at_rho(rhos)`` for a grid in :math:`\rho`).
    path : ProbabilityPath, "linear" or "vp"
        The path the velocity belongs to (only for ``"ddim"``).

    Returns
    -------
    The points at ``t_end``, of the kind of ``x``. :func:`nfe` gives the number of velocity
    evaluations.
    """
    if not callable(velocity):
        raise ValueError("velocity must be a callable velocity(x, t) -> array shaped like x")
    method = _choice(method, "method", METHODS)
    if method == "ddim":
        if path is None:
            raise ValueError("path is needed for method='ddim' (the path of the velocity)")
        path = as_path(path)
    if grid is None:
        n_steps = positive_int(n_steps, "n_steps")
        t_start = _time(t_start, "t_start")
        t_end = _time(t_end, "t_end", upper_open=False)
        if not t_start < t_end:
            raise ValueError(f"t_end must be > t_start = {t_start}, got {t_end}")
        grid = np.linspace(t_start, t_end, n_steps + 1)
    else:
        grid = real_array(grid, "grid", ndim=1)
        if grid.size < 2 or np.any(np.diff(grid) <= 0) or grid[0] < 0 or grid[-1] > 1:
            raise ValueError("grid must hold >= 2 strictly increasing times in [0, 1]")
    if _xp(x) is np:
        x = _points(x, "x")
    for t0, t1 in zip(grid[:-1].tolist(), grid[1:].tolist(), strict=True):
        h = t1 - t0
        v0 = velocity(x, t0)
        if method == "euler":
            x = x + h * v0
        elif method == "midpoint":
            x = x + h * velocity(x + 0.5 * h * v0, t0 + 0.5 * h)
        elif method == "ddim":
            x1_hat = path._convert(v0, x, t0, "velocity", "data")
            eps_hat = path._convert(x1_hat, x, t0, "data", "noise")
            a1, b1, _, _ = path._coefficients(np.float64(t1))
            x = float(a1) * x1_hat + float(b1) * eps_hat
        else:
            xe = x + h * v0
            x = xe if t1 >= 1.0 else x + 0.5 * h * (v0 + velocity(xe, t1))
    return x
