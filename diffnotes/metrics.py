r"""Distances between probability distributions, used to score samplers against exact laws.

For laws on a finite set, :func:`total_variation`; for point clouds, :func:`wasserstein1`,
:func:`ot_distance` (exact optimal transport, a few thousand points),
:func:`sliced_wasserstein2` (random 1-D projections, any size) and :func:`mmd` (kernel
discrepancy with an RBF kernel).

A distance between two *samples* is never zero, even when both come from the same law: two
independent samples of size :math:`n` from the target are already some way apart, and that
distance shrinks with :math:`n` at a metric-dependent rate (about :math:`n^{-1/2}` for sliced
:math:`W_2`, :math:`n^{-1}` for the squared :math:`\mathrm{MMD}`, only :math:`n^{-1/d}` for
:math:`W_p` in dimension :math:`d \ge 3`).
Every quality number in the book is therefore read against its *noise floor*
(:func:`noise_floor`): the same metric between two independent samples of the target, of the
same size. A sampler whose score sits within the floor is indistinguishable from the target at
that sample size; only the excess over the floor measures its error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._checks import as_rng, distribution, positive_float, positive_int, real_array

__all__ = ["Floor", "mmd", "noise_floor", "ot_distance", "sliced_wasserstein2",
           "total_variation", "wasserstein1"]

MMD_MAX_POINTS = 20_000
"""Largest pooled sample size ``m + k`` accepted by :func:`mmd`."""

OT_MAX_POINTS = 5_000
"""Largest size of each cloud accepted by :func:`ot_distance`."""


def total_variation(p, q) -> float | np.ndarray:
    r"""Total-variation distance :math:`\tfrac12 \sum_x |p(x) - q(x)|` between distributions.

    ``p`` and ``q`` have shape ``(n,)`` or ``(m, n)`` (broadcast along the first axis); the
    result is a float or an array of shape ``(m,)``.
    """
    p = distribution(p, "p", atol=1e-6)
    q = distribution(q, "q", n=p.shape[-1], atol=1e-6)
    d = 0.5 * np.abs(p - q).sum(axis=-1)
    return float(d) if d.ndim == 0 else d


def wasserstein1(x, y, x_weights=None, y_weights=None) -> float:
    """Wasserstein-1 distance between two discrete distributions given by their atoms.

    ``x`` of shape ``(m,)`` or ``(m, d)``, ``y`` of shape ``(k,)`` or ``(k, d)``, optional
    non-negative weights (default: uniform). In one dimension this is the exact
    ``int |F_x - F_y|`` (:func:`scipy.stats.wasserstein_distance`); in ``d > 1`` it is the exact
    optimal-transport cost with Euclidean ground distance (POT's ``ot.emd2``), which costs
    ``O(m k)`` memory: keep ``m, k`` to a few thousand.
    """
    x = real_array(x, "x", ndim=(1, 2))
    y = real_array(y, "y", ndim=(1, 2))
    if x.ndim != y.ndim or (x.ndim == 2 and x.shape[1] != y.shape[1]):
        raise ValueError(f"x and y must have the same dimension, got {x.shape} and {y.shape}")
    if x.ndim == 1 or x.shape[1] == 1:
        from scipy.stats import wasserstein_distance

        return float(wasserstein_distance(x.ravel(), y.ravel(), x_weights, y_weights))
    import ot

    a = np.full(len(x), 1 / len(x)) if x_weights is None else np.asarray(x_weights, float)
    b = np.full(len(y), 1 / len(y)) if y_weights is None else np.asarray(y_weights, float)
    return float(ot.emd2(a / a.sum(), b / b.sum(), ot.dist(x, y, metric="euclidean")))


def _clouds(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Validate two point clouds of shape ``(m,)``/``(m, d)`` and ``(k,)``/``(k, d)``; return
    them as 2-D arrays with the same number of columns."""
    x = real_array(x, "x", ndim=(1, 2))
    y = real_array(y, "y", ndim=(1, 2))
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape} and {y.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must contain at least one point of dimension >= 1, got {x.shape}")
    if y.shape[0] == 0:
        raise ValueError(f"y must contain at least one point, got {y.shape}")
    return x, y


def _w2_squared_1d(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Exact squared W2 between uniform empirical laws on the columns of ``xs`` (m, P) and
    ``ys`` (k, P), both sorted along axis 0: the integral over u in (0, 1) of the squared
    difference of the two (step) quantile functions, summed exactly over the common
    refinement of the grids i/m and j/k."""
    m, k = xs.shape[0], ys.shape[0]
    if m == k:
        return np.mean((xs - ys) ** 2, axis=0)
    u = np.union1d(np.arange(m + 1) / m, np.arange(k + 1) / k)    # breakpoints, 0 ... 1
    mid = 0.5 * (u[1:] + u[:-1])
    ix = np.minimum((mid * m).astype(np.intp), m - 1)
    iy = np.minimum((mid * k).astype(np.intp), k - 1)
    return np.diff(u) @ (xs[ix] - ys[iy]) ** 2


def sliced_wasserstein2(x, y, n_projections: int = 256, rng=0) -> float:
    r"""Sliced Wasserstein-2 distance between two empirical point clouds.

    .. math::
        \mathrm{SW}_2(\mu, \nu) = \Big(\mathbb E_{\theta \sim \mathcal U(S^{d-1})}\,
        W_2^2\big(\theta_\#\mu,\ \theta_\#\nu\big)\Big)^{1/2},

    where :math:`\theta_\#\mu` is the law of :math:`\langle X, \theta\rangle`. The expectation is
    replaced by the mean over ``n_projections`` random unit directions (normalised Gaussian
    vectors drawn from ``rng``; the default fixed seed gives every call the same directions, so
    that scores of different samplers are comparable). Each 1-D :math:`W_2^2` is exact: the
    integral of the squared difference of the two empirical quantile functions, i.e. the mean
    squared difference of the sorted projections when ``m == k``, and otherwise the exact
    integral over the common refinement of the grids :math:`i/m` and :math:`j/k` (so the sizes
    need not be equal). In one dimension (``d = 1``) no projection is drawn and the result is
    the exact :math:`W_2` between the two empirical laws.

    Units are those of the data. For a translation, :math:`\mathrm{SW}_2(\mu, \mu(\cdot - v))
    = |v| / \sqrt d` (up to the Monte Carlo error of the directions): sliced distances are
    smaller than :math:`W_2` by a factor of order :math:`\sqrt d`.

    Parameters
    ----------
    x, y : arrays of shape (m, d) and (k, d), or (m,) and (k,) for d = 1
        The two clouds (finite values, at least one point each).
    n_projections : int, default 256
        Number of random directions (>= 1; ignored when ``d = 1``).
    rng : int or numpy.random.Generator, default 0
        Source of the directions.

    Returns
    -------
    float
        :math:`\mathrm{SW}_2 \ge 0`.
    """
    x, y = _clouds(x, y)
    n_projections = positive_int(n_projections, "n_projections")
    rng = as_rng(rng)
    d = x.shape[1]
    if d == 1:
        return float(np.sqrt(_w2_squared_1d(np.sort(x, axis=0), np.sort(y, axis=0))[0]))
    theta = rng.standard_normal((d, n_projections))
    theta /= np.linalg.norm(theta, axis=0)
    m, k = len(x), len(y)
    block = max(1, 4_000_000 // (m + k))                  # bound memory to a few 10 MB
    total = 0.0
    for start in range(0, n_projections, block):
        th = theta[:, start:start + block]
        total += _w2_squared_1d(np.sort(x @ th, axis=0), np.sort(y @ th, axis=0)).sum()
    return float(np.sqrt(max(total / n_projections, 0.0)))


def _pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import cdist

    return cdist(a, b, "sqeuclidean")


def _median_distance(z: np.ndarray, max_points: int = 4000) -> float:
    from scipy.spatial.distance import pdist

    if len(z) > max_points:
        z = z[np.random.default_rng(0).choice(len(z), max_points, replace=False)]
    return float(np.median(pdist(z)))


def _kernel_sum(a: np.ndarray, b: np.ndarray, gamma: float) -> float:
    """Sum over all pairs of exp(-gamma |a_i - b_j|^2), computed in row blocks."""
    block = max(1, 2_000_000 // len(b))
    return float(sum(np.exp(-gamma * _pairwise_sq(a[i:i + block], b)).sum()
                     for i in range(0, len(a), block)))


def _unbiased_mmd2(s_xx, tr_xx, s_yy, tr_yy, s_xy, m: int, n: int) -> float:
    """The U-statistic MMD² from the kernel's sums over all pairs (``s_xx``, ``s_yy``, ``s_xy``)
    and over the diagonals (``tr_xx``, ``tr_yy``) of samples of sizes ``m`` and ``n``."""
    return float((s_xx - tr_xx) / (m * (m - 1)) + (s_yy - tr_yy) / (n * (n - 1))
                 - 2.0 * s_xy / (m * n))


def mmd(x, y, bandwidth=None, *, kernel="rbf") -> float:
    r"""Squared maximum mean discrepancy with an RBF kernel (or another), unbiased estimate.

    With :math:`k(a, b) = \exp\big(-|a - b|^2 / (2h^2)\big)`, returns the U-statistic

    .. math::
        \widehat{\mathrm{MMD}}{}^2_u = \frac{1}{m(m-1)}\sum_{i \ne i'} k(x_i, x_{i'})
        + \frac{1}{n(n-1)}\sum_{j \ne j'} k(y_j, y_{j'})
        - \frac{2}{mn}\sum_{i, j} k(x_i, y_j),

    an unbiased estimate of
    :math:`\mathrm{MMD}^2 = \mathbb E k(X, X') + \mathbb E k(Y, Y') - 2\,\mathbb E k(X, Y)`.
    Being unbiased, it fluctuates around the true value: for two samples of the same law it is
    about as often slightly *negative* as positive, so read it against :func:`noise_floor` (whose
    ``mean`` is then near 0 and whose ``std`` is the scale to beat), not against 0. It is a
    squared quantity, dimensionless (the kernel is at most 1), and at most 2.

    The default bandwidth ``h`` is the median heuristic: the median of the Euclidean distances
    :math:`|z_a - z_b|`, :math:`a < b`, over all pairs of the pooled sample
    :math:`z = (x_1, \dots, x_m, y_1, \dots, y_n)`; when ``m + n > 4000``, over the pairs of
    4000 pooled points drawn without replacement with the fixed seed 0 (deterministic, and
    within about a percent of the full median). The heuristic depends on ``y``, so when
    comparing several samplers against one target, fix ``bandwidth`` (e.g. the median
    heuristic of the target alone) to score all of them with the same kernel.

    Memory is bounded by computing the kernel in blocks; time is :math:`O((m + n)^2 d)`, and
    the pooled size ``m + n`` is limited to ``MMD_MAX_POINTS`` = 20000.

    Parameters
    ----------
    x, y : arrays of shape (m, d) and (n, d), or (m,) and (n,) for d = 1
        The two samples (finite values, at least two points each).
    bandwidth : float or None, default None
        Kernel bandwidth ``h > 0``; None for the median heuristic.
    kernel : "rbf" or callable, default "rbf"
        ``"rbf"`` for the kernel above; or any positive-definite kernel as a callable
        ``kernel(a, b)`` returning the Gram matrix of shape ``(len(a), len(b))``, formed whole
        (then ``bandwidth`` must be None, and the size limit and the blocks are the RBF
        kernel's only). The KID of :mod:`diffnotes.images.metrics` is this with a cubic kernel.

    Returns
    -------
    float
    """
    x, y = _clouds(x, y)
    m, k = len(x), len(y)
    if m < 2:
        raise ValueError(f"x must contain at least 2 points for the unbiased MMD, got {m}")
    if k < 2:
        raise ValueError(f"y must contain at least 2 points for the unbiased MMD, got {k}")
    if callable(kernel):
        if bandwidth is not None:
            raise ValueError("bandwidth must be None with a callable kernel (it sets the RBF "
                             f"kernel's width), got {bandwidth!r}")
        k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
        return _unbiased_mmd2(k_xx.sum(), np.trace(k_xx), k_yy.sum(), np.trace(k_yy),
                              k_xy.sum(), m, k)
    if not (isinstance(kernel, str) and kernel == "rbf"):
        raise ValueError(f"kernel must be 'rbf' or a callable kernel(a, b) -> Gram matrix, got "
                         f"{kernel!r}")
    if m + k > MMD_MAX_POINTS:
        raise ValueError(f"x and y must have at most {MMD_MAX_POINTS} points together, got "
                         f"{m} + {k}; subsample them")
    if bandwidth is None:
        h = _median_distance(np.concatenate([x, y]))
        if h <= 0:
            raise ValueError("bandwidth: the median heuristic gave 0 (more than half of the "
                             "pooled pairs coincide); pass bandwidth explicitly")
    else:
        h = positive_float(bandwidth, "bandwidth")
    gamma = 1.0 / (2.0 * h * h)
    # k(a, a) = 1: the diagonals sum to m and k
    return _unbiased_mmd2(_kernel_sum(x, x, gamma), m, _kernel_sum(y, y, gamma), k,
                          _kernel_sum(x, y, gamma), m, k)


def ot_distance(x, y, p=2) -> float:
    r"""Exact Wasserstein-:math:`p` distance between two uniform empirical point clouds.

    .. math::
        W_p = \Big(\min_{\pi \in \Pi(\mu_x, \mu_y)} \sum_{i, j} \pi_{ij}\,|x_i - y_j|^p
        \Big)^{1/p},

    solved exactly by POT's network simplex (``ot.emd2``) on the Euclidean cost matrix
    (``ot.dist``). Returned as :math:`W_p` itself (the ``p``-th root of the optimal cost), in the
    units of the data; ``p = 1`` agrees with :func:`wasserstein1`. The cost matrix takes
    :math:`O(mk)` memory and the solver roughly :math:`O(n^3)` time, so each cloud is limited
    to ``OT_MAX_POINTS`` = 5000 points (a 2000-point pair takes about a second). Unlike the
    sliced distance, :math:`W_p` between two samples of one law in dimension :math:`d \ge 3`
    decays slowly (like :math:`n^{-1/d}`), which makes its noise floor large.

    Parameters
    ----------
    x, y : arrays of shape (m, d) and (k, d), or (m,) and (k,) for d = 1
        The two clouds (finite values, 1 to 5000 points each).
    p : float, default 2
        Order of the distance, ``p >= 1``.

    Returns
    -------
    float
    """
    x, y = _clouds(x, y)
    p = positive_float(p, "p")
    if p < 1:
        raise ValueError(f"p must be finite and >= 1, got {p}")
    for name, a in (("x", x), ("y", y)):
        if len(a) > OT_MAX_POINTS:
            raise ValueError(f"{name} must have at most {OT_MAX_POINTS} points for exact OT, "
                             f"got {len(a)}; subsample it or use sliced_wasserstein2")
    import ot

    cost = ot.dist(x, y, metric="euclidean")
    if p != 1:
        cost = cost**p
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # checked through the log instead
        value, log = ot.emd2(a, b, cost, numItermax=max(100_000, 100 * len(x) * len(y)),
                             log=True)
    if log.get("warning"):
        raise RuntimeError(f"ot.emd2 did not reach the optimum: {log['warning']}")
    return float(max(float(value), 0.0) ** (1.0 / p))


@dataclass(frozen=True)
class Floor:
    """The noise floor of a metric: its ``mean`` and standard deviation ``std`` (``ddof=1``)
    over ``values``, one per pair of independent samples of the target."""

    mean: float
    std: float
    values: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.mean:.3g} ± {self.std:.2g} (over {len(self.values)} pairs of samples)"


def noise_floor(metric: Callable, sampler: Callable, n: int, rng, n_repeats: int = 5,
                **metric_kwargs) -> Floor:
    r"""The noise floor of ``metric`` at sample size ``n``: the value of
    ``metric(a, b, **metric_kwargs)`` for two *independent* samples ``a = sampler(n, rng)``,
    ``b = sampler(n, rng)`` of the same law, repeated ``n_repeats`` times.

    A sampler's score ``metric(samples, target_samples)`` with ``n`` points each means something
    only above this floor. The pairs are drawn one after the other from the single generator
    ``as_rng(rng)``, so the result is reproducible. ``metric_kwargs`` are passed on to every
    call: e.g. for :func:`sliced_wasserstein2` its ``rng`` keeps the directions fixed across
    repeats (the default), so the spread reflects the samples only.

    Parameters
    ----------
    metric : callable
        ``metric(a, b, **metric_kwargs)`` returning a finite real number.
    sampler : callable
        ``sampler(n, rng)`` returning ``n`` draws of the target (e.g. a toy of
        :mod:`diffnotes.data` or :meth:`GaussianMixture.sample
        <diffnotes.mixtures.GaussianMixture.sample>`).
    n : int
        Size of each sample (>= 1).
    rng : int or numpy.random.Generator
        Source of randomness for the samples.
    n_repeats : int, default 5
        Number of independent pairs (>= 2, so that ``std`` is defined).

    Returns
    -------
    Floor
        ``mean``, ``std`` (with ``ddof=1``) and the individual ``values``.
    """
    if not callable(metric):
        raise ValueError(f"metric must be callable, got {type(metric).__name__}")
    if not callable(sampler):
        raise ValueError(f"sampler must be callable, got {type(sampler).__name__}")
    n = positive_int(n, "n")
    n_repeats = positive_int(n_repeats, "n_repeats", minimum=2)
    rng = as_rng(rng)
    values = []
    for _ in range(n_repeats):
        a, b = sampler(n, rng), sampler(n, rng)
        v = metric(a, b, **metric_kwargs)
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"metric must return a real number, got {type(v).__name__}") from None
        if not np.isfinite(v):
            raise ValueError(f"metric must return a finite number, got {v}")
        values.append(v)
    vals = np.array(values)
    return Floor(float(vals.mean()), float(vals.std(ddof=1)), tuple(values))
