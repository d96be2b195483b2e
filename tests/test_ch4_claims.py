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
