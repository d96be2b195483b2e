"""Checks of the Gaussian mixtures (:mod:`diffnotes.mixtures`) and the noise schedules
(:mod:`diffnotes.schedules`).

Densities and scores are compared with scipy and with finite differences; sampling with the
closed-form moments, to 5 standard errors per checked moment (fixed seeds).
"""

import numpy as np
import pytest
import scipy.integrate
from scipy.stats import multivariate_normal, norm

from diffnotes import data
from diffnotes.mixtures import GaussianMixture, moons_mixture
from diffnotes.schedules import Schedule, as_schedule, constant, vp


def mixture_2d():
    covs = np.array([[[1.0, 0.6], [0.6, 0.8]],
                     [[0.3, -0.1], [-0.1, 0.2]],
                     [[2.0, 0.0], [0.0, 0.5]]])
    return GaussianMixture([0.2, 0.5, 0.3], [[0.0, 1.0], [-2.0, 0.5], [1.5, -1.0]], covs)


def mixture_moments(gm):
    w, mu, cov = gm.weights, gm.means, gm.covs
    mean = w @ mu
    second = np.einsum("k,kij->ij", w, cov + mu[:, :, None] * mu[:, None, :])
    return mean, second - np.outer(mean, mean)


def scipy_log_prob(gm, x):
    dens = sum(w * multivariate_normal(mu, c).pdf(x)
               for w, mu, c in zip(gm.weights, gm.means, gm.covs, strict=True))
    return np.log(dens)


def moments_within_5_se(x, mean, cov):
    """Sample mean and covariance of ``x`` (n, d) within 5 standard errors of ``mean``, ``cov``;
    the standard error of each covariance entry is estimated from the sample itself."""
    n = x.shape[0]
    ok_mean = np.all(np.abs(x.mean(0) - mean) <= 5 * np.sqrt(np.diag(cov) / n))
    c = x - x.mean(0)
    prods = c[:, :, None] * c[:, None, :]
    se_cov = prods.std(axis=0) / np.sqrt(n)
    ok_cov = np.all(np.abs(prods.mean(0) - cov) <= 5 * se_cov)
    return ok_mean and ok_cov


# ------------------------------------------------------------------------ mixtures
def test_log_prob_matches_scipy():
    gm = mixture_2d()
    x = np.random.default_rng(0).normal(size=(50, 2)) * 2
    np.testing.assert_allclose(gm.log_prob(x), scipy_log_prob(gm, x), rtol=1e-12, atol=1e-12)
    gm1 = GaussianMixture([0.4, 0.6], [-1.5, 1.2], [0.3**2, 0.4**2])
    x1 = np.linspace(-4, 4, 33)
    expected = np.log(0.4 * norm.pdf(x1, -1.5, 0.3) + 0.6 * norm.pdf(x1, 1.2, 0.4))
    np.testing.assert_allclose(gm1.log_prob(x1), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gm1.log_prob(x1[:, None]), expected, rtol=1e-12, atol=1e-12)
    # diagonal covariances given as (K, d)
    gd = GaussianMixture([0.5, 0.5], [[0, 0], [1, 1]], [[1.0, 2.0], [0.5, 0.25]])
    np.testing.assert_allclose(gd.covs[0], np.diag([1.0, 2.0]))
    np.testing.assert_allclose(gd.log_prob(x), scipy_log_prob(gd, x), rtol=1e-12)
    # the density integrates to 1 (1-D quadrature)
    total, _ = scipy.integrate.quad(lambda u: np.exp(gm1.log_prob([u])[0]), -np.inf, np.inf)
    assert total == pytest.approx(1.0, abs=1e-9)


def test_score_matches_numerical_gradient():
    gm = mixture_2d()
    x = np.random.default_rng(1).normal(size=(20, 2)) * 1.5
    h = 1e-5
    fd = np.stack([(gm.log_prob(x + h * e) - gm.log_prob(x - h * e)) / (2 * h)
                   for e in np.eye(2)], axis=1)
    s = gm.score(x)
    assert s.shape == x.shape
    # central differences: truncation ~h^2 |f'''|, round-off ~1e-16 |f| / h
    np.testing.assert_allclose(s, fd, rtol=1e-6, atol=1e-6)
    gm1 = GaussianMixture([0.4, 0.6], [-1.5, 1.2], [0.3**2, 0.4**2])
    x1 = np.linspace(-3, 3, 13)
    assert gm1.score(x1).shape == (13,)
    np.testing.assert_allclose(gm1.score(x1), (gm1.log_prob(x1 + h) - gm1.log_prob(x1 - h))
                               / (2 * h), rtol=1e-6, atol=1e-6)
    # one component: the score is -Sigma^{-1} (x - mu)
    g = GaussianMixture([1.0], [[1.0, -1.0]], [[[2.0, 0.5], [0.5, 1.0]]])
    np.testing.assert_allclose(g.score(x), -(x - [1.0, -1.0]) @ np.linalg.inv(g.covs[0]),
                               rtol=1e-12)


def test_sample_moments():
    gm = mixture_2d()
    n = 100_000
    x = gm.sample(n, 0)
    assert x.shape == (n, 2)
    mean, cov = mixture_moments(gm)
    assert moments_within_5_se(x, mean, cov)
    # power: a mixture with another weight vector is rejected by the same check
    other = GaussianMixture([0.3, 0.4, 0.3], gm.means, gm.covs)
    assert not moments_within_5_se(x, *mixture_moments(other))
    # reproducible; 1-D mixtures return shape (n,)
    np.testing.assert_array_equal(gm.sample(10, 3), gm.sample(10, np.random.default_rng(3)))
    gm1 = GaussianMixture([0.4, 0.6], [-1.5, 1.2], [0.3**2, 0.4**2])
    x1 = gm1.sample(n, 1)
    assert x1.shape == (n,)
    m1, c1 = mixture_moments(gm1)
    assert moments_within_5_se(x1[:, None], m1, c1)


def test_diffuse_is_the_law_of_alpha_x_plus_sigma_noise():
    gm = mixture_2d()
    alpha, sigma = 0.6, 0.8
    gt = gm.diffuse(alpha, sigma)
    mean, cov = mixture_moments(gm)
    mt, ct = mixture_moments(gt)
    np.testing.assert_allclose(mt, alpha * mean, rtol=1e-12)
    np.testing.assert_allclose(ct, alpha**2 * cov + sigma**2 * np.eye(2), rtol=1e-12)
    rng = np.random.default_rng(2)
    n = 100_000
    y = alpha * gm.sample(n, rng) + sigma * rng.standard_normal((n, 2))
    assert moments_within_5_se(y, mt, ct)
    # 1-D: the diffused density is the convolution integral of q_0 with N(alpha x, sigma^2)
    gm1 = GaussianMixture([0.4, 0.6], [-1.5, 1.2], [0.3**2, 0.4**2])
    g1 = gm1.diffuse(0.9, 0.3)
    for yy in (-2.0, 0.0, 1.1):
        conv, _ = scipy.integrate.quad(
            lambda u, yy=yy: np.exp(gm1.log_prob([u])[0]) * norm.pdf(yy, 0.9 * u, 0.3),
            -8, 8, points=[-1.5, 1.2], epsabs=1e-13, epsrel=1e-11)
        assert np.exp(g1.log_prob([yy])[0]) == pytest.approx(conv, rel=1e-8)
    # sigma = 0 is a pure rescaling
    g0 = gm1.diffuse(2.0, 0.0)
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(g0.log_prob(2 * x), gm1.log_prob(x) - np.log(2.0), rtol=1e-12)


def test_mixture_bad_inputs():
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture([0.5, 0.6], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture([0.5, 0.5, 0.0], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture([1.5, -0.5], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="covs"):
        GaussianMixture([1.0], [0.0], [-1.0])
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]])
    with pytest.raises(ValueError, match="covs"):
        GaussianMixture([0.5, 0.5], [[0, 0], [1, 1]], np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match="means"):
        GaussianMixture([1.0], np.zeros((1, 2, 2)), [1.0])
    with pytest.raises(ValueError, match="means"):
        GaussianMixture([1.0], [np.nan], [1.0])
    gm = mixture_2d()
    with pytest.raises(ValueError, match="x"):
        gm.log_prob(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="x"):
        gm.score(np.zeros(4))  # flat points only for 1-D mixtures
    with pytest.raises(ValueError, match="alpha"):
        gm.diffuse(0.0, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gm.diffuse(1.0, -0.1)
    with pytest.raises(ValueError, match="rng"):
        gm.sample(5, None)
    with pytest.raises(ValueError, match="n"):
        gm.sample(0, 0)


def test_moons_mixture():
    mm = moons_mixture()
    assert mm.dim == 2 and mm.weights.shape == (16,)
    np.testing.assert_allclose(mm.weights, 1 / 16)
    np.testing.assert_allclose(mm.covs, 0.12**2 * np.eye(2)[None].repeat(16, 0))
    x = mm.sample(500, 0)
    assert x.shape == (500, 2) and np.all(np.isfinite(mm.log_prob(x)))
    # two half circles of radius 1 around (0, 0) and (1, 0.5), shifted by (-0.5, -0.25)
    upper, lower = mm.means[:8] + [0.5, 0.25], mm.means[8:] + [0.5, 0.25]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0)
    m2 = moons_mixture(n_components=4, radius=2.0, std=0.3, center=(1.0, -1.0))
    assert m2.weights.shape == (8,)
    np.testing.assert_allclose(m2.means, 2.0 * moons_mixture(n_components=4).means + [1, -1])
    np.testing.assert_allclose(m2.covs, 0.3**2 * np.eye(2)[None].repeat(8, 0))
    with pytest.raises(ValueError, match="n_components"):
        moons_mixture(n_components=1)
    with pytest.raises(ValueError, match="center"):
        moons_mixture(center=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="std"):
        moons_mixture(std=0.0)


def test_moons_mixture_and_data_two_moons_are_the_same_shape_at_different_scales():
    """The scales both docstrings state: moons_mixture's means are centred, span
    [-1.5, 1.5] x [-0.72, 0.72], total variance 1.07 (components included); data.two_moons
    (noise-free) has mean 0, total variance 2 and x-range 1.418 times larger."""
    mm = moons_mixture()
    mean = mm.weights @ mm.means
    second = np.einsum("k,kij->ij", mm.weights, mm.covs + mm.means[:, :, None]
                       * mm.means[:, None, :])
    np.testing.assert_allclose(mean, 0, atol=1e-12)
    assert abs(np.trace(second) - 1.07) < 0.005
    np.testing.assert_allclose(np.abs(mm.means).max(axis=0), [1.5, 0.72], atol=0.005)
    x = data.two_moons(200_000, 0, noise=0.0)
    assert np.abs(x.mean(axis=0)).max() < 0.01 and abs(x.var(axis=0).sum() - 2) < 0.02
    assert abs(np.abs(x[:, 0]).max() / 1.5 - 1.418) < 0.002


# ------------------------------------------------------------------------ schedules
def test_constant_schedule():
    s = constant(2.5)
    t = np.array([0.0, 0.3, 1.0, 7.0])
    np.testing.assert_allclose(s.rate(t), 2.5)
    np.testing.assert_allclose(s.integral(t), 2.5 * t)
    assert as_schedule(None) == Schedule()
    np.testing.assert_allclose(as_schedule(None).integral(t), t)
    assert as_schedule(s) is s
    with pytest.raises(ValueError, match="rate"):
        constant(0.0)
    with pytest.raises(ValueError, match="schedule"):
        as_schedule("constant")


@pytest.mark.parametrize("beta_min,beta_max", [(0.1, 20.0), (1.0, 1.0), (0.5, 3.0)])
def test_vp_schedule_rate_and_integral(beta_min, beta_max):
    s = vp(beta_min, beta_max)
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(s.rate(t), (beta_min + t * (beta_max - beta_min)) / 2,
                               rtol=1e-14)
    quad = [scipy.integrate.quad(lambda u: float(s.rate(u)), 0, tt)[0] for tt in t]
    np.testing.assert_allclose(s.integral(t), quad, rtol=1e-12, atol=1e-15)
    # Theta' = lambda: a finite difference of the integral
    h = 1e-6
    np.testing.assert_allclose((s.integral(t[1:-1] + h) - s.integral(t[1:-1] - h)) / (2 * h),
                               s.rate(t[1:-1]), rtol=1e-7)
    assert s.integral(2.0).shape == ()


def test_schedule_bad_inputs():
    with pytest.raises(ValueError, match="beta_max"):
        vp(5.0, 1.0)
    with pytest.raises(ValueError, match="beta_min"):
        vp(-1.0, 1.0)
    for s in (vp(), constant(1.0)):
        with pytest.raises(ValueError, match="t must be"):
            s.rate(-0.1)
        with pytest.raises(ValueError, match="t must be"):
            s.integral([0.5, -1.0])
        with pytest.raises(ValueError, match="t"):
            s.integral(np.nan)
