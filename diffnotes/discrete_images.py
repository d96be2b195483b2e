r"""Discrete diffusion on images: the masked and the uniform chain on pixel levels (Chapter 6).

The chains of :mod:`diffnotes.discrete` act on each of the ``d = H W`` pixels of an image
whose levels ``0..S`` are the ``n = S + 1`` states (``S = 16``, ``n = 17`` for the 8x8
digits); the masked chain's mask is the extra state ``n``. The denoiser
:math:`p_\theta(x_0 \mid x_t)` is the U-Net of Chapter 5 (:class:`~diffnotes.images.unet.UNet`)
with a raw head of ``n`` logits per pixel (:class:`CategoricalUNet`):

* **Input.** The level scaled to :math:`[-1, 1]` (``2 p / S - 1``, the scale of Chapter 5's
  images) and, for the masked chain, a second channel that is 1 on masked pixels (whose level
  channel is then 0). A mask is not a level, so it gets a channel of its own rather than a
  value on the level axis.
* **Time.** The network sees :math:`u = 1 - \alpha_t`, the probability that a pixel has been
  replaced by time ``t``, which lies in ``[0, 1]`` like the VP times the U-Net's embedding was
  designed for.
* **Loss.** :func:`diffnotes.discrete_learn.denoiser_loss` unchanged: for the masked chain the
  ELBO (MDLM's weighted cross-entropy of :eq:`ch6-masked-elbo`, in nats per image), for the
  uniform chain the denoiser cross-entropy (nats per image).
* **Training** (:func:`train`): Adam, linear warm-up then cosine decay, gradient clipping, an
  :class:`~diffnotes.score.EMA` of the weights; the batch and the noise of step ``k`` come
  from generators seeded by ``(seed, k)``, so a run resumed from ``checkpoint.pt`` gives the
  weights of a run that went straight through. Files are written atomically and hold only
  tensors and plain values (``torch.load(..., weights_only=True)``), with the format tag of
  :mod:`diffnotes.images.training` (so :func:`~diffnotes.images.training.load_checkpoint`
  reads them) and ``"model": "discrete_images"`` in their configuration.
* **Sampling** (:func:`sample`): :func:`denoiser` turns the network into the NumPy
  ``denoiser(x, t)`` callable of :mod:`diffnotes.discrete` (batched, no gradients, one torch
  thread), and :func:`~diffnotes.discrete.sample_unmask` (masked) or
  :func:`~diffnotes.discrete.sample_tau` (either chain) draw the images.

:func:`pretrained` loads the two networks shipped in ``diffnotes/images/pretrained/``
(``digits-masked.pt``, ``digits-uniform.pt``; see the README there for the command, the
hardware and the time). Needs the ``learn`` extra.
"""

from __future__ import annotations

# built on diffnotes.images: without torch, the ImportError names it and the learn extra
from ._optional import discrete_images_needs  # noqa: F401  # isort: skip (missing torch: pip hint)

import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import discrete as D
from ._checks import positive_float, positive_int
from .discrete_learn import as_denoiser, denoiser_loss
from .images.config import _from_dict, _to_dict
from .images.training import FORMAT, _atomic_save, _restore, dataset, load_checkpoint
from .images.unet import UNet
from .score import EMA
from .utils import torch_threads

__all__ = ["CategoricalUNet", "DiscreteImageConfig", "build_model", "denoiser", "load_model",
           "pretrained", "sample", "to_levels", "train"]

KINDS = ("masked", "uniform")
SAMPLERS = ("unmask", "tau")
PRETRAINED_DIR = Path(__file__).with_name("images") / "pretrained"
MODEL_TAG = "discrete_images"


@dataclass
class DiscreteImageConfig:
    """Everything that determines a training run of :func:`train` (not the device).

    ``kind`` is the chain (``"masked"`` or ``"uniform"``); ``dataset`` is ``"digits"`` (the
    1497 training images of :func:`diffnotes.images.training.dataset`, 17 levels). The chain
    runs at unit rate on ``[t_min, T]``; the rest is the network and the optimiser.
    """

    kind: str = "masked"
    dataset: str = "digits"
    channels: tuple = (16, 32)
    n_res: int = 1
    attention: bool = True
    T: float = 8.0
    t_min: float = 1e-3
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 100
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    ckpt_every: int = 500

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be 'masked' or 'uniform', got {self.kind!r}")
        if self.dataset != "digits":
            raise ValueError(f"dataset must be 'digits', got {self.dataset!r}")
        self.channels = tuple(self.channels)
        for name in ("n_res", "steps", "batch_size", "ckpt_every"):
            setattr(self, name, positive_int(getattr(self, name), name))
        self.warmup = positive_int(self.warmup, "warmup", minimum=0)
        self.seed = positive_int(self.seed, "seed", minimum=0)
        for name in ("T", "lr", "grad_clip"):
            setattr(self, name, positive_float(getattr(self, name), name))
        self.t_min = positive_float(self.t_min, "t_min", upper=self.T)
        self.ema_decay = positive_float(self.ema_decay, "ema_decay", allow_zero=True,
                                        upper=0.99999)

    @property
    def levels(self) -> int:
        """The largest pixel level ``S`` (16 for the digits); ``n = S + 1`` states."""
        return 16

    @property
    def size(self) -> int:
        return 8

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DiscreteImageConfig:
        return _from_dict(cls, d)


class CategoricalUNet(nn.Module):
    """``model(x, t) -> logits``: noised states ``x`` (long, shape ``(m, size * size)``,
    entries ``0..n`` with ``n`` the mask, or ``0..n-1`` for the uniform chain) and forward
    times ``t`` (shape ``(m,)``) give logits of shape ``(m, size * size, n)`` over the clean
    level of every pixel: the ``model`` that :func:`diffnotes.discrete_learn.denoiser_loss`
    and :func:`diffnotes.discrete_learn.as_denoiser` take."""

    def __init__(self, kind: str, levels: int = 16, size: int = 8, channels=(16, 32),
                 n_res: int = 1, attention: bool = True, seed: int = 0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be 'masked' or 'uniform', got {kind!r}")
        self.kind = kind
        self.levels = positive_int(levels, "levels", minimum=1, maximum=255)
        self.n = self.levels + 1
        self.size = positive_int(size, "size", minimum=4)
        self.unet = UNet(size=size, channels=channels, n_res=n_res, attention=attention,
                         in_channels=2 if kind == "masked" else 1, out_channels=self.n,
                         seed=seed)

    def forward(self, x, t):
        m, d = x.shape[0], self.size * self.size
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"x must have shape (m, {d}), got {tuple(x.shape)}")
        img = x.view(m, 1, self.size, self.size)
        level = 2 * img.float() / self.levels - 1
        if self.kind == "masked":
            mask = (img == self.n).float()
            inp = torch.cat([level * (1 - mask), mask], dim=1)
        else:
            inp = level
        u = -torch.expm1(-torch.as_tensor(t, dtype=torch.float32, device=x.device))
        logits = self.unet(inp, u.expand(m) if u.ndim == 0 else u)   # (m, n, H, W)
        return logits.flatten(2).transpose(1, 2)


def build_model(config: DiscreteImageConfig) -> CategoricalUNet:
    """The (untrained) network of a configuration."""
    return CategoricalUNet(config.kind, config.levels, config.size, config.channels,
                           config.n_res, config.attention, config.seed)


def to_levels(x, levels: int = 16) -> np.ndarray:
    """Images in ``[-1, 1]`` (tensor or array ``(m, 1, H, W)`` or ``(m, H, W)``, on the level
    lattice) to integer levels ``0..levels``, shape ``(m, H * W)``: the states of the chains."""
    x = torch.as_tensor(x).detach().float().cpu()
    p = torch.round((x + 1) * (levels / 2)).long()
    if p.numel() and (p.min() < 0 or p.max() > levels):
        raise ValueError(f"x must lie in [-1, 1], got levels in [{int(p.min())}, "
                         f"{int(p.max())}]")
    return p.reshape(p.shape[0], -1).numpy()


def _lr_at(config, step: int) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    span = max(config.steps - config.warmup, 1)
    c = 0.5 * (1 + math.cos(math.pi * min(step - config.warmup, span) / span))
    return config.lr * (0.05 + 0.95 * c)


def train(kind: str | DiscreteImageConfig = "masked", *, out=None, resume: bool = True,
          cpu_threads: int | None = 1, progress: bool = False, callback=None, **overrides):
    """Train the categorical U-Net of ``kind`` on the digits with the chain's loss (see the
    module docstring), on the CPU.

    ``kind`` is ``"masked"``, ``"uniform"`` or a :class:`DiscreteImageConfig`; keyword
    ``overrides`` replace its fields (``train("masked", steps=200)``). With ``out`` (a folder,
    created) ``checkpoint.pt`` is written every ``ckpt_every`` steps and at the end, and
    ``model.pt`` (configuration, averaged weights, losses, time, hardware) at the end; a
    checkpoint of the same configuration there is resumed from (``resume=False`` starts
    afresh; one of another configuration raises ``ValueError``). ``callback(step, loss)`` runs
    after every step and its checkpoint (raise in it to stop; the run resumes). Returns
    ``(ema_model, config, info)`` with ``info["losses"]`` the loss of every step (nats per
    image) and ``info["seconds"]`` the training time.
    """
    if isinstance(kind, DiscreteImageConfig):
        config = kind
    elif kind in KINDS:
        config = DiscreteImageConfig(kind=kind)
    else:
        raise ValueError(f"kind must be 'masked', 'uniform' or a DiscreteImageConfig, got "
                         f"{kind!r}")
    if overrides:
        config = DiscreteImageConfig.from_dict({**config.to_dict(), **overrides})
    with torch_threads(cpu_threads):
        return _train(config, out, resume, progress, callback)


def _train(config, out, resume, progress, callback):
    x_all = torch.as_tensor(to_levels(dataset(config.dataset, "train")[0], config.levels))
    N = x_all.shape[0]
    model = build_model(config)
    ema = EMA(model, config.ema_decay)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses = np.zeros(config.steps)
    start, seconds_before = 0, 0.0
    out = Path(out) if out is not None else None
    ckpt_path = out / "checkpoint.pt" if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            for name in ("checkpoint.pt", "model.pt"):
                (out / name).unlink(missing_ok=True)
        elif ckpt_path.is_file():
            ckpt = load_checkpoint(ckpt_path)
            if ckpt["config"] != {"model": MODEL_TAG, **config.to_dict()}:
                raise ValueError(f"{ckpt_path} was written for another configuration; use "
                                 "another out folder or resume=False")
            start, seconds_before = _restore(ckpt, "weights", model, ema, opt, losses)
    info = {"device": "cpu", "machine": platform.machine(), "processor": platform.processor(),
            "torch": str(torch.__version__), "cpu_threads": torch.get_num_threads(),
            "resumed_from": start}

    def save(step, seconds):
        if ckpt_path is None:
            return
        common = {"format": FORMAT, "config": {"model": MODEL_TAG, **config.to_dict()},
                  "step": step, "ema": ema.model.state_dict(), "seconds": seconds,
                  "losses": torch.from_numpy(losses[:step].copy()), "info": info}
        _atomic_save({**common, "weights": model.state_dict(), "ema_updates": ema.n_updates,
                      "optimizer": opt.state_dict()}, ckpt_path)
        if step == config.steps:
            _atomic_save(common, out / "model.pt")

    model.train()
    t0 = time.perf_counter()
    gen = torch.Generator()
    for step in range(start, config.steps):
        gen.manual_seed(int(np.random.SeedSequence([config.seed, step]).generate_state(1)[0]))
        idx = torch.randint(0, N, (config.batch_size,), generator=gen)
        loss = denoiser_loss(config.kind, model, x_all[idx], config.levels + 1, T=config.T,
                             t_min=config.t_min, generator=gen)
        for group in opt.param_groups:
            group["lr"] = _lr_at(config, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        ema.update()
        losses[step] = loss.item()
        if not math.isfinite(losses[step]):
            raise FloatingPointError(f"train: the loss is {losses[step]} at step {step}: "
                                     "lower lr")
        if progress and (step + 1) % 250 == 0:
            print(f"step {step + 1}: loss {losses[max(0, step - 249):step + 1].mean():.3f}",
                  flush=True)
        if (step + 1) % config.ckpt_every == 0 and step + 1 < config.steps:
            save(step + 1, seconds_before + time.perf_counter() - t0)
        if callback is not None:
            callback(step, losses[step])
    seconds = seconds_before + time.perf_counter() - t0
    save(config.steps, seconds)
    return ema.model.eval().requires_grad_(False), config, {**info, "losses": losses,
                                                             "seconds": seconds}


def load_model(path):
    """The averaged network of a ``model.pt`` or ``checkpoint.pt`` written by :func:`train`
    (``weights_only=True``), in eval mode on the CPU. Returns ``(model, config, info)``;
    ``info`` holds the losses and the training time."""
    ckpt = load_checkpoint(path)
    cfg = dict(ckpt["config"])
    if cfg.pop("model", None) != MODEL_TAG:
        raise ValueError(f"{path} is not a diffnotes.discrete_images network (use "
                         "diffnotes.images.load_model for score networks)")
    config = DiscreteImageConfig.from_dict(cfg)
    model = build_model(config)
    model.load_state_dict(ckpt["ema"])
    info = {**ckpt.get("info", {}), "losses": ckpt["losses"].numpy(),
            "seconds": float(ckpt["seconds"])}
    return model.eval().requires_grad_(False), config, info


def pretrained(kind: str = "masked"):
    """The shipped digits network of the ``"masked"`` or ``"uniform"`` chain
    (``diffnotes/images/pretrained/digits-<kind>.pt``). Returns ``(model, config, info)``
    like :func:`load_model`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be 'masked' or 'uniform', got {kind!r}")
    return load_model(PRETRAINED_DIR / f"digits-{kind}.pt")


def denoiser(model: CategoricalUNet, *, batch_size: int = 1024, threads: int | None = 1):
    """The NumPy ``denoiser(x, t) -> probs (m, d, n)`` of :mod:`diffnotes.discrete` for a
    network: :func:`diffnotes.discrete_learn.as_denoiser` (no gradients; for the masked chain
    an unmasked pixel keeps its level) run on chunks of ``batch_size`` states with ``threads``
    torch threads."""
    if not isinstance(model, CategoricalUNet):
        raise ValueError(f"model must be a CategoricalUNet, got {type(model).__name__}")
    batch_size = positive_int(batch_size, "batch_size")
    inner = as_denoiser(model.kind, model, model.n)

    def fn(x, t):
        x = np.asarray(x)
        t = np.array(np.broadcast_to(np.asarray(t, dtype=float), (x.shape[0],)))
        with torch_threads(threads):
            parts = [inner(x[i:i + batch_size], t[i:i + batch_size])
                     for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, x.shape[1], model.n))

    return fn


def sample(model: CategoricalUNet, m: int, n_steps: int, *, sampler: str | None = None,
           config: DiscreteImageConfig | None = None, seed: int = 0):
    """Draw ``m`` images with ``n_steps`` steps of ``sampler``: ``"unmask"``
    (:func:`~diffnotes.discrete.sample_unmask`, masked chain only; the default for it) or
    ``"tau"`` (:func:`~diffnotes.discrete.sample_tau`; the default for the uniform chain),
    from ``T`` and down to ``t_min`` of ``config`` (default: the training defaults).
    Returns ``(pixels, run)``: uint8 levels ``(m, size, size)`` and the
    :class:`~diffnotes.discrete.DiscreteRun` (``n_evals`` network evaluations per image, the
    decoder step included)."""
    if not isinstance(model, CategoricalUNet):
        raise ValueError(f"model must be a CategoricalUNet, got {type(model).__name__}")
    kind = model.kind
    sampler = ("unmask" if kind == "masked" else "tau") if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be 'unmask' or 'tau', got {sampler!r}")
    if sampler == "unmask" and kind != "masked":
        raise ValueError("sampler 'unmask' needs the masked chain; this network is "
                         f"{kind!r} (use sampler='tau')")
    cfg = config if config is not None else DiscreteImageConfig(kind=kind)
    m = positive_int(m, "m")
    n_steps = positive_int(n_steps, "n_steps", maximum=100_000)
    d, fn = model.size * model.size, denoiser(model)
    if sampler == "unmask":
        run = D.sample_unmask(fn, m, d, model.n, cfg.T, rng=seed, n_steps=n_steps,
                              t_min=cfg.t_min)
    else:
        run = D.sample_tau(kind, fn, m, d, model.n, cfg.T, rng=seed, n_steps=n_steps,
                           t_min=cfg.t_min)
    return run.states.reshape(m, model.size, model.size).astype(np.uint8), run


def _main(argv=None) -> None:
    """``python -m diffnotes.discrete_images {masked,uniform} --out DIR [--steps N]``: the
    :func:`train` call that made the shipped networks (``DIR/model.pt``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m diffnotes.discrete_images",
                                     description="train a categorical U-Net on the digits")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--out", required=True, help="folder for checkpoint.pt and model.pt")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    args = parser.parse_args(argv)
    extra = {} if args.steps is None else {"steps": args.steps}
    _, config, info = train(args.kind, out=args.out, progress=True, **extra)
    print(f"{config.steps} steps in {info['seconds']:.0f} s, final loss (last 100 steps) "
          f"{info['losses'][-100:].mean():.2f} nats per image; wrote {args.out}/model.pt")


if __name__ == "__main__":
    _main()
