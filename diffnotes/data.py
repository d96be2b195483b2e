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

Image data sets, for the discrete-state chapters: :func:`load_digits` (scikit-learn's 8x8
digits, grey levels :math:`0, \dots, 16`) and :func:`load_mnist` (the official MNIST files, read
from a folder or downloaded once into a cache, always checked against their MD5). Both return
the raw integer pixels as ``(images, labels)``; the top pixel level is :data:`DIGITS_LEVELS` or
:data:`MNIST_LEVELS`.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from ._checks import as_rng, positive_float, positive_int

__all__ = ["DIGITS_LEVELS", "MNIST_FILES", "MNIST_LEVELS", "MNIST_MIRRORS", "TOYS",
           "DataUnavailableError", "checkerboard", "circles", "eight_gaussians", "load_digits",
           "load_mnist", "mnist_cache_dir", "sample", "swiss_roll", "two_moons"]


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

    The Gaussian mixture :func:`diffnotes.mixtures.moons_mixture` (the ground truth of Chapters 2
    and 3, with an exact score) has the same shape at the raw scale (radius 1, total variance
    about 1.07): these moons are about 1.42 times larger. Compare numbers across the two only
    after rescaling.

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


# ------------------------------------------------------------------------ image data sets
DIGITS_LEVELS = 16
"""Top grey level of :func:`load_digits` images: pixels take the 17 values ``0, ..., 16``."""

MNIST_LEVELS = 255
"""Top grey level of :func:`load_mnist` images: pixels take the values ``0, ..., 255``."""

MNIST_FILES = {
    "train": (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
    "test": (("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
             ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
}
"""The official MNIST files: ``{split: ((images_name, md5), (labels_name, md5))}``; the MD5 is
that of the ``.gz`` file."""

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
"""Base URLs that :func:`load_mnist` downloads from, tried in order."""

_IDX = {"images": (2051, 3), "labels": (2049, 1)}    # magic number, number of dimensions


class DataUnavailableError(FileNotFoundError):
    """A data set is neither on disk nor downloadable; the message says how to provide it."""


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits (1797 images, shipped with scikit-learn, no
    download).

    Pixels are the dataset's 17 grey levels ``0, ..., 16``: pixel levels S = 16
    (:data:`DIGITS_LEVELS`), 0 being the background.

    Returns
    -------
    images : uint8 array of shape (1797, 8, 8)
        Values in ``0, ..., 16``.
    labels : int64 array of shape (1797,)
        The digit shown, ``0, ..., 9``.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("load_digits needs scikit-learn: "
                          "pip install 'diffnotes[learn]'") from None
    bunch = sklearn_digits()
    return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)


def mnist_cache_dir() -> Path:
    """The folder :func:`load_mnist` downloads into: ``$DIFFNOTES_CACHE`` if set, else
    ``$XDG_CACHE_HOME/diffnotes/mnist``, else ``~/.cache/diffnotes/mnist``."""
    if os.environ.get("DIFFNOTES_CACHE"):
        return Path(os.environ["DIFFNOTES_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "diffnotes" / "mnist"


def load_mnist(split: str = "train", data_dir=None, *, download: bool = True,
               progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST handwritten digits, read from the official IDX files.

    For each of the split's two files (see :data:`MNIST_FILES`), the loader looks in
    ``data_dir`` (or, when it is None, in the folder named by the environment variable
    ``DIFFNOTES_DATA``, if set) and then in the cache folder :func:`mnist_cache_dir`, taking the
    ``.gz`` file or, failing that, the decompressed file (same name without ``.gz``). A ``.gz``
    file is always checked against its official MD5 and every file against the IDX format
    (magic number, dimensions, exact length); a file that fails is never used and raises a
    :class:`ValueError` saying which file, where and why (nothing is deleted). A file found
    nowhere is downloaded, if ``download``, into the cache folder from the first of
    :data:`MNIST_MIRRORS` that serves it with the right MD5 (written to a temporary file and
    moved into place, so an interrupted download leaves nothing behind).

    Parameters
    ----------
    split : {"train", "test"}, default "train"
        60000 training or 10000 test images.
    data_dir : str or os.PathLike, optional
        An existing folder holding the files; defaults to ``$DIFFNOTES_DATA``.
    download : bool, default True
        Whether to download the files that are found nowhere.
    progress : bool, default True
        Show a progress bar (``tqdm``, if installed) while downloading.

    Returns
    -------
    images : uint8 array of shape (n, 28, 28)
        Grey levels ``0, ..., 255`` (:data:`MNIST_LEVELS`), 0 being the background.
    labels : int64 array of shape (n,)
        The digit shown, ``0, ..., 9``.

    Raises
    ------
    DataUnavailableError
        (a :class:`FileNotFoundError`) if a file is missing and cannot be downloaded; the
        message lists the folders searched, the failed downloads and how to provide the files.
    ValueError
        For a bad argument, or a file that is truncated, corrupted or not an MNIST file.
    """
    if not isinstance(split, str) or split not in MNIST_FILES:
        raise ValueError(f"split must be one of {', '.join(map(repr, MNIST_FILES))}; "
                         f"got {split!r}")
    folders = {}                                         # folder -> where it comes from
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise ValueError("data_dir must be a folder path (str or os.PathLike) or None, "
                             f"got {type(data_dir).__name__}")
        if not os.path.isdir(data_dir):
            raise ValueError(f"data_dir must be an existing folder, got {os.fspath(data_dir)!r}")
        folders[Path(data_dir)] = "data_dir"
    elif os.environ.get("DIFFNOTES_DATA"):
        folders[Path(os.environ["DIFFNOTES_DATA"]).expanduser()] = "$DIFFNOTES_DATA"
    cache = mnist_cache_dir()
    folders.setdefault(cache, "cache")

    arrays, missing = {}, []
    for kind, (name, md5) in zip(_IDX, MNIST_FILES[split], strict=True):
        path = _find(name, folders)
        if path is None:
            missing.append((kind, name, md5))
        else:
            arrays[kind] = _read_idx(path, md5, kind, in_cache=path.parent == cache)
    failures = []
    for kind, name, md5 in missing if download else ():
        path = _download(name, md5, cache, progress, failures)
        if path is None:
            break
        arrays[kind] = _read_idx(path, md5, kind, in_cache=True)
    if len(arrays) < len(_IDX):
        names = [name for kind, name, _ in missing if kind not in arrays]
        raise DataUnavailableError(_unavailable(split, names, folders, download, failures))

    images, labels = arrays["images"], arrays["labels"].astype(np.int64)
    if len(labels) != len(images):
        raise ValueError(f"MNIST {split!r}: {len(labels)} labels for {len(images)} images; "
                         "the files do not belong together")
    if labels.max(initial=0) > 9:
        raise ValueError(f"MNIST {split!r}: label {labels.max()} outside 0..9; the labels file "
                         "is corrupted")
    return images, labels


def _find(name: str, folders) -> Path | None:
    """The first ``name`` (a ``.gz``) or its decompressed twin found in ``folders``."""
    for folder in folders:
        for path in (folder / name, folder / name.removesuffix(".gz")):
            if path.is_file():
                return path
    return None


def _read_idx(path: Path, md5: str, kind: str, *, in_cache: bool) -> np.ndarray:
    """Read one MNIST IDX file (``.gz`` checked against ``md5``, raw files structurally)."""
    fix = ("delete it and it will be downloaded again" if in_cache else
           "delete it (it is not deleted for you) and provide a good copy")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        if actual != md5:
            raise ValueError(f"{path.name} in {path.parent}: MD5 {actual}, expected {md5}: "
                             f"the file is truncated or corrupted; {fix}")
        raw = gzip.decompress(raw)
    magic, ndim = _IDX[kind]
    header = 4 + 4 * ndim
    problem = None
    if raw[:2] == b"\x1f\x8b":
        problem = f"it is gzip-compressed; name it {path.name}.gz"
    elif len(raw) < header or struct.unpack(">i", raw[:4])[0] != magic:
        problem = f"no IDX {kind} header (magic number {magic})"
    else:
        dims = struct.unpack(f">{ndim}I", raw[4:header])
        size = header + math.prod(dims)
        if kind == "images" and dims[1:] != (28, 28):
            problem = f"images of {dims[1]}x{dims[2]} pixels, expected 28x28"
        elif len(raw) != size:
            problem = (f"{len(raw)} bytes, expected {size} for shape {dims}: "
                       "the file is truncated or corrupted")
    if problem is not None:
        raise ValueError(f"{path.name} in {path.parent} is not a valid MNIST {kind} file: "
                         f"{problem}; {fix}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def _download(name: str, md5: str, folder: Path, progress: bool, failures: list) -> Path | None:
    """Download ``name`` into ``folder`` from the first mirror serving it with MD5 ``md5``.

    Appends one line per failed mirror to ``failures``; returns the new path, or None.
    """
    # imported here: only downloads need the network stack
    import http.client
    import urllib.request

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        failures.append(f"cannot create the cache folder {folder}: {err}")
        return None
    for mirror in MNIST_MIRRORS:
        url = mirror + name
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
                actual = _copy(resp, out, name if progress else None)
            if actual == md5:
                os.replace(tmp, folder / name)
                return folder / name
            failures.append(f"{url}: wrong MD5 {actual}, expected {md5} (download discarded)")
        except (OSError, ValueError, http.client.HTTPException) as err:
            failures.append(f"{url}: {err}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return None


def _copy(resp, out, desc: str | None) -> str:
    """Copy the stream ``resp`` into ``out`` (with a progress bar titled ``desc``, if given);
    return the MD5 of what was copied."""
    bar = None
    if desc is not None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        while chunk := resp.read(1 << 16):
            out.write(chunk)
            digest.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return digest.hexdigest()


def _unavailable(split: str, names, folders, download: bool, failures) -> str:
    """The message of :class:`DataUnavailableError` for the missing files ``names``."""
    lines = [f"MNIST {split!r} split: cannot find {' and '.join(names)} "
             "(nor the decompressed files without .gz).", "Looked in:"]
    lines += [f"  {folder}  ({role}{'' if folder.is_dir() else ', no such folder'})"
              for folder, role in folders.items()]
    if not download:
        lines.append("Downloads are disabled (download=False).")
    elif failures:
        lines.append("Download attempts failed:")
        lines += [f"  {line}" for line in failures]
    lines.append("To provide the data, download the files from one of")
    lines += [f"  {mirror}{name}" for mirror in MNIST_MIRRORS for name in names]
    lines.append("into a folder, then pass data_dir=that folder or set the environment variable "
                 "DIFFNOTES_DATA to it.")
    if split == "train":
        lines.append('Some setups provide only the test split: try load_mnist("test").')
    return "\n".join(lines)
