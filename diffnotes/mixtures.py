r"""Gaussian mixtures: data distributions whose diffused scores are known exactly.

A mixture :math:`q_0 = \sum_k w_k\,\mathcal N(\mu_k, \Sigma_k)` pushed through a linear
Gaussian kernel :math:`x_t = \alpha x_0 + \sigma \varepsilon` is again a mixture,
:math:`q_t = \sum_k w_k\,\mathcal N(\alpha\mu_k, \alpha^2\Sigma_k + \sigma^2 I)`
(:meth:`GaussianMixture.diffuse`). Its score
:math:`\nabla\log q_t(x) = \sum_k r_k(x)\,\Sigma_{k,t}^{-1}(\mu_{k,t} - x)`, with
responsibilities :math:`r_k(x) \propto w_k\,\mathcal N(x; \mu_{k,t}, \Sigma_{k,t})`, is the
ground truth against which the book checks every learned or transferred score.

**Labels and guidance.** A :class:`LabelledMixture` gives each component a class label
:math:`c`; its class-conditional laws :math:`q_t(x \mid c)` are the sub-mixtures of that class,
again exact at every :math:`t`, and so is the classifier :math:`q_t(c \mid x)` of the noised
points (:meth:`LabelledMixture.class_log_prob`). Bayes' rule gives
:math:`\nabla\log q_t(x \mid c) = \nabla\log q_t(x) + \nabla\log q_t(c \mid x)`, so
classifier guidance with scale :math:`\gamma`, :math:`s(x) + \gamma\nabla\log q_t(c\mid x)`, and
classifier-free guidance with weight :math:`w` (:func:`guided_score`),

.. math:: s_w(x, t) = (1 + w)\,\nabla\log q_t(x \mid c) - w\,\nabla\log q_t(x),

are one field for :math:`\gamma = 1 + w`. At every :math:`t` it is the score of the tilted law
:math:`q_t(x \mid c)^{1 + w} q_t(x)^{-w}`, but these tilted laws are not the diffusions of one
another, so a sampler driven by :math:`s_w` does not end at the tilted data law
(:func:`tilted_density`) unless :math:`w \in \{-1, 0\}`.

Conventions: points are arrays of shape ``(m, d)``; a 1-D mixture also accepts shape ``(m,)``
and then returns shape ``(m,)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._checks import as_rng, distribution, positive_float, positive_int, real_array

__all__ = ["GaussianMixture", "LabelledMixture", "bimodal_1d", "guided_score", "labelled_moons",
           "moons_mixture", "tilted_density", "tilted_sample"]


class GaussianMixture:
    """A mixture of ``K`` Gaussians in ``d`` dimensions.

    Parameters
    ----------
    weights : array of shape (K,)
        Mixture weights (a probability vector).
    means : array of shape (K, d), or (K,) for d = 1
        Component means.
    covs : array of shape (K, d, d), (K, d) for diagonal, or (K,) for isotropic variances
        Component covariances (symmetric positive definite).
    """

    def __init__(self, weights, means, covs):
        w = distribution(weights, "weights", single=True)
        mu = real_array(means, "means", ndim=(1, 2))
        if mu.ndim == 1:
            mu = mu[:, None]
        K, d = mu.shape
        if w.size != K:
            raise ValueError(f"weights must have one entry per component ({K}), got {w.size}")
        c = real_array(covs, "covs", ndim=(1, 2, 3))
        if c.ndim == 1:
            c = c[:, None, None] * np.eye(d)
        elif c.ndim == 2:
            c = c[:, :, None] * np.eye(d)
        if c.shape != (K, d, d):
            raise ValueError(f"covs must have shape ({K}, {d}, {d}), ({K}, {d}) or ({K},), "
                             f"got {np.shape(covs)}")
        if not np.allclose(c, np.swapaxes(c, 1, 2)):
            raise ValueError("covs must be symmetric")
        try:
            self._chol = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise ValueError("covs must be positive definite") from None
        self.weights, self.means, self.covs = w, mu, c
        # eigenbasis of each covariance: the diffused covariance alpha^2 Sigma + sigma^2 I shares
        # it, so scores at any time (and per-point times) need no new factorisation; the work is
        # laid out with the m points on the last axis, so NumPy loops over points
        self._evals, self._evecs = np.linalg.eigh(c)                      # (K, d), (K, d, d)
        self._means_t = mu[:, :, None]                                    # (K, d, 1)

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the space."""
        return self.means.shape[1]

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.weights.size}, d={self.dim})"

    def _points(self, x):
        x = real_array(x, "x", ndim=(1, 2))
        flat = x.ndim == 1
        if flat:
            if self.dim != 1:
                raise ValueError(f"x must have shape (m, {self.dim}), got {x.shape}")
            x = x[:, None]
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (m, {self.dim}), got {x.shape}")
        return x, flat

    def _coefficients(self, x, t, sde):
        """Per-sample ``(alpha, sigma)`` of the kernel at time ``t`` (identity when no SDE)."""
        m = x.shape[0]
        if sde is None:
            if t is not None:
                raise ValueError("t needs an sde: pass score(x, t, sde) (or neither, for t = 0)")
            return np.ones(m), np.zeros(m)
        if t is None:
            raise ValueError("sde needs a time t: pass score(x, t, sde)")
        if not hasattr(sde, "alpha_sigma"):
            raise ValueError(f"sde must be a linear SDE of diffnotes.sde (with a closed-form "
                             f"kernel), got {type(sde).__name__}")
        t = real_array(t, "t", ndim=(0, 1))
        if t.ndim == 1 and t.shape != (m,):
            raise ValueError(f"t must be a float or have shape ({m},) (one time per point), "
                             f"got {t.shape}")
        alpha, sigma = sde.alpha_sigma(np.broadcast_to(t, (m,)))
        return np.asarray(alpha, float), np.asarray(sigma, float)

    def _log_components(self, x, alpha, sigma):
        """Log of ``w_k N(x; alpha mu_k, alpha^2 Sigma_k + sigma^2 I)`` and the whitened
        residuals, worked out in each component's eigenbasis (shapes (K, m), (K, d, m))."""
        var = alpha**2 * self._evals[:, :, None] + sigma**2                  # (K, d, m)
        if np.any(var <= 0):
            raise ValueError("t must be > 0 for this sde (its kernel is singular at t = 0)")
        y = np.einsum("kji,kjm->kim", self._evecs, x.T - alpha * self._means_t)
        logc = (np.log(self.weights)[:, None]
                - 0.5 * np.sum(y * y / var + np.log(var), axis=1)
                - 0.5 * self.dim * np.log(2 * np.pi))
        return logc, y / var

    def log_prob(self, x, t=None, sde=None) -> np.ndarray:
        r"""Log density at points ``x``, shape ``(m,)``.

        With ``t`` and a linear ``sde`` (:mod:`diffnotes.sde`), the log density of the mixture
        diffused to time ``t``, :math:`\log q_t(x)`; ``t`` a float or one time per point."""
        x, _ = self._points(x)
        logc, _ = self._log_components(x, *self._coefficients(x, t, sde))
        return logsumexp(logc, axis=0)

    def score(self, x, t=None, sde=None) -> np.ndarray:
        r"""The score :math:`\nabla_x \log q(x)`, shaped like ``x``.

        With ``t`` and a linear ``sde`` (:mod:`diffnotes.sde`), the exact score of the mixture
        diffused to time ``t``, :math:`\nabla_x\log q_t(x)`; ``t`` a float or one time per
        point. This is the ground truth of every score the book learns or transfers."""
        x, flat = self._points(x)
        logc, z = self._log_components(x, *self._coefficients(x, t, sde))
        r = np.exp(logc - logsumexp(logc, axis=0, keepdims=True))            # (K, m)
        s = -np.einsum("km,kij,kjm->mi", r, self._evecs, z)
        return s[:, 0] if flat else s

    def score_function(self, sde):
        """The exact score as a function ``(x, t) -> score(x, t, sde)``, the form the samplers of
        :mod:`diffnotes.sde` take."""
        if not hasattr(sde, "alpha_sigma"):
            raise ValueError(f"sde must be a linear SDE of diffnotes.sde, got "
                             f"{type(sde).__name__}")

        def exact_score(x, t):
            return self.score(x, t, sde)

        return exact_score

    def at(self, t: float, sde) -> GaussianMixture:
        """The mixture diffused by ``sde`` to time ``t`` (a float), as a new mixture."""
        t = positive_float(t, "t", allow_zero=True)
        alpha, sigma = sde.alpha_sigma(t)
        return self.diffuse(float(alpha), float(sigma))

    def sample(self, n: int, rng) -> np.ndarray:
        """``n`` independent draws, shape ``(n, d)`` (``(n,)`` when ``d = 1``)."""
        return self._draw(n, rng)[0]

    def _draw(self, n, rng):
        """Draws and the index of the component each came from."""
        n = positive_int(n, "n")
        rng = as_rng(rng)
        k = rng.choice(self.weights.size, size=n, p=self.weights)
        z = rng.standard_normal((n, self.dim))
        x = self.means[k] + np.einsum("nij,nj->ni", self._chol[k], z)
        return (x[:, 0] if self.dim == 1 else x), k

    def diffuse(self, alpha, sigma) -> GaussianMixture:
        r"""The law of :math:`\alpha X + \sigma \varepsilon` for ``X`` from this mixture and an
        independent standard normal :math:`\varepsilon` (``alpha > 0``, ``sigma >= 0``)."""
        alpha = positive_float(alpha, "alpha")
        sigma = positive_float(sigma, "sigma", allow_zero=True)
        return GaussianMixture(self.weights, alpha * self.means,
                               alpha**2 * self.covs + sigma**2 * np.eye(self.dim))


class LabelledMixture(GaussianMixture):
    r"""A :class:`GaussianMixture` whose components carry class labels ``0, ..., C - 1``.

    The class prior is :math:`p(c) = \sum_{k: c_k = c} w_k`, the class-conditional law the
    sub-mixture of the components labelled :math:`c` (weights renormalised), and the classifier
    :math:`p(c \mid x) = p(c)\,q(x \mid c)/q(x)`; all three are exact at every time of a linear
    SDE, like the scores of :class:`GaussianMixture`.

    Parameters
    ----------
    weights, means, covs
        As for :class:`GaussianMixture`.
    labels : array of K non-negative ints
        The class of each component; every class from 0 to ``max(labels)`` must occur.
    """

    def __init__(self, weights, means, covs, labels):
        super().__init__(weights, means, covs)
        lab = np.asarray(labels)
        K = self.weights.size
        if (lab.shape != (K,) or not np.issubdtype(lab.dtype, np.integer)
                or np.any(lab < 0)):
            raise ValueError(f"labels must be {K} non-negative integers (one per component), "
                             f"got {labels!r}")
        C = int(lab.max()) + 1
        if np.unique(lab).size != C:
            raise ValueError(f"labels must use every class from 0 to {C - 1}, got "
                             f"{sorted(set(lab.tolist()))}")
        self.labels = lab.astype(int)
        self._onehot = self.labels[None, :] == np.arange(C)[:, None]          # (C, K)
        self.class_weights = self._onehot @ self.weights

    @property
    def n_classes(self) -> int:
        """The number ``C`` of classes."""
        return self._onehot.shape[0]

    def __repr__(self) -> str:
        return f"LabelledMixture(K={self.weights.size}, d={self.dim}, C={self.n_classes})"

    def _label(self, label, m):
        """``None``, or one class per point: an int array of shape ``(m,)``."""
        if label is None:
            return None
        lab = np.asarray(label)
        if not np.issubdtype(lab.dtype, np.integer) or lab.ndim > 1:
            raise ValueError(f"label must be None, an int or {m} ints (one per point), got "
                             f"{label!r}")
        lab = np.broadcast_to(lab, (m,)) if lab.ndim == 0 else lab
        if lab.shape != (m,) or np.any(lab < 0) or np.any(lab >= self.n_classes):
            raise ValueError(f"label must be in 0..{self.n_classes - 1} (an int or one per "
                             f"point, shape ({m},)), got {label!r}")
        return lab

    def _masked(self, logc, label):
        r"""The component log weights restricted to each point's class (``-inf`` elsewhere),
        renormalised by the class prior: the components of :math:`q(x \mid c)`."""
        if label is None:
            return logc
        keep = self._onehot[label].T                                          # (K, m)
        return np.where(keep, logc, -np.inf) - np.log(self.class_weights[label])

    def conditional(self, label: int) -> GaussianMixture:
        r"""The class-conditional law :math:`q(x \mid c)` as a :class:`GaussianMixture`."""
        self._label(label, 1)
        keep = self.labels == int(label)
        w = self.weights[keep]
        return GaussianMixture(w / w.sum(), self.means[keep], self.covs[keep])

    def sample_labelled(self, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws of the pair :math:`(x, c)`: points shaped as :meth:`sample` and their
        labels, shape ``(n,)``."""
        x, k = self._draw(n, rng)
        return x, self.labels[k]

    def log_prob(self, x, t=None, sde=None, label=None) -> np.ndarray:
        r"""Log density :math:`\log q_t(x \mid c)` (``label`` an int or one per point), or
        :math:`\log q_t(x)` for ``label=None``; ``t`` and ``sde`` as in
        :meth:`GaussianMixture.log_prob`. Shape ``(m,)``."""
        x, _ = self._points(x)
        label = self._label(label, x.shape[0])
        logc, _ = self._log_components(x, *self._coefficients(x, t, sde))
        return logsumexp(self._masked(logc, label), axis=0)

    def score(self, x, t=None, sde=None, label=None) -> np.ndarray:
        r"""The exact conditional score :math:`\nabla_x\log q_t(x \mid c)` (``label`` an int or
        one per point), or the unconditional :math:`\nabla_x\log q_t(x)` for ``label=None``;
        shaped like ``x``."""
        x, flat = self._points(x)
        label = self._label(label, x.shape[0])
        logc, z = self._log_components(x, *self._coefficients(x, t, sde))
        logc = self._masked(logc, label)
        r = np.exp(logc - logsumexp(logc, axis=0, keepdims=True))            # (K, m)
        s = -np.einsum("km,kij,kjm->mi", r, self._evecs, z)
        return s[:, 0] if flat else s

    def class_log_prob(self, x, t=None, sde=None) -> np.ndarray:
        r"""The exact classifier of the noised points, :math:`\log q_t(c \mid x)` for every
        class: shape ``(m, C)`` (rows sum to one after ``exp``)."""
        x, _ = self._points(x)
        logc, _ = self._log_components(x, *self._coefficients(x, t, sde))
        logj = np.stack([logsumexp(np.where(keep[:, None], logc, -np.inf), axis=0)
                         for keep in self._onehot], axis=1)                   # (m, C)
        return logj - logsumexp(logj, axis=1, keepdims=True)

    def classifier_grad(self, x, t, sde, label) -> np.ndarray:
        r"""The classifier-guidance direction :math:`\nabla_x\log q_t(c \mid x)`, shaped like
        ``x``: by Bayes' rule :math:`\nabla\log q_t(x \mid c) - \nabla\log q_t(x)`."""
        if label is None:
            raise ValueError("label must be an int in 0..C-1 (or one per point), got None")
        return self.score(x, t, sde, label) - self.score(x, t, sde)

    def diffuse(self, alpha, sigma) -> LabelledMixture:
        r"""The law of :math:`\alpha X + \sigma \varepsilon`, as for
        :meth:`GaussianMixture.diffuse`, with the labels kept (so :meth:`at` is labelled too)."""
        g = super().diffuse(alpha, sigma)
        return LabelledMixture(g.weights, g.means, g.covs, self.labels)

    def guided_score_function(self, sde, label, w: float):
        """The guided score :func:`guided_score` as a function ``(x, t)`` for the samplers of
        :mod:`diffnotes.sde`."""
        w = _weight(w)
        self._label(label, 1)
        if not hasattr(sde, "alpha_sigma"):
            raise ValueError(f"sde must be a linear SDE of diffnotes.sde, got "
                             f"{type(sde).__name__}")

        def guided(x, t):
            return guided_score(self, x, t, sde, label, w)

        return guided


def _weight(w) -> float:
    if isinstance(w, bool) or not isinstance(w, int | float | np.floating | np.integer):
        raise ValueError(f"w must be a real number >= -1, got {type(w).__name__}")
    if not np.isfinite(w) or w < -1:
        raise ValueError(f"w must be a finite real number >= -1, got {w}")
    return float(w)


def guided_score(mixture: LabelledMixture, x, t, sde, label, w: float) -> np.ndarray:
    r"""The classifier-free guided score :math:`(1 + w)\,\nabla\log q_t(x \mid c) -
    w\,\nabla\log q_t(x)` of a :class:`LabelledMixture`, exact; shaped like ``x``.

    ``w = 0`` is the conditional score, ``w = -1`` the unconditional one; ``w > 0`` pushes
    along the classifier's gradient, :math:`s(x) + (1 + w)\nabla\log q_t(c \mid x)` (classifier
    guidance with scale :math:`1 + w`). ``label`` is an int or one per point, ``w >= -1``.
    """
    if not isinstance(mixture, LabelledMixture):
        raise ValueError(f"mixture must be a LabelledMixture, got {type(mixture).__name__}")
    w = _weight(w)
    if label is None:
        raise ValueError("label must be an int in 0..C-1 (or one per point), got None")
    cond = mixture.score(x, t, sde, label)
    if w == 0:
        return cond
    return (1 + w) * cond - w * mixture.score(x, t, sde)


def tilted_density(mixture: LabelledMixture, grid, label: int, w: float) -> np.ndarray:
    r"""The tilted law :math:`\pi_w(x) \propto q(x \mid c)^{1 + w}\, q(x)^{-w}` of the data
    (``t = 0``) on an increasing 1-D ``grid``, normalised by the trapezoidal rule (the grid
    must cover the mass). It is the law whose score is the guided score at ``t = 0``, and the
    law a guided sampler would reach if guidance commuted with diffusion; it does not."""
    if not isinstance(mixture, LabelledMixture):
        raise ValueError(f"mixture must be a LabelledMixture, got {type(mixture).__name__}")
    if mixture.dim != 1:
        raise ValueError(f"mixture must be 1-D for a grid density, got d = {mixture.dim}")
    w = _weight(w)
    grid = real_array(grid, "grid", ndim=1)
    if grid.size < 3 or np.any(np.diff(grid) <= 0):
        raise ValueError("grid must hold at least 3 strictly increasing points")
    logp = ((1 + w) * mixture.log_prob(grid, label=label) - w * mixture.log_prob(grid))
    p = np.exp(logp - logp.max())
    return p / np.trapezoid(p, grid)


def tilted_sample(mixture: LabelledMixture, grid, label: int, w: float, n: int,
                  rng) -> np.ndarray:
    """``n`` draws of :func:`tilted_density` on ``grid`` by inverting its piecewise-linear
    cumulative distribution function, shape ``(n,)``: the reference sample (and noise floor)
    for a guided sampler's output."""
    p = tilted_density(mixture, grid, label, w)
    n = positive_int(n, "n")
    grid = np.asarray(grid, float)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(grid))])
    return np.interp(as_rng(rng).uniform(size=n) * cdf[-1], cdf, grid)


def labelled_moons(n_components: int = 8, radius: float = 1.0, std: float = 0.12
                   ) -> LabelledMixture:
    """:func:`moons_mixture` with each moon a class: label 0 for the upper moon, 1 for the
    lower one."""
    m = moons_mixture(n_components, radius, std)
    n = positive_int(n_components, "n_components", minimum=2)
    return LabelledMixture(m.weights, m.means, m.covs, np.repeat([0, 1], n))


def moons_mixture(n_components: int = 8, radius: float = 1.0, std: float = 0.12,
                  center=(0.0, 0.0)) -> GaussianMixture:
    r"""A two-moons-like 2-D mixture: ``n_components`` equal isotropic Gaussians on each of
    two interleaved half circles (like scikit-learn's ``make_moons``), centred at ``center``.

    Its exact score makes it a ground truth for 2-D samplers without any training.

    Scale: the component means lie on the raw ``make_moons`` half circles (radius 1 by
    default, ``radius`` scales them), shifted by :math:`-(\tfrac12, \tfrac14)` so that their mean
    is 0; the default means span :math:`[-1.5, 1.5] \times [-0.72, 0.72]`, total variance
    :math:`\operatorname{tr}\operatorname{Cov} \approx 1.07`. This is *not* the scale of
    :func:`diffnotes.data.two_moons`, which standardises the moons to total variance 2 (radius
    :math:`\approx 1.418`): the same shape, about 1.42 times larger. Chapters 2 and 3 and
    Chapter 4's short-horizon section use this mixture; Chapter 4's learned bridges use
    ``two_moons``.
    """
    n_components = positive_int(n_components, "n_components", minimum=2)
    radius = positive_float(radius, "radius")
    std = positive_float(std, "std")
    center = real_array(center, "center", ndim=1)
    if center.shape != (2,):
        raise ValueError(f"center must have shape (2,), got {center.shape}")
    a = np.linspace(0, np.pi, n_components)
    upper = np.stack([np.cos(a), np.sin(a)], axis=1)
    lower = np.stack([1 - np.cos(a), 0.5 - np.sin(a)], axis=1)
    pts = np.concatenate([upper, lower]) - np.array([0.5, 0.25])
    means = radius * pts + center
    k = 2 * n_components
    return GaussianMixture(np.full(k, 1.0 / k), means, np.full(k, std**2))


def bimodal_1d() -> GaussianMixture:
    """The 1-D two-bump data distribution of Chapter 2: weights ``(0.4, 0.6)``, means
    ``(-1.5, 1.2)``, standard deviations ``(0.3, 0.4)`` (in the scaled coordinate ``x``)."""
    return GaussianMixture([0.4, 0.6], [-1.5, 1.2], [0.3**2, 0.4**2])
