r"""The DSB paper's own 2-D problem (De Bortoli, Thornton, Heng and Doucet, 2021): the s-curve
to a Gaussian, at the scale of its reference code.

The data are scikit-learn's ``make_s_curve`` without noise, columns 0 and 2,
:math:`(\sin\theta,\ \operatorname{sign}(\theta)(\cos\theta - 1))` with
:math:`\theta \sim \mathcal U[-3\pi/2, 3\pi/2]`, centred by the mean of *all* their
coordinates, divided by the standard deviation of all their coordinates, and multiplied by 7.
The reference code takes these constants from its 10,000 points; here they are the law's own:
the pooled mean is 0 (both coordinates are odd in :math:`\theta`) and the pooled variance is
:math:`\tfrac12\bigl(\mathbb E\sin^2\theta + \mathbb E(\cos\theta - 1)^2\bigr)
= \tfrac12\bigl(\tfrac12 + \tfrac32 + \tfrac{4}{3\pi}\bigr)`, so that the scaled data have mean
:math:`m = 0` in each coordinate and scalar variance :math:`v = 49` (:data:`S_CURVE_VAR`).

The prior is :math:`\mathcal N(m, v I)` with those moments (the reference code estimates them
from 100 points), and the reference process is the discretised Ornstein-Uhlenbeck process
towards it, drift :math:`\nabla\log\mathcal N(x; 0, vI) = -x/v`, i.e.
``DSB(2, 20, 0.01, alpha=S_CURVE_ALPHA)``. Its total time
:math:`T = 0.2` is short against the prior's scale: the reference barely moves the data (it adds
noise of variance :math:`2T = 0.4` to data of variance 49), so the first IPF iteration is far
from the bridge and the later ones have to do the transport.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import as_rng, positive_int

__all__ = ["S_CURVE_ALPHA", "S_CURVE_SCALE", "S_CURVE_VAR", "s_curve", "s_curve_prior"]

_POOLED_STD = math.sqrt(0.5 * (0.5 + 1.5 + 4 / (3 * math.pi)))
S_CURVE_SCALE = 7.0
"""The reference code's scaling factor: the data have pooled standard deviation 7."""
S_CURVE_VAR = S_CURVE_SCALE**2
"""The scalar variance :math:`v = 49` of the scaled s-curve, the prior's variance."""
S_CURVE_ALPHA = 1.0 / S_CURVE_VAR
"""The reference drift :math:`-\\alpha x` towards :math:`\\mathcal N(0, vI)`: ``alpha = 1/v``."""


def s_curve(n: int, rng) -> np.ndarray:
    r"""``n`` points of the DSB reference code's s-curve (shape ``(n, 2)``, noise 0): columns
    0 and 2 of scikit-learn's ``make_s_curve`` scaled as in the module docstring, i.e.
    :math:`(7/s)\,(\sin\theta,\ \operatorname{sign}(\theta)(\cos\theta - 1))`,
    :math:`\theta \sim \mathcal U[-3\pi/2, 3\pi/2]`, :math:`s^2 = 1 + 2/(3\pi)`."""
    n = positive_int(n, "n")
    t = 3 * math.pi * (as_rng(rng).uniform(size=n) - 0.5)
    x = np.stack([np.sin(t), np.sign(t) * (np.cos(t) - 1)], axis=1)
    return x * (S_CURVE_SCALE / _POOLED_STD)


def s_curve_prior(n: int, rng) -> np.ndarray:
    r"""``n`` draws of the prior :math:`\mathcal N(0, 49 I_2)` of the s-curve problem."""
    n = positive_int(n, "n")
    return S_CURVE_SCALE * as_rng(rng).standard_normal((n, 2))
