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
steps on a grid uniform in :math:`\log(\sigma/\alpha)` (the log signal-to-noise ratio): near
the end, uniform in :math:`\log\theta`.

**The step** (``ehrenfest_step``). ``"bridge"`` (the default) freezes the network's estimate of
the clean image over a step, :math:`\hat x_0 = \sqrt S\,\hat y_0` with
:math:`\hat y_0 = (y - \sigma\hat\varepsilon)/\alpha` clipped to :math:`[-1, 1]`, and moves
each pixel from :math:`\theta` to :math:`\theta' < \theta` by the OU bridge towards it (the
posterior of :math:`x_{\theta'}` given :math:`x_\theta` and :math:`x_0 = \hat x_0`, as in
DDPM's ancestral step):

.. math:: \mathbb E = \frac{c\, b'^2}{b^2}\, x_\theta + \frac{a'(1 - c^2)}{b^2}\,\hat x_0,
          \qquad \mathrm{Var} = \frac{b'^2 (1 - c^2)}{b^2},
          \qquad c = e^{-(\theta - \theta')},

realised on the lattice by binomial numbers of balls entering and leaving the urn with this
mean and, where the lattice allows, this variance (:func:`bridge_moves`). It is exact for a
clean image known to the network, at any step size. ``"rates"`` is the earlier step: the
first-order reverse rates of :func:`ehrenfest_rates`, frozen over the step (binomial
tau-leaping). Measured on the shipped MNIST network (``pretrained("mnist8k")``, 50 steps), the
frozen rates leave the background some 20 levels grey: the drift towards the data is stiff,
about :math:`1/\theta` per unit of clock, and the frozen rates fall behind it where
:math:`h/\theta` is not small (:math:`0.3` on this grid, :math:`\theta` from 2 down to 0.1),
by a whole-background offset that the network then takes for part of the image (asked to
denoise a background lifted by :math:`k` levels, it returns one near :math:`k`) and no later
step removes. The bridge step integrates the stiff part exactly.

**The last step.** At :math:`\tau = t_{\min}` the pixels still carry the Ehrenfest noise of
:math:`\theta_{\min} = \theta(t_{\min})` (for MNIST 0.014: a black pixel sits at a level of
about :math:`S\theta_{\min}/2 \approx 1.8` on average, and only one in six is at 0). With
``denoise=True`` (the default) the sampler ends like the continuous ones, with one more network
evaluation: the bridge to :math:`\theta' = 0`, whose law is the point mass at :math:`\hat x_0`,
rounded to the nearest level.
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

__all__ = ["EHRENFEST_STEPS", "SAMPLERS", "ImageRun", "bridge_moves", "ehrenfest_clock",
           "ehrenfest_rates", "matched_noisings", "sample", "to_pixels"]

SAMPLERS = ("em", "heun", "ehrenfest")
DEFAULT_STEPS = {"em": 1000, "heun": 18, "ehrenfest": 200}
EHRENFEST_STEPS = ("bridge", "rates")


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
        ``"ehrenfest"`` only. With ``ehrenfest_step="rates"``: rate evaluations where the
        first-order transfer ``1 +- delta s`` was negative and the rate was set to zero. With
        ``"bridge"``: (pixel, step) pairs whose binomial moves could not be as narrow as the
        bridge (its variance is below the least that moves with its mean have on the lattice).
    n_rate_evals : int
        ``"ehrenfest"`` only: the number of (pixel, step) evaluations.
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


def bridge_moves(n, mean, var, S: int, generator=None):
    r"""Move pixel levels ``n`` (integer tensor, values in ``0..S``) by binomial numbers of
    balls entering and leaving the urn, with the given ``mean`` of the new level and, where the
    lattice allows, the given variance ``var`` (float tensors shaped like ``n``; ``mean`` is
    clipped to ``[0, S]``, ``var`` must be >= 0).

    A pixel whose mean is below (above) its level loses :math:`D \sim \mathrm{Bin}(n, p_1)` balls
    (gains them from the :math:`S - n` outside) and gains :math:`U \sim \mathrm{Bin}(S - n,
    p_2)` (loses them): :math:`E[D - U] = r` is the distance to the mean, and the expected
    counter-moves :math:`u = E[U]` solve :math:`\mathrm{Var}(D - U) = v`, a quadratic. Where
    :math:`v` is below :math:`r(1 - r/n)`, the variance of the moves with :math:`u = 0`, no
    binomial moves with that mean are as narrow: those take :math:`u = 0` and are counted.
    Where :math:`v` is above the largest variance the moves can have, they take that largest.

    Returns ``(new_levels, n_wide)``: a long tensor in ``0..S`` and the number of pixels whose
    variance is above ``var``. ``generator`` is a ``torch.Generator`` on the tensors' device.
    """
    S = positive_int(S, "S")
    nf = n.to(torch.float64)
    mean = torch.as_tensor(mean, dtype=torch.float64, device=n.device).clamp(0, S)
    var = torch.as_tensor(var, dtype=torch.float64, device=n.device)
    if bool((var < 0).any()):
        raise ValueError("var must be >= 0")
    down = mean <= nf
    main = torch.where(down, nf, S - nf)     # the balls that move towards the mean
    other = S - main
    r = (mean - nf).abs().minimum(main)
    g1, g2 = main.clamp(min=1), other.clamp(min=1)
    v0 = r * (1 - r / g1)                    # the variance of the moves with u = 0
    a = 1 / g1 + (other > 0) / g2
    b = 2 - 2 * r / g1
    disc = b * b - 4 * a * (var - v0)
    u = torch.where(disc >= 0, (b - disc.clamp(min=0).sqrt()) / (2 * a), b / (2 * a))
    wide = var < v0
    u = torch.where(wide, 0.0, u).clamp(min=0).minimum(other).minimum(main - r)
    p1 = torch.where(main > 0, (r + u) / g1, 0.0).clamp(0, 1)
    p2 = torch.where(other > 0, u / g2, 0.0).clamp(0, 1)
    k1 = torch.binomial(main.float(), p1.float(), generator=generator)
    k2 = torch.binomial(other.float(), p2.float(), generator=generator)
    moves = torch.where(down, k2 - k1, k1 - k2).long()
    return (n + moves).clamp(0, S), int((wide & (v0 - var > 1e-9)).sum())


def _bridge_coefficients(theta: float, theta1: float):
    """``(A, B, V)`` of the OU bridge from ``theta`` to ``theta1 < theta``: the mean
    ``A x + B x0`` and the variance ``V`` of :math:`x_{\theta_1}` given :math:`x_\theta = x`
    and :math:`x_0` (module docstring). In levels, ``S/2 + A (n - S/2) + B (n0 - S/2)`` is
    also the exact mean of the Ehrenfest process at ``theta1`` given ``n`` at ``theta`` and
    ``n0`` at 0 (``tests/test_images.py``)."""
    b2, b12 = -math.expm1(-2 * theta), -math.expm1(-2 * theta1)
    c = math.exp(theta1 - theta)
    return c * b12 / b2, math.exp(-theta1) * (1 - c * c) / b2, b12 * (1 - c * c) / b2


def _ehrenfest(model, sde, levels, m, n_steps, t_min, gen, dev, counts, step, denoise):
    S = levels
    shape = (m, model.in_channels, model.size, model.size)
    n = torch.binomial(torch.full(shape, float(S), device=dev),
                       torch.full(shape, 0.5, device=dev), generator=gen).long()
    taus = _flow_grid(sde, n_steps, t_min, sde.T, "logsnr")[0]
    thetas = ehrenfest_clock(taus, S, sde)
    eps = _eps_fn(model, sde)
    root = math.sqrt(S)

    def clean(tau, theta):
        """The network's clean image x0_hat (Ehrenfest scale) and the current x, at tau."""
        alpha, sigma = (float(v) for v in sde.alpha_sigma(tau))
        b = math.sqrt(-math.expm1(-2 * theta))
        x = (2 / root) * (n.double() - S / 2)
        y = (x * (sigma / b)).to(torch.float32)
        e = eps(y, tau)
        return x, e, root * ((y.double() - sigma * e.double()) / alpha).clamp(-1, 1)

    for k in range(n_steps):
        tau, theta, theta1 = float(taus[k]), float(thetas[k]), float(thetas[k + 1])
        x, e, x0 = clean(tau, theta)
        if step == "bridge":
            A, B, V = _bridge_coefficients(theta, theta1)
            mean = S / 2 + root / 2 * (A * x + B * x0)
            n, c_ = bridge_moves(n, mean, torch.full_like(mean, S / 4 * V), S, gen)
        else:
            h = theta - theta1
            up, dn, c_ = ehrenfest_rates(e, n, S, theta)
            nf = n.float()
            pu = -torch.expm1(-h * torch.where(n < S, up / (S - nf).clamp(min=1), 0.0))
            pd = -torch.expm1(-h * torch.where(n > 0, dn / nf.clamp(min=1), 0.0))
            ups = torch.binomial(S - nf, pu, generator=gen)
            dns = torch.binomial(nf, pd, generator=gen)
            n = n + (ups - dns).long()
        counts[0] += c_
    counts[1] += n.numel() * n_steps
    if denoise:   # the bridge to theta = 0: the point mass at x0_hat, rounded to a level
        x0 = clean(float(taus[-1]), float(thetas[-1]))[2]
        n = torch.round(S / 2 + root / 2 * x0).long().clamp(0, S)
    return n


def sample(model, config: TrainConfig, n: int, *, sampler: str = "heun",
           n_steps: int | None = None, seed: int = 0, batch_size: int = 256,
           t_min: float | None = None, denoise: bool = True,
           ehrenfest_step: str = "bridge") -> ImageRun:
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
        Replace the final point :math:`y_{t_{\min}}` (which still carries noise: of standard
        deviation :math:`\sigma(t_{\min})`, about 1.3 grey levels of MNIST at the default, for
        ``"em"`` and ``"heun"``; the Ehrenfest noise of :math:`\theta(t_{\min})`, which
        lifts a black pixel by about 1.8 levels, for ``"ehrenfest"``) by the network's estimate
        of the clean image, :math:`(y - \sigma\hat\varepsilon)/\alpha` (Tweedie's formula),
        at the cost of one more evaluation. The Ehrenfest sampler rounds it to the nearest
        level (the bridge's last step), so that its output stays on the lattice.
    ehrenfest_step : str
        ``"bridge"`` (default) or ``"rates"``: the Ehrenfest sampler's step (see the module
        docstring); ignored by the other samplers.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if ehrenfest_step not in EHRENFEST_STEPS:
        raise ValueError(f"ehrenfest_step must be one of {', '.join(EHRENFEST_STEPS)}; got "
                         f"{ehrenfest_step!r}")
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
                                counts, ehrenfest_step, denoise)
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
    nfe = (2 * n_steps if sampler == "heun" else n_steps) + int(denoise)
    return ImageRun(pixels, x, nfe, seconds, n_clipped, counts[0], counts[1])
