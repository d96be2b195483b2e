r"""Learned guidance: one network for the conditional and the unconditional score (Chapter 3).

Classifier-free guidance (Ho and Salimans, 2022) trains a single score network
:math:`s_\theta(x, t, c)` on labelled data, replacing the label by a *null label*
:math:`\varnothing` with probability :math:`p_{\rm uncond}` (label dropout). The minimiser of
the denoising loss is then the conditional score :math:`\nabla\log q_t(x \mid c)` for a real
label and the unconditional :math:`\nabla\log q_t(x)` for :math:`\varnothing`, and the guided
score is

.. math:: s_w(x, t) = (1 + w)\,s_\theta(x, t, c) - w\,s_\theta(x, t, \varnothing).

:class:`ConditionalScoreMLP` is :class:`diffnotes.score.ScoreMLP` with a learned label
embedding added to its time embedding; :func:`train` fits it with the loop of
:func:`diffnotes.score.train`; :func:`guided_score_function` gives :math:`s_w` to the samplers
of :mod:`diffnotes.sde`; :func:`score_errors` compares it with the exact guided score of a
:class:`~diffnotes.mixtures.LabelledMixture` (:func:`diffnotes.mixtures.guided_score`).
Torch.
"""

from __future__ import annotations

# missing torch: the pip hint (it names diffnotes.score, whose needs these are)
from ._optional import guidance_needs  # noqa: F401  # isort: skip
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from . import score as _score
from ._checks import as_rng, positive_float, positive_int
from .mixtures import LabelledMixture, _weight, guided_score
from .score import ScoreMLP, TrainResult, data_to_score, dsm_loss, noise_to_score
from .sde import LinearSDE

__all__ = ["ConditionalScoreMLP", "guided_score_function", "score_errors", "train"]


def _check_linear(sde):
    if not isinstance(sde, LinearSDE):
        raise ValueError(f"sde must be a linear SDE of diffnotes.sde (OU, VPSDE, SubVPSDE, "
                         f"VESDE), got {type(sde).__name__}")
    return sde


class ConditionalScoreMLP(ScoreMLP):
    r"""A class-conditional :class:`~diffnotes.score.ScoreMLP`: the embedding of the time plus
    a learned embedding of the label, :math:`e(t) + E_c`, is concatenated with :math:`x`.

    Labels are ``0, ..., n_classes - 1``; the extra label :attr:`null_label` ``= n_classes``
    (or ``label=None``) asks for the unconditional score.

    Parameters
    ----------
    dim, hidden, depth, embed_dim, parameterization, seed
        As for :class:`~diffnotes.score.ScoreMLP`.
    n_classes : int
        Number of classes (>= 1).
    """

    def __init__(self, dim: int = 2, n_classes: int = 2, hidden: int = 128, depth: int = 3,
                 embed_dim: int = 32, parameterization: str = "noise", *, seed: int = 0):
        super().__init__(dim, hidden, depth, embed_dim, parameterization, seed=seed)
        self.n_classes = positive_int(n_classes, "n_classes")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.label_embedding = nn.Embedding(self.n_classes + 1, self.embed_dim)

    @property
    def null_label(self) -> int:
        """The label that stands for "no label": ``n_classes``."""
        return self.n_classes

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_classes={self.n_classes}"

    def _labels(self, x, label):
        dev = x.device
        if label is None:
            return torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=dev)
        if isinstance(label, torch.Tensor):
            lab = label.to(device=dev, dtype=torch.long)
        else:
            arr = np.asarray(label)
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"label must be None or ints in 0..{self.n_classes}, got "
                                 f"{label!r}")
            lab = torch.as_tensor(arr, dtype=torch.long, device=dev)
        lab = lab.expand(x.shape[0]) if lab.ndim == 0 else lab
        if lab.shape != (x.shape[0],) or bool((lab < 0).any()) or bool(
                (lab > self.n_classes).any()):
            raise ValueError(f"label must be None, an int or one per point (shape "
                             f"({x.shape[0]},)) in 0..{self.n_classes} ({self.n_classes} = "
                             f"null), got {label!r}")
        return lab

    def forward(self, x, t, label=None):
        """The raw output at points ``x`` (tensor ``(m, dim)``), times ``t`` and labels
        ``label`` (None for the null label, an int, or a tensor of ``m`` ints)."""
        t = self._times(x, t)
        e = self.embed(t) + self.label_embedding(self._labels(x, label))
        return self.net(torch.cat([x, e], dim=1))

    def score(self, x, t, sde, label=None):
        """The score at ``x``, ``t`` under the linear ``sde``: conditional on ``label``, or
        unconditional for ``label=None`` (differentiable)."""
        sde = _check_linear(sde)
        t = self._times(x, t)
        alpha, sigma = sde.alpha_sigma(t.detach().cpu().double().numpy())
        alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)[:, None]
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)[:, None]
        out = self(x, t, label)
        if self.parameterization == "noise":
            return noise_to_score(out, sigma)
        if self.parameterization == "data":
            return data_to_score(out, x, alpha, sigma)
        return out


def train(model: ConditionalScoreMLP, sde, data, labels=None, *, p_uncond: float = 0.2,
          n_steps: int = 3000, batch_size: int = 256, lr: float = 2e-2,
          ema_decay: float = 0.995, t_min: float = 1e-3, seed: int = 0, device=None,
          progress: bool = False, grad_clip: float | None = 1.0,
          cpu_threads: int | None = 1) -> TrainResult:
    r"""Fit a :class:`ConditionalScoreMLP` by denoising score matching with label dropout.

    Each step draws labelled points, replaces each label by the null label with probability
    ``p_uncond``, a time :math:`t \sim \mathcal U(t_{\min}, T)` and a noise per point, and
    takes an Adam step on the :math:`\sigma^2`-weighted :func:`~diffnotes.score.dsm_loss`; the
    schedule (cosine decay of the rate), clipping and :class:`~diffnotes.score.EMA` are those
    of :func:`diffnotes.score.train`, whose loop this is.

    Parameters
    ----------
    data : array of shape (n, d) with ``labels`` of shape (n,), or callable
        A labelled training set, or a sampler ``data(n, rng) -> (points, labels)`` such as
        :meth:`LabelledMixture.sample_labelled <diffnotes.mixtures.LabelledMixture.sample_labelled>`
        (then ``labels`` is None).
    p_uncond : float in (0, 1)
        Probability of the null label: the share of the steps spent on the unconditional score.
    n_steps, batch_size, lr, ema_decay, t_min, seed, device, progress, grad_clip, cpu_threads
        As for :func:`diffnotes.score.train`.

    Returns
    -------
    ~diffnotes.score.TrainResult
        Of :mod:`diffnotes.score`; sample from its ``ema``.
    """
    if not isinstance(model, ConditionalScoreMLP):
        raise ValueError(f"model must be a ConditionalScoreMLP, got {type(model).__name__}")
    sde = _check_linear(sde)
    p_uncond = positive_float(p_uncond, "p_uncond")
    if not p_uncond < 1:
        raise ValueError(f"p_uncond must be in (0, 1), got {p_uncond}")
    n_steps, batch_size, lr, ema_decay, seed, grad_clip, cpu_threads, dev = (
        _score._check_fit_args(n_steps, batch_size, lr, ema_decay, seed, grad_clip,
                               cpu_threads, device))
    t_min = positive_float(t_min, "t_min")
    if not t_min < sde.T:
        raise ValueError(f"t_min must be < sde.T = {sde.T:g}, got {t_min:g}")
    d = model.dim
    if callable(data):
        if labels is not None:
            raise ValueError("labels must be None when data is a sampler data(n, rng)")

        def packed(n, rng):
            x, y = data(n, rng)
            return np.column_stack([np.reshape(x, (n, d)), np.asarray(y, float)])
    else:
        if labels is None:
            raise ValueError("labels must be given (one int per point) with a data array")
        x = np.asarray(data, float)
        y = np.asarray(labels)
        if x.ndim != 2 or x.shape[1] != d or y.shape != (x.shape[0],):
            raise ValueError(f"data must have shape (n, {d}) and labels shape (n,), got "
                             f"{x.shape} and {y.shape}")
        if (not np.issubdtype(y.dtype, np.integer) or np.any(y < 0)
                or np.any(y >= model.n_classes)):
            raise ValueError(f"labels must be ints in 0..{model.n_classes - 1}")
        packed = np.column_stack([x, y])
    model.to(dev).train()
    gen = torch.Generator(device=dev).manual_seed(seed)
    draw = _score._batches(packed, d + 1, batch_size, dev, gen, seed)
    rng = np.random.default_rng(seed + 1)

    def loss_at(i):
        b = draw()
        x0, lab = b[:, :d], b[:, d].round().long()
        drop = torch.rand(batch_size, generator=gen, device=dev) < p_uncond
        lab = torch.where(drop, torch.full_like(lab, model.null_label), lab)
        t = rng.uniform(t_min, sde.T, batch_size)
        a, s = sde.alpha_sigma(t)
        a = torch.as_tensor(a, dtype=x0.dtype, device=dev)[:, None]
        s = torch.as_tensor(s, dtype=x0.dtype, device=dev)[:, None]
        eps = torch.randn(x0.shape, generator=gen, device=dev, dtype=x0.dtype)
        xt = a * x0 + s * eps
        out = model(xt, torch.as_tensor(t, dtype=x0.dtype, device=dev), lab)
        return dsm_loss(out, x0, xt, eps, a, s, parameterization=model.parameterization)

    return _score._fit(model, loss_at, n_steps=n_steps, lr=lr, ema_decay=ema_decay,
                       grad_clip=grad_clip, cpu_threads=cpu_threads, dev=dev,
                       desc="guided score matching", progress=progress, leave=False,
                       where="guidance.train")


def guided_score_function(model: ConditionalScoreMLP, sde, label, w: float) -> Callable:
    r"""The learned guided score :math:`(1 + w)\,s_\theta(x, t, c) - w\,s_\theta(x, t,
    \varnothing)` as a function ``(x, t)`` for the samplers of :mod:`diffnotes.sde`
    (NumPy in, float64 out; a tensor in, a tensor out). ``label`` an int (``None``: the
    unconditional score, and then ``w`` is ignored), ``w >= -1``."""
    if not isinstance(model, ConditionalScoreMLP):
        raise ValueError(f"model must be a ConditionalScoreMLP, got {type(model).__name__}")
    sde = _check_linear(sde)
    w = _weight(w)
    if label is not None:
        model._labels(torch.zeros(1, model.dim), label)
    model.eval()
    p = next(model.parameters())

    def score(x, t):
        tensor_in = isinstance(x, torch.Tensor)
        xt = x if tensor_in else torch.as_tensor(np.array(x, dtype=float))
        xm = xt.to(device=p.device, dtype=p.dtype)
        tm = t.to(p.device, p.dtype) if isinstance(t, torch.Tensor) else float(t)
        with torch.no_grad():
            s = model.score(xm, tm, sde, label)
            if label is not None and w != 0:
                s = (1 + w) * s - w * model.score(xm, tm, sde)
        if tensor_in:
            return s.to(device=xt.device, dtype=xt.dtype)
        return s.cpu().double().numpy()

    return score


def score_errors(model: ConditionalScoreMLP, mixture: LabelledMixture, sde, times, label,
                 w: float, *, n: int = 2000, rng=0) -> np.ndarray:
    r"""Relative root-mean-square error of the learned guided score against the exact one,
    :math:`\sqrt{\mathbb E\|\hat s_w - s_w\|^2 / \mathbb E\|s_w\|^2}`, at each time of
    ``times``, over ``n`` points of the class-conditional law :math:`q_t(x \mid c)` (where
    a guided sampler spends its time). Shape ``(len(times),)``."""
    if not isinstance(mixture, LabelledMixture):
        raise ValueError(f"mixture must be a LabelledMixture, got {type(mixture).__name__}")
    if mixture.dim != model.dim:
        raise ValueError(f"mixture must have the model's dimension {model.dim}, got "
                         f"{mixture.dim}")
    n = positive_int(n, "n")
    rng = as_rng(rng)
    f = guided_score_function(model, sde, label, w)
    times = np.atleast_1d(np.asarray(times, float))
    out = []
    for t in times:
        t = positive_float(float(t), "times", upper=sde.T)
        x = sde.sample_marginal(np.reshape(mixture.conditional(label).sample(n, rng),
                                           (n, -1)), t, rng)
        exact = guided_score(mixture, x, t, sde, label, w)
        out.append(np.sqrt(np.mean((f(x, t) - exact) ** 2) / np.mean(exact**2)))
    return np.array(out)
