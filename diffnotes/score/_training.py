r"""Training a score model (part of :mod:`diffnotes.score`, Chapter 3): :func:`train` (Adam,
EMA, optional learning-rate schedule and gradient clipping) and its result :class:`TrainResult`.
Torch.
"""

from __future__ import annotations

from .._optional import score_needs  # noqa: F401  # isort: skip (missing torch: pip hint)
import math
import time as _time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._checks import positive_float, positive_int, real_array
from ..utils import device as default_device
from ..utils import torch_threads
from ._losses import (
    WEIGHTINGS,
    _check_sde,
    _check_t_min,
    _choice,
    _denoising_loss,
    _is_torch,
    _parameterization_of,
)
from ._networks import EMA

__all__ = ["TrainResult", "train"]


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    model : torch.nn.Module
        The trained network (last iterate), in eval mode.
    ema : torch.nn.Module
        The moving average of its weights (:class:`EMA`): sample from this one.
    losses : ndarray of shape (n_steps,)
        The minibatch loss at every step (noisy: see :meth:`smoothed_losses`).
    seconds : float
        Wall time of the training loop.
    """

    model: nn.Module
    ema: nn.Module
    losses: np.ndarray
    seconds: float

    def smoothed_losses(self, window: int = 100) -> np.ndarray:
        """The running mean of the losses over the last ``window`` steps (fewer at the start),
        shape ``(n_steps,)``."""
        window = positive_int(window, "window")
        c = np.concatenate([[0.0], np.cumsum(self.losses)])
        i = np.arange(1, self.losses.size + 1)
        lo = np.maximum(i - window, 0)
        return (c[i] - c[lo]) / (i - lo)


def _batches(data, dim, batch_size, dev, gen, seed):
    """A function ``() -> (batch_size, d)`` float32 tensor on ``dev`` drawing minibatches."""
    if callable(data):
        rng = np.random.default_rng(seed)

        def draw():
            x = np.asarray(data(batch_size, rng), dtype=np.float32)
            if x.shape != (batch_size, dim) or not np.all(np.isfinite(x)):
                raise ValueError(f"data(n, rng) must return n finite points of shape "
                                 f"({batch_size}, {dim}), got shape {x.shape}"
                                 + ("" if x.shape != (batch_size, dim) else " with non-finite "
                                    "values"))
            return torch.from_numpy(x).to(dev)

        return draw
    if _is_torch(data):
        x = data.detach()
        if not torch.is_floating_point(x) or not bool(torch.isfinite(x).all()):
            raise ValueError("data must contain only finite real numbers (no NaN or inf)")
        x = x.to(device=dev, dtype=torch.float32)
    else:
        x = torch.as_tensor(real_array(data, "data"), dtype=torch.float32, device=dev)
    if x.ndim != 2 or x.shape[1] != dim or x.shape[0] < 1:
        raise ValueError(f"data must have shape (n, {dim}) with n >= 1 (the model's dim), got "
                         f"{tuple(x.shape)}")
    n = x.shape[0]

    def draw_rows():
        return x[torch.randint(0, n, (batch_size,), generator=gen, device=dev)]

    return draw_rows


def _optimise(net, ema, opt, loss_at, n_steps, *, grad_clip, sched, desc, progress, leave,
              where):
    """``n_steps`` optimiser steps on ``loss_at(i)`` (a scalar tensor), with optional gradient
    clipping and learning-rate schedule, an EMA update after each step, a ``tqdm`` bar and a
    ``FloatingPointError`` on a non-finite loss. The loop shared by every trainer of the book
    (:func:`train`, :class:`diffnotes.dsb.DSB`, :class:`diffnotes.dsb.BridgeMatching`)."""
    from tqdm.auto import trange

    losses = np.empty(n_steps)
    bar = trange(n_steps, disable=not progress, leave=leave, desc=desc)
    for i in bar:
        loss = loss_at(i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        if sched is not None:
            sched.step()
        ema.update()
        losses[i] = loss.item()
        if not math.isfinite(losses[i]):
            raise FloatingPointError(f"{where}: the loss is {losses[i]} at step {i} of {desc}: "
                                     f"lower lr (or check the data)")
        if progress and i % 100 == 0:
            bar.set_postfix(loss=f"{losses[max(0, i - 99):i + 1].mean():.3g}", refresh=False)
    return losses


def _check_fit_args(n_steps, batch_size, lr, ema_decay, seed, grad_clip, cpu_threads, device):
    """The arguments every network trainer of the book shares (:func:`train`,
    :func:`diffnotes.flow_train.train`, :func:`diffnotes.ot_flow_train.train`,
    :func:`diffnotes.guidance.train`), checked; returns them in this order, with ``device``
    resolved to a ``torch.device``."""
    n_steps = positive_int(n_steps, "n_steps")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_float(lr, "lr")
    ema_decay = positive_float(ema_decay, "ema_decay", allow_zero=True)
    if not ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    seed = positive_int(seed, "seed", minimum=0)
    if grad_clip is not None:
        grad_clip = positive_float(grad_clip, "grad_clip")
    if cpu_threads is not None:
        cpu_threads = positive_int(cpu_threads, "cpu_threads")
    return n_steps, batch_size, lr, ema_decay, seed, grad_clip, cpu_threads, default_device(device)


def _model_dim(model) -> int:
    """The data dimension of ``model`` (its ``dim`` attribute), or a ValueError."""
    dim = getattr(model, "dim", None)
    if dim is None:
        raise ValueError("model must have a dim attribute (the data dimension), like ScoreMLP")
    return dim


def _check_data(data, dim: int) -> None:
    """``data`` must be an array of points or a sampler ``data(n, rng)``."""
    if not (isinstance(data, np.ndarray | torch.Tensor | list | tuple) or callable(data)):
        raise ValueError(f"data must be an array of shape (n, {dim}) or a callable "
                         f"data(n, rng), got {type(data).__name__}")


def _fit(model, loss_at, *, n_steps, lr, ema_decay, grad_clip, cpu_threads, dev, desc,
         progress, leave, where) -> TrainResult:
    """Adam with a cosine learning rate (down to ``lr / 100``), an EMA of the weights and the
    loop of :func:`_optimise`, timed; ``model`` is left in eval mode. The training recipe that
    every trainer of :func:`_check_fit_args` shares."""
    ema = EMA(model, ema_decay)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_steps, eta_min=lr / 100)
    t0 = _time.perf_counter()
    with torch_threads(cpu_threads, dev):
        losses = _optimise(model, ema, opt, loss_at, n_steps, grad_clip=grad_clip,
                           sched=sched, desc=desc, progress=progress, leave=leave, where=where)
    seconds = _time.perf_counter() - t0
    model.eval()
    return TrainResult(model, ema.model, losses, seconds)


def train(model: nn.Module, sde, data, *, n_steps: int = 3000, batch_size: int = 256,
          lr: float = 2e-2, ema_decay: float = 0.995, weighting: str = "sigma2",
          t_min: float = 1e-3, seed: int = 0, device=None, progress: bool = True,
          grad_clip: float | None = 1.0, leave: bool = True,
          cpu_threads: int | None = 1) -> TrainResult:
    r"""Fit ``model`` to the score of ``data`` diffused by ``sde``, by denoising score matching.

    Each step draws a minibatch of ``batch_size`` clean points, a time
    :math:`t \sim \mathcal U(t_{\min}, T)` and a noise per point, and takes one Adam step on
    :func:`dsm_loss` for the model's ``parameterization``. The learning rate follows a cosine
    decay from ``lr`` to ``lr / 100`` over the ``n_steps`` steps (large steps early, small ones
    to settle at the end), gradients are clipped to norm ``grad_clip``, and an :class:`EMA` with
    ``ema_decay`` (and warm-up) averages the iterates.

    The defaults are calibrated for :class:`ScoreMLP`'s defaults on 2-D toys with
    :class:`~diffnotes.sde.VPSDE`: on one CPU core, 3000 steps take about 7 s, and 2000
    Euler-Maruyama samples (1000 steps) from the averaged model of the two-moons mixture
    (:func:`diffnotes.mixtures.moons_mixture`) are then at the sliced-:math:`W_2` noise floor
    of 2000 exact draws, as close as the same sampler with the exact score (1.1x the floor in
    ``benchmarks/bench_score.py``, 0.9-1.3x over seeds). The peak rate is high for
    Adam; the small network tolerates it, and it is what resolves the fine structure of the
    score at small :math:`t` within a few thousand steps.

    Parameters
    ----------
    model : torch.nn.Module
        ``model(x, t) -> (m, d)`` with a ``parameterization`` attribute, e.g. :class:`ScoreMLP`.
        It is trained in place (and moved to ``device``).
    sde : LinearSDE
        The forward process (:class:`~diffnotes.sde.VPSDE`...).
    data : array or tensor of shape (n, d), or callable
        A training set (minibatches are drawn from it with replacement), or a sampler
        ``data(n, rng)`` with ``rng`` a NumPy Generator (e.g. :func:`diffnotes.data.two_moons`
        or ``GaussianMixture.sample``) for fresh points at every step.
    n_steps, batch_size, lr : training length, minibatch size, peak learning rate.
    ema_decay : float in [0, 1)
        Decay of the weight average.
    weighting : str
        ``"sigma2"``, ``"likelihood"`` or ``"none"`` (see :func:`dsm_loss`).
    t_min : float
        Smallest training time (the samplers stop at the same ``t_min``).
    grad_clip : float or None, default 1.0
        Rescale the gradient to this Euclidean norm when it is larger (``None``: never), which
        tames the rare huge minibatch gradients of the small-time, high-weight terms.
    seed : int
        Seeds every random draw (times, noises, minibatches; a ``data`` sampler gets
        ``numpy.random.default_rng(seed)``): the same seed and model give the same losses.
    device : torch.device or str, optional
        Default :func:`diffnotes.utils.device` (CUDA when present).
    progress, leave : bool
        Show a ``tqdm`` progress bar; keep it once done.
    cpu_threads : int or None, default 1
        Torch's intra-op threads during the loop on the CPU (restored afterwards); ``None``
        keeps torch's setting. A small MLP on minibatches of a few hundred points gains
        nothing from more threads, and several threads spin-waiting on shared cores can make
        a step ten times slower.

    Returns
    -------
    TrainResult

    Raises
    ------
    FloatingPointError
        If the loss becomes non-finite (the step is named): lower ``lr``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    parameterization = _parameterization_of(model)
    sde = _check_sde(sde)
    n_steps, batch_size, lr, ema_decay, seed, grad_clip, cpu_threads, dev = _check_fit_args(
        n_steps, batch_size, lr, ema_decay, seed, grad_clip, cpu_threads, device)
    weighting = _choice(weighting, "weighting", WEIGHTINGS)
    t_min = _check_t_min(t_min, sde)
    dim = _model_dim(model)
    _check_data(data, dim)

    model.to(dev).train()
    gen = torch.Generator(device=dev).manual_seed(seed)
    draw = _batches(data, dim, batch_size, dev, gen, seed)
    return _fit(model, lambda i: _denoising_loss(model, draw(), sde, gen, t_min, weighting,
                                                 parameterization),
                n_steps=n_steps, lr=lr, ema_decay=ema_decay, grad_clip=grad_clip,
                cpu_threads=cpu_threads, dev=dev, desc="score matching", progress=progress,
                leave=leave, where="train")


