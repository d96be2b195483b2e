"""Distances between probability distributions, used to score samplers against exact laws."""

from __future__ import annotations

import numpy as np

from ._checks import distribution, real_array

__all__ = ["total_variation", "wasserstein1"]


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
