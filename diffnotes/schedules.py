r"""Time changes (noise schedules) shared by the Ehrenfest process and the SDEs.

A *schedule* is a non-negative rate function :math:`\lambda(t)` and its integral
:math:`\Theta(t) = \int_0^t \lambda(s)\,ds`. Multiplying every rate of a time-homogeneous
process by :math:`\lambda(t)` runs that process on the clock :math:`\Theta(t)`: the law at
time ``t`` is the homogeneous law at time :math:`\Theta(t)`. For the Ehrenfest process of
Chapter 2 (whose scaling limit is :math:`dX = -X\,dt + \sqrt 2\,dW`) the time-changed limit is

.. math:: dX_t = -\lambda(t) X_t\,dt + \sqrt{2\lambda(t)}\,dW_t ,

so :func:`vp` with :math:`\lambda = \beta/2` gives exactly the variance-preserving SDE
:math:`dX = -\tfrac12\beta(t)X\,dt + \sqrt{\beta(t)}\,dW` of score-based models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import positive_float, real_array

__all__ = ["Schedule", "constant", "vp"]


@dataclass(frozen=True)
class Schedule:
    r"""An affine rate :math:`\lambda(t) = a + b t` (``a, b >= 0``) and its integral.

    Use :func:`constant` or :func:`vp` to build one.
    """

    a: float = 1.0
    b: float = 0.0
    name: str = "constant(1)"

    def _t(self, t):
        t = real_array(t, "t")
        if np.any(t < 0):
            raise ValueError(f"t must be >= 0, got min {t.min():.3g}")
        return t

    def rate(self, t):
        r"""The rate multiplier :math:`\lambda(t)` (same shape as ``t``)."""
        return self._lam(self._t(t))

    def integral(self, t):
        r"""The clock :math:`\Theta(t) = \int_0^t \lambda(s)\,ds` (same shape as ``t``)."""
        return self._theta(self._t(t))

    # Unchecked versions for hot loops and torch tensors (callers have validated ``t``).
    def _lam(self, t):
        return self.a + self.b * t

    def _theta(self, t):
        return self.a * t + 0.5 * self.b * t * t

    def __repr__(self) -> str:
        return self.name


def constant(rate: float = 1.0) -> Schedule:
    r"""The constant schedule :math:`\lambda(t) = ` ``rate`` (the plain Ehrenfest process)."""
    rate = positive_float(rate, "rate")
    return Schedule(rate, 0.0, f"constant({rate:g})")


def vp(beta_min: float = 0.1, beta_max: float = 20.0) -> Schedule:
    r"""The linear variance-preserving schedule on ``[0, 1]``: :math:`\lambda(t) = \beta(t)/2`
    with :math:`\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})`.

    With it the Ehrenfest process converges to the VP SDE of Song et al. (2021).
    """
    beta_min = positive_float(beta_min, "beta_min")
    beta_max = positive_float(beta_max, "beta_max")
    if beta_max < beta_min:
        raise ValueError(f"beta_max must be >= beta_min, got beta_min={beta_min:g}, "
                         f"beta_max={beta_max:g}")
    return Schedule(beta_min / 2, (beta_max - beta_min) / 2,
                    f"vp(beta_min={beta_min:g}, beta_max={beta_max:g})")


def as_schedule(schedule) -> Schedule:
    """``None`` means the constant schedule with rate 1."""
    if schedule is None:
        return Schedule()
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be None or a diffnotes.schedules.Schedule, "
                         f"got {type(schedule).__name__}")
    return schedule
