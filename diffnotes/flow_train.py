r"""Learning a flow-matching velocity in torch (Chapter 3; the exact objects are in
:mod:`diffnotes.flow`).

**Conditional flow matching.** The marginal velocity :math:`v(x, t) = \mathbb E[\dot a\,x_1 +
\dot b\,x_0 \mid x_t = x]` of a path :math:`x_t = a(t)\,x_1 + b(t)\,x_0` is the minimiser of the
regression

.. math::
    \mathcal L(\theta) = \mathbb E_{t, x_0, x_1}
    \bigl\|v_\theta(x_t, t) - (\dot a\,x_1 + \dot b\,x_0)\bigr\|^2,
    \qquad t \sim \mathcal U(0, t_{\max}),

which needs only draws of the data (Lipman et al., 2023): it equals
:math:`\mathbb E_t\mathbb E_{p_t}\|v_\theta - v\|^2` plus a constant, the loss of the exact
velocity (:func:`cfm_loss`, :func:`flow_matching_loss`). On an
:class:`~diffnotes.flow.SDEPath` the residual of the velocity of a score :math:`s_\theta`
is :math:`v_\theta - (\dot a x_1 + \dot b x_0) = \frac T2 g(s)^2\,(s_\theta +
\varepsilon/\sigma)`, so flow matching on the path is denoising score matching
(:func:`diffnotes.score.dsm_loss`) with the weighting :math:`\lambda(s) = (T g(s)^2/2)^2`
instead of :math:`\sigma^2`: relative to the latter it weights small noise levels by
:math:`(T g^2/2)^2/\sigma^2`, which for :class:`~diffnotes.sde.VPSDE` grows like :math:`1/s`
as :math:`s \to 0`.

**Training.** :func:`train` fits the network of Chapter 3, :class:`diffnotes.score.ScoreMLP`,
whose raw output is read as a velocity, with the book's optimiser loop (Adam, cosine learning
rate, gradient clipping, :class:`~diffnotes.score.EMA`), and returns a
:class:`~diffnotes.score.TrainResult`; :func:`velocity_function` turns the model into the
``velocity(x, t)`` that :func:`diffnotes.flow.sample_ode` takes.
"""

from __future__ import annotations

from ._optional import flow_train_needs  # noqa: F401  # isort: skip (missing torch: pip hint)

import numpy as np
import torch
from torch import nn

from .flow import as_path
from .score import TrainResult, _batches, _check_data, _check_fit_args, _fit, _model_dim
from .utils import device as default_device

__all__ = ["cfm_loss", "flow_matching_loss", "train", "velocity_function"]


def _tensor(x, name):
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"{name} must be a tensor of shape (m, d)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    return x


def _cfm_loss(output, x0, x1, t, path):
    _, _, da, db = path._coefficients(t[:, None])
    r = output - (da * x1 + db * x0)
    return (r * r).sum(dim=1).mean()


def cfm_loss(output, x0, x1, t, path="linear"):
    r"""The conditional flow-matching loss of a batch,
    :math:`\frac1m\sum_i\|v_i - (\dot a(t_i)\,x_{1,i} + \dot b(t_i)\,x_{0,i})\|^2`.

    ``output`` (the model's velocity at :math:`x_{t_i}`), ``x0`` (noise) and ``x1`` (data) are
    tensors of shape ``(m, d)``, ``t`` a tensor of shape ``(m,)`` of times in
    :math:`[0, t_{\max}]`; ``path`` as in :func:`diffnotes.flow.as_path`. A differentiable 0-d
    tensor."""
    path = as_path(path)
    output = _tensor(output, "output")
    for name, a in (("x0", x0), ("x1", x1)):
        if _tensor(a, name).shape != output.shape:
            raise ValueError(f"{name} must have the shape of output {tuple(output.shape)}, got "
                             f"{tuple(a.shape)}")
    if not isinstance(t, torch.Tensor) or t.shape != (output.shape[0],):
        raise ValueError(f"t must be a tensor of shape ({output.shape[0]},)")
    if bool((t < 0).any()) or bool((t > path.t_max).any()):
        raise ValueError(f"t must be in [0, {path.t_max:g}] for {path}")
    return _cfm_loss(output, x0, x1, t, path)


def _flow_matching_loss(model, x1, path, generator):
    m = x1.shape[0]
    t = path.t_max * torch.rand(m, generator=generator, device=x1.device, dtype=x1.dtype)
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    a, b, _, _ = path._coefficients(t[:, None])
    return _cfm_loss(model(a * x1 + b * x0, t), x0, x1, t, path)


def flow_matching_loss(model, x1, path, generator):
    r"""One Monte Carlo estimate of the flow-matching loss on the data batch ``x1`` (a tensor
    of shape ``(m, d)``): draws :math:`t \sim \mathcal U(0, t_{\max})` and
    :math:`x_0 \sim \mathcal N(0, I)` per point from the ``torch.Generator`` ``generator``, and
    returns :func:`cfm_loss` of ``model(x_t, t)`` (a differentiable 0-d tensor)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return _flow_matching_loss(model, _tensor(x1, "x1"), as_path(path), generator)


def train(model: nn.Module, data, path="linear", *, n_steps: int = 3000,
          batch_size: int = 256, lr: float = 2e-2, ema_decay: float = 0.995, seed: int = 0,
          device=None, progress: bool = True, grad_clip: float | None = 1.0,
          leave: bool = True, cpu_threads: int | None = 1) -> TrainResult:
    r"""Fit ``model`` to the marginal velocity of ``path`` towards ``data`` by conditional flow
    matching, with the optimiser loop and the defaults of :func:`diffnotes.score.train` (Adam,
    cosine decay from ``lr`` to ``lr / 100``, gradient clipping to ``grad_clip``, an
    :class:`~diffnotes.score.EMA` with ``ema_decay``; ``seed`` seeds every draw).

    ``model(x, t) -> (m, d)`` is read as the velocity, e.g. :class:`diffnotes.score.ScoreMLP`
    (whose ``parameterization`` attribute is then ignored); ``data`` is an array of shape
    ``(n, d)`` or a sampler ``data(n, rng)``, as for :func:`diffnotes.score.train`. On one CPU
    thread the defaults take about 7 s for :class:`~diffnotes.score.ScoreMLP`'s defaults (see
    ``benchmarks/bench_flow.py`` for what they reach on the two-moons mixture).

    Returns
    -------
    diffnotes.score.TrainResult
        ``model`` (last iterate), ``ema`` (sample from this one), ``losses``, ``seconds``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = as_path(path)
    n_steps, batch_size, lr, ema_decay, seed, grad_clip, cpu_threads, dev = _check_fit_args(
        n_steps, batch_size, lr, ema_decay, seed, grad_clip, cpu_threads, device)
    dim = _model_dim(model)
    _check_data(data, dim)

    model.to(dev).train()
    gen = torch.Generator(device=dev).manual_seed(seed)
    draw = _batches(data, dim, batch_size, dev, gen, seed)
    return _fit(model, lambda i: _flow_matching_loss(model, draw(), path, gen),
                n_steps=n_steps, lr=lr, ema_decay=ema_decay, grad_clip=grad_clip,
                cpu_threads=cpu_threads, dev=dev, desc="flow matching", progress=progress,
                leave=leave, where="flow_train.train")


def velocity_function(model: nn.Module, *, device=None):
    """Wrap a trained velocity model as ``velocity(x, t)`` for
    :func:`diffnotes.flow.sample_ode` (and :func:`diffnotes.flow.velocity_to_score`): NumPy
    points of shape ``(m, d)`` and a float time in, a float64 array out, evaluated without
    gradients on ``device`` (default: that of the model's parameters)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    p = next(model.parameters(), None)
    dev = default_device(device) if device is not None else (
        p.device if p is not None else torch.device("cpu"))
    dtype = p.dtype if p is not None else torch.float32
    model.to(dev).eval()
    dim = getattr(model, "dim", None)

    def velocity(x, t):
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
            raise ValueError(f"x must have shape (m, {dim if dim is not None else 'd'}), got "
                             f"{x.shape}")
        xm = torch.as_tensor(x, device=dev, dtype=dtype)
        tm = torch.full((x.shape[0],), float(t), device=dev, dtype=dtype)
        with torch.no_grad():
            return model(xm, tm).double().cpu().numpy()

    return velocity
