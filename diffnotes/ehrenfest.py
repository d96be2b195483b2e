r"""The Ehrenfest process, its Ornstein-Uhlenbeck limit and its time reversal (Chapter 2).

Conventions of the Ehrenfest module
-----------------------------------
* ``S`` balls, each either in the urn or outside. The state ``n`` in ``{0, ..., S}`` counts the
  balls in the urn. Each ball switches side at rate ``lambda(t) / 2``, so
  ``r(n+1 | n) = lambda(t) (S - n) / 2`` and ``r(n-1 | n) = lambda(t) n / 2``
  (:eq:`ch2-rates`). ``lambda`` is a :class:`diffnotes.schedules.Schedule` (``schedule=None``
  means ``lambda = 1``); only its clock ``Theta(t) = int_0^t lambda`` enters the laws.
* Generators follow :mod:`diffnotes.ctmc`: ``Q[i, j]`` is the rate of ``i -> j``; transition
  matrices are ``P[n0, n] = p_{t|0}(n | n0)``.
* The scaled state is ``x = (2 / sqrt(S)) (n - S/2)`` (:func:`scale`), a lattice of spacing
  ``delta = 2 / sqrt(S)`` on ``[-sqrt(S), sqrt(S)]``. As ``S -> infinity`` it follows the
  Ornstein-Uhlenbeck process ``dX = -lambda X dt + sqrt(2 lambda) dW`` (:eq:`ch2-ou`).
* In ``d`` dimensions every coordinate is an independent Ehrenfest process. Batches of states
  have shape ``(m, d)``. A *rates function* ``rates(n, t) -> (up, down)`` takes integer states
  ``n`` of shape ``(m, d)`` and forward times ``t`` of shape ``(m,)`` and returns the reverse-time
  rates of the moves ``n_i -> n_i + 1`` and ``n_i -> n_i - 1``, each of shape ``(m, d)``.
* The reverse process runs from forward time ``T`` down to ``t_min``. Randomness comes only from
  an explicit ``rng`` (an ``int`` seed or a :class:`numpy.random.Generator`).
* NumPy/SciPy only; torch is imported inside the learning functions
  (:func:`rate_matching_loss`, :func:`fit_rate_model`, :func:`model_rates`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.special import gammaln, logsumexp

from ._checks import as_rng, distribution, positive_float, positive_int, real_array
from .mixtures import GaussianMixture
from .schedules import Schedule, as_schedule
from .sde import OU

__all__ = [
    "ExactReverseRates",
    "ReverseRun",
    "fit_rate_model",
    "generator",
    "lattice_pmf",
    "lattice_projection",
    "log_transition_matrix",
    "log_transition_prob",
    "marginal",
    "mean_variance",
    "mixture_score",
    "model_rates",
    "ou_coefficients",
    "ou_distance",
    "rate_matching_loss",
    "reverse_rates",
    "sample_forward",
    "sample_reverse_exact",
    "sample_reverse_tau",
    "sample_stationary",
    "scale",
    "score_rates",
    "score_to_rates",
    "to_lattice",
    "transition_matrix",
    "unscale",
]

MAX_S = 2**24
#: Above this many balls :func:`transition_matrix` exponentiates :func:`log_transition_matrix`.
FFT_MAX_S = 2048


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------
def _check_S(S) -> int:
    return positive_int(S, "S", minimum=1, maximum=MAX_S)


def _states(n, S: int, name: str = "n") -> np.ndarray:
    """Integer states in {0..S} (integer-valued floats are accepted)."""
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu":
        a = real_array(arr, name)
        if np.any(a != np.round(a)):
            raise ValueError(f"{name} must hold integers in {{0, ..., {S}}}")
        arr = a.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > S):
        raise ValueError(f"{name} must lie in {{0, ..., {S}}}, got values in "
                         f"[{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64, copy=False)


def _times(t, name: str = "t", *, positive: bool = False) -> np.ndarray:
    t = real_array(t, name)
    if np.any(t < 0) or (positive and np.any(t <= 0)):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be {bound}, got min {t.min():.3g}")
    return t


def _pq(theta):
    """Probabilities that a ball is in the urn at clock ``theta`` given it started in (``p``)
    or out (``q``): ``p = (1 + e^{-theta}) / 2``, ``q = (1 - e^{-theta}) / 2``."""
    q = -0.5 * np.expm1(-theta)
    return 1.0 - q, q


# --------------------------------------------------------------------------------------------
# The forward process
# --------------------------------------------------------------------------------------------
def generator(S: int) -> np.ndarray:
    """The ``(S+1, S+1)`` generator of the Ehrenfest process (:eq:`ch2-rates`, ``lambda = 1``)."""
    S = _check_S(S)
    n = np.arange(S + 1)
    Q = np.zeros((S + 1, S + 1))
    Q[n[:-1], n[:-1] + 1] = (S - n[:-1]) / 2
    Q[n[1:], n[1:] - 1] = n[1:] / 2
    Q[n, n] = -S / 2
    return Q


def transition_matrix(S: int, t: float, *, schedule: Schedule | None = None,
                      n0=None) -> np.ndarray:
    r"""Exact transition probabilities ``P[n0, n] = p_{t|0}(n | n0)`` (Proposition
    :prf:ref:`ch2-prop-two-binomials`).

    ``n`` is the sum of two independent binomials, ``Bin(n0, p) + Bin(S - n0, q)``, so row
    ``n0`` has the probability generating function
    :math:`(q + p z)^{n_0} (p + q z)^{S - n_0}` (:eq:`ch2-pgf`). This function evaluates it at
    roots of unity and inverts with one real FFT per row: ``O(S^2 log S)`` for all rows, no
    overflow for any ``S``.

    Accuracy is *absolute*: every entry is within about ``1e-15`` of the exact value and rows
    sum to 1 within ``1e-12``. Entries far in the tails (below about ``1e-15``) are therefore
    not resolved; round-off that lands below zero is set to zero. For ``S > FFT_MAX_S``
    (2048), where the round-off of many entries would add up, the function returns
    ``exp(log_transition_matrix(...))`` instead (``O(S^2)``, accurate everywhere). Where
    relative accuracy in the tails matters (ratios of tiny probabilities), use
    :func:`log_transition_matrix`.

    Parameters
    ----------
    S : int
        Number of balls.
    t : float
        Time ``>= 0``; the clock is ``Theta(t)`` of ``schedule``.
    n0 : int or array of int, optional
        Initial states whose rows are wanted (default: all ``S + 1``).

    Returns
    -------
    array of shape (len(n0), S+1), or (S+1, S+1)
    """
    S = _check_S(S)
    theta = float(as_schedule(schedule).integral(_times(t)))
    rows = None if n0 is None else np.atleast_1d(_states(n0, S, "n0"))
    if theta == 0.0:
        P = np.eye(S + 1)
        return P if rows is None else P[rows]
    if S > FFT_MAX_S:  # FFT round-off (~1e-16 per entry) would add up over many entries
        return np.exp(log_transition_matrix(S, t, schedule=schedule, n0=n0))
    p, q = _pq(theta)
    N = scipy.fft.next_fast_len(S + 1, real=True)
    z = np.exp(-2j * np.pi * np.arange(N // 2 + 1) / N)
    if rows is None:
        # rows a = 0..S//2 by a running product of the unimodular ratio (q+pz)/(p+qz); the
        # rest from the symmetry P[S-a, S-n] = P[a, n] (swap the roles of inside/outside).
        h = S // 2 + 1
        G = np.empty((h, z.size), dtype=complex)
        G[0] = (p + q * z) ** S
        G[1:] = (q + p * z) / (p + q * z)
        np.cumprod(G, axis=0, out=G)
        top = scipy.fft.irfft(G, n=N, axis=1, workers=-1)[:, :S + 1]
        P = np.empty((S + 1, S + 1))
        P[:h] = top
        P[h:] = top[:S + 1 - h][::-1, ::-1]
    else:
        a = rows[:, None].astype(float)
        G = np.exp(a * np.log(q + p * z) + (S - a) * np.log(p + q * z))
        P = scipy.fft.irfft(G, n=N, axis=1, workers=-1)[:, :S + 1]
    # round-off in the far tails can land below zero: clip it (adds at most ~S * 1e-16 mass)
    return np.maximum(P, 0.0, out=P)


def log_transition_matrix(S: int, t: float, *, schedule: Schedule | None = None,
                          n0=None) -> np.ndarray:
    r"""``log p_{t|0}(n | n0)`` with *relative* accuracy everywhere, tails included.

    For each row the probabilities ``g_n`` satisfy the three-term recurrence
    :math:`pq(n+1)g_{n+1} = c_n g_n + pq(S-n+1) g_{n-1}`, ``c_n = n0 p^2 + (S-n0) q^2 -
    (p^2+q^2) n``, which follows from the generating function :eq:`ch2-pgf`. It is run forward
    from ``g_0 = q^{n0} p^{S-n0}`` while ``c_n >= 0`` and backward from
    ``g_S = p^{n0} q^{S-n0}`` while ``c_n <= 0``; in those directions every step adds positive
    numbers, so no cancellation occurs and relative errors stay near round-off. Cost
    ``O(S^2)`` for all rows; tested against direct summation and against ``expm``.

    Returns an array of shape ``(len(n0), S+1)`` or ``(S+1, S+1)``; ``-inf`` where the
    probability is exactly zero (only at ``t = 0``).
    """
    S = _check_S(S)
    theta = float(as_schedule(schedule).integral(_times(t)))
    a = (np.arange(S + 1) if n0 is None else np.atleast_1d(_states(n0, S, "n0"))).astype(float)
    if theta == 0.0:
        out = np.full((a.size, S + 1), -np.inf)
        out[np.arange(a.size), a.astype(int)] = 0.0
        return out
    p, q = _pq(theta)
    b = S - a
    pq, s2 = p * q, p * p + q * q
    c0 = a * p * p + b * q * q                 # c_n = c0 - s2 n
    split = np.floor(c0 / s2).astype(int)      # forward for n <= split, backward above
    # increments d_n = log g_{n+1} - log g_n, each from the direction in which it is stable
    fwd = np.zeros((a.size, S))
    bwd = np.zeros((a.size, S))
    with np.errstate(all="ignore"):            # values past a row's split are discarded
        R = np.ones_like(a)
        for n in range(min(int(split.max()) + 1, S)):
            R = (c0 - s2 * n + (pq * (S - n + 1) / R if n else 0.0)) / (pq * (n + 1))
            fwd[:, n] = np.log(R)
        L = np.ones_like(a)
        for n in range(S, max(int(split.min()) + 1, 1) - 1, -1):
            L = (s2 * n - c0 + (pq * (n + 1) / L if n < S else 0.0)) / (pq * (S - n + 1))
            bwd[:, n - 1] = -np.log(L)
    k = np.arange(S)
    d = np.where(k[None, :] <= split[:, None], fwd, bwd)
    # sum the increments outward from each row's mode (the last positive increment), so that
    # the bulk of the row is a short sum of small numbers; then normalise the row
    mode = (d > 0).sum(axis=1)[:, None]
    right = np.cumsum(np.where(k[None, :] >= mode, d, 0.0), axis=1)
    left = np.cumsum(np.where(k[None, :] < mode, d, 0.0)[:, ::-1], axis=1)[:, ::-1]
    out = np.zeros((a.size, S + 1))
    out[:, 1:] = right
    out[:, :-1] -= left
    return out - logsumexp(out, axis=1, keepdims=True)


def log_transition_prob(n, n0, t, S: int, *, schedule: Schedule | None = None) -> np.ndarray:
    r"""``log p_{t|0}(n | n0)`` for broadcastable arrays of pairs, by direct summation over the
    number ``k`` of balls that started in the urn and are in it at time ``t``:
    :math:`\sum_k \binom{n_0}{k}\binom{S-n_0}{n-k} p^{S-n_0-n+2k} q^{n_0+n-2k}`
    (:eq:`ch2-two-binomials`), in log space. ``O(S)`` per pair; ``t > 0``.
    """
    S = _check_S(S)
    n, n0 = _states(n, S), _states(n0, S, "n0")
    theta = as_schedule(schedule).integral(_times(t, positive=True))
    n, n0, theta = np.broadcast_arrays(n, n0, theta)
    p, q = _pq(theta)
    k = np.arange(S + 1)
    nn, aa = n[..., None], n0[..., None]
    valid = (k <= aa) & (k <= nn) & (nn - k <= S - aa)
    with np.errstate(invalid="ignore"):
        terms = (_lnc(aa, k) + _lnc(S - aa, nn - k) + (S - aa - nn + 2 * k) * np.log(p)[..., None]
                 + (aa + nn - 2 * k) * np.log(q)[..., None])
    return logsumexp(np.where(valid, terms, -np.inf), axis=-1)


def _lnc(n, k):
    """log binomial coefficient (``nan``/garbage outside ``0 <= k <= n``; callers mask)."""
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


def mean_variance(n0, t, S: int, *, schedule: Schedule | None = None):
    r"""Mean and variance of ``n_t`` given ``n_0 = n0`` (:eq:`ch2-moments`):
    ``S/2 + (n0 - S/2) e^{-Theta}`` and ``S (1 - e^{-2 Theta}) / 4``."""
    S = _check_S(S)
    n0 = _states(n0, S, "n0")
    theta = as_schedule(schedule).integral(_times(t))
    mean = S / 2 + (n0 - S / 2) * np.exp(-theta)
    var = np.broadcast_to(-S / 4 * np.expm1(-2 * theta), np.shape(mean))
    return mean, var


def sample_forward(n0, t, S: int, rng, *, schedule: Schedule | None = None) -> np.ndarray:
    """Exact draws of ``n_t`` given ``n_0 = n0``: ``Bin(n0, p) + Bin(S - n0, q)``.

    ``n0`` (integers) and ``t`` broadcast against each other; no path is simulated.
    """
    S = _check_S(S)
    n0 = _states(n0, S, "n0")
    theta = as_schedule(schedule).integral(_times(t))
    rng = as_rng(rng)
    n0, theta = np.broadcast_arrays(n0, theta)
    p, q = _pq(theta)
    return rng.binomial(n0, p) + rng.binomial(S - n0, q)


def sample_stationary(S: int, size, rng) -> np.ndarray:
    """Draws from the stationary law ``Binomial(S, 1/2)``, the reverse process's start."""
    S = _check_S(S)
    return as_rng(rng).binomial(S, 0.5, size=size)


def marginal(p0, t, S: int, *, schedule: Schedule | None = None, log: bool = False):
    """The forward marginal ``p_t = p0 P_t`` (or its log, accurate in the tails) at one time."""
    S = _check_S(S)
    p0 = distribution(p0, "p0", n=S + 1, single=True)
    support = np.flatnonzero(p0)
    logP = log_transition_matrix(S, t, schedule=schedule, n0=support)
    lp = logsumexp(np.log(p0[support])[:, None] + logP, axis=0)
    return lp if log else np.exp(lp)


# --------------------------------------------------------------------------------------------
# Scaling and the Ornstein-Uhlenbeck limit
# --------------------------------------------------------------------------------------------
def scale(n, S: int) -> np.ndarray:
    """``x = (2 / sqrt(S)) (n - S / 2)`` (:eq:`ch2-scaling`)."""
    S = _check_S(S)
    return 2.0 / np.sqrt(S) * (_states(n, S) - S / 2)


def unscale(x, S: int) -> np.ndarray:
    """The inverse of :func:`scale`: ``n = S/2 + sqrt(S) x / 2`` (real-valued)."""
    S = _check_S(S)
    return S / 2 + np.sqrt(S) / 2 * real_array(x, "x")


def to_lattice(x, S: int, *, clip: bool = False) -> np.ndarray:
    """The nearest lattice state to ``x``. Points outside ``[-sqrt(S), sqrt(S)]`` (beyond half a
    lattice step) raise a ``ValueError`` unless ``clip=True`` asks for the nearest end."""
    S = _check_S(S)
    n = np.rint(unscale(x, S))
    if not clip and np.any((n < 0) | (n > S)):
        raise ValueError(f"x must lie in [-sqrt(S), sqrt(S)] = [{-np.sqrt(S):.4g}, "
                         f"{np.sqrt(S):.4g}] for S = {S}; pass clip=True to clip")
    return np.clip(n, 0, S).astype(np.int64)


def lattice_pmf(log_density: Callable, S: int, dim: int = 1) -> np.ndarray:
    """A distribution on ``{0..S}^dim`` proportional to ``exp(log_density(scale(n)))``.

    ``log_density`` takes points of shape ``(m, dim)`` (e.g. ``GaussianMixture.log_prob``).
    Returns an array of shape ``(S+1,) * dim``.
    """
    S = _check_S(S)
    dim = positive_int(dim, "dim", maximum=3)
    x = scale(np.arange(S + 1), S)
    grid = np.stack(np.meshgrid(*([x] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
    lp = real_array(log_density(grid), "log_density(x)").reshape((S + 1,) * dim)
    return np.exp(lp - logsumexp(lp))


def lattice_projection(mixture: GaussianMixture, S: int):
    r"""The 1-D data law ``mixture`` moved to the nearest lattice point, and how far it moved.

    Lattice point ``x_n = scale(n, S)`` receives the mass of its cell
    ``[x_n - delta/2, x_n + delta/2)`` (the end cells reach to ``-inf`` and ``+inf``). Of all
    laws on the lattice this one is the closest to the continuous law in Wasserstein-1, at the
    distance :math:`\mathbb E\,|X - x_{\mathrm{nearest}(X)}|` for ``X ~ mixture``, computed here
    in closed form from the partial moments of each Gaussian component. For a smooth density the
    position of ``X`` inside its cell is nearly uniform, so the distance is about
    ``delta / 4 = 1 / (2 sqrt(S))``: the floor below which no lattice sample can come.

    Returns
    -------
    pmf : array of shape (S + 1,)
    w1 : float
        Wasserstein-1 distance between ``pmf`` (on the scaled lattice) and ``mixture``.
    """
    from scipy.stats import norm

    if not isinstance(mixture, GaussianMixture) or mixture.dim != 1:
        raise ValueError("mixture must be a 1-D diffnotes.mixtures.GaussianMixture")
    S = _check_S(S)
    x = scale(np.arange(S + 1), S)
    h = 1.0 / np.sqrt(S)                                     # half a lattice step
    lo = np.concatenate([[-np.inf], x[1:] - h])
    hi = np.concatenate([x[:-1] + h, [np.inf]])
    # every component at once, components on the first axis
    w = mixture.weights[:, None]
    mu, sd = mixture.means[:, :1], np.sqrt(mixture.covs[:, 0, :1])

    def moment(a, b):  # int_a^b (v - x) N(v; mu, sd^2) dv, per component and lattice point
        za, zb = (a - mu) / sd, (b - mu) / sd
        return (mu - x) * (norm.cdf(zb) - norm.cdf(za)) + sd * (norm.pdf(za) - norm.pdf(zb))

    pmf = np.sum(w * (norm.cdf((hi - mu) / sd) - norm.cdf((lo - mu) / sd)), axis=0)
    w1 = np.sum(w * (moment(x, hi) - moment(lo, x)))
    return pmf, float(w1)


def ou_coefficients(t, *, schedule: Schedule | None = None):
    r"""``(alpha, sigma)`` of the OU kernel ``X_t = alpha X_0 + sigma eps``:
    :math:`\alpha = e^{-\Theta(t)}`, :math:`\sigma = \sqrt{1 - e^{-2\Theta(t)}}`."""
    return _ou(as_schedule(schedule).integral(_times(t)))


def _ou(theta):
    return np.exp(-theta), np.sqrt(-np.expm1(-2 * theta))


def mixture_score(mixture: GaussianMixture, *, schedule: Schedule | None = None) -> Callable:
    """The exact score ``(x, t) -> grad log q_t(x)`` of data ``mixture`` pushed through the OU
    process (:eq:`ch2-ou`); ``x`` of shape ``(m, d)``, ``t`` a float or of shape ``(m,)``."""
    if not isinstance(mixture, GaussianMixture):
        raise ValueError("mixture must be a diffnotes.mixtures.GaussianMixture")
    ou = OU(as_schedule(schedule))

    def score(x, t):
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != mixture.dim:
            raise ValueError(f"x must have shape (m, {mixture.dim}), got {x.shape}")
        return mixture.score(x, np.broadcast_to(np.asarray(t, dtype=float), x.shape[:1]), ou)

    return score


def ou_distance(S: int, t: float, n0: int, *, schedule: Schedule | None = None) -> dict:
    """How far the scaled Ehrenfest marginal is from its OU limit at time ``t``.

    The limit is ``N(x0 alpha, sigma^2)`` with ``x0 = scale(n0, S)``. Returns a dict with
    ``w1`` (Wasserstein-1 between the lattice law and the Gaussian, in scaled units) and
    ``tv`` (total variation between the lattice law and the Gaussian binned to the lattice
    cells of width ``2/sqrt(S)``).
    """
    from scipy.stats import norm

    S = _check_S(S)
    row = transition_matrix(S, t, schedule=schedule, n0=n0)[0]
    x = scale(np.arange(S + 1), S)
    alpha, sigma = ou_coefficients(t, schedule=schedule)
    mu = float(alpha * scale(n0, S))
    sigma = float(sigma)
    if sigma == 0:
        raise ValueError("t must be > 0")
    h = 1.0 / np.sqrt(S)                                     # half a lattice step
    edges = np.concatenate([[-np.inf], x[:-1] + h, [np.inf]])
    binned = np.diff(norm.cdf(edges, mu, sigma))
    tv = 0.5 * np.abs(row - binned).sum()
    # W1 = int |F - Phi| with F the lattice CDF: constant on each [x_k, x_{k+1}), so split every
    # cell where Phi crosses F and integrate Phi exactly through its antiderivative.
    def anti(u):  # int_{-inf}^u Phi((v - mu) / sigma) dv
        z = (u - mu) / sigma
        return sigma * (z * norm.cdf(z) + norm.pdf(z))

    F = np.cumsum(row)[:-1]
    lo, hi = x[:-1], x[1:]
    cross = np.clip(mu + sigma * norm.ppf(np.clip(F, 1e-300, 1 - 1e-16)), lo, hi)
    def piece(a, b, level):
        return np.abs(level * (b - a) - (anti(b) - anti(a)))
    w1 = np.sum(piece(lo, cross, F) + piece(cross, hi, F))
    w1 += anti(x[0])                                             # F = 0 left of the lattice
    w1 += sigma * (norm.pdf((x[-1] - mu) / sigma)
                   - (x[-1] - mu) / sigma * norm.sf((x[-1] - mu) / sigma))  # F = 1 right
    return {"w1": float(w1), "tv": float(tv)}


# --------------------------------------------------------------------------------------------
# Time reversal
# --------------------------------------------------------------------------------------------
def _finish_rates(ratio_up, ratio_dn, n, S, rate):
    up = rate * (n + 1) / 2 * ratio_up
    dn = rate * (S - n + 1) / 2 * ratio_dn
    up = np.where(n == S, 0.0, up)
    dn = np.where(n == 0, 0.0, dn)
    return up, dn


def reverse_rates(n, t: float, S: int, p0, *, schedule: Schedule | None = None):
    r"""Exact reverse-time rates ``(up, down)`` at states ``n`` and forward time ``t > 0`` for
    data ``p0`` on ``{0..S}`` (:eq:`ch2-reverse-rates`):

    .. math:: \bar r_t(n \pm 1 \mid n) = r_t(n \mid n \pm 1)\,
              \frac{p_t(n \pm 1)}{p_t(n)} = r_t(n \mid n\pm 1)\,
              \mathbb E_{n_0 \sim p_{0|t}(\cdot \mid n)}
              \Big[\frac{p_{t|0}(n \pm 1 \mid n_0)}{p_{t|0}(n \mid n_0)}\Big].

    Computed from :func:`log_transition_matrix` in log space (``O(S^2)``), so it stays exact
    where ``p_t`` is tiny. ``up`` is zero at ``n = S`` and ``down`` at ``n = 0``. For rates at
    many different times use :class:`ExactReverseRates`.
    """
    S = _check_S(S)
    n = _states(n, S)
    t = positive_float(t, "t")
    lpt = marginal(p0, t, S, schedule=schedule, log=True)
    lpad = np.concatenate([[-np.inf], lpt, [-np.inf]])
    with np.errstate(invalid="ignore"):
        r_up = np.exp(lpad[n + 2] - lpad[n + 1])
        r_dn = np.exp(lpad[n] - lpad[n + 1])
    return _finish_rates(r_up, r_dn, n, S, float(as_schedule(schedule).rate(t)))


class ExactReverseRates:
    r"""Exact reverse-time rates for data ``p0`` on ``{0..S}``, at any mix of times: a rates
    function for :func:`sample_reverse_exact` and :func:`sample_reverse_tau` (``d = 1``).

    Every forward probability is a polynomial in ``(p, q)`` with non-negative coefficients:
    :math:`p_t(n) = \binom{S}{n}\sum_j D_{nj}\, p^j q^{S-j}` where
    :math:`D_{nj} = \sum_{n_0} p_0(n_0) \sum_k \mathrm{Hyp}(k; S, n_0, n)\,[j = S - n_0 - n + 2k]`
    collects the hypergeometric probability that ``k`` of the ``n`` balls in the urn are among
    the ``n0`` that started there. The table ``D`` costs ``O(S^3)`` once (meant for ``S`` up to
    a few hundred); afterwards each rate costs ``O(S)``, in log space, at any time ``t > 0``.
    """

    def __init__(self, p0, S: int, *, schedule: Schedule | None = None):
        S = positive_int(S, "S", maximum=1024)
        p0 = distribution(p0, "p0", n=S + 1, single=True)
        self.S, self.p0, self.schedule = S, p0, as_schedule(schedule)
        n = np.arange(S + 1)[:, None]
        k = np.arange(S + 1)[None, :]
        D = np.zeros((S + 1) * (S + 1))
        lnc_S = _lnc(S, n)
        for a in np.flatnonzero(p0):
            valid = (k <= a) & (k <= n) & (n - k <= S - a)
            with np.errstate(invalid="ignore"):
                lh = _lnc(a, k) + _lnc(S - a, n - k) - lnc_S
            j = S - a - n + 2 * k
            np.add.at(D, (n * (S + 1) + j)[valid], p0[a] * np.exp(lh[valid]))
        with np.errstate(divide="ignore"):
            self._logD = np.log(D.reshape(S + 1, S + 1))
        self._lnc_S = lnc_S[:, 0]

    def log_marginal(self, n, t) -> np.ndarray:
        """``log p_t(n)`` for broadcastable ``n`` and ``t > 0``."""
        n = _states(n, self.S)
        theta = self.schedule.integral(_times(t, positive=True))
        n, theta = np.broadcast_arrays(n, theta)
        p, q = _pq(theta)
        j = np.arange(self.S + 1)
        w = j * np.log(p)[..., None] + (self.S - j) * np.log(q)[..., None]
        return self._lnc_S[n] + logsumexp(self._logD[n] + w, axis=-1)

    def __call__(self, n, t):
        """Rates ``(up, down)`` at states ``n`` (shape ``(m,)`` or ``(m, 1)``) and forward
        times ``t`` (a float or shape ``(m,)``)."""
        n = _states(n, self.S)
        t = np.asarray(t, dtype=float)
        tt = t.reshape(t.shape + (1,) * (n.ndim - t.ndim)) if t.ndim else t
        lo = self.log_marginal(np.maximum(n - 1, 0), tt)
        mid = self.log_marginal(n, tt)
        hi = self.log_marginal(np.minimum(n + 1, self.S), tt)
        return _finish_rates(np.exp(hi - mid), np.exp(lo - mid), n, self.S,
                             self.schedule.rate(tt))


def score_to_rates(score, n, S: int, *, rate=1.0, order: int = 1):
    r"""Reverse-time rates ``(up, down)`` from a score of the limiting OU process
    (:eq:`ch2-transfer` and :eq:`ch2-transfer-2`).

    With ``delta = 2/sqrt(S)``, ``x = scale(n)`` and the forward rates into ``n``,

    * ``order=1``: :math:`p_t(n\pm1)/p_t(n) \approx 1 \pm \delta\, s(x)`; relative error
      ``O(1/S)``. ``score`` is the array ``s(x)`` (shaped like ``n``) or a callable ``x -> s``.
      Where ``|delta s| > 1`` the formula would give a negative rate; the rate is then set to
      zero (the transfer is outside its range of validity there, which happens only where the
      score is of order ``sqrt(S)``).
    * ``order=2``: :math:`p_t(n\pm1)/p_t(n) \approx \exp(\pm\delta\, s_i(x \pm \tfrac\delta2
      e_i))`, the score at the midpoint of the move; relative error ``O(S^{-3/2})``, always
      positive. ``score`` must be a callable; it is called ``2 d`` times.

    Parameters
    ----------
    score : array or callable
        Score values at ``scale(n)``, or a function of points ``x`` (shaped like ``n``).
    n : array of int, shape (m,) or (m, d)
        States.
    rate : float or array
        The schedule's rate ``lambda(t)`` (broadcast against ``n``).
    order : {1, 2}

    Returns
    -------
    up, down : arrays shaped like ``n``
    """
    S = _check_S(S)
    n = _states(n, S)
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    rate = real_array(rate, "rate")
    if np.any(rate < 0):
        raise ValueError("rate must be >= 0")
    if not callable(score):
        if order == 2:
            raise ValueError("order=2 needs score as a callable x -> s(x)")
        s = real_array(score, "score")
        if s.shape != n.shape:
            raise ValueError(f"score must have the shape of n {n.shape}, got {s.shape}")
        score = _constant_score(s)
    return _score_to_rates(score, n, S, rate, order, check=True)


def _constant_score(s):
    return lambda x: s


def _score_to_rates(score, n, S, rate, order, *, check=False):
    delta = 2.0 / np.sqrt(S)
    x = (n - S / 2) * delta

    def call(xx):
        s = score(xx)
        if check:
            s = real_array(s, "score(x)")
            if s.shape != n.shape:
                raise ValueError(f"score(x) must have the shape of n {n.shape}, got {s.shape}")
        elif not np.all(np.isfinite(s)):
            raise ValueError("score(x) returned values that are not finite")
        return s

    if order == 1:
        s = call(x)
        r_up = np.maximum(1 + delta * s, 0.0)
        r_dn = np.maximum(1 - delta * s, 0.0)
    elif n.ndim == 1:
        r_up = np.exp(delta * call(x + delta / 2))
        r_dn = np.exp(-delta * call(x - delta / 2))
    else:
        r_up, r_dn = np.empty(n.shape), np.empty(n.shape)
        for i in range(n.shape[1]):
            e = np.zeros(n.shape[1])
            e[i] = delta / 2
            r_up[:, i] = np.exp(delta * call(x + e)[:, i])
            r_dn[:, i] = np.exp(-delta * call(x - e)[:, i])
    return _finish_rates(r_up, r_dn, n, S, rate)


def score_rates(score: Callable, S: int, *, schedule: Schedule | None = None,
                order: int = 1) -> Callable:
    """A rates function ``(n, t) -> (up, down)`` built from a score ``score(x, t)`` of the OU
    limit (points ``x`` of shape ``(m, d)``, times ``t`` of shape ``(m,)``) by
    :func:`score_to_rates`. Works for :func:`mixture_score` and for trained networks."""
    S = _check_S(S)
    schedule = as_schedule(schedule)
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")

    def rates(n, t):
        t = np.broadcast_to(np.asarray(t, dtype=float), n.shape[:1])
        lam = schedule._lam(t).reshape((-1,) + (1,) * (n.ndim - 1))
        return _score_to_rates(lambda x: score(x, t), n, S, lam, order)

    return rates


# --------------------------------------------------------------------------------------------
# Samplers of the reverse process
# --------------------------------------------------------------------------------------------
@dataclass
class ReverseRun:
    """The result of a reverse-time sampler.

    Attributes
    ----------
    states : array of int, shape (m, d)
        Final states (at forward time ``t_min``).
    times : array, shape (k,)
        Forward times of the recorded snapshots, from ``T`` down to ``t_min``.
    path : array of int, shape (k, m, d)
        States at those times.
    n_evals : int
        Number of calls of the rates function (batched over samples).
    n_jumps : int
        Number of moves made (for tau-leaping, the sum of the absolute increments).
    n_clipped : int
        Tau-leaping only: coordinates that a Poisson leap pushed outside ``{0..S}`` and that were
        put back on the boundary (always 0 for the exact sampler and for binomial leaps).
    seconds : float
        Wall time.
    """

    states: np.ndarray
    times: np.ndarray
    path: np.ndarray
    n_evals: int
    n_jumps: int
    n_clipped: int
    seconds: float


def _start(n_T, S, T, t_min, record):
    S = _check_S(S)
    n = _states(n_T, S, "n_T")
    if n.ndim == 1:
        n = n[:, None]
    if n.ndim != 2:
        raise ValueError(f"n_T must have shape (m,) or (m, d), got {n.shape}")
    T = positive_float(T, "T")
    t_min = positive_float(t_min, "t_min", allow_zero=True)
    if t_min >= T:
        raise ValueError(f"t_min must be < T = {T:g}, got {t_min:g}")
    record = positive_int(record, "record", minimum=0, maximum=10_000)
    return S, n.copy(), T, t_min, record


def _check_rates(up, dn, shape):
    for name, r in (("up", up), ("down", dn)):
        r = np.asarray(r)
        if r.shape != shape:
            raise ValueError(f"rates(n, t) must return {name} rates of shape {shape}, "
                             f"got {r.shape}")
        # the extremes tell all (two passes, no temporaries): a NaN or a negative rate fails
        # the test on the minimum, +inf the one on the maximum
        if r.size and not (r.min() >= 0 and r.max() < np.inf):
            raise ValueError(f"rates(n, t) returned {name} rates that are negative or not "
                             "finite")


def sample_reverse_exact(rates: Callable, n_T, T: float, S: int, *, rng, t_min: float = 0.0,
                         record: int = 0, bound_factor: float = 2.0,
                         max_hold: float | None = None, refresh: bool = True) -> ReverseRun:
    """Exact simulation of the reverse-time jump process by thinning, vectorised over samples.

    Each sample proposes candidate jumps from a Poisson clock whose rate is ``bound_factor``
    times its total rate at its current state, evaluated at the last candidate or jump, and
    refreshed at least every ``min(max_hold, t / 4)`` units of time at forward time ``t`` (but
    not more often than every ``1e-4 (T - t_min)``), so the bound only has to cover how the
    rates change *in time* between refreshes. A candidate at time ``tau`` is accepted with
    probability ``total rate / bound``; the move is drawn in proportion to the ``2 d`` rates.

    What is guaranteed. The law of the output is exactly that of the reverse process **if** on
    every hold interval (from one evaluation of the bound to the next) the bound dominates the
    total rate at *all* times, given the state. The sampler can check this only where it
    evaluates the rates: at candidate times (and, with ``refresh=True``, right after a jump). A
    candidate whose rate exceeds its bound raises a ``ValueError`` (increase ``bound_factor``
    or decrease ``max_hold``), so a run that raises is never returned biased; but a run that
    does not raise is not a proof: an excess between candidates, on a stretch of length ``l``
    with bound ``lam``, goes unseen with probability ``exp(-lam l)``, and the jumps it should
    have caused are missed. The result is exact when the bound is a true bound over each hold
    interval, e.g. when the total rate is known to change by less than the factor
    ``bound_factor`` over ``max_hold`` (the rates of :func:`score_rates` and
    :class:`ExactReverseRates` vary smoothly, on the time scale ``t`` near forward time ``t``,
    which is why the hold is at most ``t / 4``).

    Parameters
    ----------
    rates : callable
        ``rates(n, t) -> (up, down)``, see the module conventions.
    n_T : array of int, shape (m,) or (m, d)
        States at forward time ``T`` (e.g. :func:`sample_stationary`).
    T, t_min : float
        The run goes from forward time ``T`` down to ``t_min``.
    record : int
        Number of snapshots between the start and the end to keep in ``ReverseRun.path``.
    bound_factor, max_hold : float
        Thinning bound relative to the current total rate, and the longest time between
        refreshes of the bound (default ``(T - t_min) / 64``).
    refresh : bool
        Re-evaluate the rates after every jump (default). With ``False`` the bound set before
        a jump must also cover the new state: cheaper when one move changes the rates little
        (large ``S``); a violation is still detected at the next candidate and raises.
    """
    S, n, T, t_min, record = _start(n_T, S, T, t_min, record)
    rng = as_rng(rng)
    bound_factor = positive_float(bound_factor, "bound_factor")
    if bound_factor < 1:
        raise ValueError(f"bound_factor must be >= 1, got {bound_factor:g}")
    span = T - t_min
    max_hold = span / 64 if max_hold is None else positive_float(max_hold, "max_hold")
    m, d = n.shape
    t0 = time.perf_counter()
    snaps = np.linspace(0.0, span, record + 2)     # in reverse time tau
    path = np.empty((record + 2, m, d), dtype=n.dtype)
    path[0] = n
    next_snap = np.ones(m, dtype=int)              # each sample's next snapshot,
    snap_due = np.append(snaps, np.inf)            # due at snap_due[next_snap] (inf: none left)
    first_due = snaps[1]                           # the earliest due over all samples
    tau = np.zeros(m)
    up, dn = rates(n, np.full(m, T))
    _check_rates(up, dn, n.shape)
    lam = bound_factor * (up.sum(1) + dn.sum(1))
    n_evals, n_jumps = 1, 0
    active = np.arange(m)
    while active.size:
        lam_a, tau_a = lam[active], tau[active]
        with np.errstate(divide="ignore"):
            wait = rng.exponential(1.0, active.size) / lam_a
        # rates at forward time t change on the time scale t itself (they grow like 1/t near
        # the data), so the bound is refreshed after at most a quarter of the remaining time
        hold = np.minimum(max_hold, np.maximum(0.25 * (T - tau_a), 1e-4 * span))
        room = np.minimum(hold, span - tau_a)
        candidate = wait < room
        # a sample without a candidate moves on to its next refresh (or to the end)
        no_jump = np.minimum(tau_a + room, span)
        no_jump[span - no_jump < 1e-12 * span] = span
        tau_a = np.where(candidate, tau_a + wait, no_jump)
        # snapshots passed before the (possible) jump keep the pre-jump state
        if tau_a.max() >= first_due:
            while True:
                hit = snap_due[next_snap[active]] <= tau_a
                if not hit.any():
                    break
                i = active[hit]
                path[next_snap[i], i] = n[i]
                next_snap[i] += 1
            first_due = snap_due[next_snap].min()
        tau[active] = tau_a
        # samples that reached the end without a candidate are done: no rates needed there
        going = candidate | (tau_a < span)
        if not going.all():
            active, lam_a, candidate, tau_a = (active[going], lam_a[going], candidate[going],
                                               tau_a[going])
            if not active.size:
                break
        up, dn = rates(n[active], T - tau_a)
        n_evals += 1
        _check_rates(up, dn, (active.size, d))
        total = up.sum(1) + dn.sum(1)
        if np.any(candidate & (total > lam_a * (1 + 1e-9))):
            raise ValueError("a rate exceeded its thinning bound; increase bound_factor or "
                             "decrease max_hold")
        accept = candidate & (rng.random(active.size) * lam_a < total)
        if accept.any():
            # the move j in proportion to the 2 d rates (j < d: up in coordinate j, else down
            # in j - d): the number of cumulative rates below u, which is at most 2 d - 1. The
            # rates are laid out (2 d, samples) so that every operation runs over the samples.
            cum = np.concatenate([up.T, dn.T]).compress(accept, axis=1)
            for k in range(1, 2 * d):
                cum[k] += cum[k - 1]
            u = rng.random(cum.shape[1]) * cum[-1]
            j = np.zeros(cum.shape[1], dtype=int)
            for k in range(2 * d - 1):
                j += cum[k] < u
            down = j >= d
            idx = active[accept]
            n.reshape(-1)[idx * d + j - d * down] += 1 - 2 * down  # a view: n is C-contiguous
            n_jumps += idx.size
            if refresh:  # the bound follows the state: rates at the new state
                up2, dn2 = rates(n[idx], T - tau[idx])
                n_evals += 1
                _check_rates(up2, dn2, (idx.size, d))
                total[accept] = up2.sum(1) + dn2.sum(1)
        lam[active] = bound_factor * total
        still = tau_a < span
        if not still.all():
            active = active[still]
    path[-1] = n
    return ReverseRun(n, T - snaps, path, n_evals, n_jumps, 0, time.perf_counter() - t0)


def sample_reverse_tau(rates: Callable, n_T, T: float, S: int, *, rng, n_steps: int,
                       t_min: float = 0.0, method: str = "poisson",
                       record: int = 0) -> ReverseRun:
    """Tau-leaping for the reverse-time process on a uniform grid of ``n_steps`` steps.

    On each step ``[t_k - h, t_k]`` (forward time) the rates are frozen at ``(n, t_k)`` and the
    numbers of up and down moves of every coordinate are drawn at once:

    * ``method="poisson"``: ``Poisson(up h)`` and ``Poisson(down h)``. A leap can overshoot the
      boundary; such coordinates are put back on ``0`` or ``S`` and counted in
      ``ReverseRun.n_clipped``.
    * ``method="binomial"``: each of the ``S - n`` balls outside enters with probability
      ``1 - exp(-h up / (S - n))`` and each of the ``n`` inside leaves with probability
      ``1 - exp(-h down / n)``: the same first-order scheme, and the state can never leave
      ``{0..S}``.

    One rates evaluation per step, whatever the number of jumps.
    """
    S, n, T, t_min, record = _start(n_T, S, T, t_min, record)
    rng = as_rng(rng)
    n_steps = positive_int(n_steps, "n_steps", maximum=10**7)
    if method not in ("poisson", "binomial"):
        raise ValueError(f"method must be 'poisson' or 'binomial', got {method!r}")
    m, d = n.shape
    t0 = time.perf_counter()
    grid = np.linspace(T, t_min, n_steps + 1)
    keep = np.unique(np.rint(np.linspace(0, n_steps, record + 2)).astype(int))
    path = [n.copy()]
    n_jumps = n_clipped = 0
    for k in range(n_steps):
        h = grid[k] - grid[k + 1]
        up, dn = rates(n, np.full(m, grid[k]))
        _check_rates(up, dn, n.shape)
        if method == "poisson":
            big = max(float(up.max(initial=0)), float(dn.max(initial=0))) * h
            if big > 1e9:
                raise ValueError(
                    f"n_steps = {n_steps} is far too few for these rates: a leap at t = "
                    f"{grid[k]:.3g} expects {big:.3g} moves on a lattice of {S + 1} states; use "
                    f"more steps or method='binomial' (which never leaves the lattice)")
            ups, dns = rng.poisson(up * h), rng.poisson(dn * h)
            new = n + ups - dns
            out = (new < 0) | (new > S)
            n_clipped += int(out.sum())
            new = np.clip(new, 0, S)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                pu = -np.expm1(-h * np.where(n < S, up / (S - n), 0.0))
                pd = -np.expm1(-h * np.where(n > 0, dn / n, 0.0))
            ups, dns = rng.binomial(S - n, pu), rng.binomial(n, pd)
            new = n + ups - dns
        n_jumps += int(np.abs(new - n).sum())
        n = new
        if k + 1 in keep:
            path.append(n.copy())
    return ReverseRun(n, grid[keep], np.stack(path), n_steps, n_jumps, n_clipped,
                      time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# Learning the reverse rates from data (torch)
# --------------------------------------------------------------------------------------------
def _torch_log_kernel(n, n0, lp, lq, S: int):
    """``log p_{t|0}(n | n0)`` in torch by direct summation (:eq:`ch2-two-binomials`); ``n``,
    ``n0`` integer tensors of one shape, ``lp``, ``lq`` broadcastable float tensors."""
    import torch

    k = torch.arange(S + 1, device=n.device, dtype=lp.dtype)
    nn, aa = n.to(lp.dtype)[..., None], n0.to(lp.dtype)[..., None]
    valid = (k <= aa) & (k <= nn) & (nn - k <= S - aa)

    def lnc(a, b):
        return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma((a - b).clamp(min=0) + 1)

    terms = (lnc(aa, k.clamp(max=S)) + lnc(S - aa, (nn - k).clamp(min=0))
             + (S - aa - nn + 2 * k) * lp[..., None] + (aa + nn - 2 * k) * lq[..., None])
    terms = torch.where(valid, terms, torch.full_like(terms, -torch.inf))
    return torch.logsumexp(terms, dim=-1)


def rate_matching_loss(model, n0, t, S: int, *, schedule: Schedule | None = None,
                       generator=None):
    r"""The regression loss whose minimiser gives the exact reverse rates (:eq:`ch2-loss`).

    For data ``n0`` (integer tensor ``(B, d)``) and times ``t`` (tensor ``(B,)``, ``> 0``) it
    draws ``n ~ p_{t|0}(. | n0)`` and regresses the model's two outputs per coordinate,
    ``(h_up, h_down)``, on the rescaled kernel ratios

    .. math:: \frac{1}{\delta}\Big(\frac{p_{t|0}(n+1\mid n_0)}{p_{t|0}(n\mid n_0)} - 1\Big),
              \qquad \frac{1}{\delta}\Big(1 - \frac{p_{t|0}(n-1\mid n_0)}{p_{t|0}(n\mid n_0)}
              \Big),

    whose conditional expectations given ``n`` are ``(ratio_up - 1)/delta`` and
    ``(1 - ratio_down)/delta``; both tend to the OU score as ``S`` grows, which is the link to
    denoising score matching. The up term is dropped at ``n = S`` and the down term at
    ``n = 0`` (there the rate is zero whatever the model says).

    ``model(x, t)`` takes scaled states ``x`` (float ``(B, d)``) and ``t`` (``(B,)``) and
    returns ``(B, d, 2)``.
    """
    import torch

    S = _check_S(S)
    schedule = as_schedule(schedule)
    if n0.ndim != 2:
        raise ValueError(f"n0 must have shape (B, d), got {tuple(n0.shape)}")
    if t.ndim != 1 or t.shape[0] != n0.shape[0] or not torch.all(t > 0):
        raise ValueError("t must have shape (B,) and be > 0")
    if n0.min() < 0 or n0.max() > S:
        raise ValueError(f"n0 must lie in {{0, ..., {S}}}")
    theta = schedule._theta(t)
    q = -0.5 * torch.expm1(-theta)
    lp, lq = torch.log1p(-q)[:, None], torch.log(q)[:, None]
    n0f = n0.to(t.dtype)
    n = (torch.binomial(n0f, (1 - q)[:, None].expand_as(n0f), generator=generator)
         + torch.binomial(S - n0f, q[:, None].expand_as(n0f), generator=generator)).long()
    delta = 2.0 / S**0.5
    with torch.no_grad():
        l_mid = _torch_log_kernel(n, n0, lp, lq, S)
        l_up = _torch_log_kernel((n + 1).clamp(max=S), n0, lp, lq, S)
        l_dn = _torch_log_kernel((n - 1).clamp(min=0), n0, lp, lq, S)
        y_up = torch.expm1(l_up - l_mid) / delta
        y_dn = -torch.expm1(l_dn - l_mid) / delta
    x = (2.0 / S**0.5) * (n.to(t.dtype) - S / 2)
    out = model(x, t)
    m_up, m_dn = (n < S).to(t.dtype), (n > 0).to(t.dtype)
    err = m_up * (out[..., 0] - y_up) ** 2 + m_dn * (out[..., 1] - y_dn) ** 2
    return err.mean()


def _rate_mlp(dim: int, hidden: int, t_max: float):
    import torch
    from torch import nn

    class RateMLP(nn.Module):
        """``(x, t) -> (B, d, 2)``: an MLP on ``x`` and Fourier features of ``t``."""

        def __init__(self):
            super().__init__()
            self.freqs = nn.Parameter(torch.arange(1, 9, dtype=torch.float32) * np.pi / t_max,
                                      requires_grad=False)
            self.net = nn.Sequential(nn.Linear(dim + 16, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, 2 * dim))
            self.dim = dim

        def forward(self, x, t):
            ft = t[:, None] * self.freqs
            h = torch.cat([x, torch.sin(ft), torch.cos(ft)], dim=1)
            return self.net(h).view(-1, self.dim, 2)

    return RateMLP()


def fit_rate_model(data, S: int, *, schedule: Schedule | None = None, T: float = 5.0,
                   t_min: float = 1e-2, steps: int = 2000, batch: int = 256,
                   hidden: int = 64, lr: float = 2e-3, seed: int = 0, progress: bool = False):
    """Train a small MLP with :func:`rate_matching_loss` on samples of the data alone.

    Parameters
    ----------
    data : array of int, shape (N,) or (N, d)
        Training states in ``{0..S}``.
    T, t_min : float
        Times are drawn uniformly from ``[t_min, T]``.
    steps, batch, hidden, lr, seed : training settings (Adam, cosine learning-rate decay).

    Returns
    -------
    model : torch.nn.Module
        ``model(x, t) -> (B, d, 2)``; turn it into rates with :func:`model_rates`.
    losses : numpy array of shape (steps,)
    """
    import torch
    from tqdm.auto import trange

    S = _check_S(S)
    data = _states(data, S, "data")
    if data.ndim == 1:
        data = data[:, None]
    T = positive_float(T, "T")
    t_min = positive_float(t_min, "t_min")
    if t_min >= T:
        raise ValueError(f"t_min must be < T = {T:g}, got {t_min:g}")
    steps = positive_int(steps, "steps")
    batch = positive_int(batch, "batch")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _rate_mlp(data.shape[1], positive_int(hidden, "hidden"), T)
    opt = torch.optim.Adam(model.parameters(), lr=positive_float(lr, "lr"))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    data_t = torch.as_tensor(data)
    losses = np.empty(steps)
    for i in trange(steps, disable=not progress, desc="rate matching"):
        idx = torch.randint(0, data_t.shape[0], (batch,), generator=gen)
        t = t_min + (T - t_min) * torch.rand(batch, generator=gen)
        loss = rate_matching_loss(model, data_t[idx], t, S, schedule=schedule, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses[i] = loss.item()
    model.eval()
    return model, losses


def model_rates(model, S: int, *, schedule: Schedule | None = None) -> Callable:
    """A rates function ``(n, t) -> (up, down)`` from a model trained by
    :func:`fit_rate_model`: ``up = lambda (n+1)/2 (1 + delta h_up)``,
    ``down = lambda (S-n+1)/2 (1 - delta h_down)`` (negative values set to zero)."""
    import torch

    S = _check_S(S)
    schedule = as_schedule(schedule)
    delta = 2.0 / np.sqrt(S)

    def rates(n, t):
        n = _states(n, S)
        flat = n.ndim == 1
        n2 = n[:, None] if flat else n
        t = np.array(np.broadcast_to(np.asarray(t, dtype=float), n2.shape[:1]))
        with torch.no_grad():
            out = model(torch.as_tensor(scale(n2, S), dtype=torch.float32),
                        torch.as_tensor(t, dtype=torch.float32)).double().numpy()
        lam = schedule.rate(t)[:, None]
        up, dn = _finish_rates(np.maximum(1 + delta * out[..., 0], 0),
                               np.maximum(1 - delta * out[..., 1], 0), n2, S, lam)
        return (up[:, 0], dn[:, 0]) if flat else (up, dn)

    return rates

