r"""Couplings for flow matching: independent, minibatch optimal transport, Schrödinger bridge,
and reflow; straightness of the learned paths (Chapter 4; NumPy and POT -- the learning is in
:mod:`diffnotes.ot_flow_train`).

**One family.** Flow matching (:mod:`diffnotes.flow`) regresses a velocity on the conditional
velocity of pairs :math:`(x_0, x_1)` joined by a path. Which pairs is a free choice, the
*coupling* :math:`\pi` of noise and data, and the learned velocity is the Markovian projection
of the mixture of conditional paths over :math:`\pi` (its marginals are those of the mixture;
:func:`diffnotes.bridge.gaussian_imf` does it in closed form):

- ``"independent"``: :math:`\pi = \mathcal N(0, I)\otimes q`, the flow matching of Chapter 3.
  Paths of different pairs cross, the projection averages them, and the ODE's trajectories
  curve.
- ``"ot"``: minibatch optimal transport (Tong et al., 2024; Pooladian et al., 2023): in each
  batch of :math:`m` noise and :math:`m` data points pair them by the permutation minimising
  :math:`\sum_i |x_{0,i} - x_{1,\tau(i)}|^2` (:func:`ot_pairing`, POT's ``ot.emd``). Optimal
  transport pairs do not cross, so as :math:`m \to \infty` the paths become straight.
- ``"sb"``: Schrödinger-bridge flow matching, the :math:`\sigma > 0` version: pairs drawn
  from the entropic plan of the batch with :math:`\varepsilon = 2\sigma^2` (Sinkhorn's
  iterations, :func:`sb_pairing`; the static bridge of
  :func:`diffnotes.bridge.static_bridge`), joined by
  Brownian bridges :math:`x_t = (1-t)x_0 + t x_1 + \sigma\sqrt{t(1-t)}\,z`, whose
  probability-flow velocity is :math:`x_1 - x_0 + \sigma\frac{1-2t}{2\sqrt{t(1-t)}}\,z`
  (:func:`bridge_interpolant`). At :math:`\sigma \to 0` it is ``"ot"``; as
  :math:`\sigma \to \infty` the plan becomes independent.
- reflow (rectified flow, Liu et al., 2023): pairs :math:`(x_0, \mathrm{ODE}(x_0))` of a
  first model (:func:`reflow_pairs`), a coupling that the first model's flow already realises
  without crossings; retraining on it straightens the paths.

**Straightness.** :func:`straightness` measures :math:`S = \mathbb E\int_0^1
|v(x_t, t) - (x_1 - x_0)|^2\,dt` along the ODE's trajectories (Liu et al., 2023): zero exactly
when every trajectory is a straight line run at constant speed, in which case one Euler step is
exact. :func:`endpoint_error` gives the error of Euler's method against the number of steps.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from ._checks import as_rng, positive_float, positive_int, real_array
from .bridge import static_bridge
from .flow import sample_ode

__all__ = ["COUPLINGS", "SB_PAIRING_TOL", "bridge_interpolant", "endpoint_error",
           "entropic_plan", "ot_pairing", "pair", "reflow_pairs", "sb_pairing", "straightness",
           "transport_cost"]

COUPLINGS = ("independent", "ot", "sb")
"""The couplings of :func:`pair`."""


def _pair_arrays(x0, x1):
    x0, x1 = real_array(x0, "x0", ndim=2), real_array(x1, "x1", ndim=2)
    if x0.shape != x1.shape or x0.shape[0] < 1:
        raise ValueError(f"x0 and x1 must have the same shape (m, d), m >= 1, got {x0.shape} "
                         f"and {x1.shape}")
    return x0, x1


def _sq_dists(x0, x1):
    import ot

    return ot.dist(x0, x1)          # squared Euclidean distances, shape (m, m)


def _ot_pairing(x0, x1) -> np.ndarray:
    import ot

    m = x0.shape[0]
    w = np.full(m, 1.0 / m)
    plan = ot.emd(w, w, _sq_dists(x0, x1))
    # a vertex of the Birkhoff polytope: one entry 1/m per row (ties are vanishingly rare)
    return np.argmax(plan, axis=1)


def ot_pairing(x0, x1) -> np.ndarray:
    r"""The permutation :math:`\tau` minimising :math:`\sum_i |x_{0,i} - x_{1,\tau(i)}|^2`:
    the optimal-transport plan between the two uniform point clouds (POT's exact solver
    ``ot.emd``, whose solution is a permutation matrix divided by :math:`m`).

    ``x0`` and ``x1`` of shape ``(m, d)``; returns the integer array ``tau`` of shape ``(m,)``,
    so that ``x1[tau]`` is the partner of ``x0``."""
    x0, x1 = _pair_arrays(x0, x1)
    return _ot_pairing(x0, x1)


def _is_coupling(plan, w, tol=1e-3):
    return bool(np.all(np.isfinite(plan)) and np.abs(plan.sum(1) - w).sum() <= tol
                and np.abs(plan.sum(0) - w).sum() <= tol)


def _entropic_plan(x0, x1, sigma, stop=1e-9):
    import ot

    m = x0.shape[0]
    w = np.full(m, 1.0 / m)
    M = _sq_dists(x0, x1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = ot.sinkhorn(w, w, M, reg=2 * sigma**2, stopThr=stop)
        if not _is_coupling(plan, w):      # the kernel underflowed: absorb into log-scalings
            plan = ot.sinkhorn(w, w, M, reg=2 * sigma**2, stopThr=stop,
                               method="sinkhorn_stabilized")
        if not _is_coupling(plan, w):
            plan = static_bridge(x0, w, x1, w, sigma, n_iter=2000, tol=1e-6).plan
            if not _is_coupling(plan, w):
                raise ValueError(f"sigma = {sigma:g} is too small for Sinkhorn on this batch "
                                 f"(its plan did not converge); use coupling='ot'")
    return np.maximum(plan, 0.0)


def entropic_plan(x0, x1, sigma: float) -> np.ndarray:
    r"""The entropic optimal-transport plan between the uniform clouds ``x0`` and ``x1``
    (shape ``(m, d)`` each) with cost :math:`|x_0 - x_1|^2` and :math:`\varepsilon =
    2\sigma^2`, the static Schrödinger bridge of the batch for :math:`dX = \sigma\,dW`;
    shape ``(m, m)``, rows and columns summing to :math:`1/m`. Computed by POT's
    ``ot.sinkhorn`` (to ``stopThr = 1e-9``) with the fallbacks listed in :func:`sb_pairing`.
    As :math:`\sigma \to 0` it tends to the OT assignment (:func:`ot_pairing`), as
    :math:`\sigma \to \infty` to the independent coupling."""
    x0, x1 = _pair_arrays(x0, x1)
    return _entropic_plan(x0, x1, positive_float(sigma, "sigma"))


SB_PAIRING_TOL = 1e-3
r"""Relative tolerance on the column masses of the plan that :func:`sb_pairing` samples."""


def _sinkhorn_rows(M, reg, tol=SB_PAIRING_TOL, max_iter=1000):
    r"""The entropic plan of two uniform clouds for the cost matrix ``M``, for sampling: plain
    Sinkhorn iterations on the kernel :math:`e^{-(M_{ij} - \min_k M_{ik})/\text{reg}}` (the
    row shift is absorbed by the row scaling), stopped when every column's mass is within
    ``tol`` (relative) of :math:`1/m` -- the rows are exact after each row update. ``None``
    if the kernel underflows or the iterations do not converge."""
    m = M.shape[0]
    with np.errstate(all="ignore"):
        K = np.exp(-(M - M.min(axis=1, keepdims=True)) / reg)
        v = np.ones(m)
        for it in range(max_iter):
            u = 1.0 / (K @ v)
            ktu = K.T @ u
            if it % 5 == 4 and np.max(np.abs(v * ktu - 1)) < tol:
                plan = (u[:, None] * K) * (v / m)
                return plan if np.all(np.isfinite(plan)) else None
            v = 1.0 / ktu
            if not np.all(np.isfinite(v)):
                return None
    return None


def _sb_pairing(x0, x1, sigma, rng) -> np.ndarray:
    # columns to 0.1 % (relative), far below the sampling noise of m draws: about a third of
    # the iterations (and none of the overhead) of POT's Sinkhorn to 1e-9
    plan = _sinkhorn_rows(_sq_dists(x0, x1), 2 * sigma**2)
    if plan is None:
        plan = _entropic_plan(x0, x1, sigma, stop=1e-6)
    cdf = np.cumsum(plan, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random((x0.shape[0], 1))
    return np.minimum((cdf < u).sum(axis=1), x0.shape[0] - 1)


def sb_pairing(x0, x1, sigma: float, rng) -> np.ndarray:
    r"""Partners drawn from the entropic optimal-transport plan of the batch, the static
    Schrödinger bridge for the reference :math:`dX = \sigma\,dW`:
    :math:`\pi = \arg\min\langle\pi, |x_0 - x_1|^2\rangle - 2\sigma^2 H(\pi)` over couplings of
    the two uniform clouds, then for each :math:`i` an index :math:`j` drawn from row
    :math:`i` of the plan. The plan is computed by plain Sinkhorn iterations on a row-shifted
    kernel, stopped when every column's mass is within :data:`SB_PAIRING_TOL` (0.1 %) of
    :math:`1/m` (the rows are exact), a bias far below the sampling noise of :math:`m` draws
    (2.5 ms instead of POT's 7 ms for :math:`m = 256`, :math:`\sigma = 0.3` on the eight
    Gaussians). When that kernel underflows or the iterations do not converge it falls back
    to :func:`entropic_plan`'s solvers: POT's ``ot.sinkhorn`` with ``reg = 2 * sigma**2``,
    its log-stabilised ``method="sinkhorn_stabilized"``, then the log-domain
    :func:`diffnotes.bridge.static_bridge`, raising ``ValueError`` if that does not converge
    either (a ``sigma`` far below the batch's spacing).

    ``x0``, ``x1`` of shape ``(m, d)``, ``sigma > 0``, ``rng`` a seed or Generator; returns
    indices of shape ``(m,)`` (with repeats: ``x1[idx]`` is the partner of ``x0``)."""
    x0, x1 = _pair_arrays(x0, x1)
    return _sb_pairing(x0, x1, positive_float(sigma, "sigma"), as_rng(rng))


def pair(x0, x1, coupling: str = "ot", sigma: float = 0.0, rng=0) -> np.ndarray:
    r"""``x1`` rearranged into partners of ``x0`` under ``coupling``: ``"independent"`` (as
    given), ``"ot"`` (:func:`ot_pairing`) or ``"sb"`` (:func:`sb_pairing`, needs
    ``sigma > 0`` and ``rng``). Shapes ``(m, d)`` in and out."""
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {', '.join(map(repr, COUPLINGS))}, got "
                         f"{coupling!r}")
    x0, x1 = _pair_arrays(x0, x1)
    if coupling == "independent":
        return x1
    if coupling == "ot":
        return x1[_ot_pairing(x0, x1)]
    return x1[_sb_pairing(x0, x1, positive_float(sigma, "sigma"), as_rng(rng))]


def bridge_interpolant(x0, x1, t, sigma: float, z):
    r"""The Brownian-bridge interpolant and its probability-flow target,

    .. math::

        x_t = (1-t)\,x_0 + t\,x_1 + \sigma\sqrt{t(1-t)}\,z,\qquad
        u_t = x_1 - x_0 + \sigma\,\frac{1 - 2t}{2\sqrt{t(1-t)}}\,z,

    for ``x0``, ``x1``, ``z`` of shape ``(m, d)`` (NumPy arrays or torch tensors) and times
    ``t`` of shape ``(m,)`` in :math:`(0, 1)` (in :math:`[0, 1]` when ``sigma = 0``, the
    linear path of :class:`diffnotes.flow.LinearPath`). :math:`u_t` is the velocity of
    :math:`x_t` at fixed :math:`(x_0, x_1, z)`; averaged given :math:`x_t` it is the velocity
    of an ODE with the bridge's marginals. Unchecked (it runs in training loops); returns
    ``(x_t, u_t)``."""
    tt = t[:, None]
    xt = (1 - tt) * x0 + tt * x1
    ut = x1 - x0
    if sigma > 0:
        s = (tt * (1 - tt)) ** 0.5
        xt = xt + sigma * s * z
        ut = ut + sigma * (1 - 2 * tt) / (2 * s) * z
    return xt, ut


def transport_cost(x0, x1) -> float:
    r"""The mean squared displacement :math:`\frac1m\sum_i |x_{1,i} - x_{0,i}|^2` of paired
    points (shape ``(m, d)`` each); for the ``"ot"`` pairs of a batch it is the batch's
    optimal-transport cost, an upward-biased estimate of :math:`W_2^2`."""
    x0, x1 = _pair_arrays(x0, x1)
    return float(np.mean(np.sum((x1 - x0) ** 2, axis=1)))


def _velocity(velocity):
    if not callable(velocity):
        raise ValueError("velocity must be a callable velocity(x, t) -> array shaped like x")
    return velocity


def straightness(velocity: Callable, x0, n_steps: int = 100) -> tuple[float, np.ndarray]:
    r"""The straightness :math:`S = \mathbb E\int_0^1 |v(x_t, t) - (x_1 - x_0)|^2\,dt` of the
    ODE :math:`\dot x = v(x, t)` started at the points ``x0`` (shape ``(n, d)``).

    Euler's method with ``n_steps`` uniform steps, :math:`x_{k+1} = x_k + h v_k`; then
    :math:`x_1 - x_0 = h\sum_k v_k` and :math:`S \approx h\sum_k \overline{|v_k -
    (x_1 - x_0)|^2}` (the variance of the velocity along each discretised trajectory, so that
    :math:`S = 0` exactly when the discrete trajectories are straight at constant speed).
    Returns ``(S, x1)``, ``x1`` of shape ``(n, d)``."""
    velocity = _velocity(velocity)
    x = real_array(x0, "x0", ndim=2)
    n_steps = positive_int(n_steps, "n_steps")
    h = 1.0 / n_steps
    vs = []
    for k in range(n_steps):
        v = np.asarray(velocity(x, k * h), float)
        vs.append(v)
        x = x + h * v
    vs = np.array(vs)
    mean = vs.mean(0)                       # = (x1 - x0) for the Euler trajectory
    s = float(np.mean(np.sum((vs - mean) ** 2, axis=2).mean(0)))
    return s, x


def endpoint_error(velocity: Callable, x0, n_steps=(1, 2, 4, 8), reference_steps: int = 200
                   ) -> np.ndarray:
    r"""Root-mean-square distance between the end points of Euler's method with each number
    of steps in ``n_steps`` and those of Heun's method with ``reference_steps`` steps
    (:func:`diffnotes.flow.sample_ode`), from the points ``x0`` (shape ``(n, d)``); shape
    ``(len(n_steps),)``. For a straight flow (:func:`straightness` zero) one step is exact."""
    velocity = _velocity(velocity)
    x0 = real_array(x0, "x0", ndim=2)
    steps = [positive_int(k, "n_steps") for k in np.atleast_1d(n_steps).tolist()]
    ref = sample_ode(velocity, x0, n_steps=positive_int(reference_steps, "reference_steps"),
                     method="heun")
    out = [np.sqrt(np.mean(np.sum((sample_ode(velocity, x0, n_steps=k, method="euler")
                                   - ref) ** 2, axis=1))) for k in steps]
    return np.array(out)


def reflow_pairs(velocity: Callable, n: int, d: int, rng, *, n_steps: int = 20,
                 method: str = "heun") -> tuple[np.ndarray, np.ndarray]:
    r"""The pairs :math:`(x_0, \mathrm{ODE}(x_0))` of one round of reflow: ``n`` draws
    :math:`x_0 \sim \mathcal N(0, I_d)` and their images under the flow of ``velocity``
    (:func:`diffnotes.flow.sample_ode` with ``n_steps`` and ``method``). Train on them with
    :func:`diffnotes.ot_flow_train.train` and ``coupling="paired"``. Returns ``(x0, x1)``,
    each of shape ``(n, d)``."""
    velocity = _velocity(velocity)
    n, d = positive_int(n, "n"), positive_int(d, "d")
    x0 = as_rng(rng).standard_normal((n, d))
    return x0, sample_ode(velocity, x0, n_steps=n_steps, method=method)
