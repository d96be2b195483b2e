r"""Samplers of the reverse Ehrenfest process (part of :mod:`diffnotes.ehrenfest`, Chapter 2):
exact simulation with thinning (:func:`sample_reverse_exact`), tau-leaping
(:func:`sample_reverse_tau`) and their result :class:`ReverseRun`. NumPy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._checks import as_rng, positive_float, positive_int
from ._process import _check_S, _states

__all__ = ["ReverseRun", "sample_reverse_exact", "sample_reverse_tau"]


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
