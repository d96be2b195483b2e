r"""The time reversal of the Ehrenfest process (part of :mod:`diffnotes.ehrenfest`, Chapter 2):
the exact reverse rates from the data law (:func:`reverse_rates`, :class:`ExactReverseRates`) and
the transfer from an OU score to reverse rates (:func:`score_to_rates`, :func:`score_rates`).
NumPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import logsumexp

from .._checks import distribution, positive_float, positive_int, real_array
from ..schedules import Schedule, as_schedule
from ._process import _check_S, _lnc, _pq, _states, _times, marginal

__all__ = ["ExactReverseRates", "reverse_rates", "score_rates", "score_to_rates"]


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
