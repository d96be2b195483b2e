"""Plotting helpers shared by the chapters and the widgets.

Every function draws on a Matplotlib ``Axes`` it is given (or creates one) and returns it, so
figures compose and notebooks stay at the level of the story.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["STATE_COLORS", "plot_histogram_vs_exact", "plot_population_vs_exact", "state_label"]

#: One colour per state, reused across the book so that "state A" always looks the same.
STATE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf")


def state_label(x: int, n: int) -> str:
    """``A``/``B`` for the two-state chain, ``0, 1, ...`` otherwise."""
    return "AB"[x] if n == 2 else str(x)


def plot_population_vs_exact(times, empirical, exact, *, ax=None, states=None, n_chains=None,
                             exact_times=None, title=None):
    """Fraction of a population in each state (steps) against the exact marginals (lines).

    Parameters
    ----------
    times : array of shape (m,)
        Observation times of the population.
    empirical : array of shape (m, n)
        Empirical marginals (``Population.marginals``).
    exact : array of shape (m, n) or (m2, n)
        Exact marginals, at ``times`` or at ``exact_times``.
    states : sequence of int, optional
        Which states to draw (default: all).
    n_chains : int, optional
        Population size, for the legend and a +-2 standard-error band around the exact curve.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    empirical = np.asarray(empirical)
    exact = np.asarray(exact)
    n = empirical.shape[1]
    exact_times = times if exact_times is None else exact_times
    for x in range(n) if states is None else states:
        c = STATE_COLORS[x % len(STATE_COLORS)]
        lab = state_label(x, n)
        ax.step(times, empirical[:, x], where="post", color=c, alpha=0.75, lw=1.2,
                label=f"fraction in {lab}" + (f" (N = {n_chains})" if n_chains else ""))
        ax.plot(exact_times, exact[:, x], color=c, lw=2.2, ls="--", label=f"exact P(X = {lab})")
        if n_chains:
            se = 2 * np.sqrt(np.clip(exact[:, x] * (1 - exact[:, x]), 0, None) / n_chains)
            ax.fill_between(exact_times, exact[:, x] - se, exact[:, x] + se, color=c, alpha=0.12,
                            lw=0)
    ax.set_xlabel("time t")
    ax.set_ylabel("probability")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_histogram_vs_exact(counts_or_freq, exact, *, ax=None, labels=("samples", "exact"),
                            title=None):
    """Bar chart of sample frequencies beside the exact distribution."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    freq = np.asarray(counts_or_freq, dtype=float)
    freq = freq / freq.sum()
    exact = np.asarray(exact, dtype=float)
    n = exact.size
    xs = np.arange(n)
    ax.bar(xs - 0.2, freq, width=0.4, color="#1f77b4", label=labels[0])
    ax.bar(xs + 0.2, exact, width=0.4, color="#bbbbbb", edgecolor="k", label=labels[1])
    ax.set_xticks(xs, [state_label(x, n) for x in xs])
    ax.set_ylabel("probability")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
