r"""Checks of the Schrödinger bridges of Chapter 4 (:mod:`diffnotes.bridge`).

Each closed form is compared with an independent computation: IPF with POT's Sinkhorn at
``reg = 2 sigma^2`` (the static bridge is entropic OT with cost :math:`|x-y|^2` and
:math:`\varepsilon = 2\sigma^2`), the Gaussian bridge's cross-covariance with IPF on fine grids
(where the discrete bridge between discretised Gaussians converges spectrally fast, to 1e-10 at
grid step 0.5 for sigma = 0.7), with a direct numerical minimisation of the KL, with its
first-order condition and with its two limits (optimal transport as sigma -> 0, independence as
sigma -> infinity); its path marginals and path covariances with Monte Carlo of
:meth:`GaussianBridge.sample`; the Gaussian KL with Monte Carlo; exact iterative Markovian
fitting (:func:`gaussian_imf`) with its 1-D closed form, its fixed point (the bridge) and a
Monte Carlo Markovian projection.

Simulation tests use fixed seeds and bounds of 5 standard errors per checked quantity; a correct
implementation fails one with probability below 1e-6.
"""

import numpy as np
import ot
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from diffnotes import bridge as Br


def msqrt(S):
    w, V = np.linalg.eigh(S)
    return (V * np.sqrt(w)) @ V.T


def random_spd(d, rng, scale=1.0):
    A = rng.normal(size=(d, d)) * scale
    return A @ A.T + 0.3 * np.eye(d)


def random_problem(n, m, seed):
    rng = np.random.default_rng(seed)
    mu, nu = rng.random(n) + 0.05, rng.random(m) + 0.05
    return rng, mu / mu.sum(), nu / nu.sum()


def discretised(grid, mean, var):
    w = np.exp(-((grid - mean) ** 2) / (2 * var))
    return w / w.sum()


# ---------------------------------------------------------------------------------------------
# IPF on discrete spaces


def test_ipf_matches_marginals_and_errors_decrease():
    rng, mu, nu = random_problem(40, 30, 0)
    K = np.exp(2.0 * rng.normal(size=(40, 30)))
    res = Br.ipf(mu, nu, K, n_iter=5000, tol=1e-12)
    assert res.converged and res.n_iter < 5000
    assert res.errors.shape == (res.n_iter,)
    assert np.abs(res.plan.sum(1) - mu).sum() <= 1e-12
    assert np.abs(res.plan.sum(0) - nu).sum() <= 1e-12
    # on this problem the L1 marginal error falls monotonically, and by orders of magnitude
    assert np.all(np.diff(res.errors) <= 1e-15)
    assert res.errors[0] > 1e3 * res.errors[-1]
    # the plan has the Schrödinger form e^f K e^g
    assert np.allclose(res.plan, np.exp(res.log_u)[:, None] * K * np.exp(res.log_v))


def test_ipf_stops_at_n_iter_and_reports_not_converged():
    rng, mu, nu = random_problem(20, 20, 1)
    K = np.exp(4.0 * rng.normal(size=(20, 20)))
    res = Br.ipf(mu, nu, K, n_iter=2, tol=0.0)
    assert res.n_iter == 2 and not res.converged


def test_ipf_plan_ignores_row_and_column_scalings_of_the_kernel():
    rng, mu, nu = random_problem(15, 12, 2)
    K = np.exp(rng.normal(size=(15, 12)))
    scaled = rng.random(15)[:, None] * K * rng.random(12)[None, :] * 7
    a = Br.ipf(mu, nu, K, tol=1e-13).plan
    b = Br.ipf(mu, nu, scaled, tol=1e-13).plan
    c = Br.ipf(mu, nu, np.log(scaled), tol=1e-13, log_kernel=True).plan
    assert np.allclose(a, b, atol=1e-14, rtol=1e-10) and np.allclose(a, c, atol=1e-14, rtol=1e-10)


def test_ipf_plan_minimises_kl_to_the_reference():
    """KL(plan || R) is the minimum over couplings: every feasible perturbation increases it."""
    rng, mu, nu = random_problem(10, 8, 3)
    K = np.exp(rng.normal(size=(10, 8)))
    res = Br.ipf(mu, nu, K, tol=1e-14)
    R = mu[:, None] * K / K.sum(1, keepdims=True)

    def kl(P):
        return float(np.sum(P * np.log(P / R)))

    assert res.kl == pytest.approx(kl(res.plan), rel=1e-10)
    assert kl(np.outer(mu, nu)) > res.kl
    for _ in range(20):
        i, k = rng.choice(10, 2, replace=False)
        j, jj = rng.choice(8, 2, replace=False)
        E = np.zeros((10, 8))
        E[i, j] = E[k, jj] = 1
        E[i, jj] = E[k, j] = -1              # zero row and column sums
        step = 0.3 * min(res.plan[i, jj], res.plan[k, j], res.plan[i, j], res.plan[k, jj])
        for s in (step, -step):
            assert kl(res.plan + s * E) > res.kl


def test_ipf_handles_zero_weights_and_underflowing_kernels():
    _, mu, nu = random_problem(12, 10, 4)
    mu[3] = 0
    mu /= mu.sum()
    x, y = np.linspace(-30, 30, 12), np.linspace(-25, 25, 10)
    res = Br.static_bridge(x, mu, y, nu, sigma=0.5, n_iter=20000, tol=1e-10)
    assert res.converged and np.all(res.plan[3] == 0) and np.all(np.isfinite(res.plan))
    assert np.abs(res.plan.sum(1) - mu).sum() <= 1e-10


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_static_bridge_is_pot_sinkhorn_with_reg_two_sigma_squared(sigma):
    rng, mu, nu = random_problem(60, 50, 5)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(50, 2)) + 1.0
    res = Br.static_bridge(x, mu, y, nu, sigma, n_iter=5000, tol=1e-13)
    M = ot.dist(x, y)                                   # squared Euclidean distances
    for method in ("sinkhorn", "sinkhorn_log"):
        P = ot.sinkhorn(mu, nu, M, reg=2 * sigma**2, method=method, numItermax=100_000,
                        stopThr=1e-14)
        assert np.abs(res.plan - P).max() < 1e-12
    # and not at the other natural guess, reg = sigma^2
    P_wrong = ot.sinkhorn(mu, nu, M, reg=sigma**2, numItermax=100_000, stopThr=1e-14)
    assert np.abs(res.plan - P_wrong).max() > 1e-4


def test_brownian_kernel_is_the_gaussian_density():
    rng = np.random.default_rng(6)
    x, y, s = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)), 0.8
    K = Br.brownian_kernel(x, y, s)
    ref = np.array([[multivariate_normal(xi, s**2 * np.eye(3)).pdf(yj) for yj in y] for xi in x])
    assert np.allclose(K, ref, rtol=1e-12)
    assert np.allclose(Br.brownian_kernel(x[:, 0], y[:, 0], s),
                       np.exp(-(x[:, :1] - y[:, 0]) ** 2 / (2 * s**2)) / np.sqrt(2 * np.pi) / s)


def test_static_bridge_on_grids_converges_to_the_gaussian_bridge():
    """The discrete bridge between discretised Gaussians reproduces the closed form; the error
    falls (spectrally) with the grid step: at step 0.5 it is below 1e-10."""
    sigma, (m0, v0, m1, v1) = 0.7, (0.0, 1.0, 1.0, 2.0)
    gb = Br.gaussian_bridge(m0, v0, m1, v1, sigma)
    errs, kl_errs = [], []
    for h in (1.5, 1.0, 0.75, 0.5):
        g = np.arange(-14, 14 + 1e-9, h)
        res = Br.static_bridge(g, discretised(g, m0, v0), g, discretised(g, m1, v1), sigma,
                               tol=1e-13)
        assert res.converged
        errs.append(abs(Br.plan_cross_cov(g, g, res.plan)[0, 0] - gb.cross_cov[0, 0]))
        kl_errs.append(abs(res.kl - gb.kl_to_reference()))
    assert errs[0] > 1e-2                                # a coarse grid is visibly off
    assert all(a > 10 * b for a, b in zip(errs[:-1], errs[1:], strict=False) if a > 1e-12)
    assert errs[-1] < 1e-10 and kl_errs[-1] < 1e-10
    assert kl_errs[0] > kl_errs[-1]


def test_static_bridge_on_samples_approaches_the_gaussian_bridge():
    """Sinkhorn on 600 samples of each Gaussian in d = 2: the plan's cross-covariance is within
    0.08 (entrywise) of the closed form. Over 30 seeds the gap ranged over 0.015-0.056 (sampling
    error); confusing reg = sigma^2 with 2 sigma^2 would move the target by 0.15, and the
    independent coupling by 0.46."""
    rng = np.random.default_rng(7)
    c0, c1 = np.array([[1.0, 0.4], [0.4, 0.6]]), np.array([[0.8, -0.3], [-0.3, 1.2]])
    sigma = 1.0
    gb = Br.gaussian_bridge([0, 0], c0, [1, -1], c1, sigma)
    n = 600
    x = rng.multivariate_normal([0, 0], c0, n)
    y = rng.multivariate_normal([1, -1], c1, n)
    w = np.full(n, 1 / n)
    res = Br.static_bridge(x, w, y, w, sigma, tol=1e-9)
    C = Br.plan_cross_cov(x, y, res.plan)
    assert np.abs(C - gb.cross_cov).max() < 0.08
    wrong = Br.gaussian_bridge([0, 0], c0, [1, -1], c1, sigma / np.sqrt(2)).cross_cov
    assert np.abs(C - wrong).max() > 0.08


# ---------------------------------------------------------------------------------------------
# the Gaussian bridge


@pytest.mark.parametrize("sigma", [0.1, 0.5, 1.0, 2.0, 10.0])
def test_scalar_cross_cov(sigma):
    gb = Br.gaussian_bridge(0.0, 1.0, 0.0, 1.0, sigma)
    assert gb.cross_cov.shape == (1, 1)
    assert gb.cross_cov[0, 0] == pytest.approx((np.sqrt(4 + sigma**4) - sigma**2) / 2, rel=1e-12)


def test_cross_cov_is_the_stated_formula_and_solves_the_optimality_condition():
    rng = np.random.default_rng(8)
    d = 4
    A, B, s = random_spd(d, rng), random_spd(d, rng), 0.8
    gb = Br.gaussian_bridge(rng.normal(size=d), A, rng.normal(size=d), B, s)
    C = gb.cross_cov
    Ah = msqrt(A)
    D = msqrt(4 * Ah @ B @ Ah + s**4 * np.eye(d))
    assert np.allclose(C, 0.5 * (Ah @ D @ np.linalg.inv(Ah) - s**2 * np.eye(d)), atol=1e-12)
    S = np.linalg.solve(A, C)
    assert np.allclose(S, S.T, atol=1e-12)                       # C = Sigma0 x symmetric
    assert np.allclose(S, (B - C.T @ S) / s**2, atol=1e-12)


def test_cross_cov_minimises_the_static_kl():
    """Direct numerical minimisation of -tr(C)/sigma^2 - log det(joint)/2 in d = 2."""
    rng = np.random.default_rng(9)
    A, B, s = random_spd(2, rng), random_spd(2, rng), 0.6

    def objective(c):
        C = c.reshape(2, 2)
        sign, logdet = np.linalg.slogdet(np.block([[A, C], [C.T, B]]))
        return 1e10 if sign <= 0 else -np.trace(C) / s**2 - 0.5 * logdet

    opt = minimize(objective, np.zeros(4), method="BFGS", options={"gtol": 1e-10})
    assert np.allclose(opt.x.reshape(2, 2), Br.gaussian_bridge(0, A, 0, B, s).cross_cov,
                       atol=1e-5)


def test_small_sigma_gives_the_optimal_transport_coupling():
    rng = np.random.default_rng(10)
    A, B = random_spd(3, rng), random_spd(3, rng)
    Ah = msqrt(A)
    monge = Ah @ msqrt(Ah @ B @ Ah) @ np.linalg.inv(Ah)       # Cov(X, T X), T the Monge map
    for s, tol in ((1e-2, 1e-3), (1e-4, 1e-7)):
        assert np.allclose(Br.gaussian_bridge(0, A, 0, B, s).cross_cov, monge, atol=tol)


def test_large_sigma_gives_independence():
    rng = np.random.default_rng(11)
    A, B = random_spd(3, rng), random_spd(3, rng)
    for s in (10.0, 100.0, 1e4):
        C = Br.gaussian_bridge(0, A, 0, B, s).cross_cov
        assert np.abs(C).max() < 2 * np.abs(A @ B).max() / s**2
        # sigma^2 C -> Sigma0 Sigma1, with a relative error O(sigma^-4)
        assert np.allclose(s**2 * C, A @ B, rtol=0, atol=50 * np.abs(A @ B).max() / s**4)


def test_joint_cov_is_spd_in_d5_and_matches_marginals():
    rng = np.random.default_rng(12)
    for s in (0.05, 0.5, 3.0):
        A, B = random_spd(5, rng), random_spd(5, rng)
        gb = Br.gaussian_bridge(rng.normal(size=5), A, rng.normal(size=5), B, s)
        J = gb.joint_cov()
        assert J.shape == (10, 10) and np.allclose(J, J.T)
        assert np.linalg.eigvalsh(J).min() > 0
        assert np.allclose(J[:5, :5], A) and np.allclose(J[5:, 5:], B)


def test_marginal_endpoints_and_shapes():
    rng = np.random.default_rng(13)
    A, B = random_spd(3, rng), random_spd(3, rng)
    m0, m1 = rng.normal(size=3), rng.normal(size=3)
    gb = Br.gaussian_bridge(m0, A, m1, B, 0.7)
    mean, cov = gb.marginal(0.0)
    assert np.allclose(mean, m0) and np.allclose(cov, A)
    mean, cov = gb.marginal(1.0)
    assert np.allclose(mean, m1) and np.allclose(cov, B)
    means, covs = gb.marginal(np.array([0.0, 0.3, 1.0]))
    assert means.shape == (3, 3) and covs.shape == (3, 3, 3)
    assert np.allclose(covs[1], gb.marginal(0.3)[1])
    # the mid-point variance carries the Brownian-bridge term sigma^2 t (1 - t)
    C = gb.cross_cov
    assert np.allclose(covs[1], 0.49 * A + 0.09 * B + 0.21 * (C + C.T) + 0.49 * 0.21 * np.eye(3))


def test_scalar_and_diagonal_inputs():
    a = Br.gaussian_bridge(0.0, 2.0, 1.0, 0.5, 1.0)
    b = Br.gaussian_bridge([0.0], [[2.0]], [1.0], [0.5], 1.0)
    assert np.allclose(a.cross_cov, b.cross_cov) and a.dim == b.dim == 1
    c = Br.gaussian_bridge(0.0, [1.0, 2.0], [1.0, 1.0], 0.5, 1.0)
    d = Br.gaussian_bridge([0.0, 0.0], np.diag([1.0, 2.0]), [1.0, 1.0], 0.5 * np.eye(2), 1.0)
    assert np.allclose(c.cross_cov, d.cross_cov) and c.dim == 2
    # independent coordinates: the 2-D bridge is two 1-D bridges
    e = Br.gaussian_bridge(0.0, 2.0, 0.0, 0.5, 1.0).cross_cov[0, 0]
    assert d.cross_cov[1, 1] == pytest.approx(e) and d.cross_cov[0, 1] == pytest.approx(0.0)


def test_sampled_paths_match_marginals_and_path_covariances():
    """Monte Carlo of 40 000 paths in d = 2: means, covariances at three times and the
    covariance between X_s and X_t (s < t), each entry within 5 standard errors."""
    rng = np.random.default_rng(14)
    A, B = random_spd(2, rng, 0.7), random_spd(2, rng, 0.7)
    gb = Br.gaussian_bridge([1.0, 0.0], A, [-1.0, 2.0], B, 0.8)
    n, times = 40_000, np.array([0.2, 0.5, 0.9])
    x0, x1, path = gb.sample(n, 15, times=times)
    assert x0.shape == x1.shape == (n, 2) and path.shape == (3, n, 2)
    means, covs = gb.marginal(times)
    for k in range(3):
        var = np.diag(covs[k])
        assert np.all(np.abs(path[k].mean(0) - means[k]) < 5 * np.sqrt(var / n))
        se = np.sqrt((np.outer(var, var) + covs[k] ** 2) / n)
        assert np.all(np.abs(np.cov(path[k].T) - covs[k]) < 5 * se)
    # Cov(X_s, X_t) for s = 0.2 < t = 0.9 of the Brownian-bridge mixture
    s, t, C = 0.2, 0.9, gb.cross_cov
    cst = ((1 - s) * (1 - t) * A + s * t * B + (1 - s) * t * C + s * (1 - t) * C.T
           + 0.8**2 * s * (1 - t) * np.eye(2))
    se = np.sqrt((np.outer(np.diag(covs[0]), np.diag(covs[2])) + cst**2) / n)
    assert np.all(np.abs(Br.empirical_cross_cov(path[0], path[2]) - cst) < 5 * se)
    # the noise about the chord is a Brownian bridge: Cov(B_s, B_t) = sigma^2 s (1 - t) I,
    # uncorrelated with the endpoints (a sharper check of the joint law in time)
    noise = path - (1 - times)[:, None, None] * x0 - times[:, None, None] * x1
    for i, j in ((0, 1), (0, 2), (1, 2)):
        s, t = times[i], times[j]
        v_s, v_t, c = 0.64 * s * (1 - s), 0.64 * t * (1 - t), 0.64 * s * (1 - t)
        se = np.sqrt((v_s * v_t + c**2 * np.eye(2)) / n)
        assert np.all(np.abs(Br.empirical_cross_cov(noise[i], noise[j]) - c * np.eye(2))
                      < 5 * se)
    se = np.sqrt(np.diag(A)[:, None] * 0.64 * 0.25 / n)
    assert np.all(np.abs(Br.empirical_cross_cov(x0, noise[1])) < 5 * se)
    # endpoints: the optimal coupling
    se = np.sqrt((np.outer(np.diag(A), np.diag(B)) + C**2) / n)
    assert np.all(np.abs(Br.empirical_cross_cov(x0, x1) - C) < 5 * se)


def test_sample_is_reproducible_and_endpoint_only_by_default():
    gb = Br.gaussian_bridge(0.0, 1.0, 2.0, 3.0, 0.5)
    a, b = gb.sample(10, 3), gb.sample(10, 3)
    assert len(a) == 2 and all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    _, _, path = gb.sample(10, 3, times=[0.0, 1.0])
    x0, x1 = gb.sample(10, 3)
    assert np.allclose(path[0], x0) and np.allclose(path[1], x1)


def test_kl_to_reference():
    # the bridge towards the reference's own time-1 marginal is the reference itself
    gb = Br.gaussian_bridge(0.5, 1.5, 0.5, 1.5 + 0.7**2, 0.7)
    assert gb.kl_to_reference() == pytest.approx(0.0, abs=1e-12)
    assert gb.cross_cov[0, 0] == pytest.approx(1.5, rel=1e-12)
    assert Br.gaussian_bridge(0.0, 1.0, 3.0, 0.5, 0.7).kl_to_reference() > 1.0


# ---------------------------------------------------------------------------------------------
# helpers


def test_gaussian_kl_closed_form_and_monte_carlo():
    assert Br.gaussian_kl(0.0, 1.0, 0.0, 1.0) == 0.0
    assert Br.gaussian_kl(1.0, 2.0, 0.0, 1.0) == pytest.approx(0.5 * (2 + 1 - 1 - np.log(2)))
    rng = np.random.default_rng(16)
    A, B = random_spd(3, rng), random_spd(3, rng)
    ma, mb = rng.normal(size=3), rng.normal(size=3)
    x = rng.multivariate_normal(ma, A, 100_000)
    ratio = multivariate_normal(ma, A).logpdf(x) - multivariate_normal(mb, B).logpdf(x)
    kl = Br.gaussian_kl(ma, A, mb, B)
    assert abs(ratio.mean() - kl) < 5 * ratio.std() / np.sqrt(x.shape[0])


def test_empirical_cross_cov_matches_numpy():
    rng = np.random.default_rng(17)
    x0, x1 = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    assert np.allclose(Br.empirical_cross_cov(x0, x1), np.cov(x0.T, x1.T)[:3, 3:])
    assert Br.empirical_cross_cov(x0[:, 0], x1[:, 0]).shape == (1, 1)


def test_plan_cross_cov_of_a_deterministic_coupling():
    x = np.array([0.0, 1.0, 2.0])
    assert Br.plan_cross_cov(x, 2 * x, np.eye(3) / 3)[0, 0] == pytest.approx(2 * np.var(x))


# ---------------------------------------------------------------------------------------------
# iterative Markovian fitting between Gaussians


def imf_closed_form_1d(v0, v1, c, sigma):
    """One exact IMF half-step in d = 1: sqrt(v0 v1) exp(-sigma^2/2 int_0^1 dt / Sigma_t)."""
    from scipy.integrate import quad

    def var_t(t):
        return (1 - t) ** 2 * v0 + t**2 * v1 + t * (1 - t) * (2 * c + sigma**2)

    integral = quad(lambda t: 1 / var_t(t), 0, 1, epsabs=1e-14, epsrel=1e-13)[0]
    return np.sqrt(v0 * v1) * np.exp(-0.5 * sigma**2 * integral)


def imf_arctan_unit(c, sigma):
    """The same for unit variances, in closed form: Sigma_t = 1 - k t (1 - t) with
    k = 2 - 2c - sigma^2 < 4, and int_0^1 dt / Sigma_t = 2 arctan(r) / (sqrt(k) q),
    q = sqrt(1 - k/4), r = sqrt(k) / (2 q) (artanh for k < 0)."""
    k = 2 - 2 * c - sigma**2
    q = np.sqrt(1 - k / 4)
    if k > 0:
        integral = 2 * np.arctan(np.sqrt(k) / (2 * q)) / (np.sqrt(k) * q)
    else:
        integral = 2 * np.arctanh(np.sqrt(-k) / (2 * q)) / (np.sqrt(-k) * q)
    return np.exp(-0.5 * sigma**2 * integral)


def test_gaussian_imf_is_the_one_dimensional_closed_form():
    """The ODE solution against quadrature of the 1-D formula (unequal variances, a non-zero
    start) and against its arctan closed form, to 1e-10 relative (the docstring's ~1e-11);
    from the independent coupling at sigma = 1 the sequence is 0.546, 0.611, 0.617, 0.618
    (issue 12)."""
    for sigma in (0.4, 1.0, 2.5):
        out = Br.gaussian_imf(0.3, 0.5, -1.0, 2.0, sigma, n_iter=2, start=0.2)[:, 0, 0]
        c = 0.2
        for got in out:
            c = imf_closed_form_1d(0.5, 2.0, c, sigma)
            assert got == pytest.approx(c, rel=1e-10)
        out = Br.gaussian_imf(0, 1, 0, 1, sigma, n_iter=3)[:, 0, 0]
        c = 0.0
        for got in out:
            c = imf_arctan_unit(c, sigma)
            assert got == pytest.approx(c, rel=1e-10)
    seq = Br.gaussian_imf(0, 1, 0, 1, 1.0, n_iter=2)[:, 0, 0]
    assert np.allclose(np.round(seq, 3), [0.546, 0.611, 0.617, 0.618], atol=1e-12)
    # and not already at the bridge's value after the first half-step
    assert Br.gaussian_bridge(0, 1, 0, 1, 1.0).cross_cov[0, 0] - seq[0] > 0.07


def test_gaussian_imf_converges_monotonically_to_the_gaussian_bridge():
    """1-D: from below (independent) the sequence increases, from above (start 0.99) it
    decreases, both to (sqrt(4 + s^4) - s^2) / 2; d = 3: the error to gaussian_bridge falls at
    every half-step and falls by 1e6 in 30 iterations."""
    for sigma in (0.3, 1.0, 3.0):
        target = (np.sqrt(4 + sigma**4) - sigma**2) / 2
        up = Br.gaussian_imf(0, 1, 0, 1, sigma, n_iter=10)[:, 0, 0]
        down = Br.gaussian_imf(0, 1, 0, 1, sigma, n_iter=10, start=0.99)[:, 0, 0]
        assert np.all(np.diff(up) > -1e-13) and np.all(up < target + 1e-12)
        assert np.all(np.diff(down) < 1e-13) and np.all(down > target - 1e-12)
        assert abs(up[-1] - target) < 1e-7 and abs(down[-1] - target) < 1e-7
    rng = np.random.default_rng(21)
    A, B, s = random_spd(3, rng), random_spd(3, rng), 2.0    # variances 0.6 ... 12
    exact = Br.gaussian_bridge(0, A, 0, B, s).cross_cov
    err = [np.linalg.norm(C - exact) for C in Br.gaussian_imf(0, A, 0, B, s, n_iter=30)]
    assert np.all(np.diff(err) < 0) and err[-1] < 1e-6 * err[0]


def test_gaussian_imf_fixed_point_directions_and_diagonal_case():
    """The bridge's coupling is a fixed point; forward and backward projections agree (one
    Markov process, two directions of time); diagonal covariances decouple into 1-D runs."""
    rng = np.random.default_rng(22)
    A, B, s = random_spd(3, rng), random_spd(3, rng), 0.7
    exact = Br.gaussian_bridge(0, A, 0, B, s).cross_cov
    assert np.abs(Br.gaussian_imf(0, A, 0, B, s, 1, start=exact) - exact).max() < 1e-9
    C = 0.3 * msqrt(A) @ np.linalg.qr(rng.normal(size=(3, 3)))[0] @ msqrt(B)  # PD joint
    fwd = Br.gaussian_imf(0, A, 0, B, s, 1, start=C)[0]
    assert not np.allclose(fwd, C, atol=1e-3)
    Br.gaussian_imf(0, A, 0, B, s, 1, start=fwd)                        # fwd is a coupling
    assert np.allclose(Br._imf_projection(A, B, C, s, "backward"), fwd, atol=1e-10)
    out = Br.gaussian_imf(0, [0.5, 2.0], 0, [1.5, 0.7], 1.2, n_iter=2)
    for i, (v0, v1) in enumerate(((0.5, 1.5), (2.0, 0.7))):
        c = 0.0
        for k in range(4):
            c = imf_closed_form_1d(v0, v1, c, 1.2)
            assert out[k, i, i] == pytest.approx(c, rel=1e-9)
        assert np.allclose(out[:, i, 1 - i], 0, atol=1e-12)


def test_gaussian_imf_matches_a_monte_carlo_markovian_projection():
    """One forward half-step by simulation: at each of 100 time steps regress the bridge drift
    (x1 - X_t)/(1 - t) on a cubic in X_t (50 000 independent pairs, no linearity assumed), then
    run Euler-Maruyama on 100 000 paths from N(0, 1). The coupling's standard error is about
    0.004 and the Euler bias is O(1/100); the bound is 0.015, and the bridge's 0.618 is 0.07
    away."""
    rng = np.random.default_rng(23)
    n_fit, n_sim, steps, sigma = 50_000, 100_000, 100, 1.0
    h = 1 / steps
    x0 = rng.standard_normal(n_sim)
    x = x0.copy()
    for k in range(steps):
        t = (k + 0.5) * h
        a, b = rng.standard_normal(n_fit), rng.standard_normal(n_fit)
        xt = (1 - t) * a + t * b + sigma * np.sqrt(t * (1 - t)) * rng.standard_normal(n_fit)
        coef = np.polynomial.polynomial.polyfit(xt, (b - xt) / (1 - t), 3)
        x = (x + h * np.polynomial.polynomial.polyval(x, coef)
             + sigma * np.sqrt(h) * rng.standard_normal(n_sim))
    mc = np.mean((x0 - x0.mean()) * (x - x.mean()))
    exact = Br.gaussian_imf(0, 1, 0, 1, sigma, n_iter=1)[0, 0, 0]
    assert abs(mc - exact) < 0.015
    assert x.var() == pytest.approx(1.0, abs=0.03)               # the projection keeps nu


# ---------------------------------------------------------------------------------------------
# validation

MU, NU, K = np.full(3, 1 / 3), np.full(2, 0.5), np.ones((3, 2))


@pytest.mark.parametrize("call,match", [
    (lambda: Br.ipf([0.5, 0.6, -0.1], NU, K), "mu"),
    (lambda: Br.ipf(MU, [0.4, 0.4], K), "nu"),
    (lambda: Br.ipf(MU, NU, np.ones((2, 3))), "K"),
    (lambda: Br.ipf(MU, NU, np.zeros((3, 2))), "K"),
    (lambda: Br.ipf(MU, NU, -np.ones((3, 2))), "K"),
    (lambda: Br.ipf(MU, NU, K, n_iter=0), "n_iter"),
    (lambda: Br.ipf(MU, NU, K, tol=-1.0), "tol"),
    (lambda: Br.ipf(MU, NU, K, log_kernel=1), "log_kernel"),
    (lambda: Br.static_bridge([0, 1, 2], MU, [0, 1], NU, 0.0), "sigma"),
    (lambda: Br.static_bridge([0, 1], MU, [0, 1], NU, 1.0), "mu"),
    (lambda: Br.static_bridge(np.zeros((3, 2)), MU, [0, 1], NU, 1.0), "dimension"),
    (lambda: Br.log_brownian_kernel([0.0], [np.nan], 1.0), "y"),
    (lambda: Br.gaussian_bridge(0, 1, 0, 1, -1.0), "sigma"),
    (lambda: Br.gaussian_bridge(0, 1, 0, 1, np.inf), "sigma"),
    (lambda: Br.gaussian_bridge(0, -1.0, 0, 1, 1.0), "cov0"),
    (lambda: Br.gaussian_bridge(0, 1, 0, [[1, 2], [2, 1]], 1.0), "cov1"),
    (lambda: Br.gaussian_bridge(0, 1, 0, [[1, 0.5], [0, 1]], 1.0), "cov1"),
    (lambda: Br.gaussian_bridge([0, 0], 1, [0, 0, 0], 1, 1.0), "mean0"),
    (lambda: Br.gaussian_bridge(0, 1, 0, 1, 1.0).marginal(1.5), "t"),
    (lambda: Br.gaussian_bridge(0, 1, 0, 1, 1.0).sample(0, 0), "n"),
    (lambda: Br.gaussian_bridge(0, 1, 0, 1, 1.0).sample(5, None), "rng"),
    (lambda: Br.gaussian_bridge(0, 1, 0, 1, 1.0).sample(5, 0, times=[0.5, 0.2]), "times"),
    (lambda: Br.gaussian_bridge(0, 1, 0, 1, 1.0).sample(5, 0, times=[0.5, 2.0]), "times"),
    (lambda: Br.gaussian_kl(0, 1, 0, 0.0), "cov_b"),
    (lambda: Br.empirical_cross_cov(np.zeros((5, 2)), np.zeros((4, 2))), "x0 and x1"),
    (lambda: Br.empirical_cross_cov(np.zeros((1, 2)), np.zeros((1, 2))), "x0"),
    (lambda: Br.plan_cross_cov([0, 1], [0, 1], np.ones((2, 2))), "plan"),
    (lambda: Br.gaussian_imf(0, 1, 0, 1, 0.0), "sigma"),
    (lambda: Br.gaussian_imf(0, 1, 0, 1, 1.0, n_iter=0), "n_iter"),
    (lambda: Br.gaussian_imf(0, 1, 0, 1, 1.0, start="coupled"), "start"),
    (lambda: Br.gaussian_imf(0, 1, 0, 1, 1.0, start=1.5), "start"),
    (lambda: Br.gaussian_imf(0, np.eye(2), 0, 1, 1.0, start=np.eye(3)), "start"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
