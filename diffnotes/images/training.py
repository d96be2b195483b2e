r"""Training the image score model: presets, data, checkpoints, resumption, several processes.

One function, :func:`train`, runs the whole loop for a
:class:`~diffnotes.images.config.TrainConfig`:

* **Data.** :func:`dataset` turns a preset's images into float tensors in :math:`[-1, 1]`
  (pixel level :math:`p \in \{0..S\}` becomes :math:`2p/S - 1`), kept whole on the device.
* **Loss.** The denoising score-matching loss of :func:`diffnotes.score.dsm_loss` under the VP
  SDE of Chapter 3, with times drawn by :func:`~diffnotes.images.config.sample_times`
  (:math:`t \sim \mathcal U(t_{\min}, 1)` by default); for a class-conditional network
  (``num_classes``), each image's label, dropped with probability ``label_dropout``.
* **Optimiser.** AdamW, linear warm-up then cosine decay of the learning rate, gradient
  clipping, an :class:`~diffnotes.score.EMA` of the weights; bfloat16 autocast on CUDA.
* **Checkpoints.** Every ``ckpt_every`` steps (and at the end) ``checkpoint.pt`` is written
  atomically (a temporary file, then :func:`os.replace`), so an interruption never leaves a
  half-written file. Everything in it (config, weights, average, optimiser state, losses) is
  tensors and plain Python values, loadable with ``torch.load(..., weights_only=True)``.
* **Seeding by global sample index.** With :math:`K = \lfloor n / B \rfloor` global batches
  of :math:`B` images per epoch, step :math:`k = eK + j` trains on positions
  :math:`jB \ldots jB + B - 1` of a permutation of the :math:`n` training images seeded by
  ``seed + e``, and the times and noise of those :math:`B` samples are drawn from a generator
  seeded by ``(seed, k)``; process ``r`` of ``N`` takes positions ``r B/N`` to
  ``(r + 1) B/N - 1`` of both. Every random number belongs to a sample of the *global* batch,
  never to a process, so the global batch, and the gradient, of a step do not depend on the
  number of processes: 1 and ``N`` processes give the same weights up to the order of
  floating-point reductions (the tests hold 2 gloo processes to within ``1e-6`` of one
  process after 4 steps; measured ``1.5e-8``). Dropout (the ``mnist`` preset) is the
  exception: its masks come from a generator seeded by ``(seed, rank, k)``, which keeps
  resumption exact but ties the weights to the number of processes.
* **Resumption.** The random numbers of step :math:`k` being functions of ``(seed, k)`` alone,
  and the optimiser and average being restored exactly, a run interrupted and resumed gives
  the same weights, bit for bit, as one that ran straight through.
* **Interruption.** Ctrl-C (SIGINT) or SIGTERM during :func:`train` lets the current step
  finish, writes ``checkpoint.pt`` and raises :class:`Interrupted` (a second Ctrl-C stops at
  once); running the same call again resumes.
* **Several processes.** Under ``torchrun --nproc_per_node N`` the model is wrapped in
  :class:`~torch.nn.parallel.DistributedDataParallel` (NCCL on GPUs, gloo on CPUs) and each
  process takes its contiguous share ``B / N`` of every global minibatch; the logged loss is
  the average over the processes; only rank 0 writes files. At the end the ranks compare
  digests of their weights.
* **The model file.** ``model.pt`` holds the config and the averaged weights only: what
  :func:`load_model` and the samplers need, a quarter of the checkpoint's size.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import data as _data
from ..score import EMA, _dsm_loss
from ..utils import device as default_device
from ..utils import torch_threads
from .config import DATASETS, FORMAT, PRESETS, TrainConfig, build_model, make_sde, sample_times

# TrainConfig, PRESETS, make_sde and build_model live in .config (re-exported here)
__all__ = ["Interrupted", "TrainResult", "dataset", "load_checkpoint", "load_model", "train",
           "to_unit"]
_REEXPORTED = (PRESETS, TrainConfig, build_model, make_sde)

@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    model, ema : UNet
        The last iterate and the moving average of the weights (sample from ``ema``).
    config : TrainConfig
    losses : ndarray, shape (steps,)
        The minibatch loss of every step (from the start of the run, resumed parts included).
    seconds : float
        Wall time of the training steps, summed over the interrupted and resumed parts.
    images_per_second : float
        Training throughput of this call (all processes together).
    info : dict
        Device, world size, torch version, and (under ``torchrun``) the per-rank digests.
    """

    model: nn.Module
    ema: nn.Module
    config: TrainConfig
    losses: np.ndarray
    seconds: float
    images_per_second: float
    info: dict = field(default_factory=dict)


def _split(name: str, data_dir=None):
    """``((train_images, train_labels), (eval_images, eval_labels))`` of a preset's data."""
    if name == "digits":
        # a random held-out part of 300 = 2 x 150 digits (two disjoint sets of the book's
        # n = 150 for the floor of metrics.quality), the same on every machine; each part in
        # the data set's order
        images, labels = _data.load_digits()
        perm = np.random.default_rng(0).permutation(images.shape[0])
        held, train_ = np.sort(perm[:300]), np.sort(perm[300:])
        return (images[train_], labels[train_]), (images[held], labels[held])
    if name == "mnist8k":
        images, labels = _data.load_mnist("test", data_dir)
        return (images[:8000], labels[:8000]), (images[8000:], labels[8000:])
    train_ = _data.load_mnist("train", data_dir)
    return train_, _data.load_mnist("test", data_dir)


def to_unit(pixels, levels: int) -> torch.Tensor:
    """Pixel levels ``0..levels`` (uint8 or int array, shape ``(n, H, W)`` or
    ``(n, 1, H, W)``) to a float32 tensor in ``[-1, 1]`` of shape ``(n, 1, H, W)``."""
    x = torch.as_tensor(np.asarray(pixels)).to(torch.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"pixels must have shape (n, H, W) or (n, 1, H, W), got "
                         f"{tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > levels):
        raise ValueError(f"pixels must lie in 0..{levels}, got values in "
                         f"[{float(x.min()):g}, {float(x.max()):g}]")
    return 2 * x / levels - 1


def dataset(name: str, split: str = "train", *, data_dir=None):
    """The images and labels of a preset's ``split`` (``"train"`` or ``"eval"``).

    Returns ``(x, labels, levels)``: a float32 tensor of shape ``(n, 1, H, W)`` in
    ``[-1, 1]``, an int64 tensor of shape ``(n,)`` and the largest pixel level ``S``.
    ``"digits"``: 1497 / 300 images, the held-out 300 a random subset of scikit-learn's 1797
    (a fixed permutation, seed 0), each part in the data set's order; ``"mnist8k"``: the first
    8000 / last 2000 of the MNIST test split (the shipped network was trained on the first
    8000; :func:`~diffnotes.images.metrics.quality` draws random subsets of the 2000);
    ``"mnist"``: the 60000 training / 10000 test images. Both the image generator and the
    classifier of :mod:`~diffnotes.images.metrics` train on ``"train"`` only.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}; got {name!r}")
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    tr, ev = _split(name, data_dir)
    images, labels = tr if split == "train" else ev
    levels = _data.DIGITS_LEVELS if name == "digits" else _data.MNIST_LEVELS
    return to_unit(images, levels), torch.as_tensor(np.asarray(labels), dtype=torch.int64), \
        levels


def _lr_at(config: TrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``lr / 20``."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    span = max(config.steps - config.warmup, 1)
    c = 0.5 * (1 + math.cos(math.pi * min(step - config.warmup, span) / span))
    return config.lr * (0.05 + 0.95 * c)


def _step_seed(seed: int, step: int, stream: int = 0) -> int:
    """The seed of the random numbers of training step ``step``: ``stream`` 0 is the times and
    noise of the global batch (the key ``(seed, 0, step)`` is the one single-process runs
    always used, so they, and the shipped checkpoint, are reproduced bit for bit); ``stream``
    ``1 + rank`` is the dropout masks of process ``rank``."""
    return int(np.random.SeedSequence([seed, stream, step]).generate_state(1, np.uint64)[0]
               >> 1)


class Interrupted(KeyboardInterrupt):
    """Raised by :func:`train` when Ctrl-C (SIGINT) or SIGTERM stopped it at the end of step
    ``step`` of ``steps``, after writing ``checkpoint`` (``None`` when ``out`` was None)."""

    def __init__(self, step: int, steps: int, checkpoint):
        where = (f"checkpoint written to {checkpoint}" if checkpoint is not None
                 else "nothing saved (out=None)")
        super().__init__(f"training interrupted after step {step} of {steps}; {where}")
        self.step, self.steps, self.checkpoint = step, steps, checkpoint


class _StopOnSignal:
    """While active (in the main thread only), the first SIGINT or SIGTERM sets ``requested``
    (the loop stops at the end of its step, after a checkpoint); a second SIGINT raises
    :class:`KeyboardInterrupt` at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                old = signal.getsignal(sig)
                if old is not None:            # None: a handler not set from Python; leave it
                    self._old[sig] = old
                    signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path, *, map_location="cpu") -> dict:
    """Read a checkpoint or model file written by :func:`train` (``weights_only=True``: no
    code is executed), checking its format tag."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a diffnotes.images checkpoint (format tag "
                         f"{FORMAT!r} missing)")
    return ckpt


def _restore(ckpt: dict, weights_key: str, model, ema, opt, losses) -> tuple[int, float]:
    """Put a resumable checkpoint's state back in place: the weights (under ``weights_key``),
    the average, the optimiser and the losses so far (into ``losses``, in place). Returns the
    step reached and the seconds trained before."""
    model.load_state_dict(ckpt[weights_key])
    ema.model.load_state_dict(ckpt["ema"])
    ema.n_updates = int(ckpt["ema_updates"])
    opt.load_state_dict(ckpt["optimizer"])
    start = int(ckpt["step"])
    losses[:start] = ckpt["losses"].numpy()[:start]
    return start, float(ckpt["seconds"])


def load_model(path, *, device=None):
    """The averaged (EMA) network of a ``model.pt`` or ``checkpoint.pt`` file, in eval mode on
    ``device`` (default: CUDA when present). Returns ``(model, config, info)``."""
    dev = default_device(device)
    ckpt = load_checkpoint(path)
    config = TrainConfig.from_dict(ckpt["config"])
    model = build_model(config)
    model.load_state_dict(ckpt["ema"])
    return model.to(dev).eval().requires_grad_(False), config, ckpt.get("info", {})


def _digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for p in model.state_dict().values():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class _Dist:
    """The process group under ``torchrun`` (world size from the environment), else a stub."""

    def __init__(self, dev):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.active = self.world > 1
        self.dev = dev
        self.owns = False
        if self.active:
            import torch.distributed as dist
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if dev.type == "cuda":
                self.dev = torch.device("cuda", local)
                torch.cuda.set_device(self.dev)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.dev.type == "cuda" else "gloo")
                self.owns = True   # destroyed in close(); a caller's own group is left alone

    def sum(self, values) -> list[float]:
        """``values`` (floats) summed over the processes."""
        if not self.active:
            return list(values)
        import torch.distributed as dist
        buf = torch.tensor(values, dtype=torch.float64, device=self.dev)
        dist.all_reduce(buf)
        return buf.tolist()

    def digests(self, model) -> list[str]:
        mine = _digest(model)
        if not self.active:
            return [mine]
        import torch.distributed as dist
        out: list = [None] * self.world
        dist.all_gather_object(out, mine)
        return out

    def close(self):
        if self.owns:
            import torch.distributed as dist
            dist.destroy_process_group()


def train(config: TrainConfig | str = "digits", *, out=None, resume: bool = True,
          device=None, data_dir=None, progress: bool = True, cpu_threads: int | None = 1,
          callback=None, **overrides) -> TrainResult:
    r"""Train the U-Net of ``config`` by denoising score matching (see the module docstring).

    Parameters
    ----------
    config : TrainConfig or str
        A configuration or the name of a preset
        (:data:`~diffnotes.images.config.PRESETS`); keyword ``overrides`` replace fields
        (``train("digits", steps=300)``).
    out : str or Path, optional
        Folder for ``checkpoint.pt`` and ``model.pt`` (created). ``None`` writes nothing.
    resume : bool
        If ``out`` holds a checkpoint of the same configuration, continue from it (a
        checkpoint of a different configuration raises ``ValueError``). A finished run
        resumes to itself.
    device : str or torch.device, optional
        Default CUDA when present (:func:`diffnotes.utils.device`); under ``torchrun`` each
        process takes the GPU of its ``LOCAL_RANK``.
    data_dir : str, optional
        Where the MNIST files are (see :func:`diffnotes.data.load_mnist`).
    progress : bool
        A ``tqdm`` progress bar (rank 0 only).
    cpu_threads : int or None
        Torch threads on the CPU during training (restored afterwards).
    callback : callable, optional
        ``callback(step, loss)`` after every step (e.g. to stop early by raising).

    Returns
    -------
    TrainResult
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"config must be a TrainConfig or one of {', '.join(PRESETS)}; "
                             f"got {config!r}")
        config = PRESETS[config]
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig or a preset name, got "
                         f"{type(config).__name__}")
    if overrides:
        config = config.replace(**overrides)
    dist_ = _Dist(default_device(device))
    dev = dist_.dev
    try:
        with torch_threads(cpu_threads, dev), _StopOnSignal() as stop:
            return _train(config, out, resume, dev, data_dir, progress and dist_.rank == 0,
                          callback, dist_, stop)
    finally:
        dist_.close()


def _train(config, out, resume, dev, data_dir, progress, callback, dist_, stop):
    from tqdm.auto import trange

    x_all, y_all, _ = dataset(config.dataset, "train", data_dir=data_dir)
    if config.num_classes and int(y_all.max()) >= config.num_classes:
        raise ValueError(f"num_classes = {config.num_classes} is too small for the labels of "
                         f"{config.dataset} (0..{int(y_all.max())})")
    n = x_all.shape[0]
    if config.batch_size % dist_.world:
        raise ValueError(f"batch_size = {config.batch_size} must be divisible by the number "
                         f"of processes ({dist_.world})")
    local_batch = config.batch_size // dist_.world
    if local_batch > n // dist_.world:
        raise ValueError(f"batch_size = {config.batch_size} is larger than the training set "
                         f"({n} images)")
    x_all, y_all = x_all.to(dev), y_all.to(dev)
    sde = make_sde(config)
    model = build_model(config).to(dev)
    ema = EMA(model, config.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr,
                            weight_decay=config.weight_decay)
    losses = np.zeros(config.steps)
    start, seconds_before = 0, 0.0
    out = Path(out) if out is not None else None
    ckpt_path = out / "checkpoint.pt" if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if not resume and dist_.rank == 0:     # start afresh: no file of an older run is left
            for name in ("checkpoint.pt", "model.pt"):
                (out / name).unlink(missing_ok=True)
        if resume and ckpt_path.is_file():
            ckpt = load_checkpoint(ckpt_path)
            saved = TrainConfig.from_dict(ckpt["config"]).to_dict()   # older files: defaults
            if saved != config.to_dict():
                diff = {k: (saved.get(k), v) for k, v in config.to_dict().items()
                        if saved.get(k) != v}
                raise ValueError(f"{ckpt_path} was written for another configuration "
                                 f"(checkpoint vs now: {diff}); use another out folder or "
                                 "resume=False")
            start, seconds_before = _restore(ckpt, "model", model, ema, opt, losses)
    net = model
    if dist_.active:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda"
                                      else None)
    per_epoch = n // config.batch_size
    lo, hi = dist_.rank * local_batch, (dist_.rank + 1) * local_batch   # this process's share
    order_gen = torch.Generator()   # the order of epoch e: randperm(n) seeded by seed + e
    gen = torch.Generator(device=dev)
    dropout = config.dropout > 0
    rng_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev.type == "cuda" else []
    amp = dev.type == "cuda"
    info = {"device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
            "world_size": dist_.world, "torch": str(torch.__version__),
            "machine": platform.machine(), "cpu_threads": torch.get_num_threads(),
            "resumed_from": start}

    def save(step, seconds, digests=None):
        if ckpt_path is None or dist_.rank != 0:
            return
        common = {"format": FORMAT, "config": config.to_dict(), "step": step,
                  "ema": ema.model.state_dict(), "seconds": seconds,
                  "losses": torch.from_numpy(losses[:step].copy()),
                  "info": {**info, **({"rank_digests": digests} if digests else {})}}
        _atomic_save({**common, "model": model.state_dict(), "ema_updates": ema.n_updates,
                      "optimizer": opt.state_dict()}, ckpt_path)
        if step == config.steps:
            _atomic_save(common, out / "model.pt")

    epoch, order = -1, None
    bar = trange(start, config.steps, disable=not progress, desc=f"train {config.dataset}",
                 initial=start, total=config.steps)
    model.train()
    t0 = time.perf_counter()
    try:
        if stop.requested and not dist_.active:    # Ctrl-C while loading: stop before a step
            save(start, seconds_before)
            raise Interrupted(start, config.steps, ckpt_path)
        for step in bar:
            e, k = divmod(step, per_epoch)
            if e != epoch:
                order = torch.randperm(n, generator=order_gen.manual_seed(config.seed + e))
                order = order.to(dev)
                epoch = e
            first = k * config.batch_size
            idx = order[first + lo:first + hi]
            x0 = x_all[idx]
            # the times and noise of the whole global batch, alike on every process
            gen.manual_seed(_step_seed(config.seed, step))
            t = sample_times(config, torch.rand(config.batch_size, generator=gen,
                                                device=dev)[lo:hi])
            eps = torch.randn((config.batch_size, *x0.shape[1:]), generator=gen,
                              device=dev)[lo:hi]
            label = None
            if config.num_classes:    # drawn after the noise: unconditional runs are unchanged
                label = y_all[idx].clone()
                drop = torch.rand(config.batch_size, generator=gen, device=dev)[lo:hi]
                label[drop < config.label_dropout] = config.num_classes
            alpha, sigma = (c[:, None, None, None] for c in sde._alpha_sigma(t))
            xt = alpha * x0 + sigma * eps
            for group in opt.param_groups:
                group["lr"] = _lr_at(config, step)
            with torch.random.fork_rng(devices=rng_devices, enabled=dropout,
                                       device_type="cuda"):
                if dropout:
                    torch.manual_seed(_step_seed(config.seed, step, 1 + dist_.rank))
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
                    output = net(xt, t) if label is None else net(xt, t, label)
            loss = _dsm_loss(output.float().flatten(1), x0.flatten(1), xt.flatten(1),
                             eps.flatten(1), alpha.flatten(1), sigma.flatten(1),
                             config.parameterization, config.weighting, None) / x0[0].numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            ema.update()
            if dist_.active:    # the loss of the global batch; stop on every process alike
                total, stops = dist_.sum([loss.item(), float(stop.requested)])
                losses[step], stopping = total / dist_.world, stops > 0
            else:
                losses[step], stopping = loss.item(), None
            if not math.isfinite(losses[step]):
                raise FloatingPointError(f"train: the loss is {losses[step]} at step "
                                         f"{step}: lower lr")
            if progress and step % 50 == 0:
                bar.set_postfix(loss=f"{losses[max(0, step - 49):step + 1].mean():.4f}",
                                refresh=False)
            if callback is not None:
                callback(step, losses[step])
            done = step + 1
            if stopping is None:
                stopping = stop.requested
            if stopping and done < config.steps:
                save(done, seconds_before + time.perf_counter() - t0)
                raise Interrupted(done, config.steps, ckpt_path)
            if done % config.ckpt_every == 0 and done < config.steps:
                save(done, seconds_before + time.perf_counter() - t0)
    finally:
        bar.close()
    seconds_now = time.perf_counter() - t0
    digests = dist_.digests(model) if dist_.active else None
    if digests is not None and len(set(digests)) != 1:
        raise RuntimeError(f"the {dist_.world} processes ended with different weights: "
                           f"{digests}")
    save(config.steps, seconds_before + seconds_now, digests)
    model.eval()
    steps_run = config.steps - start
    info = {**info, **({"rank_digests": digests} if digests else {})}
    return TrainResult(model, ema.model, config, losses, seconds_before + seconds_now,
                       steps_run * config.batch_size / max(seconds_now, 1e-9), info)
