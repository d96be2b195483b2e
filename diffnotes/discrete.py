r"""Discrete diffusion on unordered states: the uniform and the masked chain (Chapter 6).

Conventions of the module
-------------------------
* One coordinate takes the values ``0..n-1``. For the *masked* chain the mask is the extra
  state ``n``, so a coordinate of a noised state takes ``K = n + 1`` values; for the
  *uniform* chain ``K = n``.
* At unit rate the uniform generator is :math:`Q = \tfrac1n \mathbf 1 \mathbf 1^\top - I`
  (jump at rate 1 to a uniformly drawn state, itself included) and the masked generator sends
  every non-mask state to the mask at rate 1; the mask is absorbing. A schedule
  (:mod:`diffnotes.schedules`) multiplies the rates by :math:`\lambda(t)`; only the clock
  :math:`\Theta(t) = \int_0^t \lambda` enters the laws, through :math:`\alpha_t = e^{-\Theta(t)}`.
* States of ``d`` coordinates are integer arrays of shape ``(m, d)``; the coordinates are
  noised independently (a factorised forward process). Joint objects on the ``K^d`` states of
  an enumerable problem use the row-major index of :func:`joint_states`.
* A *denoiser* is a callable ``denoiser(x, t) -> probs``: noised states ``x`` of shape
  ``(m, d)`` and forward times ``t`` of shape ``(m,)`` give ``probs`` of shape ``(m, d, n)``,
  the law of each clean coordinate :math:`p(x_0^i = a \mid x_t)`. :func:`exact_denoiser` is the
  true one of an enumerable data law; a network gives a learned one.
* Randomness comes only from an explicit ``rng`` (an ``int`` seed or a Generator).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import ctmc
from ._checks import as_rng, positive_float, positive_int, real_array
from .schedules import Schedule, as_schedule

__all__ = ["DiscreteRun", "elbo", "exact_denoiser", "exact_reverse_generator", "generator",
           "joint_generator", "joint_states", "marginal", "masked_weight",
           "model_generator", "model_likelihood", "prior", "reverse_rates",
           "sample_exact", "sample_forward", "sample_tau", "sample_unmask",
           "transition_matrix"]

KINDS = ("uniform", "masked")
MAX_JOINT = 4096  # largest K^d an enumerable problem may have


def _kind(kind) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be 'uniform' or 'masked', got {kind!r}")
    return kind


def _n(n) -> int:
    return positive_int(n, "n", minimum=2, maximum=1024)


def _K(kind: str, n: int) -> int:
    return n + 1 if kind == "masked" else n


# --------------------------------------------------------------------------------------------
# One coordinate: generator and transition matrix
# --------------------------------------------------------------------------------------------
def generator(kind: str, n: int) -> np.ndarray:
    r"""The unit-rate generator of one coordinate, shape ``(K, K)``.

    ``"uniform"``: :math:`\tfrac1n \mathbf 1 \mathbf 1^\top - I` (this is
    :func:`diffnotes.ctmc.uniform_generator`); ``"masked"``: ``Q[i, n] = 1``, ``Q[i, i] = -1``
    for ``i < n`` and a zero last row (the mask ``n`` is absorbing).
    """
    kind, n = _kind(kind), _n(n)
    if kind == "uniform":
        return ctmc.uniform_generator(n)
    Q = np.zeros((n + 1, n + 1))
    Q[np.arange(n), np.arange(n)] = -1.0
    Q[:n, n] = 1.0
    return Q


def _kernel(kind: str, n: int, theta) -> np.ndarray:
    """Closed-form transition matrices at clocks ``theta`` (any shape): shape ``(..., K, K)``."""
    a = np.exp(-np.asarray(theta, dtype=float))[..., None, None]
    if kind == "uniform":
        return a * np.eye(n) + (1.0 - a) / n
    eye = np.eye(n + 1)
    P = a * eye + (1.0 - a) * eye[n][None, :]
    P = np.broadcast_to(P, a.shape[:-2] + (n + 1, n + 1)).copy()
    P[..., n, :] = eye[n]
    return P


def transition_matrix(kind: str, n: int, t: float, schedule: Schedule | None = None):
    r"""``P[a, b] = P(x_t = b | x_0 = a)`` for one coordinate, in closed form.

    With :math:`\alpha_t = e^{-\Theta(t)}`: uniform :math:`P_t = \alpha_t I +
    (1 - \alpha_t)\tfrac1n \mathbf 1 \mathbf 1^\top`; masked :math:`P_t[a, a] = \alpha_t`,
    :math:`P_t[a, n] = 1 - \alpha_t` (``a < n``), :math:`P_t[n, n] = 1`. Both equal
    :math:`e^{\Theta(t) Q}` (:eq:`ch6-closed-forms`).
    """
    kind, n = _kind(kind), _n(n)
    t = positive_float(t, "t", allow_zero=True)
    return _kernel(kind, n, as_schedule(schedule)._theta(t))


def masked_weight(t, schedule: Schedule | None = None) -> np.ndarray:
    r"""The weight :math:`-\dot\alpha_t / (1 - \alpha_t) = \lambda(t) \alpha_t / (1 - \alpha_t)`
    of the masked ELBO (:eq:`ch6-masked-elbo`): the rate at which a masked coordinate at time
    ``t`` is unmasked by the reverse chain. ``t`` must be > 0."""
    t = real_array(t, "t")
    if np.any(t <= 0):
        raise ValueError(f"t must be > 0, got min {t.min():.3g}")
    sch = as_schedule(schedule)
    th = sch._theta(t)
    return sch._lam(t) / np.expm1(th)


# --------------------------------------------------------------------------------------------
# d coordinates: forward sampling and enumerable joint laws
# --------------------------------------------------------------------------------------------
def _states_arg(x, K: int, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array of shape (m, d), got "
                         f"{x.dtype} {x.shape}")
    if x.size and (x.min() < 0 or x.max() >= K):
        raise ValueError(f"{name} must have entries in 0..{K - 1}, got "
                         f"[{x.min()}, {x.max()}]")
    return x


def _times_arg(t, m: int, name: str = "t", positive: bool = False) -> np.ndarray:
    t = np.broadcast_to(real_array(t, name, ndim=(0, 1)), (m,)).astype(float)
    if np.any(t < 0) or (positive and np.any(t == 0)):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got min {t.min():.3g}")
    return t


def sample_forward(kind: str, x0, t, n: int, rng, *, schedule: Schedule | None = None):
    r"""Exact samples of :math:`x_t \mid x_0`, coordinate by coordinate.

    ``x0`` has shape ``(m, d)`` with entries in ``0..n-1``; ``t`` is a float or one time per
    row, shape ``(m,)``. Each coordinate is kept with probability :math:`\alpha_t` and
    otherwise replaced: by the mask (masked) or by a uniform draw from ``0..n-1`` (uniform).
    """
    kind, n = _kind(kind), _n(n)
    x0 = _states_arg(x0, n, "x0")
    t = _times_arg(t, x0.shape[0])
    rng = as_rng(rng)
    a = np.exp(-as_schedule(schedule)._theta(t))[:, None]
    hit = rng.random(x0.shape) >= a
    fill = np.full(x0.shape, n) if kind == "masked" else rng.integers(0, n, x0.shape)
    return np.where(hit, fill, x0)


def joint_states(K: int, d: int) -> np.ndarray:
    """All ``K^d`` states of ``d`` coordinates with ``K`` values, shape ``(K^d, d)``, in
    row-major order (the last coordinate changes fastest)."""
    K = positive_int(K, "K", minimum=2)
    d = positive_int(d, "d", minimum=1)
    if K**d > MAX_JOINT:
        raise ValueError(f"K^d must be <= {MAX_JOINT} for an enumerable problem, got {K}^{d}")
    return np.indices((K,) * d).reshape(d, -1).T


def _index(x: np.ndarray, K: int) -> np.ndarray:
    return np.ravel_multi_index(tuple(x.T), (K,) * x.shape[1])


def joint_generator(kind: str, n: int, d: int) -> np.ndarray:
    r"""Unit-rate generator of ``d`` independent coordinates on the ``K^d`` joint states: the
    Kronecker sum :math:`\sum_i I \otimes \cdots \otimes Q \otimes \cdots \otimes I`."""
    Q = generator(kind, n)
    K = Q.shape[0]
    d = positive_int(d, "d", minimum=1)
    joint_states(K, d)  # size check
    G = np.zeros((K**d, K**d))
    for i in range(d):
        G += np.kron(np.kron(np.eye(K**i), Q), np.eye(K ** (d - 1 - i)))
    return G


def _p0_arg(p0, n: int) -> tuple[np.ndarray, int]:
    p = real_array(p0, "p0")
    if p.ndim < 1 or any(s != n for s in p.shape):
        raise ValueError(f"p0 must have shape (n,)*d = ({n}, ..., {n}), got {p.shape}")
    if np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
        raise ValueError("p0 must be non-negative and sum to 1")
    return p, p.ndim


def marginal(kind: str, p0, t: float, n: int, *, schedule: Schedule | None = None):
    """The law of :math:`x_t` on the ``K^d`` joint states (flat, :func:`joint_states` order),
    for data law ``p0`` of shape ``(n,)*d``: each axis is pushed through the one-coordinate
    :func:`transition_matrix`."""
    kind, n = _kind(kind), _n(n)
    p, d = _p0_arg(p0, n)
    P = transition_matrix(kind, n, t, schedule)[:n]
    for i in range(d):
        p = np.moveaxis(np.tensordot(p, P, axes=([i], [0])), -1, i)
    return p.ravel()


def _likelihoods(kind, n, x, theta):
    """``L[m, i, a] = q_t(x^i | x_0^i = a)`` for states ``x`` (m, d) at clocks ``theta`` (m,)."""
    P = _kernel(kind, n, theta)  # (m, K, K)
    return np.take_along_axis(P[:, None, :n, :], x[:, :, None, None], axis=-1)[..., 0]


def exact_denoiser(kind: str, p0, n: int, *, schedule: Schedule | None = None) -> Callable:
    r"""The true denoiser :math:`p(x_0^i = a \mid x_t)` of an enumerable data law ``p0``
    (shape ``(n,)*d``), by Bayes' rule on the ``n^d`` clean states."""
    kind, n = _kind(kind), _n(n)
    p, d = _p0_arg(p0, n)
    sch = as_schedule(schedule)
    clean = joint_states(n, d)  # (n^d, d)
    w0 = p.ravel()

    def denoiser(x, t):
        x = _states_arg(x, _K(kind, n), "x")
        t = _times_arg(t, x.shape[0])
        L = _likelihoods(kind, n, x, sch._theta(t))  # (m, d, n)
        lik = np.prod(L[:, np.arange(d)[:, None], clean.T], axis=1)  # (m, n^d)
        post = lik * w0
        post /= post.sum(axis=1, keepdims=True)
        eye = np.eye(n)
        return np.stack([post @ eye[clean[:, i]] for i in range(d)], axis=1)

    return denoiser


# --------------------------------------------------------------------------------------------
# Reverse rates
# --------------------------------------------------------------------------------------------
def reverse_rates(kind: str, n: int, x, t, probs, *, schedule: Schedule | None = None):
    r"""Reverse-time rates of the moves :math:`x \to x^{i \leftarrow y}` from a denoiser's
    output, shape ``(m, d, K)`` (zero at ``y = x^i``):

    .. math:: \hat R_t(x, x^{i\leftarrow y}) = \lambda(t)\, Q[y, x^i] \sum_a
       p(x_0^i = a \mid x)\, \frac{q_t(y \mid a)}{q_t(x^i \mid a)}

    (:eq:`ch6-reverse-rates`). A move changes one coordinate, but its rate depends on the whole
    state through ``probs`` (shape ``(m, d, n)``). Terms with :math:`Q[y, x^i] = 0` are 0 (for the
    masked chain every move out of an unmasked coordinate).
    """
    kind, n = _kind(kind), _n(n)
    K = _K(kind, n)
    x = _states_arg(x, K, "x")
    m, d = x.shape
    t = _times_arg(t, m, positive=True)
    probs = real_array(probs, "probs")
    if probs.shape != (m, d, n):
        raise ValueError(f"probs must have shape {(m, d, n)}, got {probs.shape}")
    return _reverse_rates(kind, n, x, t, probs, as_schedule(schedule))


def _reverse_rates(kind, n, x, t, probs, sch):
    r"""The sum over ``a`` of :eq:`ch6-reverse-rates` in closed form, :math:`O(m d n)`.

    Masked: from the mask, :math:`\lambda\, \alpha/(1 - \alpha)\, p(x_0^i = y \mid x)`; from
    a value, 0 (:math:`Q[y, x^i] = 0`). Uniform, with :math:`\beta = (1 - \alpha)/n` and
    :math:`p_y = p(x_0^i = y \mid x)`: for :math:`y \ne x^i`,
    :math:`\frac{\lambda}{n}\bigl[\alpha p_y/\beta + 1 - p_{x^i}
    + p_{x^i}\beta/(\alpha + \beta)\bigr]` (the terms :math:`a = y`, :math:`a = x^i` and the
    rest of the sum)."""
    theta = sch._theta(t)[:, None, None]
    lam = sch._lam(t)[:, None, None]
    if kind == "masked":
        R = np.zeros(x.shape + (n + 1,))
        R[..., :n] = probs * (lam / np.expm1(theta)) * (x == n)[..., None]
        return R
    a = np.exp(-theta)
    b = -np.expm1(-theta) / n
    px = np.take_along_axis(probs, x[:, :, None], axis=-1)  # (m, d, 1)
    R = lam / n * (a / b * probs + (1.0 - px) + px * b / (a + b))
    np.put_along_axis(R, x[:, :, None], 0.0, axis=-1)
    return R


def model_generator(kind: str, denoiser: Callable, t, n: int, d: int, *,
                    schedule: Schedule | None = None) -> np.ndarray:
    """The joint reverse generator on the ``K^d`` states that a denoiser defines at forward time
    ``t`` (rows sum to zero): :func:`reverse_rates` on every state, one coordinate per move.
    ``t`` is a float (result ``(K^d, K^d)``) or an array of times (one generator per time,
    one denoiser call for all of them)."""
    kind, n = _kind(kind), _n(n)
    t_arr = real_array(t, "t", ndim=(0, 1))
    if np.any(t_arr <= 0):
        raise ValueError(f"t must be > 0, got min {t_arr.min():.3g}")
    G = _model_generators(kind, denoiser, np.atleast_1d(t_arr), n, d, as_schedule(schedule))
    return G[0] if t_arr.ndim == 0 else G


def _model_generators(kind, denoiser, ts, n, d, sch):
    K = _K(kind, n)
    x = joint_states(K, d)
    N, k = len(x), len(ts)
    xx = np.tile(x, (k, 1))
    tt = np.repeat(ts, N)
    R = _reverse_rates(kind, n, xx, tt, np.asarray(denoiser(xx, tt)), sch)
    R = R.reshape(k, N, d, K)
    target = np.empty((N, d, K), dtype=np.int64)  # index of x with coordinate i set to y
    for i in range(d):
        for y in range(K):
            z = x.copy()
            z[:, i] = y
            target[:, i, y] = _index(z, K)
    G = np.zeros((k, N, N))
    rows = np.broadcast_to(np.arange(N)[:, None, None], target.shape)
    G[:, rows, target] = R  # distinct targets per row, except y = x^i (rate 0)
    diag = np.arange(N)
    G[:, diag, diag] = 0.0
    G[:, diag, diag] = -G.sum(axis=2)
    return G


def exact_reverse_generator(kind: str, p0, t: float, n: int, *,
                            schedule: Schedule | None = None) -> np.ndarray:
    r"""Brute force: :func:`diffnotes.ctmc.reverse_generator` of the joint forward generator
    :math:`\lambda(t) G` (:func:`joint_generator`) and the joint marginal :func:`marginal`
    (:eq:`ch1-reverse-generator` on ``K^d`` states). ``t`` must be > 0."""
    kind, n = _kind(kind), _n(n)
    p, d = _p0_arg(p0, n)
    t = positive_float(t, "t")
    lam = float(as_schedule(schedule)._lam(t))
    return ctmc.reverse_generator(lam * joint_generator(kind, n, d),
                                  marginal(kind, p, t, n, schedule=schedule))


def prior(kind: str, n: int, T: float, *, schedule: Schedule | None = None) -> np.ndarray:
    r"""The reverse chain's starting law of one coordinate, shape ``(K,)``: the forward law at
    ``T`` from a uniform clean value, :math:`\alpha_T/n` on each value and :math:`1 - \alpha_T`
    on the mask (masked), uniform (uniform)."""
    kind, n = _kind(kind), _n(n)
    return np.full(n, 1.0 / n) @ transition_matrix(kind, n, T, schedule)[:n]


# --------------------------------------------------------------------------------------------
# ELBO and the model's exact likelihood (enumerable problems)
# --------------------------------------------------------------------------------------------
def _path_term(kind, n, x, x0, t, probs, sch):
    r"""Integrand of the path KL at ``(x, t)`` given ``x0``: :math:`\sum_y [\hat R^\theta
    - R^* + R^* \log(R^*/\hat R^\theta)]`, with :math:`R^*` the reverse rates given ``x0``."""
    onehot = np.eye(n)[x0]
    Rstar = _reverse_rates(kind, n, x, t, onehot, sch)
    Rmod = _reverse_rates(kind, n, x, t, probs, sch)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.where(Rstar > 0, Rstar * np.log(Rstar / Rmod), 0.0)
    return (Rmod - Rstar + log).sum(axis=(1, 2))


def elbo(kind: str, denoiser: Callable, x0, n: int, T: float, *,
         schedule: Schedule | None = None, t_min: float = 1e-3, n_nodes: int = 48):
    r"""The negative ELBO (nats) of each clean state ``x0`` (shape ``(m, d)``), computed exactly
    by enumerating the ``K^d`` noised states and Gauss-Legendre quadrature in :math:`\log t`.

    .. math:: -\log p_\theta(x_0) \le \mathrm{KL}(q_{T|0} \,\|\, \pi_T) + \int_{t_{\min}}^T
       \mathbb E_{q_{t|0}} \sum_y \Big[\hat R^\theta - R^* + R^* \log\frac{R^*}{\hat R^\theta}
       \Big] dt + \mathbb E_{q_{t_{\min}|0}}[-\log p_\theta(x_0 \mid x_{t_{\min}})]

    (:eq:`ch6-elbo`), with :math:`\pi_T` the product of :func:`prior`. For the masked chain the
    integrand is the weighted cross-entropy of :eq:`ch6-masked-elbo`.
    Returns a dict with ``total``, ``prior``, ``path`` and ``decoder`` (each shape ``(m,)``).
    """
    kind, n = _kind(kind), _n(n)
    K = _K(kind, n)
    x0 = _states_arg(x0, n, "x0")
    T = positive_float(T, "T")
    t_min = positive_float(t_min, "t_min", upper=T)
    n_nodes = positive_int(n_nodes, "n_nodes", minimum=2, maximum=1000)
    sch = as_schedule(schedule)
    m, d = x0.shape
    xs = joint_states(K, d)

    def q_cond(t):  # (m, K^d): q_t(x | x0) for every x0 row
        L = _kernel(kind, n, sch._theta(np.asarray(t)))[:n]  # (n, K)
        return np.prod(L[x0[:, None, :], xs[None, :, :]], axis=-1)

    def expect(fn, t):  # E_{q_t|0}[fn(x, x0)] for every x0 row
        w = q_cond(t)
        xx = np.repeat(xs[None], m, 0).reshape(-1, d)
        zz = np.repeat(x0, len(xs), 0)
        tt = np.full(len(xx), t)
        with np.errstate(divide="ignore", invalid="ignore"):
            vals = fn(xx, zz, tt).reshape(m, len(xs))
        return np.where(w > 0, w * vals, 0.0).sum(axis=1)

    def path(xx, zz, tt):
        return _path_term(kind, n, xx, zz, tt, np.asarray(denoiser(xx, tt)), sch)

    def decoder(xx, zz, tt):
        pr = np.take_along_axis(np.asarray(denoiser(xx, tt)), zz[:, :, None], -1)[..., 0]
        if kind == "masked":  # unmasked coordinates are carried over, as in the samplers
            pr = np.where(xx == n, pr, 1.0)
        return -np.log(pr).sum(axis=1)

    u, wu = np.polynomial.legendre.leggauss(n_nodes)
    lo, hi = np.log(t_min), np.log(T)
    ts = np.exp(lo + (u + 1) * (hi - lo) / 2)
    path_int = sum(wk * tk * (hi - lo) / 2 * expect(path, tk)
                   for wk, tk in zip(wu, ts, strict=True))
    pi = prior(kind, n, T, schedule=sch)
    qT = _kernel(kind, n, sch._theta(T))[:n][x0]  # (m, d, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(qT > 0, qT * np.log(qT / pi), 0.0).sum(axis=(1, 2))
    dec = expect(decoder, t_min)
    return {"total": kl + path_int + dec, "prior": kl, "path": path_int, "decoder": dec}


def _draw(pr, rng):
    """One categorical draw per row of ``pr`` (shape ``(m, d, n)``)."""
    u = rng.random(pr.shape[:-1])[..., None]
    draw = (np.cumsum(pr, axis=-1) < u * pr.sum(-1, keepdims=True)).sum(-1)
    return np.minimum(draw, pr.shape[-1] - 1)


def _decode(denoiser, x, t_min, n, kind, rng):
    """Last step at ``t_min``: draw every coordinate that is masked (masked chain) or every
    coordinate (uniform chain) from the denoiser."""
    draw = _draw(np.asarray(denoiser(x, np.full(len(x), t_min))), rng)
    return np.where(x == n, draw, x) if kind == "masked" else draw


def model_likelihood(kind: str, denoiser: Callable, n: int, d: int, T: float, *,
                     schedule: Schedule | None = None, t_min: float = 1e-3) -> np.ndarray:
    r"""The exact law :math:`p_\theta(x_0)` of the sampler that a denoiser defines, shape
    ``(n,)*d``: the reverse KFE with :func:`model_generator`, solved from :func:`prior` at
    ``T`` down to ``t_min`` by :func:`diffnotes.ctmc.solve_kfe`, then the decoder step of
    :func:`elbo`. Its :math:`-\log` lies below :func:`elbo` for every state."""
    kind, n = _kind(kind), _n(n)
    K = _K(kind, n)
    T = positive_float(T, "T")
    t_min = positive_float(t_min, "t_min", upper=T)
    d = positive_int(d, "d")
    xs = joint_states(K, d)
    pT = prior(kind, n, T, schedule=schedule)
    p = np.prod(pT[xs], axis=1)

    sch = as_schedule(schedule)

    def rates(s):
        return _model_generators(kind, denoiser, T - np.atleast_1d(s), n, d, sch)

    p = ctmc.solve_kfe(rates, p, [0.0, T - t_min], rtol=1e-9, atol=1e-12)[-1]
    pr = np.asarray(denoiser(xs, np.full(len(xs), t_min)))  # (K^d, d, n)
    clean = joint_states(n, d)
    g = pr[:, np.arange(d), clean]  # (K^d, n^d, d): p(x_0^i = clean^i | x)
    if kind == "masked":
        x3 = xs[:, None, :]
        g = np.where(x3 == n, g, (x3 == clean[None]).astype(float))
    dec = np.prod(g, axis=-1)
    return (p @ dec).reshape((n,) * d)


# --------------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------------
@dataclass
class DiscreteRun:
    """The result of a sampler of :mod:`diffnotes.discrete`.

    Attributes
    ----------
    states : int array, shape (m, d)
        Clean samples (after the decoder step at ``t_min``).
    n_evals : int
        Denoiser calls (batched over samples), the decoder step included.
    n_jumps : int
        Coordinate changes made by the reverse chain (before the decoder step).
    n_rejected : int
        Tau-leaping only: coordinates that drew two or more moves in one leap (on unordered
        states they cannot be applied) and were left unchanged.
    n_decoded : int
        Coordinates that the decoder step changed or unmasked.
    seconds : float
        Wall time.
    """

    states: np.ndarray
    n_evals: int
    n_jumps: int
    n_rejected: int
    n_decoded: int
    seconds: float


def _start(kind, n, m, d, T, t_min, schedule, rng):
    kind, n = _kind(kind), _n(n)
    m = positive_int(m, "m")
    d = positive_int(d, "d")
    T = positive_float(T, "T")
    t_min = positive_float(t_min, "t_min", upper=T)
    rng = as_rng(rng)
    pT = prior(kind, n, T, schedule=schedule)
    x = ctmc.sample_states(pT, m * d, rng).reshape(m, d)
    return kind, n, T, t_min, rng, x


def _finish(denoiser, x, t_min, n, kind, rng, evals, jumps, rejected, t0):
    out = _decode(denoiser, x, t_min, n, kind, rng)
    return DiscreteRun(out, evals + 1, jumps, rejected, int((out != x).sum()),
                       time.perf_counter() - t0)


def sample_unmask(denoiser: Callable, m: int, d: int, n: int, T: float, *, rng, n_steps: int,
                  schedule: Schedule | None = None, t_min: float = 1e-3) -> DiscreteRun:
    r"""The masked chain's "unmask a random subset per step" sampler on a grid uniform in
    :math:`\alpha_t`, from ``T`` down to ``t_min``.

    On a step from ``t`` to ``s < t`` each masked coordinate is unmasked with probability
    :math:`(\alpha_s - \alpha_t)/(1 - \alpha_t)`, its value drawn from the denoiser at
    ``(x_t, t)``; unmasked coordinates stay. For one coordinate this is the exact reverse
    kernel; the coordinates unmasked in one step are drawn independently given :math:`x_t`,
    which is the sampler's only error (it vanishes as ``n_steps`` grows).
    """
    kind, n, T, t_min, rng, x = _start("masked", n, m, d, T, t_min, schedule, rng)
    n_steps = positive_int(n_steps, "n_steps", maximum=10**6)
    sch = as_schedule(schedule)
    t0 = time.perf_counter()
    a_hi, a_lo = np.exp(-sch._theta(T)), np.exp(-sch._theta(t_min))
    alphas = np.linspace(a_hi, a_lo, n_steps + 1)
    # times of the alpha grid: Theta(t) = a t + b t^2 / 2 = theta, solved without cancellation
    theta = -np.log(alphas)
    ts = 2 * theta / (sch.a + np.sqrt(sch.a**2 + 2 * sch.b * theta))
    jumps = 0
    for k in range(n_steps):
        p_unmask = (alphas[k + 1] - alphas[k]) / (1.0 - alphas[k])
        masked = x == n
        go = masked & (rng.random(x.shape) < p_unmask)
        if go.any():
            pr = np.asarray(denoiser(x, np.full(m, ts[k])))
            val = _draw(pr, rng)
            x = np.where(go, val, x)
            jumps += int(go.sum())
    return _finish(denoiser, x, t_min, n, kind, rng, n_steps, jumps, 0, t0)


def sample_tau(kind: str, denoiser: Callable, m: int, d: int, n: int, T: float, *, rng,
               n_steps: int, schedule: Schedule | None = None,
               t_min: float = 1e-3) -> DiscreteRun:
    r"""Tau-leaping (Chapter 2's idea; Campbell et al. 2022) on a grid uniform in
    :math:`\log t` from ``T`` down to ``t_min``.

    On each step of length ``h`` the rates :func:`reverse_rates` are frozen at the step's start
    and every coordinate draws ``Poisson(R h)`` moves to each value ``y``. One move is made;
    zero leaves the coordinate; two or more cannot be applied to an unordered value, so the
    coordinate is left unchanged and counted in ``n_rejected``. One denoiser call per step.
    """
    kind, n, T, t_min, rng, x = _start(kind, n, m, d, T, t_min, schedule, rng)
    n_steps = positive_int(n_steps, "n_steps", maximum=10**6)
    sch = as_schedule(schedule)
    t0 = time.perf_counter()
    grid = np.geomspace(T, t_min, n_steps + 1)
    jumps = rejected = 0
    for k in range(n_steps):
        tt = np.full(m, grid[k])
        R = _reverse_rates(kind, n, x, tt, np.asarray(denoiser(x, tt)), sch)
        counts = rng.poisson(R * (grid[k] - grid[k + 1]))
        total = counts.sum(-1)
        one = total == 1
        rejected += int((total > 1).sum())
        x = np.where(one, counts.argmax(-1), x)
        jumps += int(one.sum())
    return _finish(denoiser, x, t_min, n, kind, rng, n_steps, jumps, rejected, t0)


def sample_exact(kind: str, denoiser: Callable, m: int, d: int, n: int, T: float, *, rng,
                 schedule: Schedule | None = None, t_min: float = 1e-3) -> DiscreteRun:
    """Exact simulation of the reverse chain of a denoiser on an enumerable problem: the
    thinning of :func:`diffnotes.ctmc.simulate` on the ``K^d`` joint states with the rates
    :func:`model_generator` at forward time ``T - s``, then the decoder step at ``t_min``.
    ``n_evals`` counts the rates evaluations of the thinning (each on all ``K^d`` states)."""
    kind, n, T, t_min, rng, x = _start(kind, n, m, d, T, t_min, schedule, rng)
    K = _K(kind, n)
    t0 = time.perf_counter()
    calls = [0]

    sch = as_schedule(schedule)

    def rates(s):
        calls[0] += 1
        return _model_generators(kind, denoiser, T - np.atleast_1d(s), n, d, sch)

    pop = ctmc.simulate(rates, _index(x, K), T - t_min, rng=rng, times=[0.0, T - t_min])
    x = joint_states(K, d)[pop.states[-1]]
    return _finish(denoiser, x, t_min, n, kind, rng, calls[0], int(pop.n_jumps.sum()), 0, t0)
