"""Interactive figures for the notebooks, which still render as static figures in the book.

An :class:`Explorer` is a row of controls (ipywidgets) above a figure that a *figure function*
redraws whenever a control moves. In a live notebook (``make lab``) the reader drags sliders.
In the rendered HTML no widget JavaScript runs, so the explorer's display data also carries a
PNG of the figure at the default settings; the book is configured to show that PNG.

Each chapter's explorers are built by small functions here (``two_state_explorer`` ...), and
:data:`EXPLORERS` lists them all so that the tests can drive every slider to its extremes.
Figure functions are plain functions of keyword arguments returning a Matplotlib ``Figure``;
they can be called directly, without ipywidgets.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np

from . import ctmc, ehrenfest
from . import sde as sde_mod
from .mixtures import bimodal_1d, moons_mixture
from .plotting import STATE_COLORS, plot_population_vs_exact

__all__ = [
    "EXPLORERS",
    "Explorer",
    "denoising_explorer",
    "denoising_figure",
    "fixed_step_explorer",
    "forward_sde_explorer",
    "gaussian_bridge_explorer",
    "gaussian_bridge_figure",
    "image_sampler_explorer",
    "image_sampler_figure",
    "pixel_noising_explorer",
    "pixel_noising_figure",
    "ipf_explorer",
    "ipf_figure",
    "forward_sde_figure",
    "make_sde",
    "sampler_explorer",
    "sampler_figure",
    "score_field_explorer",
    "score_field_figure",
    "ou_limit_explorer",
    "ou_limit_figure",
    "reverse_rates_explorer",
    "reverse_rates_figure",
    "fixed_step_figure",
    "n_state_explorer",
    "n_state_figure",
    "sweep",
    "two_state_explorer",
    "two_state_figure",
]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


try:  # ipywidgets is an optional dependency: the figure functions work without it.
    import ipywidgets as _w

    _Base = _w.VBox
except ImportError:  # pragma: no cover - exercised only without ipywidgets
    _w = None
    _Base = object


class Explorer(_Base):
    """Controls above a figure that ``figure(**values)`` redraws when a control changes.

    Parameters
    ----------
    figure : callable
        ``figure(**params) -> matplotlib.figure.Figure``.
    controls : dict of str to ipywidgets.ValueWidget
        One control per keyword argument of ``figure``; their initial values are the defaults
        shown in the static book.
    """

    def __init__(self, figure: Callable, controls: dict, *, title: str = ""):
        if _w is None:  # pragma: no cover
            raise ImportError("Explorer needs ipywidgets: pip install ipywidgets")
        self.figure = figure
        self.controls = dict(controls)
        self.output = _w.Output()
        self.static_png = b""
        header = [_w.HTML(f"<b>{title}</b>")] if title else []
        rows = [_w.HBox(list(self.controls.values())[i:i + 3])
                for i in range(0, len(self.controls), 3)]
        super().__init__(header + rows + [self.output])
        for c in self.controls.values():
            c.observe(self._redraw, names="value")
        self._redraw()
        self.static_png = self._last_png

    @property
    def values(self) -> dict:
        """Current control values, as keyword arguments of ``figure``."""
        return {k: c.value for k, c in self.controls.items()}

    def _redraw(self, change=None):
        fig = self.figure(**self.values)
        self._last_png = _png(fig)
        plt.close(fig)
        self.output.outputs = ({
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(self._last_png).decode(),
                     "text/plain": "<Figure>"},
            "metadata": {},
        },)

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        # A static copy at the default settings, for renderers without a widget manager.
        bundle["image/png"] = base64.b64encode(self.static_png).decode()
        return bundle


def sweep(figure: Callable, name: str, values, *, interval_ms: int = 400, **fixed):
    """A parameter sweep as a self-contained JavaScript animation (``Animation.to_jshtml``).

    Draws ``figure(**fixed, name=value)`` for each value and plays the frames with a slider and
    play buttons that work in the static HTML book too (no kernel, no CDN).

    Parameters
    ----------
    figure : callable
        A figure function of this module, such as :func:`n_state_figure`.
    name : str
        The keyword argument of ``figure`` to sweep.
    values : sequence
        The values it takes, one frame each (at most 60).
    interval_ms : int
        Time between frames.
    **fixed
        Other keyword arguments of ``figure``.

    Returns
    -------
    IPython.display.HTML
    """
    from IPython.display import HTML
    from matplotlib import animation
    from matplotlib.image import imread

    values = list(values)
    if not 1 <= len(values) <= 60:
        raise ValueError(f"values must hold between 1 and 60 frames, got {len(values)}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be the name of a keyword argument, got {name!r}")
    frames = []
    for v in values:
        fig = figure(**{**fixed, name: v})
        frames.append(imread(io.BytesIO(_png(fig)), format="png"))
        plt.close(fig)
    h, w = max(f.shape[0] for f in frames), max(f.shape[1] for f in frames)
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    image = ax.imshow(frames[0])

    def show(k):
        image.set_data(frames[k])
        return (image,)

    anim = animation.FuncAnimation(fig, show, frames=len(frames), interval=interval_ms,
                                   blit=True)
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return HTML(_offline_controls(html))


# Matplotlib's animation controls draw Font Awesome icons loaded from a CDN; offline readers
# (and the book's headless-browser check) would get a failed request and empty buttons.
_ICONS = {"fa fa-minus": "&minus;", "fa fa-fast-backward": "|&#9664;&#9664;",
          "fa fa-step-backward": "&#9664;|", "fa fa-play fa-flip-horizontal": "&#9664;",
          "fa fa-pause": "&#8214;", "fa fa-play": "&#9654;", "fa fa-step-forward": "|&#9654;",
          "fa fa-fast-forward": "&#9654;&#9654;|", "fa fa-plus": "+"}


def _offline_controls(html: str) -> str:
    """Drop the CDN stylesheet of an animation's HTML and draw its buttons with plain text."""
    html = re.sub(r'<link rel="stylesheet"\s*href="https?://[^"]*font-awesome[^"]*">', "", html)
    for cls, glyph in _ICONS.items():
        html = html.replace(f'<i class="{cls}"></i>', glyph)
    return html


def _slider(value, lo, hi, step, description, *, log=False, integer=False):
    if log:
        return _w.FloatLogSlider(value=value, base=10, min=np.log10(lo), max=np.log10(hi),
                                 step=step, description=description, continuous_update=False)
    cls = _w.IntSlider if integer else _w.FloatSlider
    return cls(value=value, min=lo, max=hi, step=step, description=description,
               continuous_update=False)


# --------------------------------------------------------------------------------------------
# Chapter 1
# --------------------------------------------------------------------------------------------
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
    }, title="A population of two-state chains against the Kolmogorov forward equation")


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
        "dt": _w.SelectionSlider(options=list(FIXED_STEP_DTS), value=0.25, description="dt",
                                 continuous_update=False),
    }, title="The fixed-step scheme and its bias")


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
    }, title="Classical sampler versus forward noising and reverse denoising")


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
    }, title="Spectral gaps: classical chains against noising chains")


# --------------------------------------------------------------------------------------------
# Chapter 2
# --------------------------------------------------------------------------------------------
OU_LIMIT_S = (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


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
    d = [ehrenfest.ou_distance(s, t, int(ehrenfest.to_lattice(x0, s, clip=True))) for s in Ss]
    w1 = np.array([v["w1"] for v in d])
    tv = np.array([v["tv"] for v in d])
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
        "S": _w.SelectionSlider(options=list(OU_LIMIT_S), value=16, description="S",
                                continuous_update=False),
        "t": _slider(0.5, 0.02, 3.0, 0.02, "t"),
        "x0": _slider(2.0, -2.0, 2.0, 0.1, "x0"),
    }, title="The scaled Ehrenfest process and its Ornstein-Uhlenbeck limit")


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
        "S": _w.SelectionSlider(options=[10, 20, 50, 100, 200, 400, 800], value=100,
                                description="S", continuous_update=False),
        "t": _slider(0.3, 0.02, 3.0, 0.02, "t"),
    }, title="Exact reverse rates against 1 +- delta * score")


# --------------------------------------------------------------------------------------------
# Chapter 3
# --------------------------------------------------------------------------------------------
SDE_KINDS = ("VP", "sub-VP", "VE", "OU")


def make_sde(kind="VP", beta_max=20.0, sigma_max=10.0):
    """The forward SDE a Chapter 3 explorer draws: ``"VP"``, ``"sub-VP"`` (``beta_min = 0.1``
    and ``beta_max``), ``"VE"`` (``sigma_min = 0.01`` and ``sigma_max``) or ``"OU"`` (rate 1,
    ``T = 5``)."""
    if kind == "VP":
        return sde_mod.VPSDE(0.1, beta_max)
    if kind == "sub-VP":
        return sde_mod.SubVPSDE(0.1, beta_max)
    if kind == "VE":
        return sde_mod.VESDE(0.01, sigma_max)
    if kind == "OU":
        return sde_mod.OU()
    raise ValueError(f"kind must be one of {SDE_KINDS}, got {kind!r}")


def forward_sde_figure(kind="VP", u=0.3, beta_max=20.0, sigma_max=10.0, seed=0):
    """The 1-D two-bump data pushed through a forward SDE: the exact density ``p_t(x)`` over
    ``[0, T]`` with Euler-Maruyama paths on top, and at ``t = u T`` the exact density against
    a histogram of 4000 simulated points and the prior."""
    from scipy.stats import norm

    gm = bimodal_1d()
    sde = make_sde(kind, beta_max, sigma_max)
    t = u * sde.T
    lim = max(4.0, 3.2 * sde.prior_std)
    xs = np.linspace(-lim, lim, 300)
    ts = np.linspace(0, sde.T, 160)[1:]
    dens = np.stack([np.exp(gm.log_prob(xs, s, sde)) for s in ts], axis=1)       # (x, t)
    rng = np.random.default_rng(seed)
    times, path = sde.simulate(gm.sample(20, rng)[:, None], rng, n_steps=400, record=200)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.5))
    ax0.imshow(dens / dens.max(axis=0, keepdims=True), origin="lower", aspect="auto",
               extent=(0, sde.T, -lim, lim), cmap="Blues")
    ax0.plot(times, path[:, :, 0], color="k", lw=0.5, alpha=0.6)
    ax0.axvline(t, color=STATE_COLORS[1], lw=1.2)
    ax0.set_xlabel("time t")
    ax0.set_ylabel("x")
    ax0.set_title(f"{sde}\np_t(x) (each column scaled to max 1), 20 EM paths", fontsize=9)
    x_t = (gm.sample(4000, rng)[:, None] if t == 0
           else sde.simulate(gm.sample(4000, rng)[:, None], rng, t_end=t, n_steps=200))
    alpha, sigma = sde.alpha_sigma(t)
    ax1.hist(x_t[:, 0], bins=80, range=(-lim, lim), density=True, color=STATE_COLORS[0],
             alpha=0.45, label="Euler-Maruyama, 4000 points")
    ax1.plot(xs, np.exp(gm.log_prob(xs, t, sde)) if t > 0 else np.exp(gm.log_prob(xs)), "k-",
             lw=1.8, label="exact p_t (a diffused mixture)")
    ax1.plot(xs, norm.pdf(xs, 0, sde.prior_std), "--", color=STATE_COLORS[1], lw=1.2,
             label=f"prior N(0, {sde.prior_std:g}^2)")
    ax1.set_xlabel("x")
    ax1.set_title(f"t = {t:.3g}: alpha(t) = {alpha:.3g}, sigma(t) = {sigma:.3g}", fontsize=9)
    ax1.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def forward_sde_explorer():
    """Controls on the SDE, the time (as a fraction ``u`` of ``T``) and the schedule's end."""
    return Explorer(forward_sde_figure, {
        "kind": _w.Dropdown(options=list(SDE_KINDS), value="VP", description="SDE"),
        "u": _slider(0.3, 0.0, 1.0, 0.02, "t / T"),
        "beta_max": _slider(20.0, 1.0, 40.0, 1.0, "beta_max"),
        "sigma_max": _slider(10.0, 1.0, 50.0, 1.0, "sigma_max"),
    }, title="Forward SDEs: the exact marginals of a diffused mixture and Euler-Maruyama")


def score_field_figure(t=0.03, kind="VP", n=1000, seed=0):
    """The exact score of the diffused two-moons mixture at time ``t`` (arrows show
    ``sigma(t) * score``, the expected noise with its sign flipped), and the reverse-time SDE
    run with that score from the prior down to ``t``, against exact draws from ``p_t``."""
    gm = moons_mixture()
    sde = make_sde(kind)
    alpha, sigma = sde.alpha_sigma(t)
    lim = max(2.2, 1.6 * alpha + 3 * sigma)
    g = np.linspace(-lim, lim, 23)
    X, Y = np.meshgrid(g, g)
    pts = np.stack([X.ravel(), Y.ravel()], axis=1)
    s = gm.score(pts, t, sde) * sigma
    gf = np.linspace(-lim, lim, 120)
    XF, YF = np.meshgrid(gf, gf)
    logp = gm.log_prob(np.stack([XF.ravel(), YF.ravel()], axis=1), t, sde).reshape(XF.shape)
    rng = np.random.default_rng(seed)
    x = sde.prior_sample(n, 2, rng)
    if t < sde.T:                           # at t = T the reverse process has not moved yet
        x = sde_mod.euler_maruyama(sde, gm.score_function(sde), x, rng, n_steps=200,
                                   t_min=t).x
    exact = gm.at(t, sde).sample(n, rng)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 4.2))
    ax0.contourf(XF, YF, np.exp(logp), levels=12, cmap="Blues")
    length = np.median(np.hypot(s[:, 0], s[:, 1]))       # the median arrow spans 0.8 cells
    ax0.quiver(X, Y, s[:, 0], s[:, 1], color="k", angles="xy", scale_units="xy",
               scale=length / (0.8 * (g[1] - g[0])), width=0.004)
    ax0.set_title(f"{sde}, t = {t:.3g}: p_t and sigma(t) * score", fontsize=9)
    ax1.scatter(exact[:, 0], exact[:, 1], s=3, color="0.6", label="exact draws from p_t")
    ax1.scatter(x[:, 0], x[:, 1], s=3, color=STATE_COLORS[1],
                label="reverse SDE from the prior (200 steps)")
    ax1.set_title(f"reverse-time SDE with the exact score, stopped at t = {t:.3g}", fontsize=9)
    ax1.legend(fontsize=7, loc="upper right", markerscale=3)
    for ax in (ax0, ax1):
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def score_field_explorer():
    """Controls on the time and the SDE of the exact score field."""
    return Explorer(score_field_figure, {
        "t": _slider(0.03, 0.001, 1.0, 0.05, "t", log=True),
        "kind": _w.Dropdown(options=["VP", "sub-VP", "VE"], value="VP", description="SDE"),
    }, title="The exact score field and the reverse-time SDE")


SAMPLERS = ("Euler-Maruyama", "predictor-corrector", "probability-flow ODE")


def sampler_figure(method="Euler-Maruyama", n_steps=50, rtol=1e-3, n=2000, seed=0):
    """One sampler with the exact two-moons score under the VP SDE: its samples against exact
    draws, and its sliced Wasserstein-2 distance against the floor of two exact samples.
    ``n_steps`` sets the Euler-Maruyama and predictor-corrector steps, ``rtol`` the ODE solver's
    tolerance."""
    from .metrics import sliced_wasserstein2

    gm = moons_mixture()
    sde = sde_mod.VPSDE()
    score = gm.score_function(sde)
    rng = np.random.default_rng(seed)
    x_T = sde.prior_sample(n, 2, rng)
    if method == "Euler-Maruyama":
        run = sde_mod.euler_maruyama(sde, score, x_T, rng, n_steps=n_steps)
        setting = f"{n_steps} steps"
    elif method == "predictor-corrector":
        run = sde_mod.predictor_corrector(sde, score, x_T, rng, n_steps=n_steps)
        setting = f"{n_steps} steps + 1 corrector each"
    elif method == "probability-flow ODE":
        run = sde_mod.probability_flow(sde, score, x_T, rtol=rtol, atol=rtol)
        setting = f"RK45, rtol = atol = {rtol:g}"
    else:
        raise ValueError(f"method must be one of {SAMPLERS}, got {method!r}")
    ref, ref2 = gm.sample(n, rng), gm.sample(n, rng)
    d = sliced_wasserstein2(run.x, ref, rng=seed)
    floor = sliced_wasserstein2(ref2, ref, rng=seed)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.scatter(ref[:, 0], ref[:, 1], s=3, color="0.65", label="exact draws")
    ax.scatter(run.x[:, 0], run.x[:, 1], s=3, color=STATE_COLORS[0], label=method)
    ax.set_aspect("equal")
    ax.set_xlim(-1.9, 1.9)
    ax.set_ylim(-1.3, 1.3)
    ax.legend(fontsize=7, loc="lower left", markerscale=3)
    ax.set_title(f"{setting}: NFE = {run.nfe}\nsliced W2 = {d:.3f} (floor of two exact "
                 f"samples: {floor:.3f})", fontsize=9)
    fig.tight_layout()
    return fig


def sampler_explorer():
    """Controls on the sampler and its cost."""
    return Explorer(sampler_figure, {
        "method": _w.Dropdown(options=list(SAMPLERS), value="Euler-Maruyama",
                              description="sampler"),
        "n_steps": _slider(50, 2, 1000, 1, "steps", integer=True),
        "rtol": _slider(1e-3, 1e-6, 1e-1, 0.25, "ODE rtol", log=True),
    }, title="Samplers with the exact score: quality against cost")


# --------------------------------------------------------------------------------------------
# Chapter 4
# --------------------------------------------------------------------------------------------
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
    from . import bridge

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
    }, title="Iterative proportional fitting: the static Schrodinger bridge on a grid")


def gaussian_bridge_figure(sigma=1.0, m1=2.0, s1=0.5, n_paths=12, seed=0):
    """The Schrodinger bridge between N(0, 1) and N(m1, s1^2) for the reference sigma W: mean and
    +-2 sd band of X_t, sampled bridge paths, and the endpoint correlation against sigma."""
    from . import bridge

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
    }, title="The closed-form Schrodinger bridge between two Gaussians")


# --------------------------------------------------------------------------------------------
# Chapter 5
# --------------------------------------------------------------------------------------------
def pixel_noising_figure(tau=0.3, S=255, n_draws=300, seed=0):
    r"""One 8x8 digit, requantised to ``S + 1`` grey levels, noised two ways at the VP time
    ``tau``: by the Ehrenfest process (exact binomial draws) at the matched clock
    :math:`\theta(\tau)` of :func:`diffnotes.images.sampling.ehrenfest_clock`, and by the VP
    SDE, both shown in the Ehrenfest scale (the scaled state :math:`x` and
    :math:`(b/\sigma)\,y_\tau`, on one colour scale). Right: over ``n_draws`` noisings, the law
    of the two across all pixels, which coincide as ``S`` grows (the OU limit)."""
    from .data import DIGITS_LEVELS, load_digits

    S = int(S)
    img = np.rint(load_digits()[0][0].astype(float) * S / DIGITS_LEVELS).astype(np.int64)
    sde = sde_mod.VPSDE()
    tau = float(tau)
    alpha, sigma = (float(v) for v in sde.alpha_sigma(tau))
    theta = 0.5 * np.log1p(S * (sigma / alpha) ** 2)
    b = np.sqrt(-np.expm1(-2 * theta))
    rng = np.random.default_rng(seed)
    n_t = ehrenfest.sample_forward(np.broadcast_to(img, (n_draws, 8, 8)), theta, S, rng)
    y = alpha * (2 * img / S - 1) + sigma * rng.standard_normal((n_draws, 8, 8))
    x_e = ehrenfest.scale(n_t, S)
    x_c = b / sigma * y
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.9),
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.8]})
    top = float(max(3.0, np.abs(x_e[0]).max(), np.abs(x_c[0]).max()))
    for ax, picture, title, (lo, hi) in [
            (axes[0], img, f"clean digit, S = {S}", (0, S)),
            (axes[1], x_e[0], f"Ehrenfest x, theta = {theta:.3g}", (-top, top)),
            (axes[2], x_c[0], f"(b / sigma) y, VP, tau = {tau:.3g}", (-top, top))]:
        ax.pcolormesh(picture[::-1], cmap="gray", vmin=lo, vmax=hi)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(title, fontsize=8)
    bins = np.linspace(min(x_e.min(), x_c.min()), max(x_e.max(), x_c.max()), 60)
    axes[3].hist(x_e.ravel(), bins=bins, density=True, histtype="step", lw=1.5,
                 label="Ehrenfest, scaled state x")
    axes[3].hist(x_c.ravel(), bins=bins, density=True, histtype="step", lw=1.5,
                 label="(b / sigma) y, VP SDE")
    axes[3].set_title("all 64 pixels over the draws", fontsize=8)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    return fig


def pixel_noising_explorer():
    """Sliders on the VP time and the number of grey levels."""
    return Explorer(pixel_noising_figure, {
        "tau": _slider(0.3, 0.01, 1.0, 0.01, "tau"),
        "S": _slider(255, 1, 1023, 1, "levels S", integer=True),
    }, title="Pixels noised by the Ehrenfest process and by the VP SDE at the matched clock")


_PRETRAINED: dict = {}


def _pretrained_cpu():
    if "mnist8k" not in _PRETRAINED:
        from . import images

        _PRETRAINED["mnist8k"] = images.pretrained("mnist8k", device="cpu")
    return _PRETRAINED["mnist8k"]


def image_sampler_figure(sampler="heun", n_steps=9, seed=0, n=9):
    """Nine MNIST digits from the network shipped with the package
    (:func:`diffnotes.images.pretrained`), drawn by ``sampler`` with ``n_steps`` steps."""
    from . import images
    from .utils import torch_threads

    model, config, _ = _pretrained_cpu()
    with torch_threads(1):
        run = images.sample(model, config, n, sampler=sampler, n_steps=int(n_steps),
                            seed=int(seed))
    fig, ax = plt.subplots(figsize=(3.6, 3.9))
    images.plotting.show_grid(ax, run.pixels, config.levels, ncol=3,
                              title=f"{sampler}, {run.nfe} NFE, {run.seconds:.1f} s")
    return fig


def image_sampler_explorer():
    """Controls on the sampler and its number of steps (the shipped MNIST network)."""
    return Explorer(image_sampler_figure, {
        "sampler": _w.Dropdown(options=["em", "heun", "ehrenfest"], value="heun",
                               description="sampler"),
        "n_steps": _slider(9, 2, 100, 1, "steps", integer=True),
        "seed": _slider(0, 0, 20, 1, "seed", integer=True),
    }, title="One network, three samplers: MNIST digits against the number of steps")


#: Every explorer of the book, by name (the tests move each slider to its extremes).
EXPLORERS: dict[str, Callable[[], Explorer]] = {
    "two_state": two_state_explorer,
    "fixed_step": fixed_step_explorer,
    "denoising": denoising_explorer,
    "n_state": n_state_explorer,
    "ou_limit": ou_limit_explorer,
    "reverse_rates": reverse_rates_explorer,
    "forward_sde": forward_sde_explorer,
    "score_field": score_field_explorer,
    "sampler": sampler_explorer,
    "ipf": ipf_explorer,
    "gaussian_bridge": gaussian_bridge_explorer,
    "pixel_noising": pixel_noising_explorer,
    "image_sampler": image_sampler_explorer,
}
