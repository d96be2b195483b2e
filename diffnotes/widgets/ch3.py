"""Chapter 3 explorers: forward SDEs, the exact score field, samplers against their cost."""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt

from .. import sde as sde_mod
from ..mixtures import bimodal_1d, moons_mixture
from ..plotting import STATE_COLORS
from ._static import Explorer, _choice, _slider

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
        "kind": _choice(SDE_KINDS, "VP", "SDE"),
        "u": _slider(0.3, 0.0, 1.0, 0.02, "t / T"),
        "beta_max": _slider(20.0, 1.0, 40.0, 1.0, "beta_max"),
        "sigma_max": _slider(10.0, 1.0, 50.0, 1.0, "sigma_max"),
    }, title="Forward SDEs: the exact marginals of a diffused mixture and Euler-Maruyama",
       grid={"kind": SDE_KINDS, "u": [0.0, 0.3, 0.6, 1.0]})


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
        "kind": _choice(SDE_KINDS[:3], "VP", "SDE"),
    }, title="The exact score field and the reverse-time SDE",
       grid={"t": [0.003, 0.03, 0.1, 0.3, 1.0], "kind": SDE_KINDS[:3]})


SAMPLERS = ("Euler-Maruyama", "predictor-corrector", "probability-flow ODE")


def sampler_figure(method="Euler-Maruyama", n_steps=50, rtol=1e-3, n=2000, seed=0):
    """One sampler with the exact two-moons score under the VP SDE: its samples against exact
    draws, and its sliced Wasserstein-2 distance against the floor of two exact samples.
    ``n_steps`` sets the Euler-Maruyama and predictor-corrector steps, ``rtol`` the ODE solver's
    tolerance."""
    from ..metrics import sliced_wasserstein2

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
        "method": _choice(SAMPLERS, "Euler-Maruyama", "sampler"),
        "n_steps": _slider(50, 2, 1000, 1, "steps", integer=True),
        "rtol": _slider(1e-3, 1e-6, 1e-1, 0.25, "ODE rtol", log=True),
    }, title="Samplers with the exact score: quality against cost",
       grid={"method": SAMPLERS, "n_steps": [5, 10, 20, 50, 200]})



#: The guided samplers of the guidance explorer.
GUIDANCE_SAMPLERS = ("reverse SDE", "probability-flow ODE")


def guidance_figure(w=2.0, sampler="reverse SDE", n_steps=200, n=4000, seed=0):
    """Two classes on the line, N(-0.6, 0.5^2) and N(0.6, 0.5^2) with equal weights, sampled
    toward class 1 with the exact classifier-free guided score of weight ``w`` (the reverse SDE
    by Euler-Maruyama or the probability-flow ODE by Heun, ``n_steps`` steps, ``n`` points):
    the samples against the tilted law ``pi_w``, and their W1 distance beside the floor of ``n``
    exact draws of ``pi_w``."""
    from ..metrics import wasserstein1
    from ..mixtures import LabelledMixture, tilted_density, tilted_sample

    pair = LabelledMixture([0.5, 0.5], [-0.6, 0.6], [0.25, 0.25], labels=[0, 1])
    vp = sde_mod.VPSDE()
    rng = np.random.default_rng(seed)
    x_T = vp.prior_sample(n, 1, rng)
    score = pair.guided_score_function(vp, 1, w)
    if sampler == "reverse SDE":
        x = sde_mod.euler_maruyama(vp, score, x_T, rng, n_steps=n_steps).x[:, 0]
    elif sampler == "probability-flow ODE":
        x = sde_mod.heun_flow(vp, score, x_T, n_steps=n_steps).x[:, 0]
    else:
        raise ValueError(f"sampler must be one of {GUIDANCE_SAMPLERS}, got {sampler!r}")
    grid = np.linspace(-6, 10, 4001)
    dens = tilted_density(pair, grid, 1, w)
    ref = tilted_sample(pair, grid, 1, w, n, rng)
    dist = wasserstein1(x, grid, y_weights=dens)
    floor = wasserstein1(ref, grid, y_weights=dens)
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.hist(x, bins=80, range=(-2.5, 3.5), density=True, color=STATE_COLORS[0], alpha=0.5,
            label=f"guided {sampler}")
    ax.plot(grid, dens, color=STATE_COLORS[1], lw=2, label="tilted law pi_w")
    ax.plot(grid, np.exp(pair.log_prob(grid, label=1)), "k:", label="class 1")
    ax.plot(grid, np.exp(pair.log_prob(grid)), color="0.6", lw=1, label="both classes")
    ax.set_xlim(-2.5, 3.5)
    ax.set_xlabel("x")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"w = {w:g}, {n_steps} steps: W1 to pi_w {dist:.3f} (floor {floor:.3f}); "
                 f"mean {x.mean():.2f} against {np.trapezoid(grid * dens, grid):.2f}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def guidance_explorer():
    """Controls on the guidance weight, the sampler and its cost."""
    return Explorer(guidance_figure, {
        "w": _slider(2.0, -1.0, 8.0, 0.25, "weight w"),
        "sampler": _choice(GUIDANCE_SAMPLERS, "reverse SDE", "sampler"),
        "n_steps": _slider(200, 5, 1000, 5, "steps", integer=True),
        "n": _slider(4000, 500, 20000, 500, "samples", integer=True),
        "seed": _slider(0, 0, 20, 1, "seed", integer=True),
    }, title="Classifier-free guidance in 1-D: guided samples against the tilted law",
       grid={"w": [-1.0, 0.0, 1.0, 2.0, 4.0, 8.0], "sampler": GUIDANCE_SAMPLERS})
