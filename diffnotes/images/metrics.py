r"""Scoring image samples with a classifier of our own: a Fréchet distance and label statistics.

The *Fréchet Inception Distance* (FID) of Heusel et al. (2017) compares the mean and covariance
of the features of an Inception-v3 network, trained on ImageNet, on generated and on real
images. **The numbers of this module are not that FID.** Inception weights cannot be downloaded
on the offline machines the book runs on, and Inception features of 8x8 or 28x28 greyscale
digits would anyway be features of images upsampled to 299x299 colour pictures, far from
anything the network was trained on, and of little meaning. Instead the book trains a small
:class:`Classifier` on the same digits the generators learn (a few seconds on the 8x8 digits
of scikit-learn, well under a minute on MNIST, on one CPU core) and computes

* :func:`classifier_fid`: the Fréchet distance between Gaussians fitted to its penultimate
  features (:func:`feature_stats`, :func:`frechet_distance`) on two sets of images;
* :func:`label_stats`: how confidently, and how evenly over the ten classes, the classifier
  recognises digits in a set of images (a cousin of the Inception Score).

These numbers depend on the classifier (its architecture, seed and training), so they are
comparable within the book only, between sets of images scored by the same classifier. A
classifier-FID means something only next to its data-vs-data floor, :func:`fid_floor`: the
value that ``n`` real images, which a perfect generator would match, get against the same
reference set. The book always reports the two together. For the label statistics the
reference is the label statistics of real images of the same size.

Images follow the conventions of :mod:`diffnotes.images`: float tensors (or arrays) of shape
``(n, 1, H, W)`` with ``H = W`` (8 for the scikit-learn digits, 28 for MNIST) and pixel values
in :math:`[-1, 1]`, labels integers in ``0..9``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from diffnotes._checks import as_rng, positive_float, positive_int
from diffnotes.metrics import Floor
from diffnotes.utils import device as default_device
from diffnotes.utils import torch_threads

__all__ = [
    "Classifier",
    "accuracy",
    "classifier_fid",
    "feature_stats",
    "fid_floor",
    "frechet_distance",
    "label_stats",
    "train_classifier",
]

N_CLASSES = 10


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------
def _images(x, name: str = "images", *, size: int | None = None, min_n: int = 1) -> torch.Tensor:
    """Check a stack of greyscale images ``(n, 1, H, H)`` (tensor or array) and return it as a
    float32 tensor (on its device for a tensor, the CPU for an array)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"{name} must be a real float tensor, got dtype {x.dtype}")
        t = x.detach().to(torch.float32)
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be an array of real numbers ({err})") from None
    if t.ndim != 4 or t.shape[1] != 1 or t.shape[2] != t.shape[3]:
        raise ValueError(f"{name} must have shape (n, 1, H, H) (square greyscale images), "
                         f"got shape {tuple(t.shape)}")
    if size is not None and t.shape[2] != size:
        raise ValueError(f"{name} must be {size}x{size} images (the classifier's size), got "
                         f"{t.shape[2]}x{t.shape[3]}")
    if t.shape[0] < min_n:
        raise ValueError(f"{name} must hold at least {min_n} image(s), got {t.shape[0]}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    return t


def _labels(y, n: int, name: str = "labels") -> torch.Tensor:
    """Check ``n`` integer labels in ``0..9`` and return them as an int64 tensor."""
    if isinstance(y, torch.Tensor):
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise ValueError(f"{name} must have an integer dtype, got {y.dtype}")
        t = y.detach().to(torch.int64)
    else:
        arr = np.asarray(y)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must be integers in 0..9, got dtype {arr.dtype}")
        t = torch.as_tensor(arr.astype(np.int64))
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one label per image), "
                         f"got shape {tuple(t.shape)}")
    if n and (int(t.min()) < 0 or int(t.max()) > N_CLASSES - 1):
        raise ValueError(f"{name} must be in 0..{N_CLASSES - 1}, got values in "
                         f"{int(t.min())}..{int(t.max())}")
    return t


def _classifier(c, name: str = "classifier") -> Classifier:
    if not isinstance(c, Classifier):
        raise ValueError(f"{name} must be a Classifier (see train_classifier), got "
                         f"{type(c).__name__}")
    return c


# --------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------
def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    groups = math.gcd(c_out, 8)
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
                         nn.GroupNorm(groups, c_out), nn.SiLU())


class Classifier(nn.Module):
    r"""A small convolutional classifier of ``size`` x ``size`` greyscale digits.

    Four 3x3 convolutions, each followed by a group normalisation and a SiLU, with ``width``,
    ``width``, ``2 width``, ``2 width`` channels, the second and fourth of stride 2 (28x28
    inputs become 7x7 maps, 8x8 inputs 2x2 maps); an adaptive average pooling to 2x2; a linear
    layer to ``features`` units with a SiLU (the *penultimate features*, :meth:`features`) and
    a linear 10-way head (:meth:`forward` returns its logits). There is no batch normalisation:
    an image's output does not depend on the other images of its batch, in training or not.

    Parameters
    ----------
    size : int, default 28
        Side of the input images (>= 4): 8 for the scikit-learn digits, 28 for MNIST.
    features : int, default 64
        Width of the penultimate feature layer, the dimension of the classifier-FID.
    width : int, default 16
        Channels of the first convolutions.
    seed : int, default 0
        Seed of the initial weights (drawn without touching torch's global random state).

    Notes
    -----
    With the defaults the network has about 25k parameters. Save a trained one with
    ``torch.save(classifier.state(), path)`` and load it back with
    ``Classifier.from_state(torch.load(path, weights_only=True))``.
    """

    def __init__(self, size: int = 28, features: int = 64, width: int = 16, *, seed: int = 0):
        super().__init__()
        self.size = positive_int(size, "size", minimum=4)
        self.n_features = positive_int(features, "features")
        self.width = positive_int(width, "width")
        self.seed = positive_int(seed, "seed", minimum=0)
        w = self.width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.body = nn.Sequential(_block(1, w, 1), _block(w, w, 2), _block(w, 2 * w, 1),
                                      _block(2 * w, 2 * w, 2), nn.AdaptiveAvgPool2d(2),
                                      nn.Flatten())
            self.penultimate = nn.Sequential(nn.Linear(8 * w, self.n_features), nn.SiLU())
            self.head = nn.Linear(self.n_features, N_CLASSES)

    def extra_repr(self) -> str:
        return f"size={self.size}, features={self.n_features}, width={self.width}"

    def _check(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, self.size, self.size):
            raise ValueError(f"x must have shape (n, 1, {self.size}, {self.size}), got shape "
                             f"{tuple(x.shape)}")
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations ``(n, features)`` of images ``x`` of shape
        ``(n, 1, size, size)`` (a tensor on the network's device; with gradients)."""
        return self.penultimate(self.body(self._check(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits ``(n, 10)`` of images ``x`` of shape ``(n, 1, size, size)``."""
        return self.head(self.features(x))

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def _map(self, fn, x, batch_size: int) -> np.ndarray:
        """``fn`` applied to ``x`` in batches, in eval mode, without gradients, as float64."""
        x = _images(x, "x", size=self.size)
        batch_size = positive_int(batch_size, "batch_size")
        dev = self._device()
        was_training = self.training
        self.eval()
        try:
            out = [fn(x[i:i + batch_size].to(dev)).double().cpu()
                   for i in range(0, x.shape[0], batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy()

    def predict_proba(self, x, batch_size: int = 500) -> np.ndarray:
        """Class probabilities ``(n, 10)`` (float64 NumPy) of images ``x``, a tensor or array of
        shape ``(n, 1, size, size)``; computed in batches of ``batch_size`` on the network's
        device, in eval mode and without gradients."""
        return self._map(lambda b: torch.softmax(self(b).double(), dim=1), x, batch_size)

    def embed(self, x, batch_size: int = 500) -> np.ndarray:
        """The penultimate :meth:`features` ``(n, features)`` (float64 NumPy) of images ``x``,
        computed like :meth:`predict_proba`."""
        return self._map(self.features, x, batch_size)

    def state(self) -> dict:
        """Everything needed to rebuild the network: its configuration (plain ints) and its
        ``state_dict`` (tensors on the CPU), loadable by ``torch.load(..., weights_only=True)``
        after ``torch.save``. Inverse of :meth:`from_state`."""
        return {"size": self.size, "features": self.n_features, "width": self.width,
                "seed": self.seed,
                "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}}

    @classmethod
    def from_state(cls, state: dict, device=None) -> Classifier:
        """Rebuild a :class:`Classifier` from :meth:`state` (on ``device``, default the CPU),
        in eval mode."""
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict made by Classifier.state(), got "
                             f"{type(state).__name__}")
        missing = {"size", "features", "width", "seed", "state_dict"} - set(state)
        if missing:
            raise ValueError(f"state must be a dict made by Classifier.state(); it lacks "
                             f"{sorted(missing)}")
        net = cls(state["size"], state["features"], state["width"], seed=state["seed"])
        try:
            net.load_state_dict(state["state_dict"])
        except (RuntimeError, TypeError, AttributeError) as err:
            raise ValueError(f"state['state_dict'] does not fit the configuration: {err}") \
                from None
        dev = torch.device("cpu") if device is None else default_device(device)
        return net.to(dev).eval()


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image of ``x`` by its own random integer offset in
    ``[-max_shift, max_shift]`` along each axis, filling with the background value -1."""
    n, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s), value=-1.0)
    off = torch.randint(0, 2 * s + 1, (2, n), generator=gen, device=x.device)
    rows = off[0][:, None] + torch.arange(h, device=x.device)
    cols = off[1][:, None] + torch.arange(w, device=x.device)
    b = torch.arange(n, device=x.device)[:, None, None]
    return padded[b, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def default_max_shift(size: int) -> int:
    """The augmentation shift of :func:`train_classifier`: 1 pixel for images of side < 16
    (the 8x8 digits), 2 pixels above (MNIST)."""
    return 1 if size < 16 else 2


def train_classifier(images, labels, *, n_steps: int = 600, batch_size: int = 128,
                     lr: float = 3e-3, weight_decay: float = 1e-4, features: int = 64,
                     width: int = 16, seed: int = 0, device=None, progress: bool = False,
                     augment: bool = True, cpu_threads: int | None = 1) -> Classifier:
    """Train a :class:`Classifier` on labelled digits.

    ``n_steps`` AdamW steps on the cross-entropy of minibatches of ``batch_size`` images drawn
    by reshuffling the training set at every epoch, with a learning rate decaying from ``lr``
    to ``lr / 100`` along a cosine. With ``augment``, each image of a minibatch is translated by
    a random number of pixels (up to 1 for 8x8 images, 2 for 28x28, filled with the background
    value -1), so that the classifier relies on shapes rather than exact positions and is not
    fooled by tiny sample artefacts.

    On one (shared) CPU core, the defaults take about 35 s on 28x28 images and reach 98.4%
    accuracy on 2000 held-out MNIST images when trained on 8000 others; on the 8x8 digits of
    scikit-learn (trained on the first 1400, tested on the other 397) they take about 7 s and
    reach 96-98% (seeds 0-2), and 200 steps, about 2 s, already reach 95-97%.

    Parameters
    ----------
    images : tensor or array of shape (n, 1, H, H)
        Training images with values in [-1, 1].
    labels : tensor or array of n integers in 0..9
    n_steps, batch_size, lr, weight_decay : training length, minibatch size, peak learning
        rate, AdamW weight decay.
    features, width : int
        Passed to :class:`Classifier` (its ``size`` is ``H``).
    seed : int
        Seeds the initial weights, the minibatches and the shifts: the same seed (and data and
        device) gives the same network.
    device : torch.device or str, optional
        Default :func:`diffnotes.utils.device` (CUDA when present).
    progress : bool
        Show a ``tqdm`` progress bar.
    augment : bool, default True
        Random shifts as above.
    cpu_threads : int or None, default 1
        Torch's intra-op threads during training on the CPU (restored afterwards).

    Returns
    -------
    Classifier
        The trained network, on ``device``, in eval mode.

    Raises
    ------
    FloatingPointError
        If the loss becomes non-finite (lower ``lr``).
    """
    x = _images(images, "images", min_n=1)
    y = _labels(labels, x.shape[0], "labels")
    n_steps = positive_int(n_steps, "n_steps")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_float(lr, "lr")
    weight_decay = positive_float(weight_decay, "weight_decay", allow_zero=True)
    seed = positive_int(seed, "seed", minimum=0)
    if not isinstance(augment, bool):
        raise ValueError(f"augment must be True or False, got {augment!r}")
    if cpu_threads is not None:
        cpu_threads = positive_int(cpu_threads, "cpu_threads")
    dev = default_device(device)
    from tqdm.auto import trange

    net = Classifier(x.shape[2], features, width, seed=seed).to(dev).train()
    x, y = x.to(dev), y.to(dev)
    n = x.shape[0]
    batch_size = min(batch_size, n)
    max_shift = default_max_shift(x.shape[2])
    gen = torch.Generator(device=dev).manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_steps, eta_min=lr / 100)
    perm, pos = torch.randperm(n, generator=gen, device=dev), 0
    with torch_threads(cpu_threads, dev):
        bar = trange(n_steps, disable=not progress, desc="classifier")
        for i in bar:
            if pos + batch_size > n:
                perm, pos = torch.randperm(n, generator=gen, device=dev), 0
            idx = perm[pos:pos + batch_size]
            pos += batch_size
            xb = x[idx]
            if augment:
                xb = _shift(xb, max_shift, gen)
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress and i % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3g}", refresh=False)
            if i % 50 == 0 or i == n_steps - 1:
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(f"train_classifier: the loss is {value} at step "
                                             f"{i}: lower lr (or check the data)")
    return net.eval()


def accuracy(classifier: Classifier, images, labels, batch_size: int = 500) -> float:
    """The fraction of ``images`` whose most probable class under ``classifier`` is their
    label (``labels``: integers in 0..9)."""
    classifier = _classifier(classifier)
    x = _images(images, "images", size=classifier.size)
    y = _labels(labels, x.shape[0], "labels").numpy()
    p = classifier.predict_proba(x, batch_size)
    return float(np.mean(p.argmax(axis=1) == y))


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


def feature_stats(classifier: Classifier, images, batch_size: int = 500
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(features,)`` and covariance ``(features, features)`` (unbiased, float64 NumPy)
    of the penultimate features of ``classifier`` on ``images`` (at least 2)."""
    classifier = _classifier(classifier)
    x = _images(images, "images", size=classifier.size, min_n=2)
    f = classifier.embed(x, batch_size)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def classifier_fid(classifier: Classifier, images_a, images_b, batch_size: int = 500) -> float:
    """The classifier-FID of two sets of images (at least 2 each): :func:`frechet_distance`
    between Gaussians with the :func:`feature_stats` of ``images_a`` and ``images_b``.

    Not the Inception FID (see the module's notes): compare it only with values from the
    same classifier, and with the data-vs-data floor :func:`fid_floor` at the same sizes."""
    classifier = _classifier(classifier)
    x_a = _images(images_a, "images_a", size=classifier.size, min_n=2)
    x_b = _images(images_b, "images_b", size=classifier.size, min_n=2)
    mu_a, cov_a = feature_stats(classifier, x_a, batch_size)
    mu_b, cov_b = feature_stats(classifier, x_b, batch_size)
    return frechet_distance(mu_a, cov_a, mu_b, cov_b)


def fid_floor(classifier: Classifier, reference, pool, n: int, *, n_rep: int = 5, rng,
              batch_size: int = 500) -> Floor:
    """The data-vs-data floor of :func:`classifier_fid` for samples of size ``n``: the
    classifier-FID between ``n`` images drawn without replacement from ``pool`` and the whole
    ``reference`` set, for ``n_rep`` independent draws.

    It is what a perfect generator (one drawing real images) would score with ``n`` samples:
    with finite ``n`` the feature mean and covariance are noisy, so the FID of a sample of size
    ``n`` against ``reference`` is above this floor even when the generator is perfect, and
    only a value clearly above the floor says that a generator is imperfect. ``pool`` should
    be real images held out from ``reference`` (e.g. the test split when the reference is the
    training split); drawing from ``reference`` itself would understate the floor.

    Parameters
    ----------
    classifier : Classifier
    reference : tensor or array of shape (m, 1, H, H)
        The real images the generated ones are compared with (at least 2).
    pool : tensor or array of shape (k, 1, H, H)
        Other real images to draw the samples from (``k >= n``).
    n : int
        Sample size (>= 2), that of the generated sets the floor is for.
    n_rep : int, default 5
        Number of draws (>= 2, so that ``std`` is defined).
    rng : int or numpy.random.Generator
        Source of the draws.

    Returns
    -------
    diffnotes.metrics.Floor
        ``mean``, ``std`` (``ddof=1``) and the individual ``values``.
    """
    classifier = _classifier(classifier)
    ref = _images(reference, "reference", size=classifier.size, min_n=2)
    pool = _images(pool, "pool", size=classifier.size, min_n=2)
    n = positive_int(n, "n", minimum=2, maximum=pool.shape[0])
    n_rep = positive_int(n_rep, "n_rep", minimum=2)
    rng = as_rng(rng)
    mu_r, cov_r = feature_stats(classifier, ref, batch_size)
    f = classifier.embed(pool, batch_size)
    values = []
    for _ in range(n_rep):
        sub = f[rng.choice(f.shape[0], size=n, replace=False)]
        values.append(frechet_distance(sub.mean(axis=0), np.cov(sub, rowvar=False), mu_r, cov_r))
    vals = np.array(values)
    return Floor(float(vals.mean()), float(vals.std(ddof=1)), tuple(values))


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

