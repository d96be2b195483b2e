r"""The fit machinery shared by :class:`diffnotes.dsb.DSB` and
:class:`diffnotes.dsb.BridgeMatching`: samplers from callables or arrays, input checks, the
regression loop and the driver that runs the half-steps of every iteration."""

from __future__ import annotations

from ._optional import dsb_needs  # noqa: F401  # isort: skip (missing torch: pip hint)
import numpy as np
import torch

from ._checks import positive_float, positive_int, real_array
from .score import _optimise
from .utils import device as _device
from .utils import torch_threads


def _sampler(s, name, dim, dev):
    """A function ``(n, rng) -> (n, dim)`` float32 tensor on ``dev``, from a sampler, an array
    of points (drawn with replacement) or ``"gaussian"`` (standard normal)."""
    if isinstance(s, str):
        if s != "gaussian":
            raise ValueError(f"{name} must be a sampler (n, rng), an array of points or "
                             f"'gaussian', got {s!r}")

        def gauss(n, rng):
            return torch.from_numpy(rng.standard_normal((n, dim)).astype(np.float32)).to(dev)

        return gauss
    if callable(s):
        def draw(n, rng):
            x = np.asarray(s(n, rng), dtype=np.float32)
            if x.ndim == 1 and dim == 1:
                x = x[:, None]
            if x.shape != (n, dim) or not np.all(np.isfinite(x)):
                raise ValueError(f"{name}(n, rng) must return n finite points of shape "
                                 f"({n}, {dim}), got shape {x.shape}")
            return torch.from_numpy(x).to(dev)

        return draw
    if isinstance(s, torch.Tensor):
        s = s.detach().cpu().double().numpy()
    pts = real_array(s, name, ndim=2)
    if pts.shape[1] != dim or pts.shape[0] < 1:
        raise ValueError(f"{name} must be a sampler or an array of shape (n, {dim}), got "
                         f"{pts.shape}")
    pts_t = torch.as_tensor(pts, dtype=torch.float32, device=dev)

    def rows(n, rng):
        return pts_t[torch.as_tensor(rng.integers(0, pts.shape[0], n), device=dev)]

    return rows


def _points_in(x, dim, name, dev):
    tensor_in = isinstance(x, torch.Tensor)
    if tensor_in:
        xt = x.detach()
    else:
        xt = torch.as_tensor(real_array(x, name), dtype=torch.float32)
    if xt.ndim == 1 and dim == 1:
        xt = xt[:, None]
    if xt.ndim != 2 or xt.shape[1] != dim or xt.shape[0] < 1:
        raise ValueError(f"{name} must have shape (m, {dim}), got {tuple(xt.shape)}")
    if not bool(torch.isfinite(xt).all()):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    return xt.to(device=dev, dtype=torch.float32), tensor_in


def _out(traj, tensor_in):
    return traj if tensor_in else traj.cpu().double().numpy()


def _generator(seed, dev):
    seed = positive_int(seed, "seed", minimum=0)
    return torch.Generator(device=dev).manual_seed(seed)


def _check_common(lr, ema_decay, batch_size, n_train, grad_clip, cpu_threads):
    lr = positive_float(lr, "lr")
    ema_decay = positive_float(ema_decay, "ema_decay", allow_zero=True)
    if not ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    batch_size = positive_int(batch_size, "batch_size")
    n_train = positive_int(n_train, "n_train")
    if grad_clip is not None:
        grad_clip = positive_float(grad_clip, "grad_clip")
    if cpu_threads is not None:
        cpu_threads = positive_int(cpu_threads, "cpu_threads")
    return lr, ema_decay, batch_size, n_train, grad_clip, cpu_threads


def _regress(net, ema, opt, draw_batch, n_train, grad_clip, bar_desc, progress, name,
             sched=None):
    """``n_train`` Adam steps on ``mean ||net(x, t) - y||^2`` over batches ``draw_batch(i)``."""
    def loss_at(i):
        x, t, y = draw_batch(i)
        r = net(x, t) - y
        return (r * r).sum(dim=1).mean()

    return _optimise(net, ema, opt, loss_at, n_train, grad_clip=grad_clip, sched=sched,
                     desc=bar_desc, progress=progress, leave=False, where=name)


def _fit(model, order, sample_data, sample_prior, n_ipf, n_train, batch_size, lr, ema_decay,
         cache_size, cache_refresh, grad_clip, seed, device, progress, cpu_threads):
    """The fit loop shared by :class:`DSB` and :class:`BridgeMatching`: validate, set up the
    samplers and random streams, then run ``n_ipf`` iterations of two half-steps in ``order``."""
    n_ipf = positive_int(n_ipf, "n_ipf")
    lr, ema_decay, batch_size, n_train, grad_clip, cpu_threads = _check_common(
        lr, ema_decay, batch_size, n_train, grad_clip, cpu_threads)
    cache_size = positive_int(cache_size, "cache_size", minimum=2)
    cache_refresh = positive_int(cache_refresh, "cache_refresh")
    seed = positive_int(seed, "seed", minimum=0)
    dev = _device(device)
    draw_data = _sampler(sample_data, "sample_data", model.dim, dev)
    draw_prior = _sampler(sample_prior, "sample_prior", model.dim, dev)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    for m in (model.backward_net, model.forward_net, model.backward_ema, model.forward_ema):
        if m is not None:
            m.to(dev)
    out = []
    with torch_threads(cpu_threads, dev):
        for _ in range(n_ipf):
            for direction in order:
                out.append(model._half_step(direction, draw_data, draw_prior, rng, gen, n_train,
                                            batch_size, lr, ema_decay, cache_size,
                                            cache_refresh, grad_clip, progress))
                model.history.append(out[-1])
            model.n_iterations += 1
    return out
