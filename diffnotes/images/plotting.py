"""Image grids for the samplers' output."""

from __future__ import annotations

import numpy as np

__all__ = ["grid", "save_grid", "show_grid"]


def grid(pixels, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images ``(n, H, W)`` into one array with ``pad`` pixels of background between them
    (``ncol`` columns, default about ``sqrt(n)``)."""
    p = np.asarray(pixels)
    if p.ndim == 4:
        p = p[:, 0]
    if p.ndim != 3 or p.shape[0] == 0:
        raise ValueError(f"pixels must have shape (n, H, W) with n >= 1, got {p.shape}")
    n, h, w = p.shape
    ncol = int(np.ceil(np.sqrt(n))) if ncol is None else int(ncol)
    nrow = int(np.ceil(n / ncol))
    out = np.zeros((nrow * (h + pad) + pad, ncol * (w + pad) + pad), dtype=p.dtype)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad):pad + r * (h + pad) + h,
            pad + c * (w + pad):pad + c * (w + pad) + w] = p[i]
    return out


def show_grid(ax, pixels, levels: int, *, ncol: int | None = None, title: str | None = None):
    """Draw a grid of pixel images on ``ax`` (white digits on black, as in MNIST)."""
    g = grid(pixels, ncol)
    ax.pcolormesh(g[::-1], cmap="gray", vmin=0, vmax=levels, rasterized=True)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


MIN_WIDTH = 400
"""Width in pixels that :func:`save_grid` enlarges a grid to, at least, by default."""


def save_grid(pixels, levels: int, path, *, ncol: int | None = None,
              scale: int | None = None) -> tuple[int, int]:
    """Write a grid of pixel images to an image file (PNG...), each pixel enlarged to a
    ``scale`` x ``scale`` block (nearest neighbour; default: the smallest scale that makes the
    grid at least :data:`MIN_WIDTH` pixels wide, so that 8x8 digits stay readable). Returns the
    shape of the written image."""
    import matplotlib.pyplot as plt

    g = grid(pixels, ncol)
    if scale is None:
        scale = max(1, -(-MIN_WIDTH // g.shape[1]))
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a whole number >= 1, got {scale!r}")
    g = g.repeat(int(scale), axis=0).repeat(int(scale), axis=1)
    plt.imsave(path, g, cmap="gray", vmin=0, vmax=levels)
    return g.shape
