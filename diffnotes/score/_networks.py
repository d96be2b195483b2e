r"""The score network (part of :mod:`diffnotes.score`, Chapter 3): :class:`ScoreMLP`, the moving
average :class:`EMA` of its weights, and :func:`score_function`, which wraps a trained model
for the samplers of :mod:`diffnotes.sde`. Torch.
"""

from __future__ import annotations

from .._optional import score_needs  # noqa: F401  # isort: skip (missing torch: pip hint)
import copy
import math
import numbers
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .._checks import positive_float, positive_int
from ..utils import device as default_device
from ._losses import (
    PARAMETERIZATIONS,
    _check_sde,
    _choice,
    _is_torch,
    _parameterization_of,
    _to_score,
)

__all__ = ["EMA", "ScoreMLP", "score_function"]


# --------------------------------------------------------------------------------------------
# The network and its moving average
# --------------------------------------------------------------------------------------------
class ScoreMLP(nn.Module):
    r"""A small MLP for the score of a low-dimensional distribution.

    The input is the point :math:`x` concatenated with a sinusoidal embedding of the time,
    :math:`(\sin \omega_k t, \cos \omega_k t)_{k < E/2}` with frequencies :math:`\omega_k`
    spaced geometrically from 1 to 1000 (so that both :math:`t \approx 10^{-3}` and
    :math:`t \approx 1` are resolved), followed by ``depth`` hidden layers of width ``hidden``
    with SiLU activations and a linear output of dimension ``dim``.

    Parameters
    ----------
    dim : int
        Dimension of the data.
    hidden, depth : int
        Width and number of hidden layers.
    embed_dim : int
        Size of the time embedding (even).
    parameterization : str
        What :meth:`forward` predicts: ``"noise"`` (default), ``"score"`` or ``"data"``;
        :meth:`score` converts it to a score.
    seed : int
        Seed of the initial weights (drawn without touching torch's global random state).

    Notes
    -----
    The network sees :math:`x_t` unscaled: it suits SDEs whose marginals stay of order one
    (:class:`~diffnotes.sde.VPSDE`, :class:`~diffnotes.sde.SubVPSDE`,
    :class:`~diffnotes.sde.OU`), not :class:`~diffnotes.sde.VESDE` with a large
    :math:`\sigma_{\max}`, whose inputs would need rescaling by :math:`1/\sqrt{1 + \sigma^2}`.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, embed_dim: int = 32,
                 parameterization: str = "noise", *, seed: int = 0):
        super().__init__()
        self.dim = positive_int(dim, "dim")
        self.hidden = positive_int(hidden, "hidden")
        self.depth = positive_int(depth, "depth")
        self.embed_dim = positive_int(embed_dim, "embed_dim", minimum=2)
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {embed_dim}")
        self.parameterization = _choice(parameterization, "parameterization", PARAMETERIZATIONS)
        seed = positive_int(seed, "seed", minimum=0)
        half = self.embed_dim // 2
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(1000.0), half)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers: list[nn.Module] = [nn.Linear(self.dim + self.embed_dim, self.hidden),
                                       nn.SiLU()]
            for _ in range(self.depth - 1):
                layers += [nn.Linear(self.hidden, self.hidden), nn.SiLU()]
            layers.append(nn.Linear(self.hidden, self.dim))
            self.net = nn.Sequential(*layers)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, hidden={self.hidden}, depth={self.depth}, "
                f"embed_dim={self.embed_dim}, parameterization={self.parameterization!r}")

    def _times(self, x, t):
        return _batch_times(x, t)

    def embed(self, t):
        """The sinusoidal embedding of the times ``t`` (shape ``(m,)``), shape ``(m, E)``."""
        return _sinusoidal(t, self.freqs)

    def forward(self, x, t):
        """The raw output at points ``x`` (tensor ``(m, dim)``) and times ``t`` (a float, or a
        tensor of shape ``(m,)``): a noise, score or clean-point prediction, see
        ``parameterization``."""
        t = self._times(x, t)
        return self.net(torch.cat([x, self.embed(t)], dim=1))

    def score(self, x, t, sde):
        """The score at points ``x`` and times ``t`` under the linear ``sde``, converted from
        the raw output by the parameterisation (differentiable)."""
        return _model_score(self, x, self._times(x, t), _check_sde(sde))


def _batch_times(x, t):
    """One time per point of the batch ``x``: ``t`` a float, a 0-d or an ``(m,)`` array or tensor,
    returned as a tensor of shape ``(m,)`` on the device and of the dtype of ``x``."""
    if isinstance(t, numbers.Real) and not isinstance(t, bool):
        return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
    if not _is_torch(t):
        t = torch.as_tensor(np.array(t, dtype=float), dtype=x.dtype, device=x.device)
    t = t.to(device=x.device, dtype=x.dtype)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a float or have shape ({x.shape[0]},), got "
                         f"{tuple(t.shape)}")
    return t


def _sinusoidal(t, freqs):
    r"""The embedding :math:`(\sin \omega_k t, \cos \omega_k t)_k` of times ``t`` (shape
    ``(m,)``) at frequencies ``freqs``: shape ``(m, 2 len(freqs))``."""
    ft = t[:, None] * freqs
    return torch.cat([torch.sin(ft), torch.cos(ft)], dim=1)


def _model_score(model, x, t, sde):
    alpha, sigma = sde._alpha_sigma(t)
    return _to_score(model(x, t), model.parameterization, x, alpha[:, None], sigma[:, None])


class EMA:
    r"""An exponential moving average of a model's weights,
    :math:`\bar\theta \leftarrow \beta_n\bar\theta + (1 - \beta_n)\theta` at the
    :math:`n`-th :meth:`update`.

    Averaging the iterates of a noisy optimiser gives a smoother, usually better, model than the
    last iterate; it is what diffusion models are sampled from. With decay :math:`\beta` the
    average spans about :math:`1/(1 - \beta)` steps. With ``warmup`` (the default) the decay
    starts small, :math:`\beta_n = \min\bigl(\beta, (1 + n)/(10 + n)\bigr)`, so that the
    average forgets the random initial weights quickly and is useful even after a short run.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained; :attr:`model` is a frozen copy (same device) in eval mode.
    decay : float in [0, 1)
        :math:`\beta`; 0 copies the weights at every update.
    warmup : bool
        Use :math:`\beta_n` above instead of :math:`\beta` from the first update on.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        decay = positive_float(decay, "decay", allow_zero=True)
        if not decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = bool(warmup)
        self.source = model
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.n_updates = 0

    def current_decay(self) -> float:
        r"""The decay :math:`\beta_n` the next :meth:`update` will use."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average toward the current weights of the source model (buffers are
        copied)."""
        w = 1.0 - self.current_decay()
        for avg, p in zip(self.model.parameters(), self.source.parameters(), strict=True):
            avg.lerp_(p.detach(), w)
        for avg, b in zip(self.model.buffers(), self.source.buffers(), strict=True):
            avg.copy_(b)
        self.n_updates += 1



# --------------------------------------------------------------------------------------------
# A trained model as a score function for the samplers
# --------------------------------------------------------------------------------------------
def score_function(model: nn.Module, sde, *, device=None) -> Callable:
    """Wrap a trained model as a score function ``(x, t) -> score`` for the samplers of
    :mod:`diffnotes.sde` (:func:`~diffnotes.sde.euler_maruyama`...).

    NumPy points in, a float64 array out; a tensor in, a tensor out (on its device and of its
    dtype). ``t`` is a float (or one time per point). Evaluation is without gradients, in eval
    mode, on ``device`` (default: the device of the model's parameters).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _parameterization_of(model)
    sde = _check_sde(sde)
    if device is None:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = default_device(device)
    model.to(dev).eval()
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None else torch.float32
    dim = getattr(model, "dim", None)

    def score(x, t):
        tensor_in = _is_torch(x)
        xt = x if tensor_in else torch.as_tensor(np.array(x, dtype=float))
        if xt.ndim != 2 or (dim is not None and xt.shape[1] != dim):
            raise ValueError(f"x must have shape (m, {dim if dim is not None else 'd'}), got "
                             f"{tuple(xt.shape)}")
        xm = xt.to(device=dev, dtype=dtype)
        if _is_torch(t):
            tm = t.to(device=dev, dtype=dtype)
        else:
            tm = torch.as_tensor(np.array(t, dtype=float), device=dev, dtype=dtype)
        tm = torch.broadcast_to(tm, (xm.shape[0],))
        with torch.no_grad():
            s = _model_score(model, xm, tm, sde)
        if tensor_in:
            return s.to(device=xt.device, dtype=xt.dtype)
        return s.detach().cpu().double().numpy()

    return score
