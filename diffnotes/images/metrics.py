r"""Scoring image samples with a classifier of our own: Fréchet distance, KID, their floors,
a memorisation check and label statistics (Chapter 5).

The *Fréchet Inception Distance* (FID) of Heusel et al. (2017) compares Gaussians fitted to the
features of an ImageNet-trained Inception-v3 network on generated and real images. **The
numbers of this module are not that FID.** Inception weights cannot be downloaded on the
offline machines the book runs on, and Inception features of 8x8 or 28x28 greyscale digits
upsampled to 299x299 colour pictures would mean little. Instead the book trains a small
:class:`~diffnotes.images.classifier.Classifier`
(:func:`~diffnotes.images.classifier.train_classifier`, in :mod:`diffnotes.images.classifier`;
seconds on the 8x8 digits, well under a minute on MNIST, one CPU core) and scores sets of images
on its 64 penultimate features with

* :func:`classifier_fid` (:func:`frechet_features`, :func:`frechet_distance`): the Fréchet
  distance between Gaussians fitted to the features. Biased upwards at finite ``n`` by
  roughly ``d / n``, and undefined for ``n <= d`` (singular covariance): every function here
  refuses ``n`` not above the feature dimension with a ``ValueError``;
* :func:`classifier_kid` (:func:`kid`): the kernel distance of Binkowski et al. (2018), the
  unbiased MMD² with the cubic kernel ``(x.y / d + 1)^3``, usable at small ``n``;
* :func:`label_stats`: how confidently and evenly over the ten classes the classifier
  recognises the images (a cousin of the Inception Score).

**The protocol** (:func:`quality`). These numbers depend on the classifier, so they are
comparable only between sets scored by the same classifier, and only next to a floor:

1. the data are split at random (fixed seed) into a training part and a held-out part
   (:func:`diffnotes.images.training.dataset`); the generator *and the classifier* are trained
   on the training part only;
2. the held-out part holds at least ``2 n`` images, for the set size ``n`` used;
3. the **floor** is the distance between two disjoint random held-out sets of ``n`` images,
   reported as mean and spread over several independent draws: what a perfect generator,
   one drawing new images of the same law, would score;
4. the generator is scored by the distance between ``n`` of its samples and a held-out set of
   the same ``n``, over the same draws; both FD and KID, each beside its floor.

A score *below* the floor is not evidence of a better-than-perfect generator. Samples nearer
to the *training* images than new images are (memorisation) can do it, and so can noise: say
which only with :func:`memorisation`, the nearest-neighbour distances of samples to the
training set against those of held-out images.

Images follow the conventions of :mod:`diffnotes.images`: float tensors (or arrays) of shape
``(n, 1, H, W)`` with ``H = W`` (8 for the scikit-learn digits, 28 for MNIST) and pixel values
in :math:`[-1, 1]`, labels integers in ``0..9``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffnotes._checks import as_rng, positive_float, positive_int, real_array
from diffnotes.metrics import Floor, mmd

from .classifier import N_CLASSES, Classifier, _classifier, _images, _labels

# the classifier's names, importable from here as before its move to diffnotes.images.classifier
from .classifier import _shift as _shift  # isort: skip
from .classifier import accuracy as accuracy  # isort: skip
from .classifier import default_max_shift as default_max_shift  # isort: skip
from .classifier import train_classifier as train_classifier  # isort: skip
from .classifier import pretrained_classifier as pretrained_classifier  # isort: skip

__all__ = [
    "Memorisation",
    "Quality",
    "classifier_fid",
    "classifier_kid",
    "class_spread",
    "feature_stats",
    "frechet_distance",
    "frechet_features",
    "kid",
    "label_stats",
    "memorisation",
    "quality",
]


# --------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------
def _sym_psd(c, name: str, d: int, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check a symmetric PSD ``(d, d)`` matrix; return it symmetrised with its clipped
    eigenvalues and eigenvectors."""
    try:
        c = np.asarray(c, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of real numbers ({err})") from None
    if c.ndim == 0:
        c = c.reshape(1, 1)
    if c.shape != (d, d):
        raise ValueError(f"{name} must have shape ({d}, {d}) to match the means, got shape "
                         f"{c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    scale = max(float(np.max(np.abs(c))), np.finfo(float).tiny)
    asym = float(np.max(np.abs(c - c.T)))
    if asym > tol * scale:
        raise ValueError(f"{name} must be symmetric (within a relative {tol:g}), got "
                         f"max |C - C^T| = {asym:.3g}")
    c = (c + c.T) / 2
    lam, vec = np.linalg.eigh(c)
    if lam.size and lam[0] < -tol * max(float(np.abs(lam).max()), np.finfo(float).tiny) * d:
        raise ValueError(f"{name} must be positive semi-definite, got eigenvalue "
                         f"{lam[0]:.3g}")
    return c, np.clip(lam, 0.0, None), vec


def _mean(m, name: str) -> np.ndarray:
    try:
        m = np.asarray(m, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of real numbers ({err})") from None
    if m.ndim > 1:
        raise ValueError(f"{name} must be a vector of shape (d,), got shape {m.shape}")
    m = np.atleast_1d(m)
    if m.size == 0:
        raise ValueError(f"{name} must have at least one entry")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    return m


def frechet_distance(mu1, cov1, mu2, cov2, *, tol: float = 1e-6) -> float:
    r"""The Fréchet (2-Wasserstein) distance squared between :math:`\mathcal N(\mu_1, C_1)` and
    :math:`\mathcal N(\mu_2, C_2)`,

    .. math::
        \|\mu_1 - \mu_2\|^2 + \operatorname{tr}\bigl(C_1 + C_2
        - 2\,(C_1^{1/2} C_2 C_1^{1/2})^{1/2}\bigr).

    Both square roots are of symmetric positive semi-definite matrices and are computed with
    symmetric eigendecompositions (eigenvalues rounded below zero are set to zero), so the
    result is real and stable, unlike the general matrix square root of
    :math:`C_1 C_2` (``scipy.linalg.sqrtm``), which can come out complex for nearly singular
    covariances.

    Parameters
    ----------
    mu1, mu2 : array of shape (d,)
        Means (a scalar is read as ``d = 1``).
    cov1, cov2 : array of shape (d, d)
        Covariances (a scalar is a variance, ``d = 1``): symmetric and positive
        semi-definite up to the relative tolerance ``tol``.
    tol : float, default 1e-6
        Relative tolerance of the symmetry and PSD checks.

    Returns
    -------
    float
        The distance, :math:`\ge 0` (rounding below zero is clipped to 0).
    """
    tol = positive_float(tol, "tol")
    mu1, mu2 = _mean(mu1, "mu1"), _mean(mu2, "mu2")
    if mu2.shape != mu1.shape:
        raise ValueError(f"mu2 must have the shape of mu1 {mu1.shape}, got shape {mu2.shape}")
    d = mu1.size
    c1, lam1, v1 = _sym_psd(cov1, "cov1", d, tol)
    c2, _, _ = _sym_psd(cov2, "cov2", d, tol)
    root1 = (v1 * np.sqrt(lam1)) @ v1.T
    middle = root1 @ c2 @ root1
    middle = (middle + middle.T) / 2
    cross = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None))))
    diff = mu1 - mu2
    value = float(diff @ diff) + float(np.trace(c1) + np.trace(c2)) - 2.0 * cross
    return max(value, 0.0)


def _features(f, name: str, *, d: int | None = None) -> np.ndarray:
    """Check a feature matrix ``(n, d)`` with ``n >= 2`` (and ``d`` columns if given)."""
    f = real_array(f, name, ndim=2)
    if f.shape[0] < 2 or f.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n >= 2 and d >= 1, got shape "
                         f"{f.shape}")
    if d is not None and f.shape[1] != d:
        raise ValueError(f"{name} must have {d} columns (the other set's feature dimension), "
                         f"got shape {f.shape}")
    return f


def _fd_n(n: int, d: int, name: str) -> None:
    if n <= d:
        raise ValueError(f"{name}: a Fréchet distance needs more images than feature "
                         f"dimensions (its covariance is singular otherwise), got n = {n} "
                         f"images for feature dimension {d}; use more images, or kid")


def frechet_features(features_a, features_b) -> float:
    """:func:`frechet_distance` between Gaussians fitted (mean, unbiased covariance) to two
    feature matrices ``(n_a, d)`` and ``(n_b, d)``; each needs ``n > d`` rows (ValueError
    otherwise, naming ``n`` and ``d``)."""
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b", d=a.shape[1])
    _fd_n(a.shape[0], a.shape[1], "features_a")
    _fd_n(b.shape[0], b.shape[1], "features_b")
    return frechet_distance(a.mean(axis=0), np.cov(a, rowvar=False), b.mean(axis=0),
                            np.cov(b, rowvar=False))


def feature_stats(classifier: Classifier, images, batch_size: int = 500
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(features,)`` and covariance ``(features, features)`` (unbiased, float64 NumPy)
    of the penultimate features of ``classifier`` on ``images``; more images than features
    are needed (ValueError otherwise: the covariance would be singular)."""
    classifier = _classifier(classifier)
    x = _images(images, "images", size=classifier.size, min_n=2)
    _fd_n(x.shape[0], classifier.n_features, "images")
    f = classifier.embed(x, batch_size)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def classifier_fid(classifier: Classifier, images_a, images_b, batch_size: int = 500) -> float:
    """The classifier-FID of two sets of images, each of more images than the classifier has
    features: :func:`frechet_features` of their penultimate features. Not the Inception FID
    (see the module's notes); compare it only with its floor, as :func:`quality` does."""
    classifier = _classifier(classifier)
    x_a = _images(images_a, "images_a", size=classifier.size, min_n=2)
    x_b = _images(images_b, "images_b", size=classifier.size, min_n=2)
    _fd_n(x_a.shape[0], classifier.n_features, "images_a")
    _fd_n(x_b.shape[0], classifier.n_features, "images_b")
    return frechet_features(classifier.embed(x_a, batch_size), classifier.embed(x_b, batch_size))


# --------------------------------------------------------------------------------------------
# Kernel distance
# --------------------------------------------------------------------------------------------
def kid(features_a, features_b) -> float:
    r"""The kernel distance (KID) of Binkowski et al. (2018): the unbiased estimate of the
    squared maximum mean discrepancy between the laws of two feature matrices ``(m, d)`` and
    ``(n, d)`` (``m, n >= 2``) with the cubic kernel :math:`k(x, y) = (x\cdot y/d + 1)^3`,

    .. math::
        \frac{\sum_{i\ne j} k(a_i, a_j)}{m(m-1)} + \frac{\sum_{i\ne j} k(b_i, b_j)}{n(n-1)}
        - \frac{2}{mn}\sum_{i,j} k(a_i, b_j).

    Its expectation is the population MMD² (zero for two samples of one law) at every
    sample size, so, unlike the Fréchet distance, it has no bias of order ``d / n``; it can
    come out negative. It needs no ``n > d``. Computed by :func:`diffnotes.metrics.mmd` with
    this kernel."""
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b", d=a.shape[1])
    d = a.shape[1]
    return mmd(a, b, kernel=lambda u, v: (u @ v.T / d + 1.0) ** 3)


def classifier_kid(classifier: Classifier, images_a, images_b, batch_size: int = 500) -> float:
    """:func:`kid` of the penultimate features of ``classifier`` on two sets of images
    (at least 2 each)."""
    classifier = _classifier(classifier)
    x_a = _images(images_a, "images_a", size=classifier.size, min_n=2)
    x_b = _images(images_b, "images_b", size=classifier.size, min_n=2)
    return kid(classifier.embed(x_a, batch_size), classifier.embed(x_b, batch_size))


# --------------------------------------------------------------------------------------------
# The protocol: generator and floor at the same n, over independent draws
# --------------------------------------------------------------------------------------------
def _spread(values) -> Floor:
    v = np.asarray(values, dtype=float)
    return Floor(float(v.mean()), float(v.std(ddof=1)), tuple(float(x) for x in v))


@dataclass(frozen=True)
class Quality:
    """The scores of :func:`quality` at set size ``n``, each a
    :class:`~diffnotes.metrics.Floor` (``mean``, ``std`` with ``ddof=1``, ``values``) over the
    draws: ``floor_kid`` and ``floor_fd`` between two disjoint held-out sets, ``kid`` and
    ``fd`` between the samples and a held-out set (``None`` where not computed: no samples,
    or ``fd=False``)."""

    n: int
    floor_kid: Floor
    floor_fd: Floor | None = None
    kid: Floor | None = None
    fd: Floor | None = None

    def __str__(self) -> str:
        def f(s, scale=1.0):
            return f"{scale * s.mean:.3g} +- {scale * s.std:.2g}"
        out = [f"n = {self.n}, {len(self.floor_kid.values)} draws:"]
        for name, gen, fl, scale in (("FD", self.fd, self.floor_fd, 1.0),
                                     ("KID x 1e3", self.kid, self.floor_kid, 1e3)):
            if fl is not None:
                out.append(f"{name} {f(gen, scale)} (floor {f(fl, scale)})" if gen is not None
                           else f"floor {name} {f(fl, scale)}")
        return " ".join(out[:1]) + " " + ", ".join(out[1:])


def quality(classifier: Classifier, samples, heldout, n: int, *, n_draws: int = 5, rng,
            fd: bool = True, batch_size: int = 500) -> Quality:
    """The book's image-quality protocol (see the module's notes): Fréchet distance and KID on
    the penultimate features of ``classifier`` (trained on the training split only).

    For each of ``n_draws`` draws, two disjoint sets ``A`` and ``B`` of ``n`` images are drawn
    at random from ``heldout`` (images in neither the generator's nor the classifier's
    training set: ``2 n`` of them at least), and ``n`` of the ``samples``: disjoint from one
    draw to the next when there are ``n_draws * n`` samples or more, else drawn afresh
    without replacement each time (with exactly ``n`` samples, the same set every time: the
    spread is then that of the held-out side only). The floor is the distance between ``A``
    and ``B``; the generator's score is the distance between its ``n`` and ``A``. Both are
    reported as mean and spread over the draws. ``samples=None`` gives the floor only. The
    held-out draws depend on ``rng`` only, not on the samples: calls with the same ``rng``
    compare every generator with the same held-out sets.

    Parameters
    ----------
    classifier : Classifier
    samples : tensor or array of shape (m, 1, H, H), m >= n, or None
        Generated images (rounded to pixel levels as the real ones are).
    heldout : tensor or array of shape (k, 1, H, H), k >= 2 n
    n : int
        Set size (>= 2); with ``fd``, more than the classifier's feature dimension
        (ValueError otherwise, naming both).
    n_draws : int, default 5
        Number of draws (>= 2).
    rng : int or numpy.random.Generator
    fd : bool, default True
        Compute the Fréchet distance beside KID.

    Returns
    -------
    Quality
    """
    classifier = _classifier(classifier)
    held = _images(heldout, "heldout", size=classifier.size, min_n=2)
    n = positive_int(n, "n", minimum=2)
    if not isinstance(fd, bool):
        raise ValueError(f"fd must be True or False, got {fd!r}")
    if fd:
        _fd_n(n, classifier.n_features, "n")
    if held.shape[0] < 2 * n:
        raise ValueError(f"heldout must hold at least 2 n = {2 * n} images (two disjoint sets "
                         f"of n), got {held.shape[0]}")
    n_draws = positive_int(n_draws, "n_draws", minimum=2)
    rng_h, rng_g = (np.random.default_rng(s) for s in as_rng(rng).integers(2**63, size=2))
    f_h = classifier.embed(held, batch_size)
    f_g = None
    if samples is not None:
        x = _images(samples, "samples", size=classifier.size, min_n=2)
        if x.shape[0] < n:
            raise ValueError(f"samples must hold at least n = {n} images, got {x.shape[0]}")
        f_g = classifier.embed(x, batch_size)
        blocks = rng_g.permutation(f_g.shape[0]) if f_g.shape[0] >= n_draws * n else None
    scores = {"floor_fd": [], "floor_kid": [], "fd": [], "kid": []}
    for r in range(n_draws):
        perm = rng_h.permutation(f_h.shape[0])
        a, b = f_h[perm[:n]], f_h[perm[n:2 * n]]
        scores["floor_kid"].append(kid(a, b))
        if fd:
            scores["floor_fd"].append(frechet_features(a, b))
        if f_g is not None:
            idx = (blocks[r * n:(r + 1) * n] if blocks is not None else
                   rng_g.choice(f_g.shape[0], size=n, replace=False))
            scores["kid"].append(kid(f_g[idx], a))
            if fd:
                scores["fd"].append(frechet_features(f_g[idx], a))
    return Quality(n, **{k: _spread(v) if v else None for k, v in scores.items()})


# --------------------------------------------------------------------------------------------
# Memorisation
# --------------------------------------------------------------------------------------------
def _nn_distance(x: torch.Tensor, ref: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """Euclidean distance of each row of ``x`` to its nearest row of ``ref`` (float64)."""
    x, ref = x.double().cpu(), ref.double().cpu()
    ref_sq = (ref * ref).sum(dim=1)
    out = []
    for i in range(0, x.shape[0], chunk):
        xb = x[i:i + chunk]
        d2 = (xb * xb).sum(dim=1)[:, None] + ref_sq[None, :] - 2.0 * xb @ ref.T
        out.append(d2.min(dim=1).values.clamp_min(0.0).sqrt())
    return torch.cat(out).numpy()


@dataclass(frozen=True)
class Memorisation:
    """Nearest-neighbour distances to the training set (see :func:`memorisation`):
    ``samples`` and ``heldout`` (one float per image), in ``space`` (``"pixels"``: Euclidean
    distance of the images in [-1, 1]; ``"features"``: of the classifier's features)."""

    samples: np.ndarray
    heldout: np.ndarray
    space: str

    @property
    def ratio(self) -> float:
        """Median nearest-neighbour distance of the samples over that of the held-out images
        (near 1 for a generator of new images from the same law; near 0 for copies)."""
        return float(np.median(self.samples) / max(np.median(self.heldout), np.finfo(float).tiny))

    @property
    def frac_closer(self) -> float:
        """Fraction of samples nearer to the training set than 95% of the held-out images
        are (0.05 expected for new images from the same law)."""
        return float(np.mean(self.samples < np.quantile(self.heldout, 0.05)))

    def summary(self) -> dict:
        """Median and 5% quantile of both distributions, ``ratio`` and ``frac_closer``."""
        return {"samples_median": float(np.median(self.samples)),
                "samples_q05": float(np.quantile(self.samples, 0.05)),
                "heldout_median": float(np.median(self.heldout)),
                "heldout_q05": float(np.quantile(self.heldout, 0.05)),
                "ratio": self.ratio, "frac_closer": self.frac_closer}

    def __str__(self) -> str:
        s = self.summary()
        return (f"nearest training image ({self.space}): median {s['samples_median']:.3g} "
                f"(held-out {s['heldout_median']:.3g}), ratio {s['ratio']:.2f}; "
                f"{s['frac_closer']:.0%} nearer than 95% of held-out")


def memorisation(samples, train, heldout, *, classifier: Classifier | None = None,
                 batch_size: int = 500) -> Memorisation:
    """The memorisation check: how far each sample is from its nearest training image,
    against how far each held-out image is from its nearest training image.

    A generator that copies (or nearly copies) training images has samples much nearer to the
    training set than new images of the same law are: ``ratio`` (of the medians) well below 1
    and ``frac_closer`` well above 0.05. The function gives the two distributions and these
    numbers, no verdict. Distances are Euclidean, between the images themselves in
    ``[-1, 1]`` (``classifier=None``, ``space="pixels"``) or between their penultimate
    features under ``classifier`` (``space="features"``). For comparable summaries pass about
    as many held-out images as samples.

    Parameters
    ----------
    samples, train, heldout : tensors or arrays of shape (n, 1, H, H)
        Generated images, the generator's training images, and images held out from it (at
        least 1, 1 and 2), all of one size.
    classifier : Classifier, optional
        Measure in its feature space instead of pixel space.

    Returns
    -------
    Memorisation
    """
    size = None if classifier is None else _classifier(classifier).size
    x = _images(samples, "samples", size=size)
    tr = _images(train, "train", size=x.shape[2])
    ho = _images(heldout, "heldout", size=x.shape[2], min_n=2)
    if classifier is None:
        def emb(t):
            return t.flatten(1)
    else:
        def emb(t):
            return torch.as_tensor(classifier.embed(t, batch_size))
    ref = emb(tr)
    return Memorisation(_nn_distance(emb(x), ref), _nn_distance(emb(ho), ref),
                        "pixels" if classifier is None else "features")


# --------------------------------------------------------------------------------------------
# Label statistics
# --------------------------------------------------------------------------------------------
def label_stats(classifier: Classifier, images, *, threshold: float = 0.02,
                batch_size: int = 500) -> dict:
    r"""How confidently and how evenly ``classifier`` recognises digits in ``images``.

    With :math:`p_i` the predicted class probabilities of image :math:`i` and
    :math:`\bar p = \frac1n\sum_i p_i`:

    * ``"entropy"``: the mean predictive entropy :math:`\frac1n\sum_i H(p_i)` in nats; near 0
      when every image is a clearly recognisable digit, up to :math:`\log 10 \approx 2.30`;
    * ``"marginal_entropy"``: :math:`H(\bar p)`; :math:`\log 10` when all classes are used
      equally, 0 when all images are of one class (mode collapse);
    * ``"class_freq"``: a length-10 array, the fraction of images whose most probable class is
      each digit;
    * ``"coverage"``: the fraction of the 10 classes with ``class_freq >= threshold``
      (default 2%, a fifth of the 10% of a balanced set): 1 when every digit is produced, 0.1
      for a single class.

    (The Inception Score is :math:`\exp(H(\bar p) - \frac1n\sum_i H(p_i))`.) There is no noise
    floor for these: the reference is their value on real images of the same number.

    Parameters
    ----------
    classifier : Classifier
    images : tensor or array of shape (n, 1, H, H)
    threshold : float in (0, 1], default 0.02
        Smallest frequency for a class to count as covered.

    Returns
    -------
    dict
        Keys ``"entropy"``, ``"marginal_entropy"``, ``"coverage"`` (floats) and
        ``"class_freq"`` (float64 array of shape (10,)).
    """
    classifier = _classifier(classifier)
    x = _images(images, "images", size=classifier.size)
    threshold = positive_float(threshold, "threshold", upper=1.0)
    p = classifier.predict_proba(x, batch_size)

    def _entropy(q):
        return -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0), axis=-1)

    freq = np.bincount(p.argmax(axis=1), minlength=N_CLASSES) / p.shape[0]
    return {"entropy": float(np.mean(_entropy(p))),
            "marginal_entropy": float(_entropy(p.mean(axis=0))),
            "coverage": float(np.mean(freq >= threshold)),
            "class_freq": freq.astype(float)}


def class_spread(images, labels) -> float:
    r"""The diversity of a labelled set of images: the mean pixel distance between two
    different images of the same class, averaged over the classes present (pixels in
    :math:`[-1, 1]`; Euclidean distance of the flattened images),

    .. math:: \frac{1}{|C|}\sum_{c \in C}\frac{1}{n_c(n_c - 1)}
              \sum_{i \ne j,\ y_i = y_j = c} \lVert x_i - x_j\rVert .

    Classes with fewer than two images are skipped (at least one class needs two). Compare a
    sampler's value with that of real images with the same class counts: lower means the
    samples of a class are more alike than real digits are, the price of strong guidance."""
    x = _images(images, "images", min_n=2)
    y = _labels(labels, x.shape[0], "labels")
    flat = x.flatten(1).double()
    means = []
    for c in range(N_CLASSES):
        z = flat[y == c]
        n = z.shape[0]
        if n > 1:
            means.append(float(torch.cdist(z, z).sum()) / (n * (n - 1)))
    if not means:
        raise ValueError("labels must give at least one class two images")
    return float(np.mean(means))

