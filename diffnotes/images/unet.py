r"""A compact U-Net for the score of small greyscale images (Chapter 5).

The network follows the DDPM design of Ho, Jain and Abbeel (2020) at a fraction of its size:
residual blocks with group normalisation and SiLU, the time entering every block through a
learned projection of a sinusoidal embedding, self-attention at the lowest resolution, and skip
connections from each resolution of the encoder to the same resolution of the decoder. Its
output is read, like :class:`diffnotes.score.ScoreMLP`'s, through a ``parameterization``
(``"noise"``, ``"score"`` or ``"data"``), so the losses and conversions of
:mod:`diffnotes.score` and the samplers of :mod:`diffnotes.sde` apply to it unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import positive_float, positive_int
from ..score import PARAMETERIZATIONS, _batch_times, _choice, _sinusoidal, _to_score

__all__ = ["UNet"]


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


class _ResBlock(nn.Module):
    def __init__(self, c_in, c_out, t_dim, dropout):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(t_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class _Attention(nn.Module):
    def __init__(self, ch, heads=4):
        super().__init__()
        self.heads = heads if ch % heads == 0 else 1
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w) \
            .permute(1, 0, 2, 4, 3).unbind(0)
        a = F.scaled_dot_product_attention(q, k, v)          # (b, heads, hw, c/heads)
        return x + self.out(a.permute(0, 1, 3, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    r"""A U-Net ``model(x, t)`` for images ``x`` of shape ``(m, C, H, W)`` and times ``t``.

    Parameters
    ----------
    size : int
        Height and width of the (square) images; each of the ``len(channels) - 1`` halvings
        must divide it exactly (28 -> 14 -> 7 with three levels, 8 -> 4 with two).
    channels : tuple of int
        Channels at each resolution, from the input resolution down.
    n_res : int
        Residual blocks per resolution (the decoder has one more, for the skips).
    attention : bool
        Self-attention in the middle block, at the lowest resolution.
    in_channels : int
        Image channels (1 for greyscale).
    out_channels : int or None
        Output channels; ``None`` (default) means ``in_channels``, which the noise, score and
        data parameterisations need. Other values give a raw head of that width (for example
        ``K * in_channels`` logits per pixel for a categorical model of ``K`` levels,
        Chapter 6), read by the caller; :meth:`score` then refuses.
    num_classes : int
        ``0`` (default): unconditional. Otherwise a class-conditional network
        ``model(x, t, label)``: a learned embedding of the label, with one extra entry
        ``num_classes`` meaning "no label", is added to the time embedding. ``label=None``
        means no label for every image, so one network trained with label dropout gives both
        the conditional and the unconditional model (classifier-free guidance, Chapter 5).
    dropout : float in [0, 1)
        Dropout inside the residual blocks.
    parameterization : str
        What :meth:`forward` predicts: ``"noise"`` (default), ``"score"`` or ``"data"``.
    seed : int
        Seed of the initial weights (the global random state is left alone).

    Notes
    -----
    The time is embedded as :math:`(\sin\omega_k t, \cos\omega_k t)` with frequencies spaced
    geometrically from 1 to 1000, as in :class:`~diffnotes.score.ScoreMLP`, then mapped by a
    two-layer MLP to a vector that every residual block adds to its features. The last
    convolution of every block (and of the network) starts at zero, so the freshly built
    network is the identity on its skip paths and outputs zero: training starts from the
    well-behaved "predict the mean noise" solution.
    """

    def __init__(self, size: int = 28, channels=(32, 64, 128), n_res: int = 1,
                 attention: bool = True, in_channels: int = 1, dropout: float = 0.0,
                 parameterization: str = "noise", *, out_channels: int | None = None,
                 num_classes: int = 0, seed: int = 0):
        super().__init__()
        self.size = positive_int(size, "size", minimum=4, maximum=512)
        if (not isinstance(channels, list | tuple) or not channels
                or len(channels) > 6):
            raise ValueError(f"channels must be a tuple of 1 to 6 ints, got {channels!r}")
        self.channels = tuple(positive_int(c, "channels", minimum=8, maximum=1024)
                              for c in channels)
        if self.size % 2 ** (len(self.channels) - 1):
            raise ValueError(
                f"size = {size} must be divisible by 2**(len(channels) - 1) = "
                f"{2 ** (len(self.channels) - 1)}: each of the {len(self.channels) - 1} "
                "downsamplings halves it exactly")
        self.n_res = positive_int(n_res, "n_res", maximum=8)
        self.attention = bool(attention)
        self.in_channels = positive_int(in_channels, "in_channels", maximum=4)
        self.out_channels = (self.in_channels if out_channels is None else
                             positive_int(out_channels, "out_channels", maximum=4096))
        self.num_classes = positive_int(num_classes, "num_classes", minimum=0, maximum=100_000)
        self.dropout = positive_float(dropout, "dropout", allow_zero=True, upper=0.9)
        self.parameterization = _choice(parameterization, "parameterization",
                                        PARAMETERIZATIONS)
        self.seed = positive_int(seed, "seed", minimum=0)
        self.dim = self.in_channels * self.size * self.size
        c0 = self.channels[0]
        half = c0 // 2
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(1000.0), half)))
        t_dim = 4 * c0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.t_mlp = nn.Sequential(nn.Linear(2 * half, t_dim), nn.SiLU(),
                                       nn.Linear(t_dim, t_dim))
            self.inp = nn.Conv2d(self.in_channels, c0, 3, padding=1)
            self.down = nn.ModuleList()
            skips = [c0]
            ch = c0
            for i, c in enumerate(self.channels):
                for _ in range(self.n_res):
                    self.down.append(_ResBlock(ch, c, t_dim, self.dropout))
                    ch = c
                    skips.append(ch)
                if i < len(self.channels) - 1:
                    self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                    skips.append(ch)
            self.mid1 = _ResBlock(ch, ch, t_dim, self.dropout)
            self.mid_attn = _Attention(ch) if self.attention else nn.Identity()
            self.mid2 = _ResBlock(ch, ch, t_dim, self.dropout)
            self.up = nn.ModuleList()
            for i, c in reversed(list(enumerate(self.channels))):
                for _ in range(self.n_res + 1):
                    self.up.append(_ResBlock(ch + skips.pop(), c, t_dim, self.dropout))
                    ch = c
                if i > 0:
                    self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                 nn.Conv2d(ch, ch, 3, padding=1)))
            self.out_norm = nn.GroupNorm(_groups(ch), ch)
            self.out = nn.Conv2d(ch, self.out_channels, 3, padding=1)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
            # built last, so that an unconditional network's weights do not depend on it
            self.label_emb = (nn.Embedding(self.num_classes + 1, t_dim) if self.num_classes
                              else None)

    def config(self) -> dict:
        """The constructor arguments (plain Python types): ``UNet(**net.config())`` rebuilds
        the architecture."""
        return {"size": self.size, "channels": list(self.channels), "n_res": self.n_res,
                "attention": self.attention, "in_channels": self.in_channels,
                "dropout": self.dropout, "parameterization": self.parameterization,
                "out_channels": self.out_channels, "num_classes": self.num_classes,
                "seed": self.seed}

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return (f"size={self.size}, channels={self.channels}, n_res={self.n_res}, "
                f"attention={self.attention}, parameterization={self.parameterization!r}, "
                f"out_channels={self.out_channels}, num_classes={self.num_classes}, "
                f"parameters={n:,}")

    def forward(self, x, t, label=None):
        """The raw output (noise, score or clean image, see ``parameterization``) at images
        ``x`` of shape ``(m, C, size, size)`` and times ``t`` (a float or shape ``(m,)``);
        shape ``(m, out_channels, size, size)``. ``label`` (class-conditional networks only):
        ``None`` (no label), an int, or an integer tensor of shape ``(m,)`` with entries in
        ``0..num_classes`` (``num_classes`` means no label)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, self.size, self.size):
            raise ValueError(f"x must have shape (m, {self.in_channels}, {self.size}, "
                             f"{self.size}), got {tuple(x.shape)}")
        t = _batch_times(x, t)
        temb = self.t_mlp(_sinusoidal(t, self.freqs))
        if self.label_emb is not None:
            temb = temb + self.label_emb(self._labels(label, x))
        elif label is not None:
            raise ValueError("label given to an unconditional UNet (num_classes = 0)")
        h = self.inp(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, temb) if isinstance(layer, _ResBlock) else layer(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for layer in self.up:
            if isinstance(layer, _ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), temb)
            else:
                h = layer(h)
        return self.out(F.silu(self.out_norm(h)))

    def _labels(self, label, x):
        m = x.shape[0]
        if label is None:
            return torch.full((m,), self.num_classes, dtype=torch.long, device=x.device)
        lab = torch.as_tensor(label, device=x.device)
        if lab.dtype.is_floating_point or lab.dtype == torch.bool:
            raise ValueError(f"label must hold integers, got dtype {lab.dtype}")
        lab = lab.long()
        if lab.ndim == 0:
            lab = lab.expand(m)
        if lab.shape != (m,):
            raise ValueError(f"label must be an int or have shape ({m},), got "
                             f"{tuple(lab.shape)}")
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) > self.num_classes):
            raise ValueError(f"label must lie in 0..{self.num_classes} ({self.num_classes} = "
                             f"no label), got values in [{int(lab.min())}, {int(lab.max())}]")
        return lab

    def score(self, x, t, sde, label=None):
        """The score at images ``x`` and times ``t`` under the linear ``sde`` (differentiable),
        converted from the raw output by the parameterisation (``label``: see
        :meth:`forward`)."""
        if self.out_channels != self.in_channels:
            raise ValueError(f"score needs out_channels == in_channels ({self.in_channels}); "
                             f"this network has a raw head of {self.out_channels} channels")
        t = _batch_times(x, t)
        alpha, sigma = sde._alpha_sigma(t)
        return _to_score(self(x, t, label), self.parameterization, x,
                         alpha[:, None, None, None], sigma[:, None, None, None])


