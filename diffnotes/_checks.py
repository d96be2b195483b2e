"""Input validation shared by the public functions of :mod:`diffnotes`.

Every public function checks its arguments here and raises a :class:`ValueError` that names the
argument and says what was expected. Internals trust their inputs.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_rng"]


def as_rng(rng, name: str = "rng") -> np.random.Generator:
    """Turn ``rng`` (an int seed or a :class:`numpy.random.Generator`) into a Generator.

    ``None`` is refused on purpose: every random result in diffnotes is reproducible, so the
    caller always says where its randomness comes from.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{name} must be a non-negative int seed or a Generator, got {rng}")
        return np.random.default_rng(int(rng))
    raise ValueError(
        f"{name} must be an int seed or a numpy.random.Generator, got {type(rng).__name__}"
    )


def positive_float(x, name: str, *, allow_zero: bool = False, upper=None) -> float:
    """Check that ``x`` is a finite real number > 0 (or >= 0) and, if given, <= ``upper``."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {type(x).__name__}")
    x = float(x)
    low_ok = x >= 0 if allow_zero else x > 0
    if not np.isfinite(x) or not low_ok or (upper is not None and x > upper):
        bound = ">= 0" if allow_zero else "> 0"
        rng_txt = f"{bound}" + (f" and <= {upper}" if upper is not None else "")
        raise ValueError(f"{name} must be finite and {rng_txt}, got {x}")
    return x


def positive_int(x, name: str, *, minimum: int = 1, maximum=None) -> int:
    """Check that ``x`` is an integer in ``[minimum, maximum]``."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {type(x).__name__}")
    x = int(x)
    if x < minimum or (maximum is not None and x > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{upper}, got {x}")
    return x


def real_array(a, name: str, *, ndim=None) -> np.ndarray:
    """Convert ``a`` to a float array, refusing NaN/inf and (optionally) the wrong ``ndim``."""
    try:
        arr = np.asarray(a, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of real numbers ({err})") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                f"got shape {arr.shape}"
            )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    return arr


def distribution(p, name: str, *, n=None, strictly_positive: bool = False, atol: float = 1e-9,
                 single: bool = False):
    """Check that ``p`` is a probability vector (or, unless ``single``, a stack of them along
    the last axis)."""
    p = real_array(p, name, ndim=(1, 2))
    if single and p.ndim != 1:
        raise ValueError(f"{name} must be one distribution of shape (n,), got shape {p.shape}")
    if n is not None and p.shape[-1] != n:
        raise ValueError(f"{name} must have {n} entries (one per state), got shape {p.shape}")
    if np.any(p < 0):
        raise ValueError(f"{name} must have non-negative entries, got min {p.min():.3g}")
    sums = p.sum(axis=-1)
    err = np.abs(np.ravel(sums) - 1.0)
    if np.any(err > atol * p.shape[-1] + 1e-12):
        raise ValueError(f"{name} must sum to 1, got sum {np.ravel(sums)[np.argmax(err)]:.12g}")
    if strictly_positive and np.any(p == 0):
        state = int(np.argwhere(p == 0)[0][-1])
        raise ValueError(f"{name} must be strictly positive; {name}[{state}] = 0")
    return p


def time_grid(times, name: str = "times") -> np.ndarray:
    """Check a 1-D array of non-negative, non-decreasing times."""
    t = real_array(times, name, ndim=(0, 1))
    t = np.atleast_1d(t)
    if np.any(t < 0):
        raise ValueError(f"{name} must be non-negative, got min {t.min():.3g}")
    if np.any(np.diff(t) < 0):
        raise ValueError(f"{name} must be sorted in increasing order")
    return t
