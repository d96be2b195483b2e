"""Image generation with one score network: continuous and discrete samplers (Chapter 5).

- :mod:`diffnotes.images.unet` -- :class:`UNet`, a compact U-Net for the score of small images.
- :mod:`diffnotes.images.config` -- :class:`~diffnotes.images.config.TrainConfig`, the
  presets, where training draws its noise levels.
- :mod:`diffnotes.images.training` -- data, :func:`train` with atomic checkpoints,
  exact resumption and multi-process training (``torchrun``); :func:`load_model`.
- :mod:`diffnotes.images.sampling` -- :func:`sample` with Euler-Maruyama, the Heun
  probability-flow ODE and the Ehrenfest process on pixel levels, all from one network.
- :mod:`diffnotes.images.guidance` -- classifier-free guidance: :func:`guided` turns a
  class-conditional network into a model every sampler takes.
- :mod:`diffnotes.images.metrics` -- a classifier trained on the same data and a Frechet
  distance on its features (an FID-style score, not Inception FID), label statistics, floors.
- :mod:`diffnotes.images.plotting` -- image grids.
- ``python -m diffnotes.images {train,sample}`` -- the command line.

Images are float tensors ``(n, 1, H, W)`` in ``[-1, 1]``; pixel level ``p`` of ``0..S`` maps to
``2 p / S - 1`` (``S = 16`` for scikit-learn's 8x8 digits, 255 for MNIST). Needs the ``learn``
extra (``pip install 'diffnotes[learn]'``: torch, tqdm, and scikit-learn for the digits).
"""

from pathlib import Path

from .._optional import images_needs  # noqa: F401  (missing torch: a pip hint)
from . import config, guidance, metrics, plotting, sampling, training, unet
from .guidance import Guided, guided
from .sampling import SAMPLERS, ImageRun, sample, to_pixels
from .training import (
    PRESETS,
    Interrupted,
    TrainConfig,
    TrainResult,
    dataset,
    load_model,
    make_sde,
    to_unit,
    train,
)
from .unet import UNet

__all__ = ["PRESETS", "SAMPLERS", "Guided", "ImageRun", "Interrupted", "TrainConfig",
           "TrainResult", "UNet", "config", "dataset", "guidance", "guided", "load_model",
           "make_sde", "metrics", "plotting", "pretrained", "sample", "sampling", "to_pixels",
           "to_unit", "train", "training", "unet"]

PRETRAINED_DIR = Path(__file__).with_name("pretrained")


def pretrained(name: str = "mnist8k", *, device=None):
    """The network shipped with the package (``model.pt`` of the ``name`` preset, produced by
    ``python -m diffnotes.images train --preset name``; see ``pretrained/README.md``).
    Returns ``(model, config, info)`` like :func:`load_model`."""
    path = PRETRAINED_DIR / f"{name}.pt"
    if not path.is_file() or _other_module(path):
        raise ValueError(f"name must be one of {_shipped_score_networks()}; got {name!r} (the "
                         "discrete networks of Chapter 6 load with "
                         "diffnotes.discrete_images.pretrained)")
    return load_model(path, device=device)


def _other_module(path) -> bool:
    """Whether a shipped file belongs to another module (its config names one)."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return not isinstance(ckpt, dict) or "model" in ckpt.get("config", {})


def _shipped_score_networks() -> list[str]:
    """The names of the shipped files that :func:`load_model` reads."""
    return [p.stem for p in sorted(PRETRAINED_DIR.glob("*.pt")) if not _other_module(p)]
