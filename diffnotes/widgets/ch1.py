"""Chapter 1 explorers: two-state chains, the fixed-step scheme, noising and denoising, n states."""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.ticker import MaxNLocator

from .. import ctmc
from ..plotting import STATE_COLORS, plot_population_vs_exact
from ._static import Explorer, _choice, _slider


def two_state_figure(u_ab=1.0, u_ba=0.5, p0_a=1.0, T=6.0, n_chains=100, seed=0):
    """A population of ``n_chains`` two-state chains, simulated exactly, against the KFE."""
    Q = ctmc.two_state_generator(u_ab, u_ba)
    rng = np.random.default_rng(seed)
    x0 = ctmc.sample_states([p0_a, 1 - p0_a], n_chains, rng)
    pop = ctmc.simulate(Q, x0, T, rng=rng)
    exact = ctmc.two_state_marginals(u_ab, u_ba, p0_a, pop.times)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    plot_population_vs_exact(pop.times, pop.marginals(2), exact, ax=ax, states=[0],
                             n_chains=n_chains)
    if u_ab + u_ba > 0:
        ax.axhline(u_ba / (u_ab + u_ba), color="k", lw=0.8, ls=":", label="equilibrium")
        ax.legend(fontsize=8, loc="best")
    ax.set_title(f"u_AB = {u_ab:.2g}, u_BA = {u_ba:.2g}, gap = u_AB + u_BA = {u_ab + u_ba:.2g}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def two_state_explorer():
    """Sliders on the rates, the initial law, the horizon ``T`` and the population size ``N``."""
    return Explorer(two_state_figure, {
        "u_ab": _slider(1.0, 0.0, 5.0, 0.05, "u_AB"),
        "u_ba": _slider(0.5, 0.0, 5.0, 0.05, "u_BA"),
        "p0_a": _slider(1.0, 0.0, 1.0, 0.05, "P(X0 = A)"),
        "T": _slider(6.0, 0.5, 20.0, 0.5, "T"),
        "n_chains": _slider(100, 10, 5000, 10, "N", integer=True),
        "seed": _slider(0, 0, 20, 1, "seed", integer=True),
    }, title="A population of two-state chains against the Kolmogorov forward equation",
       grid={"u_ab": [0.25, 0.5, 1.0, 2.0, 4.0], "u_ba": [0.1, 0.5, 1.0, 2.0]})


FIXED_STEP_DTS = (0.5, 0.25, 0.2, 0.1, 0.05, 0.02, 0.01)


def fixed_step_figure(u_ab=1.0, u_ba=0.5, dt=0.25, T=5.0, n_chains=2000, seed=0):
    """The naive fixed-step scheme against the exact law: marginals, and the bias against dt."""
    Q = ctmc.two_state_generator(u_ab, u_ba)
    exact_t = np.linspace(0, T, 400)
    exact = ctmc.two_state_marginals(u_ab, u_ba, 1.0, exact_t)
    pop = ctmc.simulate_fixed_step(Q, np.zeros(n_chains, dtype=int), T, dt, rng=seed)
    # The scheme's own exact law: p_{k+1} = p_k (I + dt Q).
    step = np.eye(2) + dt * Q
    p_scheme = np.array([np.linalg.matrix_power(step, k)[0] for k in range(pop.times.size)])
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax0.plot(exact_t, exact[:, 0], "--", color=STATE_COLORS[0], lw=2.2, label="exact P(X = A)")
    ax0.step(pop.times, pop.marginals(2)[:, 0], where="post", color="0.4", lw=1,
             label=f"fixed-step population (N = {n_chains})")
    ax0.plot(pop.times, p_scheme[:, 0], "o", ms=3, color=STATE_COLORS[1],
             label="fixed-step law p0 (I + dt Q)^k")
    ax0.set_xlabel("time t")
    ax0.set_ylabel("probability")
    ax0.legend(fontsize=8)
    ax0.set_title(f"dt = {dt:g}", fontsize=10)
    dts = np.array([d for d in FIXED_STEP_DTS if d * max(u_ab, u_ba) <= 1])
    errs = []
    for d in dts:
        k = np.arange(int(round(T / d)) + 1)
        pk = np.array([np.linalg.matrix_power(np.eye(2) + d * Q, j)[0, 0] for j in k])
        errs.append(np.max(np.abs(pk - ctmc.two_state_marginals(u_ab, u_ba, 1.0, k * d)[:, 0])))
    ax1.loglog(dts, np.maximum(errs, 1e-16), "o-", label="max over t of |bias of P(X_t = A)|")
    ax1.loglog(dts, dts * errs[-1] / dts[-1], "k:", label="slope 1 (error ~ dt)")
    ax1.axvline(dt, color=STATE_COLORS[1], lw=0.8)
    ax1.set_xlabel("step size dt")
    ax1.set_title("bias of the fixed-step law on [0, T]", fontsize=10)
    ax1.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fixed_step_explorer():
    """Sliders on the rates and the step size of the naive scheme."""
    return Explorer(fixed_step_figure, {
        "u_ab": _slider(1.0, 0.1, 2.0, 0.1, "u_AB"),
        "u_ba": _slider(0.5, 0.1, 2.0, 0.1, "u_BA"),
        "dt": _choice(FIXED_STEP_DTS, 0.25, "dt", slider=True),
    }, title="The fixed-step scheme and its bias",
       grid={"dt": (0.5, 0.25, 0.1, 0.05, 0.01), "u_ab": [0.5, 1.0, 2.0]})


def denoising_figure(p_data_a=1.0, C=1.0, T=3.0, n_chains=100, eps=0.01, seed=0):
    """Classical sampler, forward noising and reverse denoising, each against its exact law.

    The reverse chain runs with exact reverse rates on ``[0, T - eps]`` and then takes one exact
    reverse step (:func:`diffnotes.ctmc.reverse_kernel`) over the last ``eps``.
    """
    rng = np.random.default_rng(seed)
    p_data = np.array([p_data_a, 1 - p_data_a])
    noise = np.array([0.5, 0.5])
    grid = np.linspace(0, T, 201)
    # classical: equilibrium = data, started from noise
    Qc = ctmc.independence_generator(p_data, C)
    pop_c = ctmc.simulate(Qc, ctmc.sample_states(noise, n_chains, rng), T, rng=rng, times=grid)
    # forward noising from data
    Qf = ctmc.uniform_generator(2, C)
    pop_f = ctmc.simulate(Qf, ctmc.sample_states(p_data, n_chains, rng), T, rng=rng, times=grid)

    def marg(s):
        return ctmc.forward_marginals(Qf, p_data, s)

    # reverse from noise on [0, T - eps], then the exact last step
    rates = ctmc.reverse_rates(Qf, marg, T)
    grid_r = np.linspace(0, T - eps, 201)
    pop_r = ctmc.simulate(rates, ctmc.sample_states(noise, n_chains, rng), T - eps, rng=rng,
                          times=grid_r)
    K = ctmc.reverse_kernel(Qf, p_data, eps)
    x_end = ctmc.sample_transitions(K, pop_r.states[-1], rng)
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.3), sharey=True)
    plot_population_vs_exact(grid, pop_c.marginals(2), ctmc.forward_marginals(Qc, noise, grid),
                             ax=axes[0], states=[0], n_chains=n_chains,
                             title="classical: equilibrium = data")
    plot_population_vs_exact(grid, pop_f.marginals(2), marg(grid), ax=axes[1], states=[0],
                             n_chains=n_chains, title="forward: data to noise")
    plot_population_vs_exact(grid_r, pop_r.marginals(2), marg(T - grid_r), ax=axes[2],
                             states=[0], n_chains=n_chains, title="reverse: noise to data")
    axes[2].plot([T], [np.mean(x_end == 0)], "s", color=STATE_COLORS[0], ms=7,
                 label="after the exact last step")
    axes[2].axhline(p_data_a, color="k", ls=":", lw=0.8, label="p_data(A)")
    axes[2].legend(fontsize=7, loc="best")
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def denoising_explorer():
    """Sliders on the data distribution, the rate scale C, the horizon T, N and eps."""
    return Explorer(denoising_figure, {
        "p_data_a": _slider(1.0, 0.0, 1.0, 0.05, "p_data(A)"),
        "C": _slider(1.0, 0.2, 5.0, 0.1, "C"),
        "T": _slider(3.0, 0.5, 10.0, 0.5, "T"),
        "n_chains": _slider(100, 10, 2000, 10, "N", integer=True),
        "eps": _slider(0.01, 0.001, 0.3, 0.001, "eps", log=False),
        "seed": _slider(0, 0, 20, 1, "seed", integer=True),
    }, title="Classical sampler versus forward noising and reverse denoising",
       grid={"p_data_a": [0.0, 0.25, 0.5, 0.75, 1.0], "C": [0.5, 1.0, 3.0]})


def n_state_figure(n=13, beta=3.0, C=1.0):
    """Spectral gaps of classical chains with equilibrium ``two_peaks(n, beta)`` against the
    noising chains, for global (complete graph) and local (path) moves, as ``beta`` grows."""
    betas = np.linspace(0, 8, 33)
    A = ctmc.path_adjacency(n)
    gaps = {"classical, global moves (independence)": [], "classical, local moves (Metropolis)":
            []}
    for b in betas:
        p = ctmc.two_peaks(n, b)
        gaps["classical, global moves (independence)"].append(
            ctmc.spectral_gap(ctmc.independence_generator(p, C)))
        gaps["classical, local moves (Metropolis)"].append(
            ctmc.spectral_gap(ctmc.metropolis_generator(p, A, C)))
    uni = np.full(n, 1.0 / n)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.4))
    p = ctmc.two_peaks(n, beta)
    ax0.bar(np.arange(n), p, color=STATE_COLORS[0])
    ax0.set_title(f"p_data = two_peaks(n = {n}, beta = {beta:g})", fontsize=10)
    ax0.set_xlabel("state")
    ax0.xaxis.set_major_locator(MaxNLocator(integer=True))
    for (lab, g), c in zip(gaps.items(), STATE_COLORS[:2], strict=True):
        ax1.semilogy(betas, g, color=c, lw=2, label=lab)
    ax1.axhline(ctmc.spectral_gap(ctmc.uniform_generator(n, C)), color=STATE_COLORS[0], ls="--",
                label="noising, global moves (uniform)")
    ax1.axhline(ctmc.spectral_gap(ctmc.metropolis_generator(uni, A, C)), color=STATE_COLORS[1],
                ls="--", label="noising, local moves (random walk)")
    ax1.axvline(beta, color="k", lw=0.8)
    ax1.set_xlabel("beta (how peaked p_data is)")
    ax1.set_ylabel("spectral gap")
    ax1.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def n_state_explorer():
    """Sliders on the number of states and on how peaked the data distribution is."""
    return Explorer(n_state_figure, {
        "n": _slider(13, 3, 41, 1, "n states", integer=True),
        "beta": _slider(3.0, 0.0, 8.0, 0.25, "beta"),
        "C": _slider(1.0, 0.1, 5.0, 0.1, "C"),
    }, title="Spectral gaps: classical chains against noising chains",
       grid={"beta": [0.0, 1.0, 2.0, 3.0, 5.0, 8.0], "n": [5, 13, 25]})

