r"""Classifier-free guidance for the image networks (Chapter 5; the exact version is Chapter 3's
:func:`diffnotes.mixtures.guided_score`).

A class-conditional :class:`~diffnotes.images.unet.UNet` (``num_classes > 0``) trained with
label dropout is at once the conditional model :math:`\hat\varepsilon(x, t \mid c)` and the
unconditional one :math:`\hat\varepsilon(x, t) = \hat\varepsilon(x, t \mid \varnothing)`.
Guidance with weight :math:`w \ge 0` (Ho and Salimans, 2022) uses

.. math:: \hat\varepsilon_w(x, t \mid c) = (1 + w)\,\hat\varepsilon(x, t \mid c)
          - w\,\hat\varepsilon(x, t),

that is the score :math:`(1 + w)\nabla\log p_t(x \mid c) - w\nabla\log p_t(x)`. The weights sum
to one, so the same combination of the raw outputs is right for the noise, score and data
parameterisations alike (each is an affine function of the score with the same coefficients
for both terms). :func:`guided` wraps a network into a model with the unconditional
interface, so every sampler of :func:`diffnotes.images.sample`, the Ehrenfest one included,
takes the guided score unchanged. Each evaluation runs the network once on a batch twice the
size (conditional and unconditional halves); a sampler's ``nfe`` counts it as one.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import positive_float, positive_int
from ..score import _batch_times, _to_score

__all__ = ["Guided", "guided"]


class Guided(nn.Module):
    """The guided network ``(1 + w) net(x, t, label) - w net(x, t)`` with the interface of an
    unconditional :class:`~diffnotes.images.unet.UNet` (see :func:`guided`)."""

    def __init__(self, net: nn.Module, label: int, weight: float):
        super().__init__()
        if getattr(net, "num_classes", 0) < 1:
            raise ValueError("net must be a class-conditional UNet (num_classes > 0)")
        self.net = net
        self.label = positive_int(label, "label", minimum=0, maximum=net.num_classes - 1)
        self.weight = positive_float(weight, "weight", allow_zero=True, upper=100.0)
        for name in ("size", "in_channels", "out_channels", "dim", "parameterization"):
            setattr(self, name, getattr(net, name))
        self.num_classes = 0

    def extra_repr(self) -> str:
        return f"label={self.label}, weight={self.weight:g}"

    def forward(self, x, t, label=None):
        if label is not None:
            raise ValueError("a Guided model has its label already; call it as model(x, t)")
        t = _batch_times(x, t)
        m = x.shape[0]
        if self.weight == 0:
            return self.net(x, t, self.label)
        labels = torch.cat([torch.full((m,), self.label, dtype=torch.long, device=x.device),
                            torch.full((m,), self.net.num_classes, dtype=torch.long,
                                       device=x.device)])
        cond, uncond = self.net(torch.cat([x, x]), torch.cat([t, t]), labels).chunk(2)
        return (1 + self.weight) * cond - self.weight * uncond

    def score(self, x, t, sde):
        """The guided score (see the module docstring) under the linear ``sde``."""
        t = _batch_times(x, t)
        alpha, sigma = sde._alpha_sigma(t)
        return _to_score(self(x, t), self.parameterization, x, alpha[:, None, None, None],
                         sigma[:, None, None, None])


def guided(net: nn.Module, label: int, weight: float) -> Guided:
    r"""The class-conditional network ``net`` guided towards class ``label`` with weight
    ``weight`` (:math:`w \ge 0`; ``0`` is the plain conditional model), as a model that every
    sampler of :func:`diffnotes.images.sample` accepts in place of an unconditional network.
    The unconditional model of the same network is ``net`` called without a label."""
    return Guided(net, label, weight)
