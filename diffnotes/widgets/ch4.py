"""Chapter 4 explorers: iterative proportional fitting and the Gaussian Schrodinger bridge."""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt

from ..plotting import STATE_COLORS
from ._static import Explorer, _slider


def _two_bump_grid(n=201):
    x = np.linspace(-4, 4, n)
    mu = np.exp(-0.5 * ((x + 1.5) / 0.5) ** 2) + 0.6 * np.exp(-0.5 * ((x - 1.5) / 0.4) ** 2)
    nu = np.exp(-0.5 * ((x - 0.5) / 0.9) ** 2)
    return x, mu / mu.sum(), nu / nu.sum()


def ipf_figure(sigma=0.7, n_iter=100):
    """The static Schrodinger bridge between a two-bump law and a skewed one on a 1-D grid,
    computed by ``n_iter`` IPF iterations (a row and a column rescaling each) at reference noise
    ``sigma``: the plan, its two marginals against the targets, and the marginal error per
    iteration."""
    from .. import bridge

    x, mu, nu = _two_bump_grid()
    res = bridge.static_bridge(x, mu, x, nu, sigma, n_iter=n_iter)
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(11, 3.3))
    ax0.pcolormesh(x, x, res.plan.T, cmap="Blues", shading="nearest")
    ax0.set_xlabel("x (law mu)")
    ax0.set_ylabel("y (law nu)")
    ax0.set_title(f"plan after {n_iter} iterations, sigma = {sigma:g}", fontsize=9)
    ax1.plot(x, mu, "k-", lw=1.5, label="mu")
    ax1.plot(x, res.plan.sum(axis=1), "--", color=STATE_COLORS[0], label="plan, first marginal")
    ax1.plot(x, nu, "-", color="0.5", lw=1.5, label="nu")
    ax1.plot(x, res.plan.sum(axis=0), "--", color=STATE_COLORS[1],
             label="plan, second marginal")
    ax1.legend(fontsize=7)
    ax1.set_title("marginals", fontsize=9)
    ax2.semilogy(np.arange(1, len(res.errors) + 1), np.maximum(res.errors, 1e-17), "o-", ms=2)
    ax2.set_xlabel("iteration (row + column rescaling)")
    ax2.set_title("L1 marginal error", fontsize=9)
    fig.tight_layout()
    return fig


def ipf_explorer():
    """Sliders on the reference noise and the number of IPF half-iterations."""
    return Explorer(ipf_figure, {
        "sigma": _slider(0.7, 0.2, 5.0, 0.05, "sigma", log=True),
        "n_iter": _slider(100, 1, 400, 1, "IPF iterations", integer=True),
    }, title="Iterative proportional fitting: the static Schrodinger bridge on a grid",
       grid={"sigma": [0.2, 0.35, 0.7, 2.0], "n_iter": [1, 10, 100, 400]})


def gaussian_bridge_figure(sigma=1.0, m1=2.0, s1=0.5, n_paths=12, seed=0):
    """The Schrodinger bridge between N(0, 1) and N(m1, s1^2) for the reference sigma W: mean and
    +-2 sd band of X_t, sampled bridge paths, and the endpoint correlation against sigma."""
    from .. import bridge

    gb = bridge.gaussian_bridge(0.0, 1.0, m1, s1**2, sigma)
    ts = np.linspace(0, 1, 101)
    mean = np.array([float(np.ravel(gb.marginal(t)[0])[0]) for t in ts])
    sd = np.array([float(np.sqrt(np.ravel(gb.marginal(t)[1])[0])) for t in ts])
    _, _, paths = gb.sample(n_paths, np.random.default_rng(seed), times=ts)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    ax0.fill_between(ts, mean - 2 * sd, mean + 2 * sd, color=STATE_COLORS[0], alpha=0.2,
                     label="mean +- 2 sd of X_t")
    ax0.plot(ts, mean, color=STATE_COLORS[0], lw=2)
    ax0.plot(ts, paths[:, :, 0], color="k", lw=0.6, alpha=0.7)
    ax0.set_xlabel("t")
    ax0.set_title(f"bridge N(0, 1) -> N({m1:g}, {s1:g}^2), sigma = {sigma:g}", fontsize=9)
    ax0.legend(fontsize=7, loc="upper left")
    sigmas = np.geomspace(0.05, 10, 60)
    corr = [float(np.ravel(bridge.gaussian_bridge(0.0, 1.0, m1, s1**2, s).cross_cov)[0]) / s1
            for s in sigmas]
    ax1.semilogx(sigmas, corr, "-", color=STATE_COLORS[1])
    ax1.axvline(sigma, color="0.5", lw=0.8)
    ax1.set_xlabel("sigma")
    ax1.set_ylabel("corr(X_0, X_1)")
    ax1.set_ylim(0, 1.05)
    ax1.set_title("sigma -> 0: optimal transport; sigma -> inf: independence", fontsize=9)
    fig.tight_layout()
    return fig


def gaussian_bridge_explorer():
    """Sliders on the reference noise and the target Gaussian."""
    return Explorer(gaussian_bridge_figure, {
        "sigma": _slider(1.0, 0.05, 10.0, 0.05, "sigma", log=True),
        "m1": _slider(2.0, -3.0, 3.0, 0.1, "mean of nu"),
        "s1": _slider(0.5, 0.1, 2.0, 0.05, "sd of nu"),
    }, title="The closed-form Schrodinger bridge between two Gaussians",
       grid={"sigma": [0.05, 0.2, 1.0, 3.0, 10.0], "m1": [-2.0, 0.0, 2.0]})

