r"""Learning a denoiser :math:`p_\theta(x_0 \mid x_t)` for the chains of
:mod:`diffnotes.discrete` (Chapter 6). Torch, imported inside the functions.

* The masked chain is trained on its ELBO: the weighted cross-entropy of MDLM/MD4
  (:eq:`ch6-masked-elbo`), estimated with one time per sample drawn uniformly in
  :math:`\log t` on ``[t_min, T]`` -- the same variable the exact :func:`diffnotes.discrete.elbo`
  integrates in, so the loss is an unbiased estimate of its path term.
* The uniform chain is trained on the plain cross-entropy :math:`-\log p_\theta(x_0 \mid x_t)`
  of every coordinate. Its minimiser is the exact denoiser too, which is all the reverse rates
  :eq:`ch6-reverse-rates` need; its ELBO is then evaluated exactly by
  :func:`diffnotes.discrete.elbo`. (SEDD's score entropy learns the ratios
  :math:`p_t(y)/p_t(x)` directly; the denoiser form gives the same rates with one softmax per
  coordinate, which is why the book uses it.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._checks import positive_float, positive_int
from ._optional import require
from .discrete import _K, _kind, _n, _states_arg
from .schedules import Schedule, as_schedule

__all__ = ["as_denoiser", "denoiser_loss", "fit_denoiser"]


def _torch():
    """torch, or an ImportError naming the learn extra."""
    return require("torch", extra="learn", module="diffnotes.discrete_learn")


def _mlp(kind: str, n: int, d: int, hidden: int):
    torch = _torch()
    nn = torch.nn

    K = _K(kind, n)

    class DenoiserMLP(nn.Module):
        """``(x_t, t) -> logits (B, d, n)``: an MLP on the one-hot ``x_t`` and features of
        ``log t``."""

        def __init__(self):
            super().__init__()
            self.freqs = nn.Parameter(torch.arange(1, 5, dtype=torch.float32),
                                      requires_grad=False)
            self.net = nn.Sequential(nn.Linear(d * K + 9, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, d * n))

        def forward(self, x, t):
            lt = torch.log(t)[:, None]
            h = torch.cat([nn.functional.one_hot(x, K).float().flatten(1), lt,
                           torch.sin(lt * self.freqs), torch.cos(lt * self.freqs)], 1)
            return self.net(h).view(-1, d, n)

    return DenoiserMLP()


def denoiser_loss(kind: str, model, x0, n: int, *, T: float, t_min: float = 1e-3,
                  schedule: Schedule | None = None, generator=None):
    r"""One Monte Carlo estimate of the training loss on a batch ``x0`` (torch long, ``(B, d)``).

    Masked: :math:`\log(T/t_{\min})\, t\, w(t) \sum_{i:\,x_t^i = n} -\log p_\theta(x_0^i
    \mid x_t)` with :math:`\log t` uniform and :math:`w` = :func:`diffnotes.discrete.masked_weight`
    (an unbiased estimate of the ELBO's path term). Uniform: :math:`\sum_i -\log p_\theta(x_0^i
    \mid x_t)` with the same times.
    """
    torch = _torch()

    kind, n = _kind(kind), _n(n)
    sch = as_schedule(schedule)
    B = x0.shape[0]
    span = float(np.log(T / t_min))
    t = t_min * torch.exp(span * torch.rand(B, generator=generator, dtype=torch.float64))
    theta = sch._theta(t)
    hit = torch.rand(x0.shape, generator=generator, dtype=torch.float64) >= torch.exp(
        -theta)[:, None]
    if kind == "masked":
        fill = torch.full_like(x0, n)
    else:
        fill = torch.randint(0, n, x0.shape, generator=generator)
    xt = torch.where(hit, fill, x0)
    logp = torch.log_softmax(model(xt, t.float()), -1)
    ce = -torch.gather(logp, -1, x0[..., None])[..., 0]
    if kind == "uniform":
        return ce.sum(1).mean()
    w = (sch._lam(t) / torch.expm1(theta) * t * span).float()
    return (w * (ce * hit).sum(1)).mean()


def fit_denoiser(kind: str, data, n: int, *, T: float, t_min: float = 1e-3,
                 schedule: Schedule | None = None, steps: int = 1500, batch: int = 256,
                 hidden: int = 64, lr: float = 3e-3, seed: int = 0):
    """Train a small MLP denoiser with :func:`denoiser_loss` (Adam, cosine decay) on samples
    ``data`` (int array ``(N, d)``, entries ``0..n-1``). Returns ``(model, losses)``."""
    torch = _torch()

    kind, n = _kind(kind), _n(n)
    data = _states_arg(data, n, "data")
    T = positive_float(T, "T")
    t_min = positive_float(t_min, "t_min", upper=T)
    steps = positive_int(steps, "steps")
    batch = positive_int(batch, "batch")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _mlp(kind, n, data.shape[1], positive_int(hidden, "hidden"))
    opt = torch.optim.Adam(model.parameters(), lr=positive_float(lr, "lr"))
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    data_t = torch.as_tensor(data, dtype=torch.long)
    losses = np.empty(steps)
    for i in range(steps):
        idx = torch.randint(0, len(data_t), (batch,), generator=gen)
        loss = denoiser_loss(kind, model, data_t[idx], n, T=T, t_min=t_min,
                             schedule=schedule, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
        losses[i] = loss.item()
    model.eval()
    return model, losses


def as_denoiser(kind: str, model, n: int) -> Callable:
    """The numpy denoiser ``(x, t) -> probs (m, d, n)`` of a trained model. For the masked
    chain an unmasked coordinate is carried over (its law is the point mass at its value), as
    the ELBO and the samplers assume."""
    torch = _torch()

    kind, n = _kind(kind), _n(n)

    def denoiser(x, t):
        x = np.asarray(x)
        with torch.no_grad():
            logits = model(torch.as_tensor(x, dtype=torch.long),
                           torch.as_tensor(np.asarray(t), dtype=torch.float32))
            p = torch.softmax(logits.double(), -1).numpy()
        if kind == "masked":
            keep = x < n
            p = np.where(keep[..., None], np.eye(n)[np.minimum(x, n - 1)], p)
        return p

    return denoiser
