"""Chapter 5 explorers: pixels noised two ways, and MNIST digits from the shipped network."""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt

from .. import ehrenfest
from .. import sde as sde_mod
from ._static import Explorer, _choice, _slider


def pixel_noising_figure(tau=0.3, S=255, n_draws=300, seed=0):
    r"""One 8x8 digit, requantised to ``S + 1`` grey levels, noised two ways at the VP time
    ``tau``: by the Ehrenfest process (exact binomial draws) at the matched clock
    :math:`\theta(\tau)` of :func:`diffnotes.images.sampling.ehrenfest_clock`, and by the VP
    SDE, both shown in the Ehrenfest scale (the scaled state :math:`x` and
    :math:`(b/\sigma)\,y_\tau`, on one colour scale). Right: over ``n_draws`` noisings, the law
    of the two across all pixels, which coincide as ``S`` grows (the OU limit)."""
    from ..data import DIGITS_LEVELS, load_digits

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
    }, title="Pixels noised by the Ehrenfest process and by the VP SDE at the matched clock",
       grid={"tau": [0.05, 0.1, 0.3, 0.5, 1.0], "S": [1, 15, 255]})


IMAGE_SAMPLERS = ("em", "heun", "ehrenfest")
_PRETRAINED: dict = {}


def _pretrained_cpu(name="mnist8k"):
    """A shipped network on the CPU, loaded once per session."""
    if name not in _PRETRAINED:
        from .. import images

        _PRETRAINED[name] = images.pretrained(name, device="cpu")
    return _PRETRAINED[name]


def image_sampler_figure(sampler="heun", n_steps=9, seed=0, n=9):
    """Nine MNIST digits from the network shipped with the package
    (:func:`diffnotes.images.pretrained`), drawn by ``sampler`` with ``n_steps`` steps."""
    from .. import images
    from ..utils import torch_threads

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
        "sampler": _choice(IMAGE_SAMPLERS, "heun", "sampler"),
        "n_steps": _slider(9, 2, 100, 1, "steps", integer=True),
        "seed": _slider(0, 0, 20, 1, "seed", integer=True),
    }, title="One network, three samplers: MNIST digits against the number of steps",
       grid={"sampler": IMAGE_SAMPLERS, "n_steps": [3, 5, 9]})



def guided_digits_figure(digit=3, w=1.0, seed=0, n=16):
    """``n`` 8x8 digits of class ``digit`` from the shipped class-conditional network
    (``pretrained("digits-cond")``) under classifier-free guidance of weight ``w``
    (:func:`diffnotes.images.guidance.guided`), Heun with 9 steps (19 evaluations); the title
    gives the mean pixel distance between two of them (the within-class spread of
    :func:`diffnotes.images.metrics.class_spread`), which guidance lowers."""
    import torch

    from .. import images
    from ..images import metrics
    from ..utils import torch_threads

    model, config, _ = _pretrained_cpu("digits-cond")
    labels = torch.full((int(n),), int(digit))
    with torch_threads(1):
        run = images.sample(images.guided(model, labels, float(w)), config, int(n),
                            sampler="heun", n_steps=9, seed=int(seed))
    spread = metrics.class_spread(images.to_unit(run.pixels, config.levels), labels)
    fig, ax = plt.subplots(figsize=(3.6, 3.9))
    images.plotting.show_grid(ax, run.pixels, config.levels, ncol=4,
                              title=f"digit {int(digit)}, w = {float(w):g}: spread {spread:.2f}")
    return fig


def guided_digits_explorer():
    """Sliders on the class asked for and the guidance weight (the shipped digits network)."""
    return Explorer(guided_digits_figure, {
        "digit": _slider(3, 0, 9, 1, "digit", integer=True),
        "w": _slider(1.0, 0.0, 8.0, 0.5, "guidance w"),
        "seed": _slider(0, 0, 20, 1, "seed", integer=True),
    }, title="Classifier-free guidance: one class of digits against the guidance weight",
       grid={"digit": [2, 3, 8], "w": [0.0, 1.0, 2.0, 4.0, 8.0]})
