r"""Checks of the SDEs of Chapter 3 (:mod:`diffnotes.sde`) and of the exact scores of diffused
Gaussian mixtures (:meth:`diffnotes.mixtures.GaussianMixture.score` with ``t`` and ``sde``).

Every closed form is compared with an independent computation: the transition kernels with the
ODEs of their moments (finite differences), the marginals with Euler-Maruyama simulations and
with the Fokker-Planck equation, the mixture scores with torch autograd of a separate
implementation of :math:`\log q_t`. Samplers driven by the exact score must land on the target:
their distance to it (sliced W2 in 2-D, W1 in 1-D) must stay within a stated multiple of the
noise floor, the same distance between two independent exact samples of the same size. The
floor itself fluctuates a lot from sample to sample (by 32% for sliced W2 of 2000 points in 2-D,
52% for W1 of 4000 points in 1-D), so the bounds are 2.5x the floor's mean for sliced W2 and 3x
for W1: an exact sample exceeds them with probability below 2e-3 (none of 600 pairs) and about
2.5e-3 (5 of 2000 pairs), while the errors they must catch give several times the floor (a
wrong sign in the reverse drift 6.6x, an unreversed prior more than 10x).

Simulation tests use fixed seeds and bounds of 5 standard errors per checked quantity (plus the
Euler-Maruyama bias where there is one, computed exactly for the linear SDEs); a correct
implementation fails one with probability below 1e-6.
"""

import numpy as np
import pytest
from _shared import nan_score as _nan_score
from scipy.integrate import cumulative_trapezoid, trapezoid
from scipy.special import ndtr
from scipy.stats import chi2, kstest

from diffnotes import sde as S
from diffnotes.metrics import noise_floor, sliced_wasserstein2, wasserstein1
from diffnotes.mixtures import GaussianMixture, bimodal_1d, moons_mixture
from diffnotes.schedules import constant, vp

T_MIN = 1e-3
SW2_BOUND, W1_BOUND = 2.5, 3.0           # multiples of the noise floor's mean (see above)


def linear_sdes():
    return {
        "OU": S.OU(),
        "OU-const0.7": S.OU(constant(0.7), T=5.0),
        "OU-vp": S.OU(vp(0.1, 20.0), T=1.0),
        "VP": S.VPSDE(),
        "subVP": S.SubVPSDE(),
        "VE": S.VESDE(),
    }


def rate_and_g2(sde, t):
    """The rate a(t) of the drift f = -a x and g(t)^2, through the public methods."""
    a = -sde.drift(np.ones((1, 1)), t)[0, 0]
    return a, sde.diffusion(t) ** 2


def em_moments(sde, t_end, n_steps):
    """Exact mean factor and standard deviation of Euler-Maruyama for a linear SDE:
    X_{k+1} = (1 - a_k h) X_k + g_k sqrt(h) Z, so X_n = c x_0 + sqrt(v) Z'."""
    h = t_end / n_steps
    c, v = 1.0, 0.0
    for i in range(n_steps):
        a, g2 = rate_and_g2(sde, i * h)
        c, v = (1 - a * h) * c, (1 - a * h) ** 2 * v + g2 * h
    return c, np.sqrt(v)


def mixture_cdf_1d(gm):
    sd = np.sqrt(gm.covs[:, 0, 0])
    return lambda x: ndtr((np.asarray(x)[..., None] - gm.means[:, 0]) / sd) @ gm.weights


def mixture_moments(gm):
    mean = gm.weights @ gm.means
    second = np.einsum("k,kij->ij", gm.weights, gm.covs + gm.means[:, :, None]
                       * gm.means[:, None, :])
    return mean, second - np.outer(mean, mean)


def random_mixture(d, seed, K=3):
    """K Gaussians with full (random, well-conditioned) covariances in d dimensions."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(K, d, d)) * 0.6
    covs = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(d)
    w = rng.dirichlet(np.ones(K) * 3)
    return GaussianMixture(w, rng.normal(size=(K, d)) * 1.5, covs)


# ------------------------------------------------------------------------ closed-form kernels
@pytest.mark.parametrize("name", list(linear_sdes()))
def test_kernel_solves_the_moment_odes(name):
    """alpha and sigma solve d log alpha / dt = -a(t), d sigma^2 / dt = -2 a sigma^2 + g^2
    (central differences, step 1e-5 T: truncation and round-off far below rtol = 1e-6), with
    alpha(0) = 1 and sigma(0) = 0. Reporting the variance as sigma (the classic bug) fails."""
    sde = linear_sdes()[name]
    T = sde.T
    assert sde.alpha_sigma(0.0) == (1.0, 0.0)
    t = np.linspace(0.02, 1.0, 25) * T
    h = 1e-5 * T
    a_p, s_p = sde.alpha_sigma(t + h)
    a_m, s_m = sde.alpha_sigma(t - h)
    alpha, sigma = sde.alpha_sigma(t)
    assert alpha.shape == sigma.shape == t.shape
    a, g2 = np.array([rate_and_g2(sde, ti) for ti in t]).T
    np.testing.assert_allclose((np.log(a_p) - np.log(a_m)) / (2 * h), -a, rtol=1e-6, atol=1e-9)
    dvar = (s_p**2 - s_m**2) / (2 * h)
    np.testing.assert_allclose(dvar, -2 * a * sigma**2 + g2, rtol=1e-6)
    # power: the variance in place of the standard deviation does not solve the ODE
    wrong = (sigma**2)**2
    wrong_dvar = ((s_p**2)**2 - (s_m**2)**2) / (2 * h)
    assert np.max(np.abs(wrong_dvar - (-2 * a * wrong + g2)) / g2) > 0.1
    # the prior is the kernel's noise at T when the signal is gone
    aT, sT = sde.alpha_sigma(T)
    if isinstance(sde, S.VESDE):
        assert aT == 1.0
        assert sT**2 + sde.sigma_min**2 == pytest.approx(sde.sigma_max**2, rel=1e-12)
        assert sde.prior_std == sde.sigma_max
    else:
        assert sde.prior_std == 1.0
        assert aT < 0.05 and 0.99 < sT <= 1.0


def test_vpsde_is_ou_on_the_vp_schedule_and_constant_beta_is_plain_ou():
    t = np.linspace(0.0, 1.0, 101)
    v, o = S.VPSDE(0.1, 20.0), S.OU(vp(0.1, 20.0), T=1.0)
    for got, want in zip(v.alpha_sigma(t), o.alpha_sigma(t), strict=True):
        np.testing.assert_array_equal(got, want)
    for ti in (0.0, 0.3, 1.0):
        np.testing.assert_array_equal(v.drift([[1.0, -2.0]], ti), o.drift([[1.0, -2.0]], ti))
        assert v.diffusion(ti) == o.diffusion(ti)
        assert v.diffusion(ti) == pytest.approx(np.sqrt(0.1 + ti * 19.9), rel=1e-14)
    alpha, sigma = v.alpha_sigma(t)
    np.testing.assert_allclose(alpha, np.exp(-0.5 * (0.1 * t + 0.5 * 19.9 * t**2)), rtol=1e-14)
    np.testing.assert_allclose(sigma**2 + alpha**2, 1.0, rtol=1e-14)
    # beta_min = beta_max = 2: lambda = 1, the plain OU process dX = -X dt + sqrt(2) dW
    c, u = S.VPSDE(2.0, 2.0), S.OU(T=1.0)
    for got, want in zip(c.alpha_sigma(t), u.alpha_sigma(t), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    np.testing.assert_allclose(c.alpha_sigma(t)[0], np.exp(-t), rtol=1e-15)
    np.testing.assert_allclose(c.alpha_sigma(t)[1], np.sqrt(-np.expm1(-2 * t)), rtol=1e-15)
    assert c.diffusion(0.7) == pytest.approx(np.sqrt(2), rel=1e-15)


def test_subvp_has_the_vp_signal_and_less_noise():
    t = np.linspace(0.0, 1.0, 201)
    a_vp, s_vp = S.VPSDE().alpha_sigma(t)
    a_sub, s_sub = S.SubVPSDE().alpha_sigma(t)
    np.testing.assert_array_equal(a_sub, a_vp)
    assert np.all(s_sub[1:] < s_vp[1:]) and s_sub[0] == s_vp[0] == 0.0
    np.testing.assert_allclose(s_sub, s_vp**2, rtol=1e-12, atol=1e-300)
    assert all(S.SubVPSDE().diffusion(ti) < S.VPSDE().diffusion(ti) for ti in t[1:])


# ------------------------------------------------------------------------ marginals vs Monte Carlo
@pytest.mark.parametrize("name, t_end", [("OU", 0.15), ("OU", 2.0), ("VP", 0.15), ("VP", 1.0),
                                         ("subVP", 0.3), ("VE", 0.3), ("VE", 1.0)])
def test_simulate_from_a_point_matches_the_marginal(name, t_end):
    """Euler-Maruyama (400 steps) from a fixed point: the sample mean and standard deviation of
    each coordinate match ``marginal`` within 5 standard errors plus the exact bias of
    Euler-Maruyama for this linear SDE (from the recursion of its moments: first order in the
    step, below 2.5% of sigma here)."""
    sde = linear_sdes()[name]
    m, n_steps = 4000, 400
    x0 = np.array([[1.5, -0.5]])
    x = sde.simulate(np.repeat(x0, m, axis=0), rng=11, t_end=t_end, n_steps=n_steps)
    assert x.shape == (m, 2)
    mean, std = sde.marginal(x0, t_end)
    c, v = em_moments(sde, t_end, n_steps)
    bias_mean, bias_std = np.abs(c * x0[0] - mean[0]), abs(v - std)
    assert bias_std <= 0.025 * std and np.all(bias_mean <= 0.025 * (std + np.abs(mean[0])))
    assert np.all(np.abs(x.mean(0) - mean[0]) <= 5 * v / np.sqrt(m) + bias_mean)
    assert np.all(np.abs(x.std(0) - std) <= 5 * v / np.sqrt(2 * m) + bias_std)
    # the same check rejects the variance reported as the standard deviation
    if abs(std**2 - std) > 0.1:
        assert not np.all(np.abs(x.std(0) - std**2) <= 5 * v / np.sqrt(2 * m) + bias_std)


@pytest.mark.parametrize("name, t_end", [("OU", 0.5), ("VP", 0.3), ("subVP", 0.5), ("VE", 0.4)])
def test_simulate_from_mixture_samples_has_the_diffused_mixture_law(name, t_end):
    """Euler-Maruyama (500 steps) from 20000 draws of ``bimodal_1d``: the whole law at ``t_end``
    is ``mixture.at(t_end, sde)`` (Kolmogorov-Smirnov, p > 1e-6; the Euler-Maruyama bias moves
    the CDF by about 1e-3, a tenth of the KS resolution), and so are mean and variance (5 SE
    plus the exact Euler-Maruyama bias of the moments)."""
    sde, gm = linear_sdes()[name], bimodal_1d()
    m, n_steps = 20_000, 500
    x = sde.simulate(gm.sample(m, 5)[:, None], rng=6, t_end=t_end, n_steps=n_steps)[:, 0]
    law = gm.at(t_end, sde)
    assert kstest(x, mixture_cdf_1d(law)).pvalue > 1e-6
    m0, v0 = (float(a.squeeze()) for a in mixture_moments(gm))
    mt, vt = (float(a.squeeze()) for a in mixture_moments(law))
    c, s = em_moments(sde, t_end, n_steps)
    em_mean, em_var = c * m0, c**2 * v0 + s**2
    assert abs(x.mean() - mt) <= 5 * np.sqrt(em_var / m) + abs(em_mean - mt)
    fourth = np.mean((x - x.mean()) ** 4)
    assert abs(x.var() - vt) <= 5 * np.sqrt((fourth - x.var() ** 2) / m) + abs(em_var - vt)
    # power: the same KS check rejects the law at another time
    assert kstest(x, mixture_cdf_1d(gm.at(0.5 * t_end, sde))).pvalue < 1e-6


def test_sample_marginal_matches_marginal():
    sde = S.VPSDE()
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(6, 2))
    t = np.array([0.0, 0.05, 0.2, 0.4, 0.7, 1.0])
    xt, eps = sde.sample_marginal(x0, t, 3, return_noise=True)
    mean, std = sde.marginal(x0, t)
    assert mean.shape == (6, 2) and std.shape == (6, 1)
    np.testing.assert_allclose(xt, mean + std * eps, rtol=1e-15)
    np.testing.assert_array_equal(xt[0], x0[0])                     # t = 0: no noise
    np.testing.assert_array_equal(sde.sample_marginal(x0, t, 3), xt)  # reproducible
    # per-point times are the scalar-time marginals, point by point
    for i in range(6):
        mi, si = sde.marginal(x0[i:i + 1], t[i])
        np.testing.assert_allclose(mean[i], mi[0], rtol=1e-15)
        assert std[i, 0] == pytest.approx(si, rel=1e-15)
    # Monte Carlo: 20000 draws from one point at t = 0.3, mean and std within 5 SE
    m = 20_000
    x = sde.sample_marginal(np.repeat([[1.0, -2.0]], m, axis=0), 0.3, 4)
    mu, sd = sde.marginal(np.array([[1.0, -2.0]]), 0.3)
    assert np.all(np.abs(x.mean(0) - mu[0]) <= 5 * sd / np.sqrt(m))
    assert np.all(np.abs(x.std(0) - sd) <= 5 * sd / np.sqrt(2 * m))


# ------------------------------------------------------------------------ Fokker-Planck
@pytest.mark.parametrize("name, times, half_width, tol",
                         [("OU", (0.1, 0.5, 2.0), 6.0, 3e-4),
                          ("VP", (0.1, 0.3, 1.0), 6.0, 3e-4),
                          ("VE", (0.2, 0.4, 0.6), 12.0, 1e-3)])
def test_fokker_planck_matches_the_diffused_mixture(name, times, half_width, tol):
    """The Fokker-Planck solution from the density of ``bimodal_1d`` is the density of
    ``mixture.at(t, sde)``: max error below ``tol`` (peak densities ~1) on 401 cells, and the
    error falls by 4 (between 3.5 and 4.5) when the cells are halved: second order. Mass is
    conserved to 1e-8."""
    sde, gm = linear_sdes()[name], bimodal_1d()
    errors = []
    for n in (201, 401):
        x = np.linspace(-half_width, half_width, n)
        p0 = np.exp(gm.log_prob(x))
        p = S.fokker_planck_1d(sde, x, p0, (0.0, *times))
        assert p.shape == (len(times) + 1, n)
        np.testing.assert_allclose(p[0], p0, rtol=1e-12)
        h = x[1] - x[0]
        np.testing.assert_allclose(p.sum(axis=1) * h, p0.sum() * h, rtol=1e-8)
        exact = np.exp(np.stack([gm.log_prob(x, t, sde) for t in times]))
        errors.append(np.abs(p[1:] - exact).max(axis=1))
    coarse, fine = errors
    assert np.all(fine < tol), fine
    assert np.all((3.5 < coarse / fine) & (coarse / fine < 4.5)), coarse / fine


def double_well(g):
    return S.SDE(lambda x, t: x - x**3, lambda t: g, T=50.0, name="double well")


def test_fokker_planck_of_a_nonlinear_sde_matches_euler_maruyama():
    """Double-well drift f = x - x^3, g = 0.8, from ``bimodal_1d`` to t = 1: the histogram of
    20000 Euler-Maruyama paths (500 steps) in 40 bins matches the bin probabilities of the
    Fokker-Planck density (chi-square statistic below its 1 - 1e-6 quantile); the same
    histogram is rejected against the stationary density, which is not reached yet."""
    sde, gm = double_well(0.8), bimodal_1d()
    x = np.linspace(-3.5, 3.5, 481)
    p = S.fokker_planck_1d(sde, x, np.exp(gm.log_prob(x)), [1.0])[0]
    m = 20_000
    xt = sde.simulate(gm.sample(m, 7)[:, None], rng=8, t_end=1.0, n_steps=500)[:, 0]
    edges = np.linspace(-2.4, 2.4, 41)
    counts = np.histogram(xt, edges)[0]
    assert counts.sum() == m                              # nothing beyond |x| = 2.4

    def chi_square(density):
        cdf = np.concatenate([[0.0], cumulative_trapezoid(density, x)])
        expected = m * np.diff(np.interp(edges, x, cdf))
        return np.sum((counts - expected) ** 2 / expected)

    limit = chi2.ppf(1 - 1e-6, df=edges.size - 1)
    assert chi_square(p) < limit
    stationary = np.exp(2 * (x**2 / 2 - x**4 / 4) / 0.8**2)
    assert chi_square(stationary / trapezoid(stationary, x)) > limit


def test_fokker_planck_of_a_nonlinear_sde_relaxes_to_its_stationary_density():
    """Double well, g = 0.8: at t = 40 the Fokker-Planck density equals the stationary density
    proportional to exp(2 (x^2/2 - x^4/4) / g^2) within 3e-4 on 241 cells, with second-order
    convergence (error / 4 on 481 cells); at t = 1 it is still far from it (> 0.1)."""
    sde, gm = double_well(0.8), bimodal_1d()
    errors = []
    for n in (241, 481):
        x = np.linspace(-3.5, 3.5, n)
        h = x[1] - x[0]
        stationary = np.exp(2 * (x**2 / 2 - x**4 / 4) / 0.8**2)
        stationary /= stationary.sum() * h
        p = S.fokker_planck_1d(sde, x, np.exp(gm.log_prob(x)), [1.0, 40.0])
        assert np.abs(p[0] - stationary).max() > 0.1
        errors.append(np.abs(p[1] - stationary).max())
    assert errors[0] < 3e-4
    assert 3.5 < errors[0] / errors[1] < 4.5


# ------------------------------------------------------------------------ mixture scores
def torch_log_q(gm, x, alpha, sigma):
    """log q_t(x) = log sum_k w_k N(x; alpha mu_k, alpha^2 Sigma_k + sigma^2 I), by Cholesky of
    the full diffused covariances (one per point and component), in torch."""
    import torch

    d = gm.dim
    covs = torch.as_tensor(gm.covs)
    means = torch.as_tensor(gm.means)
    a = alpha[:, None, None, None]
    s = sigma[:, None, None, None]
    cov_t = a**2 * covs[None] + s**2 * torch.eye(d, dtype=torch.float64)          # (m, K, d, d)
    diff = x[:, None, :] - alpha[:, None, None] * means[None]                     # (m, K, d)
    chol = torch.linalg.cholesky(cov_t)
    z = torch.linalg.solve_triangular(chol, diff.unsqueeze(-1), upper=False).squeeze(-1)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    logc = (torch.log(torch.as_tensor(gm.weights)) - 0.5 * (z**2).sum(-1) - 0.5 * logdet
            - 0.5 * d * np.log(2 * np.pi))
    return torch.logsumexp(logc, dim=1)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("name", ["OU", "VP", "subVP", "VE"])
def test_mixture_score_is_the_gradient_of_log_q_t(d, name):
    """``score(x, t, sde)`` equals torch autograd of an independent implementation of log q_t
    (rtol 1e-9), and ``log_prob(x, t, sde)`` equals it (rtol 1e-11), for full covariances, with
    a scalar time and with one time per point."""
    torch = pytest.importorskip("torch")
    sde, gm = linear_sdes()[name], random_mixture(d, seed=d)
    rng = np.random.default_rng(10 + d)
    m = 40
    x = rng.normal(size=(m, d)) * 2.0
    for t in (0.3 * sde.T, rng.uniform(0.02, 1.0, m) * sde.T):
        alpha, sigma = (np.broadcast_to(v, (m,)).astype(float)
                        for v in sde.alpha_sigma(np.broadcast_to(t, (m,))))
        xt = torch.tensor(x, requires_grad=True)
        logq = torch_log_q(gm, xt, torch.as_tensor(alpha), torch.as_tensor(sigma))
        (grad,) = torch.autograd.grad(logq.sum(), xt)
        np.testing.assert_allclose(gm.log_prob(x, t, sde), logq.detach().numpy(), rtol=1e-11)
        np.testing.assert_allclose(gm.score(x, t, sde), grad.numpy(), rtol=1e-9, atol=1e-12)
    # power: the score at another time is not the gradient
    assert not np.allclose(gm.score(x, 0.6 * sde.T, sde), grad.numpy(), rtol=1e-3)


def test_mixture_at_agrees_with_log_prob_and_score_with_t():
    """``at(t, sde)`` is the diffused mixture: its log_prob and score equal those with ``t`` and
    ``sde``; per-point times equal scalar times point by point; central differences of
    ``log_prob(x, t, sde)`` give the score (1-D inputs of shape (m,) too); t = 0 is the data."""
    gm = random_mixture(2, seed=5)
    x = np.random.default_rng(1).normal(size=(30, 2)) * 2
    for sde in (S.VPSDE(), S.VESDE(), S.SubVPSDE(), S.OU()):
        for t in (0.0, 0.01 * sde.T, 0.4 * sde.T, sde.T):
            gt = gm.at(t, sde)
            np.testing.assert_allclose(gt.log_prob(x), gm.log_prob(x, t, sde), rtol=1e-11)
            np.testing.assert_allclose(gt.score(x), gm.score(x, t, sde), rtol=1e-9, atol=1e-12)
        tv = np.linspace(0.0, 1.0, 30) * sde.T
        lp, sc = gm.log_prob(x, tv, sde), gm.score(x, tv, sde)
        for i in (0, 7, 29):
            assert lp[i] == pytest.approx(gm.log_prob(x[i:i + 1], tv[i], sde)[0], rel=1e-12)
            np.testing.assert_allclose(sc[i], gm.score(x[i:i + 1], tv[i], sde)[0], rtol=1e-10)
        h = 1e-5
        fd = np.stack([(gm.log_prob(x + h * e, tv, sde) - gm.log_prob(x - h * e, tv, sde))
                       / (2 * h) for e in np.eye(2)], axis=1)
        np.testing.assert_allclose(sc, fd, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(gm.score(x, 0.0, sde), gm.score(x), rtol=1e-12)
    b, vp_sde = bimodal_1d(), S.VPSDE()
    x1 = np.linspace(-3, 3, 13)
    s1 = b.score(x1, 0.2, vp_sde)
    assert s1.shape == (13,)
    fd1 = (b.log_prob(x1 + 1e-5, 0.2, vp_sde) - b.log_prob(x1 - 1e-5, 0.2, vp_sde)) / 2e-5
    np.testing.assert_allclose(s1, fd1, rtol=1e-6, atol=1e-6)
    f = b.score_function(vp_sde)
    np.testing.assert_array_equal(f(x1[:, None], 0.2)[:, 0], s1)


# ------------------------------------------------------------------------ reverse-time samplers
def run_sampler(kind, sde, score, x, seed):
    if kind == "em":
        return S.euler_maruyama(sde, score, x, seed, n_steps=500, t_min=T_MIN)
    if kind == "pc":
        return S.predictor_corrector(sde, score, x, seed, n_steps=250, t_min=T_MIN)
    return S.probability_flow(sde, score, x, t_min=T_MIN, rtol=1e-4, atol=1e-4)


def target_and_floor(gm, sde, n, metric, n_repeats=10):
    """The target law at t_min, a reference sample of it and the noise floor of ``metric``
    (``n_repeats`` pairs of independent target samples of size n)."""
    target = gm.at(T_MIN, sde)
    floor = noise_floor(metric, target.sample, n, rng=100, n_repeats=n_repeats)
    return target, target.sample(n, 200), floor


@pytest.mark.parametrize("sde_name, kind", [("VP", "em"), ("VP", "pc"), ("VP", "ode"),
                                            ("VE", "em"), ("VE", "ode"), ("subVP", "pc")])
def test_reverse_samplers_with_the_exact_score_land_on_moons(sde_name, kind):
    """2000 samples from ``prior_sample`` through the sampler with the exact score of
    ``moons_mixture``: sliced W2 to an independent target sample within 2.5x the noise floor
    (floor ~0.035; the wrong-sign sampler below gives ~0.23)."""
    sde, gm = linear_sdes()[sde_name], moons_mixture()
    n = 2000
    _, ref, floor = target_and_floor(gm, sde, n, sliced_wasserstein2)
    run = run_sampler(kind, sde, gm.score_function(sde), sde.prior_sample(n, 2, 1), 2)
    assert run.x.shape == (n, 2)
    assert run.nfe == {"em": 500, "pc": 500}.get(kind, run.nfe) and run.nfe > 0
    dist = sliced_wasserstein2(run.x, ref)
    assert dist <= SW2_BOUND * floor.mean, (dist, floor)


@pytest.mark.parametrize("sde_name", ["VP", "VE"])
def test_reverse_samplers_land_on_the_1d_bimodal_target(sde_name):
    """1-D: 4000 samples of each sampler, W1 to an independent sample of
    ``bimodal_1d().at(t_min, sde)`` within 3x the noise floor of W1 (floor ~0.03, over 20
    pairs), and a Kolmogorov-Smirnov test against the exact CDF (p > 1e-6); the unreversed
    prior fails both."""
    sde, gm = linear_sdes()[sde_name], bimodal_1d()
    n = 4000
    target, ref, floor = target_and_floor(gm, sde, n, wasserstein1, n_repeats=20)
    x = sde.prior_sample(n, 1, 3)
    score = gm.score_function(sde)
    for kind in ("em", "pc", "ode"):
        y = run_sampler(kind, sde, score, x, 4).x[:, 0]
        assert wasserstein1(y, ref) <= W1_BOUND * floor.mean, (kind, wasserstein1(y, ref), floor)
        assert kstest(y, mixture_cdf_1d(target)).pvalue > 1e-6, kind
    assert wasserstein1(x[:, 0], ref) > 10 * floor.mean
    assert kstest(x[:, 0], mixture_cdf_1d(target)).pvalue < 1e-6


def reverse_em_loop(sde, score, x, seed, n_steps, drift_sign):
    """The reverse SDE in reversed time tau = T - t by Euler-Maruyama:
    dY = [drift_sign * f(Y, t) + g^2 s(Y, t)] dtau + g dW. Correct: drift_sign = -1."""
    rng = np.random.default_rng(seed)
    ts = np.linspace(sde.T, T_MIN, n_steps + 1)
    for i in range(n_steps):
        t, h = ts[i], ts[i] - ts[i + 1]
        g = sde.diffusion(t)
        x = (x + h * (drift_sign * sde.drift(x, t) + g * g * score(x, t))
             + g * np.sqrt(h) * rng.standard_normal(x.shape))
    return x


def test_reverse_drift_with_the_wrong_sign_misses_the_target():
    """The reverse drift is -f + g^2 s in reversed time. The loop above with the correct sign
    reproduces ``euler_maruyama``; with +f (dY = (f + g^2 s) dtau) the samples are far from the
    target: sliced W2 above 4x the noise floor (it is about 6.6x)."""
    sde, gm = S.VPSDE(), moons_mixture()
    n, steps = 2000, 300
    _, ref, floor = target_and_floor(gm, sde, n, sliced_wasserstein2)
    score = gm.score_function(sde)
    x = sde.prior_sample(n, 2, 1)
    right = reverse_em_loop(sde, score, x, 2, steps, drift_sign=-1)
    run = S.euler_maruyama(sde, score, x, 2, n_steps=steps, t_min=T_MIN)
    np.testing.assert_allclose(right, run.x, rtol=1e-9, atol=1e-12)
    assert sliced_wasserstein2(right, ref) <= SW2_BOUND * floor.mean
    wrong = reverse_em_loop(sde, score, x, 2, steps, drift_sign=+1)
    assert sliced_wasserstein2(wrong, ref) > 4 * floor.mean


def _zero_sde():
    """f = 0 and g = 0: the predictor of ``predictor_corrector`` is then the identity, and the
    sampler is nothing but its Langevin corrector."""
    return S.SDE(drift=lambda x, t: 0 * x, diffusion=lambda t: 0.0, T=1.0, name="zero")


@pytest.mark.parametrize("v, snr", [(1.0, 0.5), (3.0, 0.3)])
def test_the_corrector_is_unadjusted_langevin_with_its_exact_stationary_variance(v, snr):
    r"""The corrector alone, on N(0, v) (score -x/v), from N(0, 4v).

    Unadjusted Langevin with a fixed step eps, x' = (1 - eps/v) x + sqrt(2 eps) z, is an AR(1)
    chain with stationary variance 2 eps / (1 - (1 - eps/v)^2) = v / (1 - eps/(2v)). The snr
    rule sets eps = 2 (snr mean|z| / mean|s|)^2 = 2 snr^2 v^2 / V for points of variance V
    (for Gaussian points mean|x| / mean|z| = sqrt(V), in any dimension), so at the fixed point
    V = v / (1 - snr^2 v / V), i.e. V = v (1 + snr^2) and eps = 2 snr^2 v / (1 + snr^2). The
    chain contracts by (1 - snr^2)/(1 + snr^2) per step, so 60 steps reach it to 1e-10.

    Monte Carlo bound: 5 standard errors of a sample variance, V sqrt(2 / m) (the points are
    independent apart from the shared step size, an O(1/m) effect). What it catches: without
    the corrector the variance stays 4v; with its noise scaled by c the fixed point is
    V = v (c^2 + snr^2), 17 % (snr 0.5) or 19 % (snr 0.3) too large for c = 1.1, against a
    bound of 2.2 %; an Euler step eps s without the noise would collapse the points to 0.
    """
    m = 100_000
    rng = np.random.default_rng(7)
    x = 2 * np.sqrt(v) * rng.standard_normal((m, 1))
    run = S.predictor_corrector(_zero_sde(), lambda y, t: -y / v, x, 8, n_steps=60,
                                n_corrector=1, snr=snr, t_min=T_MIN)
    var = run.x.var()
    expected = v * (1 + snr**2)
    assert run.nfe == 120
    assert abs(var - expected) < 5 * expected * np.sqrt(2 / m), (var, expected)
    # the chain is Gaussian: its fourth moment is 3 V^2 (within 5 SE: Var x^4 = 96 V^4)
    assert abs(np.mean(run.x**4) - 3 * expected**2) < 5 * np.sqrt(96 / m) * expected**2


def test_euler_maruyama_records_snapshots():
    sde, gm = S.VPSDE(), bimodal_1d()
    x = sde.prior_sample(50, 1, 0)
    run = S.euler_maruyama(sde, gm.score_function(sde), x, 1, n_steps=40, record=4)
    np.testing.assert_allclose(run.times, np.linspace(1.0, T_MIN, 5))
    assert len(run.path) == 5
    np.testing.assert_array_equal(run.path[0], x)
    np.testing.assert_array_equal(run.path[-1], run.x)
    times, path = sde.simulate(x, 2, n_steps=40, record=4)
    np.testing.assert_allclose(times, np.linspace(0, 1, 5))
    assert path.shape == (5, 50, 1)
    np.testing.assert_array_equal(path[0], x)


# ------------------------------------------------------------------------ probability-flow ODE
def test_probability_flow_encode_then_sample_returns_the_points():
    """Encoding 300 target points to T and sampling back (rtol = atol = 1e-7) returns them to
    1e-4; the latents of 2000 target points are N(0, I) (means and variances within 5 SE);
    NFE falls as the tolerance loosens."""
    sde, gm = S.VPSDE(), moons_mixture()
    score = gm.score_function(sde)
    target = gm.at(T_MIN, sde)
    x0 = target.sample(300, 1)
    enc = S.probability_flow(sde, score, x0, direction="encode", rtol=1e-7, atol=1e-7)
    dec = S.probability_flow(sde, score, enc.x, direction="sample", rtol=1e-7, atol=1e-7)
    assert np.abs(dec.x - x0).max() < 1e-4
    assert np.abs(enc.x - x0).max() > 0.5                 # it did move them
    nfe = [S.probability_flow(sde, score, x0, direction="encode", rtol=tol, atol=tol).nfe
           for tol in (1e-6, 1e-4, 1e-2)]
    assert enc.nfe > nfe[0] > nfe[1] > nfe[2] > 0, nfe
    m = 2000
    z = S.probability_flow(sde, score, target.sample(m, 2), direction="encode", rtol=1e-4,
                           atol=1e-4).x
    assert np.all(np.abs(z.mean(0)) <= 5 / np.sqrt(m))
    assert np.all(np.abs(z.var(0) - 1) <= 5 * np.sqrt(2 / m))


def mixture_divergence(gm, sde):
    r"""Analytic divergence of the exact score: with responsibilities r_k, precisions P_k and
    u_k = P_k (m_k - x) of the diffused mixture, div s = sum_k r_k (|u_k|^2 - tr P_k) - |s|^2."""
    def div(x, t):
        q = gm.at(t, sde)
        prec = np.linalg.inv(q.covs)                                       # (K, d, d)
        u = np.einsum("kij,mkj->mki", prec, q.means[None] - x[:, None])    # (m, K, d)
        logc = np.stack([np.log(w) + GaussianMixture([1.0], [mu], [c]).log_prob(x)
                         for w, mu, c in zip(q.weights, q.means, q.covs, strict=True)], axis=1)
        r = np.exp(logc - logc.max(1, keepdims=True))
        r /= r.sum(1, keepdims=True)
        s = np.einsum("mk,mki->mi", r, u)
        return np.einsum("mk,mk->m", r, (u**2).sum(-1) - np.trace(prec, axis1=1, axis2=2)[None]) \
            - (s**2).sum(1)
    return div


@pytest.mark.parametrize("dim", [1, 2])
def test_log_likelihood_with_the_exact_score_is_the_exact_log_density(dim):
    """``log_likelihood`` with the exact score equals ``log_prob(x, t_min, sde)`` within 5e-3
    (the prior N(0, I) stands in for q_T: that mismatch, computed at the latents, is 2.3e-3 at
    most in 1-D, 1e-4 in 2-D) and within 2e-4 once the mismatch is put back (measured 7e-6 and
    8e-5: the ODE's tolerance 1e-6); an analytic divergence gives the same as central
    differences (1e-5) with 2d + 1 times fewer score evaluations per step."""
    sde = S.VPSDE()
    gm = bimodal_1d() if dim == 1 else moons_mixture()
    score = gm.score_function(sde)
    x = gm.at(T_MIN, sde).sample(60, 3).reshape(60, dim)
    exact = gm.log_prob(x, T_MIN, sde)
    div = mixture_divergence(gm, sde)
    h = 1e-4
    fd = sum((score(x + h * e, 0.3)[:, i] - score(x - h * e, 0.3)[:, i]) / (2 * h)
             for i, e in enumerate(np.eye(dim)))
    np.testing.assert_allclose(div(x, 0.3), fd, rtol=1e-6, atol=1e-6)
    runs = {}
    for key, d in (("fd", None), ("analytic", div)):
        run = S.log_likelihood(sde, score, x, t_min=T_MIN, divergence=d)
        mismatch = gm.log_prob(run.x, sde.T, sde) - sde.prior_log_prob(run.x)
        assert np.abs(mismatch).max() < 5e-3
        np.testing.assert_allclose(run.log_prob, exact, rtol=0, atol=5e-3)
        np.testing.assert_allclose(run.log_prob + mismatch, exact, rtol=0, atol=2e-4)
        runs[key] = run
    np.testing.assert_allclose(runs["fd"].log_prob, runs["analytic"].log_prob, atol=1e-5)
    ratio = runs["fd"].nfe / runs["analytic"].nfe
    assert ratio == pytest.approx(2 * dim + 1, rel=0.3)
    # power: the log density at another time is far outside these tolerances
    assert np.abs(gm.log_prob(x, 0.05, sde) - exact).max() > 0.1


# ------------------------------------------------------------------------ torch interop
def test_samplers_run_on_torch_tensors():
    """With a tensor start and a torch.Generator, ``euler_maruyama`` and
    ``predictor_corrector`` return tensors on the same device that land on the target (sliced
    W2 within 2.5x the noise floor); ``prior_sample`` with a Generator is a reproducible tensor of
    standard normals."""
    torch = pytest.importorskip("torch")
    sde, gm = S.VPSDE(), moons_mixture()
    n = 2000
    x = sde.prior_sample(n, 2, torch.Generator().manual_seed(0))
    assert isinstance(x, torch.Tensor) and x.shape == (n, 2) and x.device.type == "cpu"
    assert torch.equal(x, sde.prior_sample(n, 2, torch.Generator().manual_seed(0)))
    assert abs(float(x.mean())) <= 5 / np.sqrt(2 * n)
    assert abs(float(x.var()) - 1) <= 5 * np.sqrt(2 / (2 * n))
    ve = S.VESDE(sigma_max=50.0).prior_sample(n, 2, torch.Generator().manual_seed(0))
    assert abs(float(ve.std()) - 50) <= 5 * 50 / np.sqrt(4 * n)

    def torch_score(z, t):
        """The exact score behind a torch interface, as a trained network would be."""
        out = gm.score(z.detach().cpu().numpy(), t, sde)
        return torch.as_tensor(out, dtype=z.dtype, device=z.device)

    _, ref, floor = target_and_floor(gm, sde, n, sliced_wasserstein2)
    x64 = x.double()
    gen = torch.Generator().manual_seed(1)
    for run in (S.euler_maruyama(sde, torch_score, x64, gen, n_steps=300, t_min=T_MIN),
                S.predictor_corrector(sde, torch_score, x64, gen, n_steps=150, t_min=T_MIN)):
        assert isinstance(run.x, torch.Tensor) and run.x.dtype == torch.float64
        dist = sliced_wasserstein2(run.x.numpy(), ref)
        assert dist <= SW2_BOUND * floor.mean, (dist, floor)
    # reproducible with the same generator seed, and x itself is left alone
    a = S.euler_maruyama(sde, torch_score, x64, torch.Generator().manual_seed(5), n_steps=20)
    b = S.euler_maruyama(sde, torch_score, x64, torch.Generator().manual_seed(5), n_steps=20)
    assert torch.equal(a.x, b.x)
    assert torch.equal(x64, x.double())
    with pytest.raises(ValueError, match="rng must be a torch.Generator"):
        S.euler_maruyama(sde, torch_score, x64, 0, n_steps=5)


# ------------------------------------------------------------------------ bad inputs
def _nonlinear():
    return S.SDE(lambda x, t: -x, lambda t: 1.0)


BAD_INPUTS = {
    "negative t in alpha_sigma": (lambda: S.VPSDE().alpha_sigma(-0.1), "t must be >= 0"),
    "negative t in marginal": (lambda: S.OU().marginal(np.zeros((2, 1)), [0.1, -0.1]),
                               "t must be >= 0"),
    "negative t in score": (lambda: bimodal_1d().score(np.zeros(3), -0.2, S.VPSDE()),
                            "t must be >= 0"),
    "negative t in at": (lambda: bimodal_1d().at(-0.2, S.VPSDE()), "t must be"),
    "negative t_end": (lambda: S.OU().simulate(np.zeros((2, 1)), 0, t_end=-1.0), "t_end"),
    "negative t_min": (lambda: S.euler_maruyama(S.VPSDE(), _score, np.zeros((2, 1)), 0,
                                                t_min=-0.1), "t_min"),
    "beta_min > beta_max": (lambda: S.VPSDE(beta_min=5.0, beta_max=1.0), "beta_min"),
    "beta_min > beta_max, sub-VP": (lambda: S.SubVPSDE(beta_min=5.0, beta_max=1.0),
                                    "beta_min"),
    "negative beta_min": (lambda: S.VPSDE(beta_min=-0.1), "beta_min"),
    "sigma_min = sigma_max": (lambda: S.VESDE(1.0, 1.0), "sigma_max must be > sigma_min"),
    "sigma_min > sigma_max": (lambda: S.VESDE(5.0, 1.0), "sigma_max must be > sigma_min"),
    "sigma_min <= 0": (lambda: S.VESDE(0.0, 1.0), "sigma_min"),
    "T <= 0": (lambda: S.OU(T=0.0), "T"),
    "x0 of ndim 1 in marginal": (lambda: S.OU().marginal(np.zeros(3), 0.5), "x0"),
    "per-point t of the wrong length in marginal": (
        lambda: S.OU().marginal(np.zeros((3, 2)), [0.1, 0.2]), "t must be a float or have"),
    "per-point t of the wrong length in score": (
        lambda: moons_mixture().score(np.zeros((5, 2)), np.ones(3) * 0.1, S.VPSDE()),
        r"t must be a float or have shape \(5,\)"),
    "x of the wrong dimension in score": (
        lambda: moons_mixture().score(np.zeros((5, 3)), 0.1, S.VPSDE()), "x must have shape"),
    "t without sde": (lambda: moons_mixture().score(np.zeros((5, 2)), 0.1), "t needs an sde"),
    "nonlinear sde for score": (lambda: moons_mixture().score(np.zeros((5, 2)), 0.1,
                                                              _nonlinear()), "sde must be"),
    "nonlinear sde for score_function": (lambda: moons_mixture().score_function(_nonlinear()),
                                         "sde must be"),
    "x of ndim 1 in euler_maruyama": (lambda: S.euler_maruyama(S.VPSDE(), _score,
                                                               np.zeros(4), 0), "x must have"),
    "NaN in x": (lambda: S.euler_maruyama(S.VPSDE(), _score, np.array([[0.0], [np.nan]]), 0),
                 "x must contain only finite"),
    "inf in x, ODE": (lambda: S.probability_flow(S.VPSDE(), _score, np.array([[np.inf]])),
                      "x must contain only finite"),
    "NaN in x0, simulate": (lambda: S.OU().simulate(np.array([[np.nan]]), 0), "x0"),
    "NaN in x, log_prob": (lambda: bimodal_1d().log_prob([np.nan], 0.1, S.VPSDE()), "x"),
    "t_min = t_max": (lambda: S.euler_maruyama(S.VPSDE(), _score, np.zeros((2, 1)), 0,
                                               t_min=0.5, t_max=0.5), "t_min must be <"),
    "t_min > t_max, ODE": (lambda: S.probability_flow(S.VPSDE(), _score, np.zeros((2, 1)),
                                                      t_min=0.6, t_max=0.5), "t_min must be <"),
    "t_max > T": (lambda: S.predictor_corrector(S.VPSDE(), _score, np.zeros((2, 1)), 0,
                                                t_max=1.5), "t_max"),
    "t_max > T, likelihood": (lambda: S.log_likelihood(S.VPSDE(), _score, np.zeros((2, 1)),
                                                       t_max=2.0), "t_max"),
    "n_steps = 0": (lambda: S.euler_maruyama(S.VPSDE(), _score, np.zeros((2, 1)), 0,
                                             n_steps=0), "n_steps"),
    "n_steps = 0, PC": (lambda: S.predictor_corrector(S.VPSDE(), _score, np.zeros((2, 1)), 0,
                                                      n_steps=0), "n_steps"),
    "n_steps = 0, simulate": (lambda: S.OU().simulate(np.zeros((2, 1)), 0, n_steps=0),
                              "n_steps"),
    "non-integer n_steps": (lambda: S.euler_maruyama(S.VPSDE(), _score, np.zeros((2, 1)), 0,
                                                     n_steps=10.5), "n_steps"),
    "snr <= 0": (lambda: S.predictor_corrector(S.VPSDE(), _score, np.zeros((2, 1)), 0,
                                               snr=0.0), "snr"),
    "non-callable score": (lambda: S.euler_maruyama(S.VPSDE(), None, np.zeros((2, 1)), 0),
                           "score must be a callable"),
    "non-callable score, ODE": (lambda: S.probability_flow(S.VPSDE(), 3.0, np.zeros((2, 1))),
                                "score must be a callable"),
    "non-callable drift": (lambda: S.SDE(1.0, lambda t: 1.0), "drift and diffusion"),
    "unknown direction": (lambda: S.probability_flow(S.VPSDE(), _score, np.zeros((2, 1)),
                                                     direction="backward"), "direction"),
    "rtol too loose": (lambda: S.probability_flow(S.VPSDE(), _score, np.zeros((2, 1)),
                                                  rtol=0.5), "rtol"),
    "not an SDE": (lambda: S.euler_maruyama("VP", _score, np.zeros((2, 1)), 0), "sde must be"),
    "nonlinear sde, likelihood": (lambda: S.log_likelihood(_nonlinear(), _score,
                                                           np.zeros((2, 1))), "sde must be"),
    "non-callable divergence": (lambda: S.log_likelihood(S.VPSDE(), _score, np.zeros((2, 1)),
                                                         divergence=1.0), "divergence"),
    "rng None": (lambda: S.euler_maruyama(S.VPSDE(), _score, np.zeros((2, 1)), None), "rng"),
    "n = 0 prior draws": (lambda: S.VPSDE().prior_sample(0, 2, 0), "n must be"),
    "record > n_steps": (lambda: S.euler_maruyama(S.VPSDE(), _score, np.zeros((2, 1)), 0,
                                                  n_steps=5, record=6), "record"),
    "FP: non-uniform grid": (lambda: S.fokker_planck_1d(S.OU(), [0, 1, 2, 4, 5, 6], np.ones(6),
                                                        [1.0]), "uniform"),
    "FP: p0 of the wrong shape": (lambda: S.fokker_planck_1d(S.OU(), np.arange(6.0),
                                                             np.ones(5), [1.0]), "p0"),
    "FP: negative p0": (lambda: S.fokker_planck_1d(S.OU(), np.arange(6.0), -np.ones(6),
                                                   [1.0]), "p0"),
    "FP: decreasing times": (lambda: S.fokker_planck_1d(S.OU(), np.arange(6.0), np.ones(6),
                                                        [1.0, 0.5]), "times"),
    "FP: negative times": (lambda: S.fokker_planck_1d(S.OU(), np.arange(6.0), np.ones(6),
                                                      [-1.0]), "times"),
}


def _score(x, t):
    return -x


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_value_errors_naming_the_argument(case):
    fn, match = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=match):
        fn()




@pytest.mark.parametrize("sampler", [
    lambda x: S.euler_maruyama(S.VPSDE(), _nan_score, x, 0, n_steps=50),
    lambda x: S.predictor_corrector(S.VPSDE(), _nan_score, x, 0, n_steps=50),
    lambda x: S.probability_flow(S.VPSDE(), _nan_score, x),
    lambda x: S.probability_flow(S.VPSDE(), _nan_score, x, t_min=0.1, direction="encode"),
    lambda x: S.log_likelihood(S.VPSDE(), _nan_score, x, t_min=0.1),
], ids=["euler_maruyama", "predictor_corrector", "probability_flow", "encode", "log_likelihood"])
def test_a_nan_score_raises_floating_point_error(sampler):
    """NaN from the score (here from t < 0.5 on) raises rather than returning NaN samples; the
    last two start where the score is already NaN, on which solve_ivp used to loop forever."""
    with pytest.raises(FloatingPointError):
        sampler(np.random.default_rng(0).normal(size=(8, 2)))


def test_fokker_planck_refuses_a_non_finite_drift():
    """A NaN drift raises at once (BDF's step control would otherwise never terminate)."""
    bad = S.SDE(lambda x, t: np.where(x > 1, np.nan, -x), lambda t: 1.0, T=1.0)
    x = np.linspace(-3, 3, 61)
    p0 = np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)
    with pytest.raises(FloatingPointError, match="fokker_planck_1d"):
        S.fokker_planck_1d(bad, x, p0, [0.5])
