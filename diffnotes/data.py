r"""Two-dimensional toy distributions: the data sets on which the book's 2-D samplers are scored.

Each toy is a sampler ``toy(n, rng, ...)`` returning ``n`` independent draws as a float array of
shape ``(n, 2)``. The randomness always comes from an explicit ``rng`` (an int seed or a
:class:`numpy.random.Generator`), so every figure and every number is reproducible.

All toys share one scale, that of the standard normal prior :math:`\mathcal N(0, I_2)` that the
forward diffusions end in. Without noise, each toy has population mean :math:`0` and total
variance :math:`\operatorname{tr}\operatorname{Cov}(X) = \mathbb E|X|^2 = 2` (the value for
:math:`\mathcal N(0, I_2)`), so coordinates are of order one. Noise is isotropic Gaussian, with
standard deviation ``noise`` (or ``std``) given in these final coordinates; it adds
:math:`2\,\mathrm{noise}^2` to the total variance and leaves the mean at :math:`0`. Each
docstring gives the exact geometry (radii, centres) after this standardisation.

Use :data:`TOYS` or :func:`sample` to loop over the toys by name. For a toy whose score is known
in closed form, see :func:`diffnotes.mixtures.moons_mixture`.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_rng, positive_float, positive_int

__all__ = ["TOYS", "checkerboard", "circles", "eight_gaussians", "sample", "swiss_roll",
           "two_moons"]


def _noise(x: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    if noise > 0:
        x = x + noise * rng.standard_normal(x.shape)
    return x


# --- two moons: raw moons as in scikit-learn's make_moons, then centred and scaled exactly.
# Upper moon (cos t, sin t), lower moon (1 - cos t, 1/2 - sin t), t ~ U[0, pi], each with
# probability 1/2. Mean (1/2, 1/4); Var x = 1/2 + 1/4, Var y = 1/2 - 4/pi^2 + (2/pi - 1/4)^2.
_MOONS_CENTER = np.array([0.5, 0.25])
_MOONS_SCALE = float(np.sqrt(2.0 / (0.75 + 0.5 - 4 / np.pi**2 + (2 / np.pi - 0.25) ** 2)))


def two_moons(n: int, rng, noise: float = 0.05) -> np.ndarray:
    r"""Two interleaved half circles, like scikit-learn's ``make_moons``.

    Each point picks one of the two moons with probability 1/2 and an angle
    :math:`t \sim \mathcal U[0, \pi]`; the raw moons :math:`(\cos t, \sin t)` and
    :math:`(1 - \cos t, \tfrac12 - \sin t)` are then centred (minus :math:`(\tfrac12, \tfrac14)`)
    and scaled by :math:`s \approx 1.418` so that the noise-free law has mean 0 and total
    variance 2. In the returned coordinates the moons are half circles of radius :math:`s`
    centred at :math:`s\,(-\tfrac12, -\tfrac14)` (upper half) and :math:`s\,(\tfrac12, \tfrac14)`
    (lower half); the noise-free points lie in :math:`[-1.5s, 1.5s] \times [-0.75s, 0.75s]`.

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    rng : int or numpy.random.Generator
        Source of randomness.
    noise : float, default 0.05
        Standard deviation of the isotropic Gaussian noise, in the returned coordinates (>= 0).

    Returns
    -------
    array of shape (n, 2)
    """
    n = positive_int(n, "n")
    rng = as_rng(rng)
    noise = positive_float(noise, "noise", allow_zero=True)
    t = rng.uniform(0.0, np.pi, n)
    lower = rng.random(n) < 0.5
    c, s = np.cos(t), np.sin(t)
    x = np.where(lower, 1.0 - c, c)
    y = np.where(lower, 0.5 - s, s)
    pts = _MOONS_SCALE * (np.stack([x, y], axis=1) - _MOONS_CENTER)
    return _noise(pts, noise, rng)


# --- swiss roll: (t cos t, t sin t) with t ~ U[3 pi/2, 9 pi/2] (scikit-learn's parametrisation).
# E[t cos t] = 2, E[t sin t] = 2 / (3 pi), E[t^2] = 39 pi^2 / 4 (closed-form integrals).
_ROLL_T = (1.5 * np.pi, 4.5 * np.pi)
_ROLL_CENTER = np.array([2.0, 2.0 / (3 * np.pi)])
_ROLL_SCALE = float(np.sqrt(2.0 / (39 * np.pi**2 / 4 - 4.0 - 4.0 / (9 * np.pi**2))))


def swiss_roll(n: int, rng, noise: float = 0.05) -> np.ndarray:
    r"""A 2-D Swiss roll: the spiral :math:`(t\cos t,\ t\sin t)`, :math:`t \sim
    \mathcal U[\tfrac32\pi, \tfrac92\pi]` (one and a half turns, the parametrisation of
    scikit-learn's ``make_swiss_roll``), centred and scaled to mean 0 and total variance 2.

    The raw spiral is shifted by :math:`-(2, \tfrac{2}{3\pi})` (its mean) and scaled by
    :math:`s \approx 0.1473`, so successive arms are :math:`2\pi s \approx 0.93` apart and the
    noise-free points fill roughly :math:`[-1.7, 1.6] \times [-1.7, 2.1]`. Note that :math:`t`
    is uniform, not the arc length: the inner turn is more densely populated than the outer
    one.

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    rng : int or numpy.random.Generator
        Source of randomness.
    noise : float, default 0.05
        Standard deviation of the isotropic Gaussian noise, in the returned coordinates (>= 0).

    Returns
    -------
    array of shape (n, 2)
    """
    n = positive_int(n, "n")
    rng = as_rng(rng)
    noise = positive_float(noise, "noise", allow_zero=True)
    t = rng.uniform(*_ROLL_T, n)
    pts = _ROLL_SCALE * (np.stack([t * np.cos(t), t * np.sin(t)], axis=1) - _ROLL_CENTER)
    return _noise(pts, noise, rng)


def eight_gaussians(n: int, rng, radius: float = float(np.sqrt(2.0)),
                    std: float = 0.1) -> np.ndarray:
    r"""Eight equal isotropic Gaussians with centres
    :math:`r\,(\cos\tfrac{2\pi k}{8}, \sin\tfrac{2\pi k}{8})`, :math:`k = 0, \dots, 7`.

    With the default radius :math:`r = \sqrt 2` the centres alone have covariance exactly
    :math:`I_2` (in general :math:`\tfrac{r^2}{2} I_2`, plus :math:`\mathrm{std}^2 I_2` from the
    components), so the toy is on the book's common scale. Neighbouring centres are
    :math:`2r\sin(\pi/8) \approx 1.08` apart, about eleven default standard deviations: the
    modes are well separated, which is what makes mode dropping visible.

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    rng : int or numpy.random.Generator
        Source of randomness.
    radius : float, default sqrt(2)
        Distance of the centres from the origin (> 0).
    std : float, default 0.1
        Standard deviation of each component (>= 0; 0 puts every point on a centre).

    Returns
    -------
    array of shape (n, 2)
    """
    n = positive_int(n, "n")
    rng = as_rng(rng)
    radius = positive_float(radius, "radius")
    std = positive_float(std, "std", allow_zero=True)
    angle = 2 * np.pi * rng.integers(0, 8, n) / 8
    pts = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return _noise(pts, std, rng)


_CHECKER_SIDE = float(np.sqrt(3.0) / 2.0)


def checkerboard(n: int, rng) -> np.ndarray:
    r"""Uniform on the eight dark squares of a 4-by-4 checkerboard.

    The board is :math:`[-\sqrt3, \sqrt3]^2`, cut into squares of side :math:`\sqrt3/2`; the
    square in column :math:`i` and row :math:`j` (both counted from 0 at the bottom left) is
    filled when :math:`i + j` is even, so the bottom-left corner square is filled. Each
    coordinate is then uniform on :math:`[-\sqrt3, \sqrt3]`: mean 0 and variance exactly 1. The
    two coordinates are not independent and are slightly correlated (correlation exactly
    :math:`3/16`, from the two filled corner squares); the law is symmetric under
    :math:`(x, y) \mapsto (-x, -y)` and :math:`(x, y) \mapsto (y, x)`. The density has sharp
    edges, which smooth samplers round off.

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    rng : int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    array of shape (n, 2)
    """
    n = positive_int(n, "n")
    rng = as_rng(rng)
    col = rng.integers(0, 4, n)
    row = 2 * rng.integers(0, 2, n) + col % 2            # same parity as col: i + j even
    cells = np.stack([col, row], axis=1) + rng.random((n, 2))
    return _CHECKER_SIDE * (cells - 2.0)


def circles(n: int, rng, factor: float = 0.5, noise: float = 0.05) -> np.ndarray:
    r"""Two concentric circles, like scikit-learn's ``make_circles``.

    Each point lies on the outer or the inner circle with probability 1/2, at a uniform angle.
    The radii are :math:`R` and :math:`\mathrm{factor}\cdot R` with
    :math:`R = 2/\sqrt{1 + \mathrm{factor}^2}`, so the noise-free law has covariance exactly
    :math:`I_2` (total variance 2); for the default ``factor = 0.5``, :math:`R \approx 1.789`
    and the inner radius is :math:`\approx 0.894`.

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    rng : int or numpy.random.Generator
        Source of randomness.
    factor : float, default 0.5
        Ratio of the inner to the outer radius, in ``[0, 1)``.
    noise : float, default 0.05
        Standard deviation of the isotropic Gaussian noise, in the returned coordinates (>= 0).

    Returns
    -------
    array of shape (n, 2)
    """
    n = positive_int(n, "n")
    rng = as_rng(rng)
    factor = positive_float(factor, "factor", allow_zero=True)
    if factor >= 1:
        raise ValueError(f"factor must be >= 0 and < 1, got {factor}")
    noise = positive_float(noise, "noise", allow_zero=True)
    outer = 2.0 / np.sqrt(1.0 + factor**2)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    r = np.where(rng.random(n) < 0.5, outer, factor * outer)
    pts = r[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return _noise(pts, noise, rng)


TOYS = {
    "two_moons": two_moons,
    "swiss_roll": swiss_roll,
    "eight_gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "circles": circles,
}
"""The toys by name: ``{name: sampler}``, each sampler called as ``sampler(n, rng, **kwargs)``."""


def sample(name: str, n: int, rng, **kwargs) -> np.ndarray:
    """``n`` draws from the toy called ``name`` (a key of :data:`TOYS`), shape ``(n, 2)``.

    Keyword arguments go to the toy (e.g. ``noise=0.1``). An unknown ``name`` raises a
    :class:`ValueError` that lists the valid names.
    """
    if not isinstance(name, str) or name not in TOYS:
        raise ValueError(f"name must be one of {', '.join(sorted(TOYS))}; got {name!r}")
    return TOYS[name](n, rng, **kwargs)
