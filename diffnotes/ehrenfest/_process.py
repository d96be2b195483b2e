r"""The forward Ehrenfest process (part of :mod:`diffnotes.ehrenfest`, Chapter 2): its generator,
transition matrices and probabilities in closed form (two binomials, FFT or direct), moments,
forward and stationary sampling, and the scaling to the Ornstein-Uhlenbeck limit with the
lattice projection of a Gaussian mixture. NumPy/SciPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft
from scipy.special import gammaln, logsumexp

from .._checks import as_rng, distribution, positive_int, real_array
from ..mixtures import GaussianMixture
from ..schedules import Schedule, as_schedule
from ..sde import OU

__all__ = ["generator", "lattice_pmf", "lattice_projection", "log_transition_matrix",
           "log_transition_prob", "marginal", "mean_variance", "mixture_score", "ou_coefficients",
           "ou_distance", "sample_forward", "sample_stationary", "scale", "to_lattice",
           "transition_matrix", "unscale"]


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
