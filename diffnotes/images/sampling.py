r"""Three samplers driven by one trained image network (Chapter 5).

* ``"em"``: the reverse-time SDE by Euler-Maruyama (:func:`diffnotes.sde.euler_maruyama`),
  one network evaluation per step; with many steps it is the reference ("ancestral") sampler.
* ``"heun"``: the probability-flow ODE by Heun's second-order method on the EDM time grid
  (:func:`diffnotes.sde.heun_flow`), two evaluations per step; good at 10-50 evaluations.
* ``"ehrenfest"``: the time-reversed Ehrenfest process on the pixel levels themselves,
  :math:`n \in \{0, \dots, S\}` per pixel, by binomial tau-leaping, with reverse rates from the
  network's score (Chapter 2's score-to-rate transfer); one evaluation per step.

All three work on batches on the model's device and return an :class:`ImageRun`.

**One network, two state spaces.** The network was trained on images scaled to
:math:`[-1, 1]` under the VP SDE, :math:`y_\tau = \alpha(\tau) y_0 + \sigma(\tau)\varepsilon`.
The Ehrenfest process with ``S`` balls per pixel, started at the pixel levels and scaled as in
Chapter 2 (:math:`x = (2/\sqrt S)(n - S/2)`), puts the clean image at
:math:`x_0 = \sqrt S\, y_0` and approaches the OU process
:math:`x_\theta = a(\theta)\,x_0 + b(\theta)\,\varepsilon` with
:math:`a = e^{-\theta}`, :math:`b = \sqrt{1 - e^{-2\theta}}` on its own clock
:math:`\theta`. Two Gaussian noisings of the same data with the same signal-to-noise ratio
differ only by a scale: if :math:`\sqrt S\, a(\theta)/b(\theta) = \alpha(\tau)/\sigma(\tau)`,
then :math:`x_\theta \overset{d}{=} (b/\sigma)\, y_\tau`, so

.. math:: \nabla_x \log p^{\mathrm{OU}}_\theta(x) = \frac{\sigma}{b}\,
          \nabla_y \log p_\tau\Bigl(\frac{\sigma}{b}\,x\Bigr)
          = -\frac{\hat\varepsilon(\sigma x/b,\ \tau)}{b},
          \qquad \theta(\tau) = \tfrac12 \log\Bigl(1 + \frac{S\,\sigma(\tau)^2}
          {\alpha(\tau)^2}\Bigr)

exactly, with no retraining: :func:`ehrenfest_clock` is :math:`\theta(\tau)`. The sampler
freezes the rates over each step, on a grid uniform in :math:`\log(\sigma/\alpha)` (the
log signal-to-noise ratio): near the end, uniform in :math:`\log\theta`. A grid uniform in
:math:`\tau`, like Euler-Maruyama's, would leave the last step a stretch of the Ehrenfest clock
in which a background pixel of MNIST must fall by some fifty levels, with rates frozen at its
start: the digits would come out on a grey background.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import positive_float, positive_int
from ..sde import _flow_grid, euler_maruyama, heun_flow
from .training import TrainConfig, make_sde

__all__ = ["SAMPLERS", "ImageRun", "ehrenfest_clock", "ehrenfest_rates", "matched_noisings",
           "sample", "to_pixels"]

SAMPLERS = ("em", "heun", "ehrenfest")
DEFAULT_STEPS = {"em": 1000, "heun": 18, "ehrenfest": 200}


@dataclass
class ImageRun:
    """The result of :func:`sample`.

    Attributes
    ----------
    pixels : ndarray of uint8, shape (n, H, W)
        The images as pixel levels ``0..S``.
    x : tensor, shape (n, 1, H, W)
        The samples in the network's scale ``[-1, 1]`` (before rounding; for ``"ehrenfest"``
        the levels mapped back, ``2 n / S - 1``).
    nfe : int
        Network evaluations per image (each on a whole batch), the final denoising step included.
    seconds : float
        Wall time.
    n_clipped : int
        Pixels outside ``[-1, 1]`` by more than half a level that were set to ``0`` or ``S``
        when rounding (continuous samplers; always 0 for ``"ehrenfest"``, whose states never
        leave the lattice).
    n_rate_clipped : int
        ``"ehrenfest"`` only: rate evaluations where the first-order transfer
        ``1 +- delta s`` was negative and the rate was set to zero.
    n_rate_evals : int
        ``"ehrenfest"`` only: the number of (pixel, step) rate evaluations.
    """

    pixels: np.ndarray
    x: torch.Tensor
    nfe: int
    seconds: float
    n_clipped: int = 0
    n_rate_clipped: int = 0
    n_rate_evals: int = 0


def to_pixels(x, levels: int):
    """Round images ``x`` in ``[-1, 1]`` (tensor ``(n, 1, H, W)`` or ``(n, H, W)``) to pixel
    levels ``0..levels``. Returns ``(pixels, n_clipped)``: uint8 ``(n, H, W)`` and the number of
    values beyond the ends that were clipped (reported, never silent)."""
    levels = positive_int(levels, "levels", maximum=255)
    x = torch.as_tensor(x).detach().float().cpu()
    if x.ndim == 4:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"x must have shape (n, 1, H, W) or (n, H, W), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or inf")
    p = torch.round((x + 1) * (levels / 2))
    n_clipped = int(((p < 0) | (p > levels)).sum())
    return p.clamp_(0, levels).to(torch.uint8).numpy(), n_clipped


def ehrenfest_clock(tau, S: int, sde):
    r"""The Ehrenfest clock :math:`\theta(\tau) = \frac12\log(1 + S\sigma(\tau)^2/
    \alpha(\tau)^2)` at which the ``S``-level Ehrenfest process has the signal-to-noise ratio
    of the network's SDE at time :math:`\tau` (NumPy in, NumPy out)."""
    S = positive_int(S, "S")
    alpha, sigma = sde.alpha_sigma(np.asarray(tau, dtype=float))
    return 0.5 * np.log1p(S * (sigma / alpha) ** 2)


def matched_noisings(levels_img, tau: float, S: int, sde, n_draws: int, rng):
    r"""Noise one image of pixel levels :math:`0, \dots, S` two ways at the VP time ``tau``:
    by the Ehrenfest process at the matched clock :math:`\theta(\tau)`
    (:func:`ehrenfest_clock`, exact binomial draws), and by the SDE, :math:`y_\tau = \alpha
    y_0 + \sigma\varepsilon` with :math:`y_0 = 2n/S - 1`. Both are returned in the Ehrenfest
    scale: the scaled state :math:`x` (:func:`diffnotes.ehrenfest.scale`) and
    :math:`(b/\sigma)\,y_\tau`, which by the proposition of Chapter 5 have the same law up to
    the lattice (the first takes values on a lattice of spacing :math:`2/\sqrt S`). Arrays of
    shape ``(n_draws,) + levels_img.shape``; ``rng`` a NumPy generator or seed."""
    from .. import ehrenfest

    S = positive_int(S, "S")
    n_draws = positive_int(n_draws, "n_draws")
    tau = positive_float(tau, "tau")
    img = np.asarray(levels_img)
    if not np.issubdtype(img.dtype, np.integer) or img.min() < 0 or img.max() > S:
        raise ValueError(f"levels_img must hold whole pixel levels in 0..{S}")
    rng = np.random.default_rng(rng)
    alpha, sigma = (float(v) for v in sde.alpha_sigma(tau))
    theta = float(ehrenfest_clock(tau, S, sde))
    b = math.sqrt(-math.expm1(-2 * theta))
    n_t = ehrenfest.sample_forward(np.broadcast_to(img, (n_draws,) + img.shape), theta, S, rng)
    y = alpha * (2 * img / S - 1) + sigma * rng.standard_normal((n_draws,) + img.shape)
    return ehrenfest.scale(n_t, S), b / sigma * y


def ehrenfest_rates(eps_hat, n, S: int, theta: float):
    r"""Reverse rates ``(up, down)`` of the Ehrenfest process (clock rate 1) at states ``n``
    (integer tensor) and clock ``theta``, from the network's noise prediction ``eps_hat`` at
    the matched point, by the first-order transfer of Chapter 2:
    :math:`\bar r(n \pm 1 \mid n) = \frac{n + 1}{2}(1 + \delta s)` and
    :math:`\frac{S - n + 1}{2}(1 - \delta s)` with :math:`\delta = 2/\sqrt S`,
    :math:`s = -\hat\varepsilon / b(\theta)`. Negative values are set to zero; returns
    ``(up, down, n_clipped)``."""
    S = positive_int(S, "S")
    if not theta > 0:
        raise ValueError(f"theta must be > 0, got {theta}")
    b = math.sqrt(-math.expm1(-2 * theta))
    ds = (-2.0 / math.sqrt(S) / b) * eps_hat
    lin_up, lin_dn = 1 + ds, 1 - ds
    n_clipped = int((lin_up < 0).sum() + (lin_dn < 0).sum())
    nf = n.to(eps_hat.dtype)
    up = torch.where(n < S, (nf + 1) / 2 * lin_up.clamp(min=0), 0.0)
    dn = torch.where(n > 0, (S - nf + 1) / 2 * lin_dn.clamp(min=0), 0.0)
    return up, dn, n_clipped


def _eps_fn(model, sde):
    """``eps_hat(y, tau)`` for images in the network's scale (no gradients)."""
    def eps(y, tau):
        with torch.no_grad():
            s = model.score(y, tau, sde)
        _, sigma = sde.alpha_sigma(float(tau))
        return -float(sigma) * s
    return eps


def _flat_score(model, sde, shape):
    def score(x, t):
        with torch.no_grad():
            return model.score(x.reshape(shape), t, sde).reshape(x.shape[0], -1)
    return score


def _ehrenfest(model, sde, levels, m, n_steps, t_min, gen, dev, counts):
    S = levels
    shape = (m, model.in_channels, model.size, model.size)
    n = torch.binomial(torch.full(shape, float(S), device=dev),
                       torch.full(shape, 0.5, device=dev), generator=gen).long()
    taus = _flow_grid(sde, n_steps, t_min, sde.T, "logsnr")[0]
    thetas = ehrenfest_clock(taus, S, sde)
    eps = _eps_fn(model, sde)
    scale = 2.0 / math.sqrt(S)
    for k in range(n_steps):
        tau, theta = float(taus[k]), float(thetas[k])
        h = theta - float(thetas[k + 1])
        _, sigma = sde.alpha_sigma(tau)
        b = math.sqrt(-math.expm1(-2 * theta))
        x = scale * (n.float() - S / 2)
        up, dn, c = ehrenfest_rates(eps(x * (float(sigma) / b), tau), n, S, theta)
        counts[0] += c
        nf = n.float()
        pu = -torch.expm1(-h * torch.where(n < S, up / (S - nf).clamp(min=1), 0.0))
        pd = -torch.expm1(-h * torch.where(n > 0, dn / nf.clamp(min=1), 0.0))
        ups = torch.binomial(S - nf, pu, generator=gen)
        dns = torch.binomial(nf, pd, generator=gen)
        n = n + (ups - dns).long()
    counts[1] += n.numel() * n_steps
    return n


def sample(model, config: TrainConfig, n: int, *, sampler: str = "heun",
           n_steps: int | None = None, seed: int = 0, batch_size: int = 256,
           t_min: float | None = None, denoise: bool = True) -> ImageRun:
    r"""Draw ``n`` images from a trained network with one of :data:`SAMPLERS`.

    Parameters
    ----------
    model : UNet
        A trained network (e.g. from :func:`diffnotes.images.training.load_model`), on its device.
    config : TrainConfig
        Its configuration (the SDE and the number of pixel levels).
    n : int
        Number of images.
    sampler : str
        ``"em"``, ``"heun"`` or ``"ehrenfest"`` (see the module docstring).
    n_steps : int, optional
        Steps (default 1000, 18, 200 respectively). Network evaluations per image: ``n_steps``
        for ``"em"`` and ``"ehrenfest"``, ``2 n_steps`` for ``"heun"``, plus one for ``denoise``.
    seed : int
        Seeds the prior draw and the sampler's noise (a ``torch.Generator`` on the device).
    batch_size : int
        Images per batch (memory).
    t_min : float, optional
        The last time (default the training ``t_min``).
    denoise : bool
        For ``"em"`` and ``"heun"``: replace the final point :math:`y_{t_{\min}}` (which still
        carries noise of standard deviation :math:`\sigma(t_{\min})`, about 1.3 grey levels
        of MNIST at the default) by the network's estimate of the clean image,
        :math:`(y - \sigma\hat\varepsilon)/\alpha` (Tweedie's formula), at the cost of one more
        evaluation. The Ehrenfest sampler ends on the pixel lattice and needs no such step.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    n = positive_int(n, "n", maximum=10**6)
    n_steps = positive_int(DEFAULT_STEPS[sampler] if n_steps is None else n_steps,
                           "n_steps", maximum=100_000)
    seed = positive_int(seed, "seed", minimum=0)
    batch_size = positive_int(batch_size, "batch_size")
    sde = make_sde(config)
    t_min = config.t_min if t_min is None else positive_float(t_min, "t_min")
    if not t_min < sde.T:
        raise ValueError(f"t_min must be in (0, {sde.T:g}) (the SDE's horizon), got {t_min:g}")
    p = next(model.parameters())
    dev = p.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    model.eval()
    outs, counts = [], [0, 0]
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        shape = (m, model.in_channels, model.size, model.size)
        if sampler == "ehrenfest":
            states = _ehrenfest(model, sde, config.levels, m, n_steps, t_min, gen, dev,
                                counts)
            outs.append(2 * states.float() / config.levels - 1)
            continue
        x = torch.randn((m, model.dim), generator=gen, device=dev, dtype=p.dtype)
        score = _flat_score(model, sde, shape)
        if sampler == "em":
            run = euler_maruyama(sde, score, x, gen, n_steps=n_steps, t_min=t_min)
        else:
            run = heun_flow(sde, score, x, n_steps=n_steps, t_min=t_min)
        x = run.x.reshape(shape)
        if denoise:   # Tweedie: E[y_0 | y_t] = (y_t - sigma eps_hat) / alpha, one more NFE
            alpha, sigma = (float(v) for v in sde.alpha_sigma(t_min))
            with torch.no_grad():
                x = (x - sigma * model(x, t_min)) / alpha if model.parameterization == "noise" \
                    else (x + sigma**2 * model.score(x, t_min, sde)) / alpha
        outs.append(x)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    x = torch.cat(outs)
    pixels, n_clipped = to_pixels(x, config.levels)
    nfe = (2 * n_steps if sampler == "heun" else n_steps) + int(denoise and sampler != "ehrenfest")
    return ImageRun(pixels, x, nfe, seconds, n_clipped, counts[0], counts[1])
