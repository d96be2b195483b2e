r"""Time reversal of a chain (part of :mod:`diffnotes.ctmc`, Chapter 1): the reverse generator and
kernel, the reverse rates of a time-inhomogeneous chain, and the empirical marginals with their
step interpolant. NumPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.integrate
import scipy.linalg

from .._checks import distribution, positive_float, positive_int, real_array, time_grid
from ._generators import check_generator

__all__ = ["empirical_marginals", "reverse_generator", "reverse_kernel", "reverse_rates",
           "step_interpolant"]


# --------------------------------------------------------------------------------------------
# Time reversal
# --------------------------------------------------------------------------------------------
def reverse_generator(Q, p) -> np.ndarray:
    r"""Generator of the time-reversed chain, given the forward marginal ``p`` at that time.

    .. math:: \overleftarrow{Q}_{xy} = Q_{yx}\,\frac{p_y}{p_x}, \qquad x \ne y

    (:eq:`ch1-reverse-generator`), with the diagonal set so that rows sum to zero.

    Parameters
    ----------
    Q : array of shape (n, n)
        Forward generator.
    p : array of shape (n,) or (m, n)
        Forward marginal(s); every entry must be > 0, since the reverse rate out of ``x``
        divides by ``p[x]``.

    Returns
    -------
    ndarray of shape (n, n) or (m, n, n)
    """
    Q = check_generator(Q)
    p = real_array(p, "p", ndim=(1, 2))
    if p.shape[-1] != Q.shape[0]:
        raise ValueError(f"p must have {Q.shape[0]} entries per row to match Q, got {p.shape}")
    if np.any(p <= 0):
        idx = np.argwhere(p <= 0)[0]
        where = f"p[{idx[-1]}]" if p.ndim == 1 else f"p[{idx[0]}, {idx[1]}]"
        raise ValueError(
            f"p must be strictly positive: {where} = {p[tuple(idx)]:.3g}, and the reverse rate "
            f"out of state {idx[-1]} divides by it. A data distribution with a zero makes the "
            "reverse rates blow up at the end; stop the reverse chain at a time eps > 0 before "
            "the end (see reverse_kernel for an exact last step)."
        )
    return _reverse_generator(Q, p)


def _reverse_generator(Q: np.ndarray, p: np.ndarray) -> np.ndarray:
    R = Q.T[None] * p[..., None, :] / p[..., :, None] if p.ndim == 2 else Q.T * p[None] / p[:, None]
    n = Q.shape[0]
    diag = np.arange(n)
    R[..., diag, diag] = 0.0
    R[..., diag, diag] = -R.sum(axis=-1)
    return R


def reverse_kernel(Q, p_s, dt: float) -> np.ndarray:
    r"""Exact reverse transition matrix over a step ``dt``, by Bayes' rule.

    With :math:`p_{s+dt} = p_s e^{dt\,Q}`,

    .. math:: K_{xy} = P(X_s = y \mid X_{s+dt} = x) = \frac{p_s(y)\,(e^{dt\,Q})_{yx}}{p_{s+dt}(x)}.

    Unlike the reverse *rates*, this kernel stays bounded when ``p_s`` has zeros (for instance
    ``p_s`` = a data distribution with an empty state): it is the exact last step of a reverse
    chain that was stopped at forward time ``dt`` (:eq:`ch1-reverse-kernel`).

    Returns an ``(n, n)`` stochastic matrix (rows sum to 1). Rows ``x`` with
    :math:`p_{s+dt}(x) = 0` cannot be reached and are set to :math:`p_s`.
    """
    Q = check_generator(Q)
    p_s = distribution(p_s, "p_s", n=Q.shape[0], single=True)
    dt = positive_float(dt, "dt")
    P = scipy.linalg.expm(dt * Q)
    p_t = p_s @ P
    K = np.empty_like(P)
    pos = p_t > 0
    K[pos] = (p_s[None, :] * P.T)[pos] / p_t[pos, None]
    K[~pos] = p_s
    return K / K.sum(axis=1, keepdims=True)


def reverse_rates(Q, marginals: Callable[[np.ndarray], np.ndarray], T: float) -> Callable:
    r"""Rates function of the reverse chain on ``[0, T]``: at reverse time ``t`` it returns
    :func:`reverse_generator` ``(Q, marginals(T - t))``.

    Parameters
    ----------
    Q : array of shape (n, n)
        Forward generator (time-homogeneous).
    marginals : callable
        ``marginals(s)`` maps forward times ``s`` of shape ``(m,)`` to the forward marginals,
        shape ``(m, n)``: either exact, ``lambda s: forward_marginals(Q, p0, s)``, or estimated,
        e.g. :func:`step_interpolant` of :func:`empirical_marginals`.
    T : float
        Time horizon of the forward chain (> 0).

    Returns
    -------
    callable
        ``rates(t)`` for reverse times ``t`` of shape ``(m,)`` in ``[0, T]``, returning
        ``(m, n, n)``.
    """
    Q = check_generator(Q)
    T = positive_float(T, "T")
    if not callable(marginals):
        raise ValueError("marginals must be a callable mapping forward times to marginals")

    def rates(t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        if np.any(t < 0) or np.any(t > T * (1 + 1e-12)):
            raise ValueError(f"reverse times t must lie in [0, T] = [0, {T:g}]")
        return reverse_generator(Q, marginals(np.clip(T - t, 0.0, T)))

    return rates


def empirical_marginals(states, n_states: int, pseudocount: float = 0.0) -> np.ndarray:
    r"""Marginals estimated from a population: the fraction of chains in each state.

    Parameters
    ----------
    states : int array of shape (m, n_chains)
        States of a population at ``m`` times (``Population.states``).
    n_states : int
        Number of states ``n``.
    pseudocount : float
        Added to every count before normalising (``>= 0``). With 0, a state that no chain
        visits gets probability exactly 0 -- and the reverse rates built from such an estimate
        divide by it.

    Returns
    -------
    ndarray of shape (m, n)
        :math:`\hat p_t(x) = (N_x(t) + \alpha) / (N + n \alpha)`, :eq:`ch1-empirical`.
    """
    states = np.asarray(states)
    if states.ndim != 2:
        raise ValueError(f"states must have shape (n_times, n_chains), got {states.shape}")
    n_states = positive_int(n_states, "n_states", minimum=1)
    if states.size and (states.min() < 0 or states.max() >= n_states):
        raise ValueError(f"states must lie in 0..{n_states - 1} (n_states = {n_states})")
    pseudocount = positive_float(pseudocount, "pseudocount", allow_zero=True)
    counts = np.stack([(states == x).sum(axis=1) for x in range(n_states)], axis=1)
    return (counts + pseudocount) / (states.shape[1] + n_states * pseudocount)


def step_interpolant(times, values) -> Callable[[np.ndarray], np.ndarray]:
    """Piecewise-constant interpolant: at ``s`` it returns ``values[k]`` for the largest
    ``times[k] <= s`` (the first value before ``times[0]``).

    ``times`` has shape ``(m,)`` (increasing), ``values`` shape ``(m, ...)``.
    """
    t = time_grid(times)
    values = np.asarray(values, dtype=float)
    if values.shape[0] != t.size:
        raise ValueError(
            f"values must have one row per time: {t.size} times but {values.shape[0]} rows"
        )

    def interp(s):
        s = np.atleast_1d(np.asarray(s, dtype=float))
        k = np.clip(np.searchsorted(t, s, side="right") - 1, 0, t.size - 1)
        return values[k]

    return interp
