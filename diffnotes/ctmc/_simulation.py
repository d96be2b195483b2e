r"""Simulating chains (part of :mod:`diffnotes.ctmc`, Chapter 1): populations of chains by exact
simulation with thinning (:func:`simulate`) and by fixed-step Euler (:func:`simulate_fixed_step`),
and the draws they are built from. NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import as_rng, distribution, positive_float, positive_int, real_array, time_grid
from ._generators import RatesLike, _as_rates
from ._reversal import empirical_marginals

__all__ = ["Population", "sample_states", "sample_transitions", "simulate", "simulate_fixed_step"]


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Population:
    """A simulated population of chains observed on a time grid.

    Attributes
    ----------
    times : ndarray of shape (m,)
        Observation times.
    states : int ndarray of shape (m, n_chains)
        ``states[k, i]`` is the state of chain ``i`` at ``times[k]`` (stored in the smallest
        signed integer type that holds every state, to keep large populations small).
    n_jumps : int ndarray of shape (n_chains,)
        Number of jumps each chain made (thinning's rejected proposals are not jumps).
    """

    times: np.ndarray
    states: np.ndarray
    n_jumps: np.ndarray

    def marginals(self, n_states: int, pseudocount: float = 0.0) -> np.ndarray:
        """Fraction of chains in each state at each time: :func:`empirical_marginals`."""
        return empirical_marginals(self.states, n_states, pseudocount)


def sample_states(p, size: int, rng) -> np.ndarray:
    """Draw ``size`` independent states from the distribution ``p`` (shape ``(n,)``)."""
    p = distribution(p, "p", single=True)
    size = positive_int(size, "size")
    return as_rng(rng).choice(p.size, size=size, p=p)


def sample_transitions(P, x, rng) -> np.ndarray:
    """Move each chain one step with the stochastic matrix ``P``: ``y_i ~ P[x_i, :]``.

    ``P`` has shape ``(n, n)`` with rows summing to 1; ``x`` is an int array of states.
    """
    P = real_array(P, "P", ndim=2)
    if P.shape[0] != P.shape[1] or np.any(P < 0) or np.any(np.abs(P.sum(axis=1) - 1) > 1e-9):
        raise ValueError("P must be a square stochastic matrix (non-negative rows summing to 1)")
    x = np.asarray(x)
    if x.size and (x.min() < 0 or x.max() >= P.shape[0]):
        raise ValueError(f"x must contain states in 0..{P.shape[0] - 1}")
    rng = as_rng(rng)
    return _categorical_rows(np.cumsum(P, axis=1)[x], rng.random(x.shape))


def _categorical_rows(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index of the first cumulative weight exceeding ``u * total``, row by row."""
    total = cum[..., -1]
    k = (cum <= (u * total)[..., None]).sum(axis=-1)
    return np.minimum(k, cum.shape[-1] - 1)


def _check_x0(x0, n: int) -> np.ndarray:
    x0 = np.asarray(x0)
    if x0.ndim != 1 or x0.size == 0 or not np.issubdtype(x0.dtype, np.integer):
        raise ValueError(
            f"x0 must be a non-empty 1-D int array of initial states, got {x0.dtype} {x0.shape}"
        )
    if x0.min() < 0 or x0.max() >= n:
        raise ValueError(f"x0 must contain states in 0..{n - 1}, got {x0.min()}..{x0.max()}")
    return x0.astype(np.int64)

def _state_dtype(n: int):
    """The smallest signed integer type holding the states ``0..n-1`` (and their differences)."""
    for dt in (np.int8, np.int16, np.int32):
        if n <= np.iinfo(dt).max:
            return dt
    return np.int64


def _add_jumps(delta, grid, chains, t_jump, x_from, x_to):
    """Book jumps ``x_from -> x_to`` at times ``t_jump`` of ``chains`` into ``delta``.

    ``delta[k, i]`` accumulates the state changes of chain ``i`` at times in
    ``(grid[k-1], grid[k]]``, so that the states on the grid are ``x0 + cumsum(delta)``. Each
    chain appears at most once per call, so plain fancy-index addition is safe.
    """
    k = np.searchsorted(grid, t_jump, side="left")
    inside = k < grid.size
    delta[k[inside], chains[inside]] += x_to[inside] - x_from[inside]


def _thinning_segments(fn, T: float, target: float = 2.0, max_segments: int = 2048):
    """Cut ``[0, T]`` into segments, each with a constant bound on the exit rates.

    The bound of a segment is 1.25 times the largest exit rate at 9 probe times in it; a segment
    whose expected number of proposals (bound x length) exceeds ``target`` is halved, so that
    regions where the rates are large or change fast get short segments and tight bounds.
    """
    def bound(a, b):
        probe = fn(np.linspace(a, b, 9))
        exit_max = float(np.max(-np.diagonal(probe, axis1=1, axis2=2)))
        if not np.isfinite(exit_max):
            raise ValueError(f"rates returned a non-finite exit rate on [{a:.4g}, {b:.4g}]")
        return 1.25 * exit_max + 1e-12

    todo = [(k * T / 16, (k + 1) * T / 16) for k in range(16)]
    done = []
    while todo:
        a, b = todo.pop()
        lam = bound(a, b)
        if lam * (b - a) > target and len(done) + len(todo) < max_segments and b - a > 1e-9 * T:
            m = 0.5 * (a + b)
            todo += [(m, b), (a, m)]
        else:
            done.append((a, b, lam))
    return sorted(done)


def simulate(rates: RatesLike, x0, T: float, *, rng, times=None, rate_bound=None) -> Population:
    r"""Exact simulation of a population of independent chains on ``[0, T]``.

    Vectorised over chains. A constant generator is simulated with the Gillespie algorithm
    (exponential holding times, then a jump drawn from the jump chain). Time-dependent rates
    use *thinning* (Lewis & Shedler; uniformisation): on a stretch of time where every exit rate
    is at most ``lam``, each chain proposes events at the constant rate ``lam`` and, at a
    proposal at time ``t`` in state ``x``, jumps to ``y`` with probability ``G_t[x, y] / lam``.
    This is exact whenever ``lam`` really bounds the exit rates.

    Parameters
    ----------
    rates : array of shape (n, n) or callable
        A generator, or a rates function ``t (m,) -> (m, n, n)`` (see module conventions).
    x0 : int array of shape (n_chains,)
        Initial states.
    T : float
        Final time (> 0).
    rng : int or numpy.random.Generator
        Source of randomness.
    times : array of shape (m,), optional
        Observation times in ``[0, T]``; default 201 equally spaced times.
    rate_bound : float, optional
        For time-dependent rates: one bound on every exit rate on ``[0, T]``. By default the
        bound is found adaptively, piece by piece (1.25 times the largest exit rate probed in
        each piece, pieces halved where the rates are large). Either way, a proposal whose exit
        rate exceeds its bound raises ``ValueError``. That check sees only the proposal times:
        the result is exact when the bound holds at every time of its piece (true for
        ``rate_bound`` given as a global bound), while an excess between proposals can go
        unnoticed and bias the result. The adaptive bound probes 9 times per piece with a
        margin of 25 %, which covers rates that vary smoothly on the scale of a piece.

    Returns
    -------
    Population
    """
    Q, fn, n = _as_rates(rates)
    x = _check_x0(x0, n).copy()
    T = positive_float(T, "T")
    grid = np.linspace(0.0, T, 201) if times is None else time_grid(times)
    if grid[-1] > T:
        raise ValueError(f"times must lie in [0, T] = [0, {T:g}], got max {grid[-1]:g}")
    rng = as_rng(rng)
    N = x.size
    x0 = x.astype(_state_dtype(n))
    delta = np.zeros((grid.size, N), dtype=x0.dtype)
    n_jumps = np.zeros(N, dtype=np.int64)

    if Q is not None:
        exit_rate = -np.diag(Q)
        jump = np.where(exit_rate[:, None] > 0, Q, 0.0)
        np.fill_diagonal(jump, 0.0)
        cum = np.cumsum(jump, axis=1)
        t = np.zeros(N)
        active = np.arange(N)
        while active.size:
            r = exit_rate[x[active]]
            with np.errstate(divide="ignore"):
                hold = np.where(r > 0, rng.exponential(size=active.size) / r, np.inf)
            t_new = t[active] + hold
            moves = t_new <= T
            mv, t_mv = active[moves], t_new[moves]
            x_old = x[mv]
            x[mv] = _categorical_rows(cum[x_old], rng.random(mv.size))
            _add_jumps(delta, grid, mv, t_mv, x_old, x[mv])
            n_jumps[mv] += 1
            t[mv] = t_mv
            active = mv
        return Population(times=grid, states=x0 + np.cumsum(delta, axis=0, dtype=delta.dtype),
                          n_jumps=n_jumps)

    if rate_bound is None:
        segments = _thinning_segments(fn, T)
    else:
        segments = [(0.0, T, positive_float(rate_bound, "rate_bound"))]
    for a, b, lam in segments:
        t = np.full(N, a)
        active = np.arange(N)
        while active.size:
            t_new = t[active] + rng.exponential(size=active.size) / lam
            prop = t_new <= b
            idx, tp = active[prop], t_new[prop]
            xp = x[idx]
            if idx.size == 0:
                break
            G = fn(tp)
            k = np.arange(idx.size)
            row = G[k, xp].copy()  # (k, n): rates out of each chain's current state
            exit_rate = -row[k, xp]
            if not np.all(np.isfinite(row)):
                raise ValueError("rates returned a non-finite rate during the simulation")
            if np.any(exit_rate > lam):
                j = int(np.argmax(exit_rate - lam))
                raise ValueError(
                    f"rate_bound = {lam:.4g} is below the exit rate {exit_rate[j]:.4g} at "
                    f"t = {tp[j]:.4g}; thinning would be biased. Pass a larger rate_bound."
                )
            row[k, xp] = 0.0
            u = rng.random(idx.size) * lam
            jumps = u < exit_rate
            if np.any(jumps):
                # given a jump, u / exit_rate is uniform on [0, 1): pick y in proportion to rates
                y = _categorical_rows(np.cumsum(row[jumps], axis=1), u[jumps] / exit_rate[jumps])
                _add_jumps(delta, grid, idx[jumps], tp[jumps], xp[jumps], y)
                x[idx[jumps]] = y
                n_jumps[idx[jumps]] += 1
            t[idx] = tp
            active = idx
    return Population(times=grid, states=x0 + np.cumsum(delta, axis=0, dtype=delta.dtype),
                          n_jumps=n_jumps)


def simulate_fixed_step(rates: RatesLike, x0, T: float, dt: float, *, rng) -> Population:
    r"""The naive fixed-step scheme: on each step of length ``dt`` jump ``x -> y`` with
    probability ``G_t[x, y] dt`` (rates frozen at the start of the step).

    This is the note's three-line recipe. Its marginals follow :math:`p_{k+1} = p_k (I + dt\,G)`
    instead of :math:`p_k e^{dt\,G}`: a bias of order ``dt``, :eq:`ch1-euler-bias`.

    Parameters
    ----------
    rates, x0, rng
        As for :func:`simulate`.
    T : float
        Final time; the number of steps is ``round(T / dt)``, which must be a whole number.
    dt : float
        Step size, with ``dt * max exit rate <= 1`` so that jump probabilities stay <= 1.

    Returns
    -------
    Population
        Observed at the step times ``0, dt, ..., T``.
    """
    Q, fn, n = _as_rates(rates)
    x = _check_x0(x0, n).copy()
    T = positive_float(T, "T")
    dt = positive_float(dt, "dt", upper=T)
    n_steps = int(round(T / dt))
    if abs(n_steps * dt - T) > 1e-9 * T:
        raise ValueError(f"dt must divide T: T / dt = {T / dt:.6g} is not a whole number")
    rng = as_rng(rng)
    grid = np.arange(n_steps + 1) * dt
    out = np.empty((n_steps + 1, x.size), dtype=_state_dtype(n))
    out[0] = x
    n_jumps = np.zeros(x.size, dtype=np.int64)
    for k in range(n_steps):
        G = Q if Q is not None else fn(np.array([grid[k]]))[0]
        exit_rate = -np.diag(G)
        if exit_rate.max() * dt > 1 + 1e-12:
            raise ValueError(
                f"dt = {dt:g} is too large: exit rate {exit_rate.max():.4g} times dt exceeds 1 "
                f"at t = {grid[k]:g}; the jump probabilities would not be probabilities"
            )
        step = np.eye(n) + dt * G
        y = _categorical_rows(np.cumsum(np.maximum(step, 0.0), axis=1)[x], rng.random(x.size))
        n_jumps += y != x
        x = y
        out[k + 1] = x
    return Population(times=grid, states=out, n_jumps=n_jumps)
