"""Benchmarks for :mod:`diffnotes.ctmc`."""

import numpy as np

from diffnotes import ctmc

from .harness import Case, benchmark


def per_chain_gillespie(Q, x0, T, grid, rng):
    """The straightforward version: one chain at a time, one jump at a time, in Python."""
    n = Q.shape[0]
    out = np.empty((grid.size, x0.size), dtype=np.int64)
    for i in range(x0.size):
        x, t, k = int(x0[i]), 0.0, 0
        while True:
            rate = -Q[x, x]
            t_next = t + rng.exponential(1.0 / rate) if rate > 0 else np.inf
            while k < grid.size and grid[k] < t_next:
                out[k, i] = x
                k += 1
            if t_next > T:
                break
            probs = np.where(np.arange(n) == x, 0.0, Q[x]) / rate
            x = int(rng.choice(n, p=probs))
            t = t_next
    return out


def _agree(a, b):
    """Both simulate the same law: fractions in each state agree within 5 standard errors."""
    fa = np.stack([(a == s).mean(axis=1) for s in range(3)], axis=1)
    fb = np.stack([(b.states == s).mean(axis=1) for s in range(3)], axis=1)
    se = np.sqrt(0.25 / a.shape[1]) * np.sqrt(2)
    assert np.all(np.abs(fa - fb) < 5 * se + 1e-12), "baseline and candidate disagree"


@benchmark
def population_simulation():
    Q = np.array([[-1.0, 0.6, 0.4], [0.5, -0.8, 0.3], [0.2, 0.7, -0.9]])
    N, T = 10_000, 5.0
    grid = np.linspace(0, T, 101)
    x0 = np.zeros(N, dtype=np.int64)
    return Case(
        name="ctmc.simulate, 10^4 chains, 3 states, T = 5 (vs per-chain loop)",
        baseline=lambda: per_chain_gillespie(Q, x0, T, grid, np.random.default_rng(0)),
        candidate=lambda: ctmc.simulate(Q, x0, T, rng=1, times=grid),
        target=50.0,
        check=_agree,
    )


@benchmark
def reverse_population_simulation():
    """Time-dependent reverse rates (thinning) against a fixed-step scheme fine enough to have a
    bias below the Monte Carlo noise: how much exactness costs, or saves."""
    Q = ctmc.uniform_generator(2, 1.0)
    p_data = np.array([0.9, 0.1])
    T, N, dt = 3.0, 10_000, 1e-3

    def marg(s):
        return ctmc.forward_marginals(Q, p_data, s)

    rates = ctmc.reverse_rates(Q, marg, T)
    x0 = ctmc.sample_states(marg([T])[0], N, 0)
    return Case(
        name="reverse chain, 10^4 chains: thinning vs fixed step dt = 1e-3",
        baseline=lambda: ctmc.simulate_fixed_step(rates, x0, T, dt, rng=2).states[-1],
        candidate=lambda: ctmc.simulate(rates, x0, T, rng=3).states[-1],
        target=1.0,
        repeats=3,
    )
