r"""Gaussian mixtures: data distributions whose diffused scores are known exactly.

A mixture :math:`q_0 = \sum_k w_k\,\mathcal N(\mu_k, \Sigma_k)` pushed through a linear
Gaussian kernel :math:`x_t = \alpha x_0 + \sigma \varepsilon` is again a mixture,
:math:`q_t = \sum_k w_k\,\mathcal N(\alpha\mu_k, \alpha^2\Sigma_k + \sigma^2 I)`
(:meth:`GaussianMixture.diffuse`). Its score
:math:`\nabla\log q_t(x) = \sum_k r_k(x)\,\Sigma_{k,t}^{-1}(\mu_{k,t} - x)`, with
responsibilities :math:`r_k(x) \propto w_k\,\mathcal N(x; \mu_{k,t}, \Sigma_{k,t})`, is the
ground truth against which the book checks every learned or transferred score.

Conventions: points are arrays of shape ``(m, d)``; a 1-D mixture also accepts shape ``(m,)``
and then returns shape ``(m,)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._checks import as_rng, distribution, positive_float, positive_int, real_array

__all__ = ["GaussianMixture", "bimodal_1d", "moons_mixture"]


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
        self._prec = np.linalg.inv(c)
        self._logdet = 2 * np.log(np.diagonal(self._chol, axis1=1, axis2=2)).sum(axis=1)

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

    def _log_components(self, x):
        diff = x[:, None, :] - self.means[None]                          # (m, K, d)
        maha = np.einsum("mki,kij,mkj->mk", diff, self._prec, diff)
        return (np.log(self.weights) - 0.5 * (maha + self._logdet + self.dim * np.log(2 * np.pi)),
                diff)

    def log_prob(self, x) -> np.ndarray:
        """Log density at points ``x``; shape ``(m,)``."""
        x, _ = self._points(x)
        lc, _ = self._log_components(x)
        return logsumexp(lc, axis=1)

    def score(self, x) -> np.ndarray:
        r"""The score :math:`\nabla_x \log q(x)`, shaped like ``x``."""
        x, flat = self._points(x)
        lc, diff = self._log_components(x)
        r = np.exp(lc - logsumexp(lc, axis=1, keepdims=True))          # responsibilities
        s = -np.einsum("mk,kij,mkj->mi", r, self._prec, diff)
        return s[:, 0] if flat else s

    def sample(self, n: int, rng) -> np.ndarray:
        """``n`` independent draws, shape ``(n, d)`` (``(n,)`` when ``d = 1``)."""
        n = positive_int(n, "n")
        rng = as_rng(rng)
        k = rng.choice(self.weights.size, size=n, p=self.weights)
        z = rng.standard_normal((n, self.dim))
        x = self.means[k] + np.einsum("nij,nj->ni", self._chol[k], z)
        return x[:, 0] if self.dim == 1 else x

    def diffuse(self, alpha, sigma) -> GaussianMixture:
        r"""The law of :math:`\alpha X + \sigma \varepsilon` for ``X`` from this mixture and an
        independent standard normal :math:`\varepsilon` (``alpha > 0``, ``sigma >= 0``)."""
        alpha = positive_float(alpha, "alpha")
        sigma = positive_float(sigma, "sigma", allow_zero=True)
        return GaussianMixture(self.weights, alpha * self.means,
                               alpha**2 * self.covs + sigma**2 * np.eye(self.dim))


def moons_mixture(n_components: int = 8, radius: float = 1.0, std: float = 0.12,
                  center=(0.0, 0.0)) -> GaussianMixture:
    """A two-moons-like 2-D mixture: ``n_components`` equal isotropic Gaussians on each of
    two interleaved half circles (like scikit-learn's ``make_moons``), centred at ``center``.

    Its exact score makes it a ground truth for 2-D samplers without any training.
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
