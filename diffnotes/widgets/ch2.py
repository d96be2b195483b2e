"""Chapter 2 explorers: the Ehrenfest process, its OU limit and its exact reverse rates."""

from __future__ import annotations

import functools

import numpy as np
from matplotlib import pyplot as plt

from .. import ehrenfest
from ..mixtures import bimodal_1d
from ..plotting import STATE_COLORS
from ._static import Explorer, _choice, _slider

OU_LIMIT_S = (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


@functools.lru_cache(maxsize=64)
def _ou_distances(t: float, x0: float) -> tuple[tuple, tuple]:
    """W1 and TV of the scaled Ehrenfest law to its OU limit for every S of ``OU_LIMIT_S`` (kept:
    the static frames draw many values of S at one ``t``)."""
    d = [ehrenfest.ou_distance(s, t, int(ehrenfest.to_lattice(x0, s, clip=True)))
         for s in OU_LIMIT_S]
    return tuple(v["w1"] for v in d), tuple(v["tv"] for v in d)


def ou_limit_figure(S=16, t=0.5, x0=2.0):
    """The scaled Ehrenfest law at time ``t`` from ``x0`` against its OU limit, and the distance
    between them as ``S`` grows (Wasserstein-1 and total variation to the binned Gaussian)."""
    from scipy.stats import norm

    n0 = int(ehrenfest.to_lattice(x0, S, clip=True))
    x = ehrenfest.scale(np.arange(S + 1), S)
    row = ehrenfest.transition_matrix(S, t, n0=n0)[0]
    alpha, sigma = ehrenfest.ou_coefficients(t)
    mu = float(alpha * x[n0])
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    delta = 2 / np.sqrt(S)
    ax0.bar(x, row / delta, width=delta * 0.9, color=STATE_COLORS[0], alpha=0.6,
            label=f"Ehrenfest, S = {S} (probability / spacing)")
    xx = np.linspace(-3.5, 3.5, 400)
    ax0.plot(xx, norm.pdf(xx, mu, sigma), "k--", lw=2, label="OU limit N(x0 e^-t, 1 - e^-2t)")
    ax0.set_xlim(-3.5, 3.5)
    ax0.set_xlabel("scaled state x")
    ax0.set_title(f"t = {t:g}, x0 = {x[n0]:.3g}", fontsize=10)
    ax0.legend(fontsize=7, loc="upper left")
    Ss = np.array(OU_LIMIT_S)
    w1, tv = (np.array(v) for v in _ou_distances(float(t), float(x0)))
    ax1.loglog(Ss, w1, "o-", color=STATE_COLORS[0], label="W1 to the Gaussian")
    ax1.loglog(Ss, tv, "s-", color=STATE_COLORS[1], label="TV to the binned Gaussian")
    ax1.loglog(Ss, w1[-1] * np.sqrt(Ss[-1] / Ss), "k:", lw=1, label="slope -1/2")
    ax1.loglog(Ss, tv[-1] * Ss[-1] / Ss, "k-.", lw=1, label="slope -1")
    ax1.axvline(S, color="0.5", lw=0.8)
    ax1.set_xlabel("S")
    ax1.set_title("distance to the OU limit", fontsize=10)
    ax1.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ou_limit_explorer():
    """Sliders on the number of balls ``S``, the time ``t`` and the scaled start ``x0``."""
    return Explorer(ou_limit_figure, {
        "S": _choice(OU_LIMIT_S, 16, "S", slider=True),
        "t": _slider(0.5, 0.02, 3.0, 0.02, "t"),
        "x0": _slider(2.0, -2.0, 2.0, 0.1, "x0"),
    }, title="The scaled Ehrenfest process and its Ornstein-Uhlenbeck limit",
       grid={"S": (4, 16, 64, 256), "t": [0.1, 0.5, 1.5]})


REVERSE_RATES_S = (10, 20, 50, 100, 200, 400, 800)


def reverse_rates_figure(S=100, t=0.3):
    """Exact reverse rates of the Ehrenfest process for bimodal data, rescaled as
    ``(ratio_up - 1) / delta`` and ``(1 - ratio_down) / delta``, against the OU score."""
    gm = bimodal_1d()
    p0 = ehrenfest.lattice_pmf(gm.log_prob, S)
    n = np.arange(S + 1)
    x = ehrenfest.scale(n, S)
    delta = 2 / np.sqrt(S)
    up, dn = ehrenfest.reverse_rates(n, t, S, p0)
    pt = ehrenfest.marginal(p0, t, S)
    score = ehrenfest.mixture_score(gm)(x[:, None], t)[:, 0]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    ax0.plot(x, p0 / delta, color="0.5", lw=1.5, label="data p0")
    ax0.plot(x, pt / delta, color=STATE_COLORS[0], lw=2, label=f"p_t, t = {t:g}")
    ax0.set_xlim(-4, 4)
    ax0.set_xlabel("scaled state x")
    ax0.set_title(f"S = {S}: laws (probability / spacing)", fontsize=10)
    ax0.legend(fontsize=8)
    keep = (pt > 1e-6 * pt.max())
    with np.errstate(divide="ignore", invalid="ignore"):
        h_up = (up / ((n + 1) / 2) - 1) / delta
        h_dn = (1 - dn / ((S - n + 1) / 2)) / delta
    ax1.plot(x[keep & (n < S)], h_up[keep & (n < S)], "^", ms=3, color=STATE_COLORS[1],
             label="exact (ratio_up - 1) / delta")
    ax1.plot(x[keep & (n > 0)], h_dn[keep & (n > 0)], "v", ms=3, color=STATE_COLORS[2],
             label="exact (1 - ratio_down) / delta")
    ax1.plot(x[keep], score[keep], "k-", lw=1.5, label="OU score of the mixture")
    ax1.set_xlabel("scaled state x")
    ax1.set_title("reverse rates, rescaled, against the score", fontsize=10)
    ax1.legend(fontsize=7)
    fig.tight_layout()
    return fig


def reverse_rates_explorer():
    """Sliders on ``S`` and the time ``t`` of the exact reverse rates."""
    return Explorer(reverse_rates_figure, {
        "S": _choice(REVERSE_RATES_S, 100, "S", slider=True),
        "t": _slider(0.3, 0.02, 3.0, 0.02, "t"),
    }, title="Exact reverse rates against 1 +- delta * score",
       grid={"S": (10, 50, 100, 400), "t": [0.02, 0.1, 0.3, 1.0, 3.0]})

