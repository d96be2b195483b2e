r"""Flow matching with a coupling: OT, Schrödinger-bridge and rectified (reflow) flow matching
in torch (Chapter 4; the couplings are in :mod:`diffnotes.ot_couplings`).

:func:`train` is :func:`diffnotes.flow_train.train` with the pairs :math:`(x_0, x_1)` of each
batch drawn from a coupling instead of independently: in every step it draws :math:`m` data
points and :math:`m` noise points, pairs them with :func:`diffnotes.ot_couplings.pair`
(``"independent"``, ``"ot"`` or ``"sb"``, computed in NumPy on the CPU), or draws :math:`m`
rows of given pairs (``"paired"``, for reflow), and regresses the velocity on the target of
:func:`diffnotes.ot_couplings.bridge_interpolant`,

.. math::
    \mathcal L(\theta) = \mathbb E\,\bigl|v_\theta(x_t, t) - u_t\bigr|^2,\qquad
    t \sim \mathcal U(t_\varepsilon, 1 - t_\varepsilon),

with :math:`t_\varepsilon = 0` when :math:`\sigma = 0` (the linear path: the loss is then the
conditional flow-matching loss of :func:`diffnotes.flow_train.cfm_loss`) and
:math:`t_\varepsilon = 10^{-3}` otherwise. With :math:`\sigma > 0` the target's noise term
:math:`c(t)\,z`, :math:`c(t) = \sigma(1-2t)/(2\sqrt{t(1-t)})`, is singular at the ends, and
each point's squared error is weighted by :math:`1/(1 + c(t)^2)`: a weight that depends on
:math:`t` only leaves the minimiser (the conditional mean given :math:`(x_t, t)`) unchanged
and bounds the noise's contribution to the loss.

Sorted couplings start slowly from a fresh network, so by default the first
:data:`WARM_START` steps pair independently (``warm_start``). On the eight Gaussians with
:class:`~diffnotes.score.ScoreMLP` (hidden 64), 300 steps on batches of 256, the loss of
``"ot"`` without it stays at that of the zero field for 100-200 steps before it drops, and
that of ``"sb"`` at :math:`\sigma = 0.3` for all 300: its 20-step Heun samples end at sliced
:math:`W_2` 0.321 from 2000 test points, as far as the noise they start from, 0.321 (noise
floor 0.072; seed 0, ``tests/test_ot_flow_sb.py``'s setting). Neither a learning rate of
:math:`3\cdot 10^{-3}` (0.321), nor ``"ot"`` pairs joined by Brownian bridges (0.321), nor
torchcfm's unweighted loss changed that. (Its ``SchrodingerBridgeConditionalFlowMatcher`` has
the same interpolant and target, with :math:`t \sim \mathcal U(0, 1)` and no weight, and by
default draws the pairs from the exact OT plan, ``ot_method="exact"``, i.e. ``"ot"`` pairs
joined by Brownian bridges; its 2-D examples run 20 000 steps at a learning rate of
:math:`10^{-3}`.) The plateau comes from the target and the network together. The OT
displacement from :math:`\mathcal N(0, I)` to the ring of modes is nearly radial, outwards
inside the ring and inwards beyond it, and its least-squares linear part is small (slope
:math:`(\sqrt\pi - 2)/2 \approx -0.11` for the radial map onto the circle, about
:math:`-0.09` on minibatch-OT pairs, against :math:`-1` for the independent coupling); and
:class:`~diffnotes.score.ScoreMLP` feeds its first layer 32 sinusoidal features of :math:`t`
(frequencies up to 1000) beside the two coordinates of :math:`x`, so a fresh network varies
mostly with :math:`t` and the :math:`x`-features get little gradient to grow on, which the
bridge's noise term then buries. With ``embed_dim=2`` (one frequency) neither coupling
plateaus (0.105 for ``"ot"``, 0.108 for ``"sb"`` without warm start). torchcfm's 2-D network
(raw :math:`t` beside :math:`x`, three layers of 64, SELU) with its recipe (Adam
:math:`10^{-3}`, no EMA) has no plateau for ``"ot"`` either (its loss falls from the first
steps; 0.214 after 300 steps, 0.119 with SiLU), but its ``"sb"`` loss is flat for about 200
steps (0.191 after 300 steps, 0.13 after 1000, 0.11 after 2000; measured with a copy of its
loop on our pairs). The large embedding is what the score models need at small :math:`t`, so
:func:`train` keeps the network and warms it up instead: fifty independent steps give it the
:math:`x`-features; with them ``"sb"`` reaches 0.109, 0.104, 0.110 and ``"ot"`` 0.104 for
each of seeds 0, 1, 2 in the same 300 steps (``"ot"`` without them 0.113, 0.107, 0.109), and
20 or 100 warm steps do as well for ``"sb"`` (0.110, 0.111). The pairs of the remaining
steps are those of the coupling, so the minimiser is unchanged.

The result is sampled with :func:`diffnotes.flow_train.velocity_function` and
:func:`diffnotes.flow.sample_ode`.
"""

from __future__ import annotations

from ._optional import ot_flow_train_needs  # noqa: F401  # isort: skip (missing torch: pip hint)

import numpy as np
import torch
from torch import nn

from ._checks import positive_float, positive_int, real_array
from .ot_couplings import COUPLINGS, _ot_pairing, _sb_pairing, bridge_interpolant
from .score import TrainResult, _batches, _check_data, _check_fit_args, _fit, _model_dim

__all__ = ["WARM_START", "train"]

T_EPS = 1e-3
r"""The margin :math:`t_\varepsilon` of the training times when ``sigma > 0``."""

WARM_START = 50
"""Default number of first steps that pair ``"ot"`` and ``"sb"`` batches independently."""


def _paired(data, dim, batch_size, dev, gen):
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ValueError("data must be a pair (x0, x1) of arrays of shape (n, d) for "
                         "coupling='paired'")
    x0, x1 = (real_array(a, name, ndim=2) for a, name in zip(data, ("x0", "x1"), strict=True))
    if x0.shape != x1.shape or x0.shape[1] != dim or x0.shape[0] < 1:
        raise ValueError(f"x0 and x1 must both have shape (n, {dim}) (the model's dim), got "
                         f"{x0.shape} and {x1.shape}")
    a = torch.as_tensor(x0, dtype=torch.float32, device=dev)
    b = torch.as_tensor(x1, dtype=torch.float32, device=dev)

    def draw(step):
        i = torch.randint(0, a.shape[0], (batch_size,), generator=gen, device=dev)
        return a[i], b[i]

    return draw


def _coupled(data, dim, batch_size, dev, gen, seed, coupling, sigma, warm_start):
    draw_x1 = _batches(data, dim, batch_size, dev, gen, seed)
    rng = np.random.default_rng([seed, 1])

    def draw(i):
        x1 = draw_x1()
        x0 = torch.randn(x1.shape, generator=gen, device=dev, dtype=x1.dtype)
        if coupling == "independent" or i < warm_start:
            return x0, x1
        a, b = x0.double().cpu().numpy(), x1.double().cpu().numpy()
        idx = _ot_pairing(a, b) if coupling == "ot" else _sb_pairing(a, b, sigma, rng)
        return x0, x1[torch.as_tensor(idx, device=dev)]

    return draw


def train(model: nn.Module, data, coupling: str = "ot", sigma: float = 0.0, *,
          n_steps: int = 1000, batch_size: int = 256, lr: float = 2e-2,
          ema_decay: float = 0.995, seed: int = 0, device=None, progress: bool = True,
          grad_clip: float | None = 1.0, leave: bool = True, cpu_threads: int | None = 1,
          warm_start: int = WARM_START) -> TrainResult:
    r"""Fit ``model`` (``model(x, t) -> (m, d)``, read as a velocity, e.g.
    :class:`diffnotes.score.ScoreMLP`) by flow matching with a coupling.

    Parameters
    ----------
    data : array of shape (n, d), sampler ``data(n, rng)``, or pair ``(x0, x1)``
        The data (an array or sampler, as for :func:`diffnotes.flow_train.train`); for
        ``coupling="paired"`` a pair of arrays of shape ``(n, d)`` whose rows are the pairs
        (e.g. :func:`diffnotes.ot_couplings.reflow_pairs`).
    coupling : "independent", "ot", "sb" or "paired"
        How each batch's noise is paired with its data (see :mod:`diffnotes.ot_couplings`).
    sigma : float
        The Brownian bridge's noise level, >= 0; must be > 0 for ``"sb"`` (the entropic
        plan's :math:`\varepsilon = 2\sigma^2`). With ``sigma > 0`` and another coupling the
        pairs are joined by Brownian bridges too.
    n_steps, batch_size, lr, ema_decay, seed, device, progress, grad_clip, leave, cpu_threads
        As for :func:`diffnotes.flow_train.train`.
    warm_start : int >= 0, default :data:`WARM_START`
        For ``"ot"`` and ``"sb"``: the first ``warm_start`` of the ``n_steps`` steps pair the
        batch independently (still with Brownian bridges when ``sigma > 0``), which lifts a
        fresh network off the zero-field plateau (see the module's notes); ignored by
        ``"independent"`` and ``"paired"``.

    Returns
    -------
    diffnotes.score.TrainResult
        ``model`` (last iterate), ``ema`` (sample from this one), ``losses``, ``seconds``
        (pairing included).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    allowed = (*COUPLINGS, "paired")
    if coupling not in allowed:
        raise ValueError(f"coupling must be one of {', '.join(map(repr, allowed))}, got "
                         f"{coupling!r}")
    sigma = positive_float(sigma, "sigma", allow_zero=True)
    if coupling == "sb" and sigma == 0:
        raise ValueError("sigma must be > 0 for coupling='sb' (sigma = 0 is coupling='ot')")
    n_steps, batch_size, lr, ema_decay, seed, grad_clip, cpu_threads, dev = _check_fit_args(
        n_steps, batch_size, lr, ema_decay, seed, grad_clip, cpu_threads, device)
    warm_start = positive_int(warm_start, "warm_start", minimum=0)
    dim = _model_dim(model)

    model.to(dev).train()
    gen = torch.Generator(device=dev).manual_seed(seed)
    if coupling == "paired":
        draw = _paired(data, dim, batch_size, dev, gen)
    else:
        _check_data(data, dim)
        draw = _coupled(data, dim, batch_size, dev, gen, seed, coupling, sigma, warm_start)
    t_eps = T_EPS if sigma > 0 else 0.0

    def loss_at(i):
        x0, x1 = draw(i)
        t = t_eps + (1 - 2 * t_eps) * torch.rand(x0.shape[0], generator=gen, device=dev)
        z = torch.randn(x0.shape, generator=gen, device=dev) if sigma > 0 else None
        xt, ut = bridge_interpolant(x0, x1, t, sigma, z)
        r = model(xt, t) - ut
        if sigma > 0:       # w(t) = 1 / (1 + c(t)^2): bounded noise, same minimiser
            w = 1 / (1 + sigma**2 * (1 - 2 * t) ** 2 / (4 * t * (1 - t)))
            return (w * (r * r).sum(dim=1)).mean()
        return (r * r).sum(dim=1).mean()

    return _fit(model, loss_at, n_steps=n_steps, lr=lr, ema_decay=ema_decay,
                grad_clip=grad_clip, cpu_threads=cpu_threads, dev=dev,
                desc=f"flow matching ({coupling})", progress=progress, leave=leave,
                where="ot_flow_train.train")
