"""Distances between probability distributions, used to score samplers against exact laws."""

from __future__ import annotations

import numpy as np

from ._checks import distribution

__all__ = ["total_variation"]


def total_variation(p, q) -> float | np.ndarray:
    r"""Total-variation distance :math:`\tfrac12 \sum_x |p(x) - q(x)|` between distributions.

    ``p`` and ``q`` have shape ``(n,)`` or ``(m, n)`` (broadcast along the first axis); the
    result is a float or an array of shape ``(m,)``.
    """
    p = distribution(p, "p", atol=1e-6)
    q = distribution(q, "q", n=p.shape[-1], atol=1e-6)
    d = 0.5 * np.abs(p - q).sum(axis=-1)
    return float(d) if d.ndim == 0 else d
