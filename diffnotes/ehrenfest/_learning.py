r"""Learning the reverse rates from data (part of :mod:`diffnotes.ehrenfest`, Chapter 2): the
rate-matching loss, a small rate network and its fit, and the fitted model as a rates function
(:func:`rate_matching_loss`, :func:`fit_rate_model`, :func:`model_rates`). Torch, imported inside
the functions, so the rest of :mod:`diffnotes.ehrenfest` needs NumPy/SciPy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._checks import positive_float, positive_int
from ..schedules import Schedule, as_schedule
from ._process import _check_S, _states, scale
from ._rates import _finish_rates

__all__ = ["fit_rate_model", "model_rates", "rate_matching_loss"]


# --------------------------------------------------------------------------------------------
# Learning the reverse rates from data (torch)
# --------------------------------------------------------------------------------------------
def _torch_log_kernel(n, n0, lp, lq, S: int):
    """``log p_{t|0}(n | n0)`` in torch by direct summation (:eq:`ch2-two-binomials`); ``n``,
    ``n0`` integer tensors of one shape, ``lp``, ``lq`` broadcastable float tensors."""
    import torch

    k = torch.arange(S + 1, device=n.device, dtype=lp.dtype)
    nn, aa = n.to(lp.dtype)[..., None], n0.to(lp.dtype)[..., None]
    valid = (k <= aa) & (k <= nn) & (nn - k <= S - aa)

    def lnc(a, b):
        return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma((a - b).clamp(min=0) + 1)

    terms = (lnc(aa, k.clamp(max=S)) + lnc(S - aa, (nn - k).clamp(min=0))
             + (S - aa - nn + 2 * k) * lp[..., None] + (aa + nn - 2 * k) * lq[..., None])
    terms = torch.where(valid, terms, torch.full_like(terms, -torch.inf))
    return torch.logsumexp(terms, dim=-1)


def rate_matching_loss(model, n0, t, S: int, *, schedule: Schedule | None = None,
                       generator=None):
    r"""The regression loss whose minimiser gives the exact reverse rates (:eq:`ch2-loss`).

    For data ``n0`` (integer tensor ``(B, d)``) and times ``t`` (tensor ``(B,)``, ``> 0``) it
    draws ``n ~ p_{t|0}(. | n0)`` and regresses the model's two outputs per coordinate,
    ``(h_up, h_down)``, on the rescaled kernel ratios

    .. math:: \frac{1}{\delta}\Big(\frac{p_{t|0}(n+1\mid n_0)}{p_{t|0}(n\mid n_0)} - 1\Big),
              \qquad \frac{1}{\delta}\Big(1 - \frac{p_{t|0}(n-1\mid n_0)}{p_{t|0}(n\mid n_0)}
              \Big),

    whose conditional expectations given ``n`` are ``(ratio_up - 1)/delta`` and
    ``(1 - ratio_down)/delta``; both tend to the OU score as ``S`` grows, which is the link to
    denoising score matching. The up term is dropped at ``n = S`` and the down term at
    ``n = 0`` (there the rate is zero whatever the model says).

    ``model(x, t)`` takes scaled states ``x`` (float ``(B, d)``) and ``t`` (``(B,)``) and
    returns ``(B, d, 2)``.
    """
    import torch

    S = _check_S(S)
    schedule = as_schedule(schedule)
    if n0.ndim != 2:
        raise ValueError(f"n0 must have shape (B, d), got {tuple(n0.shape)}")
    if t.ndim != 1 or t.shape[0] != n0.shape[0] or not torch.all(t > 0):
        raise ValueError("t must have shape (B,) and be > 0")
    if n0.min() < 0 or n0.max() > S:
        raise ValueError(f"n0 must lie in {{0, ..., {S}}}")
    theta = schedule._theta(t)
    q = -0.5 * torch.expm1(-theta)
    lp, lq = torch.log1p(-q)[:, None], torch.log(q)[:, None]
    n0f = n0.to(t.dtype)
    n = (torch.binomial(n0f, (1 - q)[:, None].expand_as(n0f), generator=generator)
         + torch.binomial(S - n0f, q[:, None].expand_as(n0f), generator=generator)).long()
    delta = 2.0 / S**0.5
    with torch.no_grad():
        l_mid = _torch_log_kernel(n, n0, lp, lq, S)
        l_up = _torch_log_kernel((n + 1).clamp(max=S), n0, lp, lq, S)
        l_dn = _torch_log_kernel((n - 1).clamp(min=0), n0, lp, lq, S)
        y_up = torch.expm1(l_up - l_mid) / delta
        y_dn = -torch.expm1(l_dn - l_mid) / delta
    x = (2.0 / S**0.5) * (n.to(t.dtype) - S / 2)
    out = model(x, t)
    m_up, m_dn = (n < S).to(t.dtype), (n > 0).to(t.dtype)
    err = m_up * (out[..., 0] - y_up) ** 2 + m_dn * (out[..., 1] - y_dn) ** 2
    return err.mean()


def _rate_mlp(dim: int, hidden: int, t_max: float):
    import torch
    from torch import nn

    class RateMLP(nn.Module):
        """``(x, t) -> (B, d, 2)``: an MLP on ``x`` and Fourier features of ``t``."""

        def __init__(self):
            super().__init__()
            self.freqs = nn.Parameter(torch.arange(1, 9, dtype=torch.float32) * np.pi / t_max,
                                      requires_grad=False)
            self.net = nn.Sequential(nn.Linear(dim + 16, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, 2 * dim))
            self.dim = dim

        def forward(self, x, t):
            ft = t[:, None] * self.freqs
            h = torch.cat([x, torch.sin(ft), torch.cos(ft)], dim=1)
            return self.net(h).view(-1, self.dim, 2)

    return RateMLP()


def fit_rate_model(data, S: int, *, schedule: Schedule | None = None, T: float = 5.0,
                   t_min: float = 1e-2, steps: int = 2000, batch: int = 256,
                   hidden: int = 64, lr: float = 2e-3, seed: int = 0, progress: bool = False):
    """Train a small MLP with :func:`rate_matching_loss` on samples of the data alone.

    Parameters
    ----------
    data : array of int, shape (N,) or (N, d)
        Training states in ``{0..S}``.
    T, t_min : float
        Times are drawn uniformly from ``[t_min, T]``.
    steps, batch, hidden, lr, seed : training settings (Adam, cosine learning-rate decay).

    Returns
    -------
    model : torch.nn.Module
        ``model(x, t) -> (B, d, 2)``; turn it into rates with :func:`model_rates`.
    losses : numpy array of shape (steps,)
    """
    import torch
    from tqdm.auto import trange

    S = _check_S(S)
    data = _states(data, S, "data")
    if data.ndim == 1:
        data = data[:, None]
    T = positive_float(T, "T")
    t_min = positive_float(t_min, "t_min")
    if t_min >= T:
        raise ValueError(f"t_min must be < T = {T:g}, got {t_min:g}")
    steps = positive_int(steps, "steps")
    batch = positive_int(batch, "batch")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _rate_mlp(data.shape[1], positive_int(hidden, "hidden"), T)
    opt = torch.optim.Adam(model.parameters(), lr=positive_float(lr, "lr"))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    data_t = torch.as_tensor(data)
    losses = np.empty(steps)
    for i in trange(steps, disable=not progress, desc="rate matching"):
        idx = torch.randint(0, data_t.shape[0], (batch,), generator=gen)
        t = t_min + (T - t_min) * torch.rand(batch, generator=gen)
        loss = rate_matching_loss(model, data_t[idx], t, S, schedule=schedule, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses[i] = loss.item()
    model.eval()
    return model, losses


def model_rates(model, S: int, *, schedule: Schedule | None = None) -> Callable:
    """A rates function ``(n, t) -> (up, down)`` from a model trained by
    :func:`fit_rate_model`: ``up = lambda (n+1)/2 (1 + delta h_up)``,
    ``down = lambda (S-n+1)/2 (1 - delta h_down)`` (negative values set to zero)."""
    import torch

    S = _check_S(S)
    schedule = as_schedule(schedule)
    delta = 2.0 / np.sqrt(S)

    def rates(n, t):
        n = _states(n, S)
        flat = n.ndim == 1
        n2 = n[:, None] if flat else n
        t = np.array(np.broadcast_to(np.asarray(t, dtype=float), n2.shape[:1]))
        with torch.no_grad():
            out = model(torch.as_tensor(scale(n2, S), dtype=torch.float32),
                        torch.as_tensor(t, dtype=torch.float32)).double().numpy()
        lam = schedule.rate(t)[:, None]
        up, dn = _finish_rates(np.maximum(1 + delta * out[..., 0], 0),
                               np.maximum(1 - delta * out[..., 1], 0), n2, S, lam)
        return (up[:, 0], dn[:, 0]) if flat else (up, dn)

    return rates
