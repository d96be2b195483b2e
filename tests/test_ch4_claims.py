"""Claims Chapter 4 makes in its text, checked beyond the unit tests of ``diffnotes.bridge``
and ``diffnotes.dsb``."""

import numpy as np
import pytest

from diffnotes import bridge, sde
from diffnotes.mixtures import moons_mixture


def _random_spd(d, rng):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.3 * np.eye(d)


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_gaussian_cross_cov_solves_the_first_order_condition(d, sigma):
    """Proof of ch4-prop-gaussian: the off-diagonal block of the inverse joint covariance is
    -I / sigma^2, i.e. sigma^2 S0^{-1} C = S1 - C^T S0^{-1} C."""
    rng = np.random.default_rng(d)
    s0, s1 = _random_spd(d, rng), _random_spd(d, rng)
    C = bridge.gaussian_bridge(np.zeros(d), s0, np.ones(d), s1, sigma).cross_cov
    lhs = sigma**2 * np.linalg.solve(s0, C)
    rhs = s1 - C.T @ np.linalg.solve(s0, C)
    assert np.allclose(lhs, rhs, atol=1e-9)
    joint = np.block([[s0, C], [C.T, s1]])
    assert np.allclose(np.linalg.inv(joint)[:d, d:], -np.eye(d) / sigma**2, atol=1e-8)


def test_a_short_horizon_misses_the_prior():
    """The chapter's first table: KL(p_1 | N(0, I)) of the VP SDE grows as beta_max shrinks, and
    is far from 0 at beta_max = 1 (about 0.08; the Monte Carlo standard error is ~ 0.003)."""
    moons = moons_mixture()
    rng = np.random.default_rng(0)
    kls = []
    for beta_max in (1.0, 3.0, 20.0):
        vp = sde.VPSDE(0.1, beta_max)
        x1 = moons.at(1.0, vp).sample(20_000, rng)
        kls.append(np.mean(moons.log_prob(x1, 1.0, vp) - vp.prior_log_prob(x1)))
    assert kls[0] > kls[1] > kls[2]
    assert kls[0] > 0.05
    assert abs(kls[2]) < 0.01


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_first_half_step_variance(sigma):
    """Exercise ex-ch4-first-iteration: the first IPF half-step (the reference's backward
    transitions started from the prior N(0, 1)) produces N(0, (1 + s^2 + s^4) / (1 + s^2)^2) at
    time 0 for N(0, 1) data: one column rescaling on a fine grid agrees to 1e-8."""
    g = np.linspace(-9, 9, 361)
    w = np.exp(-0.5 * g**2)
    w /= w.sum()
    R = w[:, None] * bridge.brownian_kernel(g, g, sigma)
    R /= R.sum()
    half = R * (w / R.sum(axis=0))[None, :]
    var0 = g**2 @ half.sum(axis=1)
    assert abs(var0 - (1 + sigma**2 + sigma**4) / (1 + sigma**2) ** 2) < 1e-8
    # and it is not the data's variance 1 (the short-horizon error the bridge removes)
    assert abs(var0 - 1) > 0.1


def test_ipf_in_path_order_converges_to_the_closed_form():
    """The chapter's exact IPF sequence (backward half, forward half) on a grid: the forward
    couplings 2/3, 0.625, ... converge to (sqrt(5) - 1) / 2 at sigma = 1."""
    g = np.linspace(-7, 7, 281)
    w = np.exp(-0.5 * g**2)
    w /= w.sum()
    P = w[:, None] * bridge.brownian_kernel(g, g, 1.0)
    covs = []
    for _ in range(8):
        P *= (w / P.sum(axis=0))[None, :]
        P *= (w / P.sum(axis=1))[:, None]
        covs.append(g @ P @ g)
    assert abs(covs[0] - 2 / 3) < 1e-6
    assert abs(covs[-1] - (np.sqrt(5) - 1) / 2) < 1e-6
    assert np.all(np.diff(covs) < 1e-12)


def _exact_sequences(sigma, n_iter=4):
    """Cov(X_0, X_1) after each half-step of exact IMF (gaussian_imf) and of exact IPF on a
    grid (backward half first, as DSB), between unit Gaussians."""
    imf = bridge.gaussian_imf(0.0, 1.0, 0.0, 1.0, sigma, n_iter=n_iter)[:, 0, 0]
    g = np.linspace(-7, 7, 281)
    w = np.exp(-0.5 * g**2)
    w /= w.sum()
    P = w[:, None] * bridge.brownian_kernel(g, g, sigma)
    ipf = []
    for _ in range(n_iter):
        P *= (w / P.sum(axis=0))[None, :]
        ipf.append(g @ P @ g)
        P *= (w / P.sum(axis=1))[:, None]
        ipf.append(g @ P @ g)
    return imf, np.array(ipf)


def _shrink(seq, target):
    gap = np.abs(seq[:5] - target)
    return float(np.exp(-np.mean(np.log(gap[1:] / gap[:-1]))))


def test_imf_from_below_ipf_alternating_and_their_rates():
    """The chapter's comparison of the exact sequences: IMF starts at 0.546, short of the
    bridge's 0.618, and approaches it from below, its gap shrinking about 10x per half-step at
    sigma = 1; IPF alternates around the bridge and shrinks about 2.6x. IMF is the faster at
    sigma = 0.5 and 1 (by more at 0.5), IPF at sigma = 2."""
    rates = {}
    for sigma in (0.5, 1.0, 2.0):
        target = bridge.gaussian_bridge(0, 1, 0, 1, sigma).cross_cov[0, 0]
        imf, ipf = _exact_sequences(sigma)
        assert np.all(imf < target) and np.all(np.diff(imf) > 0)
        signs = np.sign(ipf[:6] - target)
        assert np.all(signs[1:] == -signs[:-1])                    # over- and undershoots
        rates[sigma] = (_shrink(imf, target), _shrink(ipf, target))
    imf1, _ = _exact_sequences(1.0)
    assert imf1[0] == pytest.approx(0.5463, abs=1e-4) and (np.sqrt(5) - 1) / 2 - imf1[0] > 0.07
    assert 9 < rates[1.0][0] < 12 and 2.3 < rates[1.0][1] < 2.9
    assert rates[0.5][0] / rates[0.5][1] > rates[1.0][0] / rates[1.0][1] > 3
    assert rates[2.0][1] > rates[2.0][0]


def test_dsb_chain_first_half_step_variance():
    """Exercise ex-ch4-first-iteration, discrete side: DSB's chain (N steps of gamma, noise
    2 gamma, exact backward means x v_k / v_{k+1}, v_k = 1 + 2 t_k) started from N(0, 1) ends
    at the recursion's variance (Monte Carlo, 200 000 chains, 5 standard errors), 0.789 for
    N = 10, gamma = 0.05, and tends to 0.75 as N grows with N gamma = 1/2 fixed."""
    def chain_var(n, gamma):
        v, vk = 1.0, 1 + 2 * gamma * np.arange(n + 1)
        for k in range(n - 1, -1, -1):
            v = (vk[k] / vk[k + 1]) ** 2 * v + 2 * gamma
        return v

    rng = np.random.default_rng(4)
    x = rng.standard_normal(200_000)
    vk = 1 + 2 * 0.05 * np.arange(11)
    for k in range(9, -1, -1):
        x = x * vk[k] / vk[k + 1] + np.sqrt(0.1) * rng.standard_normal(x.size)
    v10 = chain_var(10, 0.05)
    assert abs(x.var() - v10) < 5 * v10 * np.sqrt(2 / x.size)
    assert v10 == pytest.approx(0.789, abs=5e-4)
    errs = [chain_var(n, 0.5 / n) - 0.75 for n in (10, 100, 1000)]
    assert np.all(np.diff(errs) < 0) and 0 < errs[-1] < 1e-3
    # the backward means of the reference chain are those slopes (regression on one step)
    rng = np.random.default_rng(5)
    xk = np.sqrt(vk[3]) * rng.standard_normal(200_000)
    xk1 = xk + np.sqrt(0.1) * rng.standard_normal(xk.size)
    slope = np.polyfit(xk1, xk, 1)[0]
    assert slope == pytest.approx(vk[3] / vk[4], abs=5 * np.sqrt(0.1 / vk[4] / xk.size) + 1e-3)


def test_brownian_reference_endpoint_is_the_data_plus_noise():
    """The DSB section: before training, the forward process is the Brownian reference and
    its endpoint has covariance Cov(moons) + 2T I (20 000 paths, 5 standard errors per
    entry), not the prior's I at any T."""
    pytest.importorskip("torch")
    from diffnotes import data, dsb

    rng = np.random.default_rng(6)
    model = dsb.DSB(2, n_steps=20, gamma=0.01, seed=0)
    x0 = data.two_moons(20_000, rng)
    xT = model.sample_forward(x0, seed=1)[-1]
    cov = np.cov(data.two_moons(200_000, rng).T) + 2 * model.T * np.eye(2)
    se = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / x0.shape[0])
    assert np.all(np.abs(np.cov(xT.T) - cov) < 5 * se + 2e-3)
    assert np.cov(xT.T)[0, 0] > 1.5 and np.cov(xT.T)[1, 1] < 1.0     # not I


def test_ipf_plan_is_a_scaling_of_the_brownian_kernel():
    """Exercise ex-ch4-scaling as the chapter checks it: the plan of static_bridge is
    e^{log_u} K e^{log_v} with K = brownian_kernel, and its marginals are mu and nu. (The
    limit's KL optimality is tests/test_bridge.py::test_ipf_plan_minimises_kl_to_the_reference;
    exercise ex-ch4-limits is test_small_sigma_... and test_large_sigma_... there.)"""
    x = np.linspace(-4, 4, 101)
    mu = np.exp(-0.5 * ((x + 1.5) / 0.5) ** 2) + 0.6 * np.exp(-0.5 * ((x - 1.5) / 0.4) ** 2)
    nu = np.exp(-0.5 * ((x - 0.5) / 0.9) ** 2)
    mu, nu = mu / mu.sum(), nu / nu.sum()
    res = bridge.static_bridge(x, mu, x, nu, 0.7, n_iter=500)
    K = bridge.brownian_kernel(x, x, 0.7)
    recon = np.exp(res.log_u)[:, None] * K * np.exp(res.log_v)[None, :]
    assert np.abs(recon - res.plan).max() < 1e-15
    assert np.abs(res.plan.sum(1) - mu).sum() < 1e-8 and np.abs(res.plan.sum(0) - nu).sum() < 1e-12


def test_exact_ipf_on_the_s_curve_and_the_recorded_runs():
    """Chapter 4, 'What made our DSB worse than the reference code': exact IPF at the reference
    code's discretisation (the chapter's calls, 3000 points of each law) stays above SW2 1.3
    for four iterations, far above the target of 1.0 after two; on gammas(20, 0.01, 0.5) it
    falls below 0.75 by the fourth. The recorded DSB runs follow exact IPF within 0.35 (about
    two noise SDs of one SW2) at every iteration on both schedules, and the recorded port of
    the reference code is no closer to the data than DSB (within that noise); the recorded
    bridge-matching runs on the same horizon are within about twice the floor after one
    iteration."""
    pytest.importorskip("torch")
    from diffnotes import dsb
    from diffnotes import dsb_problems as P

    short = P.exact_ipf_sw2(4, 0.01, n_points=3000)
    long = P.exact_ipf_sw2(4, dsb.gammas(20, 0.01, 0.5), n_points=3000)
    assert min(short) > 1.3 and long[-1] < 0.75 and long[0] > long[-1] + 0.3
    rec = P.S_CURVE_SCHEDULES
    for key, exact in (("constant 0.01 (T = 0.2), reference settings", short),
                       ("gammas(20, 0.01, 0.5) (T = 5.1)", long)):
        sw = rec[key]["SW2"]
        assert np.all(np.abs(np.array(sw) - exact[:len(sw)]) < 0.35)
    m = P.S_CURVE_MEASURED
    port, ours = (m[k]["SW2"] for k in ("port of the reference code, mean_match False",
                                         "DSB, new defaults"))
    assert np.all(np.array(port) > np.array(ours) - 0.2)
    assert np.all(np.array(m["reference code (issue 13)"]["SW2"][:2]) < min(short) - 0.3)
    from diffnotes.metrics import noise_floor, sliced_wasserstein2

    floor = noise_floor(sliced_wasserstein2, P.s_curve, 2000, 7, n_repeats=10).mean
    for key in ("bridge matching, the same horizon (sigma^2 = 2T)",
                "  the same, seed 1 (bridge matching)"):
        assert m[key]["SW2"][0] < 2.2 * floor < min(short) - 0.6
