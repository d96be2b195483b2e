"""Claims Chapter 3 makes in its text and exercises, checked beyond the unit tests of
``diffnotes.sde`` and ``diffnotes.score``."""

import numpy as np
import pytest

from diffnotes import ehrenfest, schedules, sde
from diffnotes.metrics import noise_floor, sliced_wasserstein2
from diffnotes.mixtures import GaussianMixture, bimodal_1d, moons_mixture


def test_readme_sign_shrinks_the_variance_to_one_third():
    """Exercise ex-ch3-wrong-sign: for N(0, 1) data under the OU process, the reverse SDE with
    +f (the source README's sign) converges to N(0, 1/3); the correct one keeps N(0, 1)."""
    ou = sde.OU(T=5.0)
    score = GaussianMixture([1.0], [0.0], [1.0]).score_function(ou)

    def readme_sign(x, t):
        return score(x, t) + 2 * ou._f(x, t) / ou._g(t) ** 2

    rng = np.random.default_rng(0)
    start = ou.prior_sample(40_000, 1, rng)
    right = sde.euler_maruyama(ou, score, start, rng, n_steps=500).x[:, 0]
    wrong = sde.euler_maruyama(ou, readme_sign, start, rng, n_steps=500).x[:, 0]
    se = np.sqrt(2 / right.size)                 # standard error of a sample variance (Gaussian)
    # Euler-Maruyama with h = 0.01 biases the stationary variance by O(h): allow 2 %
    assert abs(right.var() - 1) < 5 * se + 0.02
    assert abs(wrong.var() - 1 / 3) < 5 * se / 3 + 0.02
    # (and the plain reverse drift agrees with the sampler's convention)
    x = np.array([[0.7]])
    assert np.allclose(ou.reverse_drift(x, 1.0, score), ou._f(x, 1.0) - 2 * score(x, 1.0))


def test_probability_flow_is_affine_for_gaussian_data():
    """Exercise ex-ch3-gaussian-flow: z = (x - alpha m) / sqrt(alpha^2 s^2 + sigma^2) is
    constant along the flow, so x(0) = m + s z(T)."""
    ou = sde.OU()
    m, s = 1.5, 0.4
    gauss = GaussianMixture([1.0], [m], [s**2])
    xT = np.linspace(-2, 2, 9)[:, None]
    out = sde.probability_flow(ou, gauss.score_function(ou), xT, t_min=1e-9, rtol=1e-9,
                               atol=1e-9)
    aT, sT = ou.alpha_sigma(ou.T)
    z = (xT - aT * m) / np.sqrt(aT**2 * s**2 + sT**2)
    assert np.abs(out.x - (m + s * z)).max() < 1e-6
    # halfway, too
    mid = sde.probability_flow(ou, gauss.score_function(ou), xT, t_min=1.0, rtol=1e-9,
                               atol=1e-9)
    a1, s1 = ou.alpha_sigma(1.0)
    assert np.abs(mid.x - (a1 * m + np.sqrt(a1**2 * s**2 + s1**2) * z)).max() < 1e-6


@pytest.mark.parametrize("t", [0.05, 0.5])
def test_noise_scaled_by_the_variance_is_the_sources_bug(t):
    """Scaling the OU noise by sigma^2 instead of sigma gives the wrong marginal variance;
    scaling by sigma gives the exact one (Var X_t = alpha^2 Var X_0 + sigma^2)."""
    ou = sde.OU()
    gm = bimodal_1d()
    rng = np.random.default_rng(1)
    x0 = gm.sample(200_000, rng)[:, None]
    alpha, sigma = ou.alpha_sigma(t)
    eps = rng.standard_normal(x0.shape)
    exact = gm.at(t, ou)
    mean = exact.weights @ exact.means[:, 0]
    var = exact.weights @ (exact.covs[:, 0, 0] + exact.means[:, 0] ** 2) - mean**2
    right = (alpha * x0 + sigma * eps).var()
    wrong = (alpha * x0 + sigma**2 * eps).var()
    var0 = gm.weights @ (gm.covs[:, 0, 0] + gm.means[:, 0] ** 2) - (gm.weights @ gm.means[:, 0])**2
    se = var * np.sqrt(2 / x0.shape[0]) * 2      # generous: the data are not Gaussian
    assert abs(var - (alpha**2 * var0 + sigma**2)) < 1e-12
    assert abs(right - var) < 5 * se
    # the bug's variance is alpha^2 Var X0 + sigma^4, short of the exact one by sigma^2 - sigma^4
    assert abs(wrong - (alpha**2 * var0 + sigma**4)) < 5 * se
    assert sigma**2 - sigma**4 > 5 * se


def test_ehrenfest_on_the_vp_schedule_converges_to_the_vp_sde():
    """The Ehrenfest law on schedules.vp approaches the VP-SDE kernel in W1 at rate S^-1/2."""
    vp = sde.VPSDE()
    t = 0.2
    assert np.allclose(ehrenfest.ou_coefficients(t, schedule=schedules.vp()), vp.alpha_sigma(t))
    Ss = np.array([64, 256, 1024, 4096])
    w1 = [ehrenfest.ou_distance(int(S), t, int(ehrenfest.to_lattice(1.5, int(S))),
                                schedule=schedules.vp())["w1"] for S in Ss]
    slope = np.polyfit(np.log(Ss), np.log(w1), 1)[0]
    assert -0.6 < slope < -0.4


def test_a_vp_score_drives_the_ehrenfest_sampler():
    """Section "Back to Chapter 2": the exact VP-SDE score of the moons mixture, transferred to
    Ehrenfest rates on schedules.vp (order 2), samples the data by tau-leaping within 2x of the
    sliced-W2 noise floor of two exact samples."""
    vp = sde.VPSDE()
    moons = moons_mixture()
    S, n = 1024, 1500
    rng = np.random.default_rng(2)
    rates = ehrenfest.score_rates(moons.score_function(vp), S, schedule=schedules.vp(), order=2)
    run = ehrenfest.sample_reverse_tau(rates, ehrenfest.sample_stationary(S, (n, 2), rng), 1.0,
                                       S, rng=rng, n_steps=200, t_min=1e-3)
    xs = ehrenfest.scale(run.states, S)
    target = moons.at(1e-3, vp)
    floor = noise_floor(sliced_wasserstein2, target.sample, n, 3, n_repeats=5)
    d = sliced_wasserstein2(xs, target.sample(n, 4))
    assert d < 2 * floor.mean
    # the metric can tell: on a lattice of spacing 2/sqrt(16) = 0.5, coarser than the moons'
    # width, the same construction is far off (its rates are so large that Poisson leaps would
    # overflow, which sample_reverse_tau refuses with a clear error; binomial leaps stay put)
    coarse = ehrenfest.score_rates(moons.score_function(vp), 16, schedule=schedules.vp(),
                                   order=2)
    with pytest.raises(ValueError, match="n_steps = 200 is far too few"):
        ehrenfest.sample_reverse_tau(coarse, ehrenfest.sample_stationary(16, (n, 2), rng), 1.0,
                                     16, rng=rng, n_steps=200, t_min=1e-3)
    run = ehrenfest.sample_reverse_tau(coarse, ehrenfest.sample_stationary(16, (n, 2), rng),
                                       1.0, 16, rng=rng, n_steps=200, t_min=1e-3,
                                       method="binomial")
    assert sliced_wasserstein2(ehrenfest.scale(run.states, 16), target.sample(n, 4)) \
        > 3 * floor.mean
