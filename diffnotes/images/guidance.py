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
interface, so every sampler of :func:`diffnotes.images.sampling.sample`, the Ehrenfest one included,
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

    def __init__(self, net: nn.Module, label, weight: float):
        super().__init__()
        if getattr(net, "num_classes", 0) < 1:
            raise ValueError("net must be a class-conditional UNet (num_classes > 0)")
        self.net = net
        if isinstance(label, torch.Tensor) and label.ndim == 1:
            lab = label.detach().cpu()
            if lab.dtype.is_floating_point or lab.dtype == torch.bool or not lab.numel():
                raise ValueError(f"label must be an int or a non-empty 1-D integer tensor, got "
                                 f"dtype {lab.dtype}, shape {tuple(lab.shape)}")
            if int(lab.min()) < 0 or int(lab.max()) >= net.num_classes:
                raise ValueError(f"label must lie in 0..{net.num_classes - 1}, got values in "
                                 f"[{int(lab.min())}, {int(lab.max())}]")
            self.label = lab.long()
        else:
            self.label = positive_int(label, "label", minimum=0, maximum=net.num_classes - 1)
        self.weight = positive_float(weight, "weight", allow_zero=True, upper=100.0)
        for name in ("size", "in_channels", "out_channels", "dim", "parameterization"):
            setattr(self, name, getattr(net, name))
        self.num_classes = 0

    def extra_repr(self) -> str:
        lab = self.label if isinstance(self.label, int) else f"tensor of {self.label.numel()}"
        return f"label={lab}, weight={self.weight:g}"

    def _labels(self, m, dev):
        if isinstance(self.label, int):
            return torch.full((m,), self.label, dtype=torch.long, device=dev)
        if self.label.numel() != m:
            raise ValueError(f"this Guided model holds {self.label.numel()} per-image labels "
                             f"but was called on {m} images: sample exactly that many, in one "
                             f"batch (sample(..., n={self.label.numel()}, batch_size >= n))")
        return self.label.to(dev)

    def forward(self, x, t, label=None):
        if label is not None:
            raise ValueError("a Guided model has its label already; call it as model(x, t)")
        t = _batch_times(x, t)
        m = x.shape[0]
        lab = self._labels(m, x.device)
        if self.weight == 0:
            return self.net(x, t, lab)
        labels = torch.cat([lab, torch.full((m,), self.net.num_classes, dtype=torch.long,
                                            device=x.device)])
        cond, uncond = self.net(torch.cat([x, x]), torch.cat([t, t]), labels).chunk(2)
        return (1 + self.weight) * cond - self.weight * uncond

    def score(self, x, t, sde):
        """The guided score (see the module docstring) under the linear ``sde``."""
        t = _batch_times(x, t)
        alpha, sigma = sde._alpha_sigma(t)
        return _to_score(self(x, t), self.parameterization, x, alpha[:, None, None, None],
                         sigma[:, None, None, None])


def guided(net: nn.Module, label, weight: float) -> Guided:
    r"""The class-conditional network ``net`` guided towards class ``label`` with weight
    ``weight`` (:math:`w \ge 0`; ``0`` is the plain conditional model), as a model that every
    sampler of :func:`diffnotes.images.sampling.sample` accepts in place of an unconditional
    network. The unconditional model of the same network is ``net`` called without a label.

    ``label`` is a class (an int) for every image, or a 1-D integer tensor of per-image
    classes; the latter is for one batch: sample exactly ``len(label)`` images with
    ``batch_size`` at least that (a mismatch raises)."""
    return Guided(net, label, weight)
