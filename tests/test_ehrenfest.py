"""Numerical checks of the Ehrenfest process of Chapter 2 (module :mod:`diffnotes.ehrenfest`).

Every exact formula is compared with an independent computation (scipy's ``expm``, direct
binomial sums, ``scipy.stats.binom``, the generic CTMC code of :mod:`diffnotes.ctmc`), and every
sampler with the law it should produce. Simulation tests use fixed seeds and bounds of 5 standard
errors per checked quantity (a correct implementation fails one with probability below 1e-6; a
test checks at most ~100 such quantities), or a total-variation bound stated next to it.
"""

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from scipy.stats import binom, norm

from diffnotes import ctmc
from diffnotes import ehrenfest as eh
from diffnotes.mixtures import GaussianMixture, moons_mixture
from diffnotes.schedules import vp

GM = GaussianMixture([0.4, 0.6], [-1.5, 1.2], [0.3**2, 0.4**2])


def within_5_se(freq, p, n):
    """|empirical - exact| <= 5 standard errors (+ a floor of 5/n for p close to 0 or 1)."""
    se = np.sqrt(np.clip(p * (1 - p), 0, None) / n)
    return np.all(np.abs(freq - p) <= 5 * se + 5.0 / n)


def mean_within_5_se(states, p):
    """The sample mean of ``states`` is within 5 standard errors of the mean of law ``p``."""
    states = np.asarray(states).ravel()
    n = np.arange(p.size)
    mean = p @ n
    return abs(states.mean() - mean) <= 5 * np.sqrt((p @ n**2 - mean**2) / states.size)


def histogram(states, S):
    states = np.asarray(states).ravel()
    return np.bincount(states, minlength=S + 1) / states.size


def tv(p, q):
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum()


def multinomial_tv_noise(p, m, rng, reps=200):
    """Mean TV distance between ``p`` and the histogram of ``m`` iid draws from it."""
    return np.mean([tv(rng.multinomial(m, p) / m, p) for _ in range(reps)])


# ------------------------------------------------------------------------ forward process
@pytest.mark.parametrize("S", [1, 2, 5, 30])
def test_generator_rates_and_ctmc_conventions(S):
    Q = eh.generator(S)
    assert Q.shape == (S + 1, S + 1)
    ctmc.check_generator(Q)
    np.testing.assert_allclose(Q.sum(axis=1), 0.0, atol=1e-12)
    for i in range(S + 1):
        for j in range(S + 1):
            if j == i + 1:
                expected = (S - i) / 2
            elif j == i - 1:
                expected = i / 2
            elif j == i:
                expected = -S / 2  # every ball leaves its side at rate 1/2
            else:
                expected = 0.0
            assert Q[i, j] == expected
    # the stationary law is Binomial(S, 1/2)
    np.testing.assert_allclose(ctmc.stationary_distribution(Q),
                               binom.pmf(np.arange(S + 1), S, 0.5), atol=1e-12)


@pytest.mark.parametrize("S", [1, 2, 7, 30, 60])
def test_transition_matrices_match_expm_and_direct_sums(S):
    Q = eh.generator(S)
    n = np.arange(S + 1)
    for t in (0.01, 0.3, 1.0, 3.0):
        E = scipy.linalg.expm(t * Q)
        P = eh.transition_matrix(S, t)
        logP = eh.log_transition_matrix(S, t)
        # absolute agreement: expm itself is only absolutely accurate (~1e-15 here)
        np.testing.assert_allclose(P, E, rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.exp(logP), E, rtol=0, atol=1e-12)
        # relative agreement of every entry, the far tails included (down to ~1e-138 at
        # S = 60, t = 0.01, where expm is useless): |log a - log b| <= 1e-12
        direct = eh.log_transition_prob(n[None, :], n[:, None], t, S)
        assert np.all(np.isfinite(direct))
        np.testing.assert_allclose(logP, direct, rtol=0, atol=1e-12)
        # selected rows are the same rows
        rows = np.array([0, S // 2, S])
        np.testing.assert_allclose(eh.transition_matrix(S, t, n0=rows), P[rows], atol=1e-14)
        np.testing.assert_allclose(eh.log_transition_matrix(S, t, n0=rows), logP[rows],
                                   atol=1e-12)
        # the law is Bin(n0, p) + Bin(S - n0, q): rows 0 and S are pure binomials
        q = (1 - np.exp(-t)) / 2
        np.testing.assert_allclose(logP[0], binom.logpmf(n, S, q), atol=1e-10)
        np.testing.assert_allclose(logP[S], binom.logpmf(n, S, 1 - q), atol=1e-10)


def test_transition_matrix_at_time_zero_is_identity_and_semigroup():
    S = 25
    np.testing.assert_array_equal(eh.transition_matrix(S, 0.0), np.eye(S + 1))
    logP0 = eh.log_transition_matrix(S, 0.0)
    np.testing.assert_array_equal(np.exp(logP0), np.eye(S + 1))
    for s, t in [(0.1, 0.2), (0.5, 1.7), (2.0, 0.05)]:
        Ps, Pt, Pst = (eh.transition_matrix(S, u) for u in (s, t, s + t))
        np.testing.assert_allclose(Ps @ Pt, Pst, rtol=0, atol=1e-13)  # Chapman-Kolmogorov
        Ls, Lt = np.exp(eh.log_transition_matrix(S, s)), np.exp(eh.log_transition_matrix(S, t))
        np.testing.assert_allclose(Ls @ Lt, Pst, rtol=0, atol=1e-13)


@pytest.mark.parametrize("S", [7, 40])
def test_time_changed_transition_matrix(S):
    sched = vp()
    Q = eh.generator(S)
    n = np.arange(S + 1)
    for t in (0.05, 0.4, 1.0):
        theta = float(sched.integral(t))
        P = eh.transition_matrix(S, t, schedule=sched)
        np.testing.assert_allclose(P, eh.transition_matrix(S, theta), rtol=0, atol=1e-15)
        # the rates lambda(s) Q commute at all times, so P = expm(int_0^t lambda(s) ds Q)
        np.testing.assert_allclose(P, scipy.linalg.expm(theta * Q), rtol=0, atol=1e-12)
        np.testing.assert_allclose(eh.log_transition_matrix(S, t, schedule=sched),
                                   eh.log_transition_prob(n[None, :], n[:, None], t, S,
                                                          schedule=sched), atol=1e-12)
        mean, var = eh.mean_variance(n, t, S, schedule=sched)
        np.testing.assert_allclose(P @ n, mean, rtol=1e-12)
        np.testing.assert_allclose(P @ n**2 - (P @ n) ** 2, var, rtol=1e-10)
    if S == 7:
        # independent of the clock formula: integrate the KFE with the time-dependent generator
        p0 = np.eye(S + 1)[2]
        times = np.array([0.0, 0.3, 1.0])

        def rates(s):
            return sched.rate(s)[:, None, None] * Q[None]

        kfe = ctmc.solve_kfe(rates, p0, times, rtol=1e-11, atol=1e-13)
        for k, t in enumerate(times):
            np.testing.assert_allclose(kfe[k], eh.transition_matrix(S, t, schedule=sched)[2],
                                       atol=1e-9)


def _large_S_reference(S, t, n):
    """Rows n0 = 0 and n0 = S are Bin(S, q) and Bin(S, p); evaluated with scipy from the
    accurate small probability q (scipy would recompute q = 1 - p inaccurately)."""
    q = -0.5 * np.expm1(-t)
    return binom.pmf(n, S, q), binom.pmf(S - n, S, q)


def test_large_S_rows_are_stable():
    S = 10_000
    rows = np.array([0, 1, 5000, 10000])
    n = np.arange(S + 1)
    for t in (1e-3, 0.1, 1.0, 5.0):
        P = eh.transition_matrix(S, t, n0=rows)
        L = np.exp(eh.log_transition_matrix(S, t, n0=rows))
        mean, var = eh.mean_variance(rows, t, S)
        for M in (P, L):
            assert M.shape == (4, S + 1)
            assert np.all(np.isfinite(M)) and np.all(M >= 0)
            np.testing.assert_allclose(M.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        # the log version is relatively accurate everywhere, so its moments are exact
        np.testing.assert_allclose(L @ n, mean, rtol=1e-8)
        np.testing.assert_allclose(((n[None, :] - mean[:, None]) ** 2 * L).sum(1), var,
                                   rtol=1e-8)
        # relative accuracy against the pure binomial rows; the recurrence runs over up to
        # S = 1e4 steps, so allow ~S * 1e-16 accumulated round-off (observed: 5e-13)
        ref0, refS = _large_S_reference(S, t, n)
        bulk = ref0 > 1e-300
        np.testing.assert_allclose(L[0][bulk], ref0[bulk], rtol=1e-11)
        np.testing.assert_allclose(L[3][bulk[::-1]], refS[bulk[::-1]], rtol=1e-11)
        # transition_matrix is documented as absolutely accurate to about 1e-15 per entry; its
        # moments weigh that round-off by (n - mean)^k, k = 1, 2, over S + 1 entries, so a
        # bound of 1e-14 per entry (10x the documented accuracy) is what can be asked
        dev = np.abs(n[None, :] - mean[:, None])
        assert np.all(np.abs(P @ n - mean) <= 1e-14 * dev.sum(1) + 1e-8 * mean)
        assert np.all(np.abs((dev**2 * P).sum(1) - var) <= 1e-14 * (dev**2).sum(1))


@pytest.mark.parametrize("t", [1e-3, 0.01, 0.1, 1.0])
def test_large_S_transition_matrix_is_absolutely_accurate(t):
    # The docstring of transition_matrix promises every entry within about 1e-15 of the exact
    # value; allow 1e-13 (100 times that). Reference: the binomial rows 0 and S, and the
    # relatively accurate log_transition_matrix (checked above) for all rows.
    S = 10_000
    rows = np.array([0, 1, 5000, 10000])
    n = np.arange(S + 1)
    P = eh.transition_matrix(S, t, n0=rows)
    L = np.exp(eh.log_transition_matrix(S, t, n0=rows))
    ref0, refS = _large_S_reference(S, t, n)
    np.testing.assert_allclose(P[0], ref0, rtol=0, atol=1e-13)
    np.testing.assert_allclose(P[3], refS, rtol=0, atol=1e-13)
    np.testing.assert_allclose(P, L, rtol=0, atol=1e-13)


def test_marginal_and_mean_variance_closed_forms():
    S = 20
    rng = np.random.default_rng(0)
    p0 = rng.dirichlet(np.ones(S + 1))
    p0[3] = 0.0
    p0 /= p0.sum()
    n = np.arange(S + 1)
    for t in (0.05, 0.7, 2.5):
        E = scipy.linalg.expm(t * eh.generator(S))
        np.testing.assert_allclose(eh.marginal(p0, t, S), p0 @ E, atol=1e-13)
        np.testing.assert_allclose(np.exp(eh.marginal(p0, t, S, log=True)), p0 @ E, atol=1e-13)
        mean, var = eh.mean_variance(n, t, S)
        np.testing.assert_allclose(mean, S / 2 + (n - S / 2) * np.exp(-t), rtol=1e-14)
        np.testing.assert_allclose(var, S * (1 - np.exp(-2 * t)) / 4, rtol=1e-14)
        np.testing.assert_allclose(E @ n, mean, rtol=1e-11)
        np.testing.assert_allclose(E @ n**2 - mean**2, var, rtol=1e-9)


def test_sample_forward_moments_and_histogram():
    S, n0, t, m = 50, 10, 0.4, 200_000
    draws = eh.sample_forward(np.full(m, n0), t, S, 0)
    assert draws.shape == (m,) and draws.min() >= 0 and draws.max() <= S
    mean, var = eh.mean_variance(n0, t, S)
    row = eh.transition_matrix(S, t, n0=n0)[0]
    n = np.arange(S + 1)
    mu4 = row @ (n - mean) ** 4
    # 5 standard errors for the sample mean and the sample variance
    assert abs(draws.mean() - mean) <= 5 * np.sqrt(var / m)
    assert abs(draws.var() - var) <= 5 * np.sqrt((mu4 - var**2) / m)
    # histogram against the exact row, state by state
    assert within_5_se(histogram(draws, S), row, m)
    # a wrong law is detected by the same check: the row at another time
    assert not within_5_se(histogram(draws, S), eh.transition_matrix(S, 0.5, n0=n0)[0], m)


def test_sample_forward_broadcasts_n0_and_t():
    S, m = 40, 4000
    n0 = np.array([0, 13, 40])[:, None, None]            # (3, 1, 1)
    t = np.array([0.0, 0.1, 0.6, 3.0])[None, :, None]    # (1, 4, 1)
    t = np.broadcast_to(t, (1, 4, m))
    draws = eh.sample_forward(n0, t, S, np.random.default_rng(1), schedule=vp())
    assert draws.shape == (3, 4, m)
    np.testing.assert_array_equal(draws[:, 0], np.broadcast_to(n0[:, 0], (3, m)))  # t = 0
    mean, var = eh.mean_variance(n0[:, :, 0], t[:, :, 0], S, schedule=vp())
    assert mean.shape == var.shape == (3, 4)
    se = np.sqrt(var / m)
    assert np.all(np.abs(draws.mean(axis=2) - mean) <= 5 * se)  # 5 standard errors
    # same seed, same draws; different seeds, different draws
    again = eh.sample_forward(n0, t, S, np.random.default_rng(1), schedule=vp())
    np.testing.assert_array_equal(draws, again)
    assert not np.array_equal(draws, eh.sample_forward(n0, t, S, 2, schedule=vp()))


def test_sample_stationary_is_binomial_half():
    S, m = 16, 20_000
    draws = eh.sample_stationary(S, m, 3)
    assert draws.shape == (m,)
    assert within_5_se(histogram(draws, S), binom.pmf(np.arange(S + 1), S, 0.5), m)
    assert eh.sample_stationary(S, (5, 2), 0).shape == (5, 2)


# ------------------------------------------------------------------------ scaling, OU limit
def test_scale_unscale_and_to_lattice():
    S = 36
    n = np.arange(S + 1)
    x = eh.scale(n, S)
    delta = 2 / np.sqrt(S)
    np.testing.assert_allclose(np.diff(x), delta)
    assert x[0] == pytest.approx(-np.sqrt(S)) and x[-1] == pytest.approx(np.sqrt(S))
    assert x[S // 2] == 0.0
    np.testing.assert_allclose(eh.unscale(x, S), n, atol=1e-12)
    rng = np.random.default_rng(4)
    jitter = rng.uniform(-0.49, 0.49, size=n.size) * delta
    np.testing.assert_array_equal(eh.to_lattice(x + jitter, S), n)
    # within half a step of the ends is still on the lattice
    np.testing.assert_array_equal(eh.to_lattice([-np.sqrt(S) - 0.4 * delta,
                                                 np.sqrt(S) + 0.4 * delta], S), [0, S])
    outside = [np.sqrt(S) + 1.5 * delta]
    with pytest.raises(ValueError, match="x must lie"):
        eh.to_lattice(outside, S)
    with pytest.raises(ValueError, match="x must lie"):
        eh.to_lattice([-np.sqrt(S) - 1.5 * delta], S)
    np.testing.assert_array_equal(eh.to_lattice(outside, S, clip=True), [S])
    np.testing.assert_array_equal(eh.to_lattice([-100.0], S, clip=True), [0])


def test_lattice_pmf_is_normalised_density_on_the_lattice():
    S = 30
    p = eh.lattice_pmf(GM.log_prob, S)
    x = eh.scale(np.arange(S + 1), S)
    dens = np.exp(GM.log_prob(x))
    np.testing.assert_allclose(p, dens / dens.sum(), rtol=1e-12)
    p2 = eh.lattice_pmf(moons_mixture().log_prob, 10, dim=2)
    assert p2.shape == (11, 11) and p2.sum() == pytest.approx(1.0)
    xx = eh.scale(np.arange(11), 10)
    d2 = np.exp(moons_mixture().log_prob(np.array([[xx[3], xx[7]]])))[0]
    d2b = np.exp(moons_mixture().log_prob(np.array([[xx[7], xx[3]]])))[0]
    assert p2[3, 7] / p2[7, 3] == pytest.approx(d2 / d2b, rel=1e-10)  # axis order: (x1, x2)


def test_ou_distance_w1_and_tv_against_quadrature():
    # W1 between a lattice law and a smooth density is about delta / 4 = 1 / (2 sqrt S); check
    # the closed-form W1 against a brute-force integral of |F - Phi|, and the TV against the
    # Gaussian mass of the lattice cells
    for S, t, n0 in [(16, 0.5, 4), (64, 5.0, 32), (256, 0.2, 40)]:
        res = eh.ou_distance(S, t, n0)
        row = eh.transition_matrix(S, t, n0=n0)[0]
        x = eh.scale(np.arange(S + 1), S)
        alpha, sigma = eh.ou_coefficients(t)
        mu = alpha * eh.scale(n0, S)
        grid = np.linspace(-np.sqrt(S) - 10, np.sqrt(S) + 10, 400_001)
        F = np.concatenate([[0.0], np.cumsum(row)])[np.searchsorted(x, grid, side="right")]
        w1 = scipy.integrate.trapezoid(np.abs(F - norm.cdf(grid, mu, sigma)), grid)
        assert res["w1"] == pytest.approx(w1, rel=1e-3)  # quadrature error over S jumps
        edges = np.concatenate([[-np.inf], x[:-1] + 1 / np.sqrt(S), [np.inf]])
        assert res["tv"] == pytest.approx(tv(row, np.diff(norm.cdf(edges, mu, sigma))),
                                          rel=1e-10)
    w = [eh.ou_distance(S, 5.0, S // 2)["w1"] * np.sqrt(S) for S in (64, 256, 1024)]
    np.testing.assert_allclose(w, 0.5, rtol=0.02)


def test_ou_limit_rates_stated_in_chapter_2():
    # Chapter 2: from x0 = 2 at t = 0.5, W1 to the OU Gaussian falls like S^(-1/2) (the lattice
    # spacing) and TV to the Gaussian binned on the lattice like S^(-1) (Edgeworth, skewness
    # O(1/S)); the fitted log-log slopes over S = 64..4096 must be within 0.05 of those
    Ss = np.array([64, 256, 1024, 4096])
    d = [eh.ou_distance(S, 0.5, int(eh.to_lattice(2.0, S))) for S in Ss]
    slope_w1 = np.polyfit(np.log(Ss), np.log([v["w1"] for v in d]), 1)[0]
    slope_tv = np.polyfit(np.log(Ss), np.log([v["tv"] for v in d]), 1)[0]
    assert abs(slope_w1 + 0.5) < 0.05 and abs(slope_tv + 1.0) < 0.05, (slope_w1, slope_tv)


# ------------------------------------------------------------------------ time reversal
def brute_force_reverse(p0, t, S):
    """Reverse rates from expm matrices and the posterior p_{0|t}: the conditional
    expectation form of the reverse rates, entry by entry."""
    P = scipy.linalg.expm(t * eh.generator(S))
    pt = p0 @ P
    post = p0[:, None] * P / pt[None, :]            # post[n0, n] = p_{0|t}(n0 | n)
    up, dn = np.zeros(S + 1), np.zeros(S + 1)
    for n in range(S + 1):
        if n < S:
            up[n] = (n + 1) / 2 * np.sum(post[:, n] * P[:, n + 1] / P[:, n])
        if n > 0:
            dn[n] = (S - n + 1) / 2 * np.sum(post[:, n] * P[:, n - 1] / P[:, n])
    return up, dn, pt


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5])
def test_reverse_rates_match_brute_force_and_ctmc(t):
    S = 10
    rng = np.random.default_rng(5)
    p0 = rng.dirichlet(np.ones(S + 1))
    p0[[0, 4]] = 0.0  # zeros in the data do not matter at t > 0
    p0 /= p0.sum()
    n = np.arange(S + 1)
    up_bf, dn_bf, pt = brute_force_reverse(p0, t, S)
    up, dn = eh.reverse_rates(n, t, S, p0)
    np.testing.assert_allclose(up, up_bf, rtol=1e-10, atol=0)
    np.testing.assert_allclose(dn, dn_bf, rtol=1e-10, atol=0)
    assert up[S] == 0 and dn[0] == 0 and np.all(up[:S] > 0) and np.all(dn[1:] > 0)
    # the generic time reversal of Chapter 1
    R = ctmc.reverse_generator(eh.generator(S), pt)
    np.testing.assert_allclose(np.diag(R, 1), up[:S], rtol=1e-10)
    np.testing.assert_allclose(np.diag(R, -1), dn[1:], rtol=1e-10)
    # the table-based class
    R_exact = eh.ExactReverseRates(p0, S)
    up2, dn2 = R_exact(n, t)
    np.testing.assert_allclose(up2, up_bf, rtol=1e-10, atol=0)
    np.testing.assert_allclose(dn2, dn_bf, rtol=1e-10, atol=0)
    np.testing.assert_allclose(np.exp(R_exact.log_marginal(n, t)), pt, rtol=1e-10)
    # (m, 1) states give (m, 1) rates
    up3, dn3 = R_exact(n[:, None], np.full(S + 1, t))
    assert up3.shape == (S + 1, 1)
    np.testing.assert_allclose(up3[:, 0], up, rtol=1e-10)


def test_exact_reverse_rates_per_sample_times_and_schedule():
    S = 24
    p0 = eh.lattice_pmf(GM.log_prob, S)
    rng = np.random.default_rng(6)
    m = 40
    n = rng.integers(0, S + 1, m)
    t = rng.uniform(0.01, 3.0, m)
    for sched in (None, vp()):
        R = eh.ExactReverseRates(p0, S, schedule=sched)
        up, dn = R(n, t)
        assert up.shape == dn.shape == (m,)
        for i in range(m):
            u, d = eh.reverse_rates(n[i:i + 1], t[i], S, p0, schedule=sched)
            assert up[i] == pytest.approx(u[0], rel=1e-9, abs=1e-300)
            assert dn[i] == pytest.approx(d[0], rel=1e-9, abs=1e-300)
    # with a schedule: lambda(t) times the homogeneous rates at the clock Theta(t)
    sched = vp()
    tt = 0.4
    up_s, dn_s = eh.reverse_rates(np.arange(S + 1), tt, S, p0, schedule=sched)
    up_h, dn_h = eh.reverse_rates(np.arange(S + 1), float(sched.integral(tt)), S, p0)
    np.testing.assert_allclose(up_s, sched.rate(tt) * up_h, rtol=1e-12)
    np.testing.assert_allclose(dn_s, sched.rate(tt) * dn_h, rtol=1e-12)


def test_score_to_rates_error_orders():
    # relative error of the transferred up rate, weighted by p_t, at t = 0.3: O(1/S) for
    # order 1 and O(S^{-3/2}) for the midpoint exponential rule
    t = 0.3
    sc = eh.mixture_score(GM)
    Ss = np.array([64, 256, 1024])
    errs = {1: [], 2: []}
    for S in Ss:
        p0 = eh.lattice_pmf(GM.log_prob, S)
        n = np.arange(S + 1)
        up, _ = eh.reverse_rates(n, t, S, p0)
        pt = eh.marginal(p0, t, S)
        m = n < S
        for order in (1, 2):
            u, _ = eh.score_to_rates(lambda x: sc(x[:, None], t)[:, 0], n, S, order=order)
            errs[order].append(np.sum(pt[m] * np.abs(u[m] / up[m] - 1)) / pt[m].sum())
    slope1 = np.polyfit(np.log(Ss), np.log(errs[1]), 1)[0]
    slope2 = np.polyfit(np.log(Ss), np.log(errs[2]), 1)[0]
    assert -1.15 <= slope1 <= -0.85, errs[1]
    assert -1.65 <= slope2 <= -1.35, errs[2]
    assert errs[1][0] < 0.1 and errs[2][0] < 0.01  # and the constants are small
    # order 1 accepts the score values as an array
    S = 64
    n = np.arange(S + 1)
    s = sc(eh.scale(n, S)[:, None], t)[:, 0]
    a = eh.score_to_rates(s, n, S, rate=2.0)
    b = eh.score_to_rates(lambda x: sc(x[:, None], t)[:, 0], n, S, rate=2.0)
    np.testing.assert_allclose(a, b, rtol=1e-14)
    up, dn = a
    delta = 2 / np.sqrt(S)
    np.testing.assert_allclose(up[:S], 2.0 * (n[:S] + 1) / 2 * np.maximum(1 + delta * s[:S], 0))
    assert up[S] == 0 and dn[0] == 0 and np.all(up >= 0) and np.all(dn >= 0)


def test_score_to_rates_order_2_in_two_dimensions_uses_midpoints():
    S = 49
    mix = moons_mixture()
    sc = eh.mixture_score(mix)
    rng = np.random.default_rng(7)
    n = rng.integers(0, S + 1, (30, 2))
    t = 0.5
    up, dn = eh.score_to_rates(lambda x: sc(x, t), n, S, order=2)
    delta = 2 / np.sqrt(S)
    x = eh.scale(n, S)
    for i in range(2):
        e = np.zeros(2)
        e[i] = delta / 2
        exp_up = (n[:, i] + 1) / 2 * np.exp(delta * sc(x + e, t)[:, i])
        exp_dn = (S - n[:, i] + 1) / 2 * np.exp(-delta * sc(x - e, t)[:, i])
        np.testing.assert_allclose(up[:, i], np.where(n[:, i] == S, 0, exp_up), rtol=1e-13)
        np.testing.assert_allclose(dn[:, i], np.where(n[:, i] == 0, 0, exp_dn), rtol=1e-13)


def test_mixture_score_matches_finite_differences_of_diffused_mixture():
    sc = eh.mixture_score(GM)
    x = np.linspace(-3, 3, 25)
    h = 1e-5
    for t in (0.05, 0.3, 1.0):
        alpha, sigma = eh.ou_coefficients(t)
        assert alpha**2 + sigma**2 == pytest.approx(1.0)
        gt = GM.diffuse(float(alpha), float(sigma))
        fd = (gt.log_prob(x + h) - gt.log_prob(x - h)) / (2 * h)
        # central differences: truncation ~h^2 |f'''| plus round-off ~1e-16 |f| / h
        np.testing.assert_allclose(sc(x[:, None], t)[:, 0], fd, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(sc(x[:, None], t)[:, 0], gt.score(x), rtol=1e-10, atol=1e-12)
    # per-sample times
    rng = np.random.default_rng(8)
    tt = rng.uniform(0.01, 2.0, x.size)
    together = sc(x[:, None], tt)
    for i in range(x.size):
        np.testing.assert_allclose(together[i], sc(x[i:i + 1, None], tt[i])[0], rtol=1e-12)
    # two dimensions, with a schedule
    mix = moons_mixture()
    sched = vp()
    sc2 = eh.mixture_score(mix, schedule=sched)
    pts = rng.normal(size=(10, 2))
    alpha, sigma = eh.ou_coefficients(0.2, schedule=sched)
    np.testing.assert_allclose(sc2(pts, 0.2), mix.diffuse(float(alpha), float(sigma)).score(pts),
                               rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------ samplers
def _data_setup(S, m, T, seed):
    p0 = eh.lattice_pmf(GM.log_prob, S)
    rng = np.random.default_rng(seed)
    n0 = rng.choice(S + 1, size=m, p=p0)
    return p0, eh.sample_forward(n0, T, S, rng)


def test_exact_sampler_reproduces_the_forward_marginals():
    S, m, T, t_min = 30, 3000, 3.0, 1e-3
    p0, n_T = _data_setup(S, m, T, 0)
    run = eh.sample_reverse_exact(eh.ExactReverseRates(p0, S), n_T, T, S, rng=1, t_min=t_min,
                                  record=2)
    assert run.states.shape == (m, 1) and run.n_clipped == 0
    assert run.n_jumps > 0 and run.n_evals > 0
    # started from exact draws of p_T, the reverse process has law p_t at every forward time t
    for k in range(1, run.times.size):
        pt = eh.marginal(p0, run.times[k], S)
        assert within_5_se(histogram(run.path[k], S), pt, m), k
        assert mean_within_5_se(run.path[k], pt), k  # catches a 5% error in the up rates
    pt = eh.marginal(p0, t_min, S)
    noise = multinomial_tv_noise(pt, m, np.random.default_rng(2))
    # the TV of m iid draws concentrates tightly around its mean (~0.02 here, standard
    # deviation ~0.004): 2.5 times the mean is > 7 standard deviations away
    assert tv(histogram(run.states, S), pt) < 2.5 * noise
    # not a vacuous bound: the start p_T is far from the target
    assert tv(histogram(n_T, S), pt) > 10 * noise


def _scalar_time_rates(p0, S):
    """reverse_rates at one common time: cheap rates for tau-leaping (one time per step)."""
    def rates(n, t):
        assert np.all(t == t[0])
        up, dn = eh.reverse_rates(n[:, 0], float(t[0]), S, p0)
        return up[:, None], dn[:, None]
    return rates


@pytest.mark.parametrize("method", ["poisson", "binomial"])
def test_tau_leaping_error_decreases_with_steps(method):
    S, m, T, t_min = 30, 3000, 3.0, 1e-3
    p0, n_T = _data_setup(S, m, T, 3)
    pt = eh.marginal(p0, t_min, S)
    noise = multinomial_tv_noise(pt, m, np.random.default_rng(4))
    rates = _scalar_time_rates(p0, S)
    coarse = eh.sample_reverse_tau(rates, n_T, T, S, rng=5, n_steps=20, t_min=t_min,
                                   method=method)
    fine = eh.sample_reverse_tau(rates, n_T, T, S, rng=6, n_steps=400, t_min=t_min,
                                 method=method)
    tv_coarse, tv_fine = tv(histogram(coarse.states, S), pt), tv(histogram(fine.states, S), pt)
    # 20 steps leave a bias (TV ~ 0.25) far above the sampling noise (~0.02); 400 steps are
    # within the noise (bound as in the exact-sampler test)
    assert tv_coarse > 5 * noise
    assert tv_fine < 2.5 * noise
    assert mean_within_5_se(fine.states, pt)
    assert coarse.n_evals == 20 and fine.n_evals == 400
    for run in (coarse, fine):
        assert run.states.min() >= 0 and run.states.max() <= S
        if method == "binomial":
            assert run.n_clipped == 0


def test_exact_sampler_with_score_rates_matches_the_reverse_kfe():
    # small S: solve the KFE of the reverse-time chain whose rates are the (approximate)
    # score-transferred rates, from the stationary start, and compare with the sampler
    S, T, t_min, m = 8, 3.0, 0.05, 4000
    rates = eh.score_rates(eh.mixture_score(GM), S)
    states = np.arange(S + 1)[:, None]

    def reverse_generators(s):
        G = np.zeros((s.size, S + 1, S + 1))
        for k, sk in enumerate(s):
            up, dn = rates(states, np.full(S + 1, T - sk))
            G[k, states[:-1, 0], states[:-1, 0] + 1] = up[:-1, 0]
            G[k, states[1:, 0], states[1:, 0] - 1] = dn[1:, 0]
            G[k, states[:, 0], states[:, 0]] = -(up[:, 0] + dn[:, 0])
        return G

    start = binom.pmf(np.arange(S + 1), S, 0.5)
    law = ctmc.solve_kfe(reverse_generators, start, [0.0, T - t_min], rtol=1e-10,
                         atol=1e-12)[-1]
    n_T = eh.sample_stationary(S, m, 9)
    run = eh.sample_reverse_exact(rates, n_T, T, S, rng=10, t_min=t_min)
    assert within_5_se(histogram(run.states, S), law, m)
    # the check has power: the law at the start is far from the end law
    assert not within_5_se(histogram(run.states, S), start, m)
    # tau-leaping with many steps lands on the same law
    tau = eh.sample_reverse_tau(rates, n_T, T, S, rng=11, n_steps=300, t_min=t_min,
                                method="binomial")
    assert tv(histogram(tau.states, S), law) < 2.5 * multinomial_tv_noise(
        law, m, np.random.default_rng(12))


def test_tau_leaping_boundaries_and_clipping():
    S, m, d = 3, 50, 2
    n_T = np.zeros((m, d), dtype=int)

    def push_up(n, t):  # a huge up rate that respects the boundary; no down moves
        return np.where(n < S, 1000.0, 0.0), np.zeros(n.shape)

    run = eh.sample_reverse_tau(push_up, n_T, 1.0, S, rng=0, n_steps=5, method="poisson")
    # the first leap (Poisson(200) moves up) overshoots S for every coordinate; afterwards
    # nothing moves; P(Poisson(200) <= 3) is astronomically small
    assert run.n_clipped == m * d
    np.testing.assert_array_equal(run.states, S)
    assert run.n_jumps == m * d * S  # jumps count the clipped increments
    run = eh.sample_reverse_tau(push_up, n_T, 1.0, S, rng=0, n_steps=5, method="binomial")
    assert run.n_clipped == 0
    np.testing.assert_array_equal(run.states, S)

    def wild(n, t):  # large rates in both directions, ignoring the boundaries
        return np.full(n.shape, 40.0), np.full(n.shape, 40.0)

    start = np.random.default_rng(1).integers(0, S + 1, (m, d))
    for method in ("poisson", "binomial"):
        run = eh.sample_reverse_tau(wild, start, 1.0, S, rng=2, n_steps=3, method=method,
                                    record=10)
        assert run.path.min() >= 0 and run.path.max() <= S
        if method == "poisson":
            assert run.n_clipped > 0
        else:
            assert run.n_clipped == 0


def test_two_dimensional_samplers_return_the_right_shapes():
    S, m = 30, 200
    rates = eh.score_rates(eh.mixture_score(moons_mixture()), S, order=2)
    n_T = eh.sample_stationary(S, (m, 2), 0)
    for run in (eh.sample_reverse_exact(rates, n_T, 2.0, S, rng=1, t_min=0.01),
                eh.sample_reverse_tau(rates, n_T, 2.0, S, rng=1, n_steps=50, t_min=0.01),
                eh.sample_reverse_tau(rates, n_T, 2.0, S, rng=1, n_steps=50, t_min=0.01,
                                      method="binomial")):
        assert run.states.shape == (m, 2)
        assert run.states.min() >= 0 and run.states.max() <= S
        assert np.issubdtype(run.states.dtype, np.integer)
        # the samples move toward the data: mean log density in the data is much higher
        x = eh.scale(run.states, S)
        assert moons_mixture().log_prob(x).mean() > moons_mixture().log_prob(
            eh.scale(n_T, S)).mean() + 1.0


@pytest.mark.parametrize("sampler", ["exact", "tau"])
def test_recorded_paths(sampler):
    S, m, T, t_min, record = 12, 30, 2.0, 0.1, 5
    p0 = eh.lattice_pmf(GM.log_prob, S)
    rates = eh.ExactReverseRates(p0, S)
    n_T = eh.sample_stationary(S, (m, 1), 0)
    if sampler == "exact":
        run = eh.sample_reverse_exact(rates, n_T, T, S, rng=1, t_min=t_min, record=record)
    else:
        run = eh.sample_reverse_tau(rates, n_T, T, S, rng=1, t_min=t_min, record=record,
                                    n_steps=50)
    assert run.path.shape == (record + 2, m, 1)
    assert run.times.shape == (record + 2,)
    np.testing.assert_array_equal(run.path[0], n_T)
    np.testing.assert_array_equal(run.path[-1], run.states)
    assert run.times[0] == pytest.approx(T) and run.times[-1] == pytest.approx(t_min)
    assert np.all(np.diff(run.times) < 0)
    assert run.path.min() >= 0 and run.path.max() <= S
    # the samplers do not modify their input
    np.testing.assert_array_equal(n_T, eh.sample_stationary(S, (m, 1), 0))


# ------------------------------------------------------------------------ bad input
def test_bad_inputs_raise_with_the_argument_name():
    p0 = np.full(6, 1 / 6)
    rates = eh.ExactReverseRates(p0, 5)
    n_T = np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="S"):
        eh.generator(0)
    with pytest.raises(ValueError, match="S"):
        eh.generator(1.5)
    with pytest.raises(ValueError, match="t must be"):
        eh.transition_matrix(5, -1.0)
    with pytest.raises(ValueError, match="t must be"):
        eh.log_transition_matrix(5, -1.0)
    with pytest.raises(ValueError, match="n0"):
        eh.mean_variance(7, 0.5, 5)
    with pytest.raises(ValueError, match="n must"):
        eh.log_transition_prob(6, 2, 0.5, 5)
    with pytest.raises(ValueError, match="n must"):
        eh.reverse_rates([-1], 0.5, 5, p0)
    with pytest.raises(ValueError, match="n0"):
        eh.sample_forward([1.5, 2.0], 0.5, 5, 0)
    with pytest.raises(ValueError, match="p0"):
        eh.reverse_rates([1], 0.5, 5, np.full(6, 0.2))
    with pytest.raises(ValueError, match="p0"):
        eh.ExactReverseRates(np.full(6, 0.2), 5)
    with pytest.raises(ValueError, match="score"):
        eh.score_to_rates(np.array([0.0, np.nan]), np.array([1, 2]), 5)
    with pytest.raises(ValueError, match="order"):
        eh.score_to_rates(np.zeros(2), np.array([1, 2]), 5, order=3)
    with pytest.raises(ValueError, match="order"):
        eh.score_rates(eh.mixture_score(GM), 5, order=3)
    with pytest.raises(ValueError, match="t_min"):
        eh.sample_reverse_exact(rates, n_T, 3.0, 5, rng=0, t_min=3.0)
    with pytest.raises(ValueError, match="t_min"):
        eh.sample_reverse_tau(rates, n_T, 3.0, 5, rng=0, n_steps=4, t_min=4.0)
    with pytest.raises(ValueError, match="method"):
        eh.sample_reverse_tau(rates, n_T, 3.0, 5, rng=0, n_steps=4, method="foo")
    with pytest.raises(ValueError, match="n_T"):
        eh.sample_reverse_tau(rates, [7], 3.0, 5, rng=0, n_steps=4)

    def negative(n, t):
        return -np.ones(n.shape), np.ones(n.shape)

    with pytest.raises(ValueError, match="rates"):
        eh.sample_reverse_exact(negative, n_T, 1.0, 5, rng=0)
    with pytest.raises(ValueError, match="rates"):
        eh.sample_reverse_tau(negative, n_T, 1.0, 5, rng=0, n_steps=3)
    with pytest.raises(ValueError, match="schedule"):
        eh.transition_matrix(5, 0.5, schedule="vp")
    with pytest.raises(ValueError, match="schedule"):
        eh.mixture_score(GM, schedule=1.0)
    with pytest.raises(ValueError, match="mixture"):
        eh.mixture_score("not a mixture")
    with pytest.raises(ValueError, match="t must be >= 0"):
        eh.mixture_score(GM)(np.zeros((3, 1)), -0.1)
    with pytest.raises(ValueError, match="rng"):
        eh.sample_forward([1], 0.5, 5, None)


# ------------------------------------------------------------------------ learning (torch)
def test_kernel_ratio_average_is_the_marginal_ratio():
    # E[p_{t|0}(n+1 | n0) / p_{t|0}(n | n0) | n_t = n] = p_t(n+1) / p_t(n): the regression
    # target of rate matching is unbiased for the exact reverse rate
    torch = pytest.importorskip("torch")
    S, t, m = 10, 0.5, 100_000
    p0 = eh.lattice_pmf(GM.log_prob, S)
    rng = np.random.default_rng(0)
    n0 = rng.choice(S + 1, size=m, p=p0)
    n = eh.sample_forward(n0, t, S, rng)
    inside = n < S
    n0, n = n0[inside], n[inside]
    lp = eh.log_transition_prob(n, n0, t, S)
    ratio = np.exp(eh.log_transition_prob(n + 1, n0, t, S) - lp)
    # the torch kernel agrees with the numpy one
    q = -0.5 * np.expm1(-t)
    lt = eh._torch_log_kernel(torch.as_tensor(n[:1000]), torch.as_tensor(n0[:1000]),
                              torch.tensor(np.log1p(-q), dtype=torch.float64),
                              torch.tensor(np.log(q), dtype=torch.float64), S)
    np.testing.assert_allclose(lt.numpy(), lp[:1000], rtol=1e-12)
    up, _ = eh.reverse_rates(np.arange(S), t, S, p0)
    exact = up / ((np.arange(S) + 1) / 2)
    for k in range(S):
        r = ratio[n == k]
        if r.size < 100:
            continue
        assert abs(r.mean() - exact[k]) <= 5 * r.std() / np.sqrt(r.size)  # 5 standard errors


def test_rate_matching_loss_is_minimised_by_the_exact_rates():
    # With the same draws, L(h + c e) - L(h - c e) = 4 c mean(mask (h - y)) for a shift of one
    # output channel e. For h = the exact conditional mean of the target, mean(mask (h - y)) is
    # zero in expectation: checked over independent batches to 5 standard errors, for both
    # channels. A model off by 0.5 in a channel is caught.
    torch = pytest.importorskip("torch")
    S, t = 10, 0.5
    p0 = eh.lattice_pmf(GM.log_prob, S)
    n_all = np.arange(S + 1)
    up, dn = eh.reverse_rates(n_all, t, S, p0)
    delta = 2 / np.sqrt(S)
    h_up = np.where(n_all < S, (up / ((n_all + 1) / 2) - 1) / delta, 0.0)
    h_dn = np.where(n_all > 0, (1 - dn / ((S - n_all + 1) / 2)) / delta, 0.0)

    def make_model(c_up, c_dn):
        def model(x, tt):
            n = np.rint(S / 2 + np.sqrt(S) / 2 * x.numpy()).astype(int)
            out = np.stack([h_up[n] + c_up, h_dn[n] + c_dn], axis=-1)
            return torch.as_tensor(out, dtype=tt.dtype)
        return model

    B, c = 20_000, 0.1
    rng = np.random.default_rng(1)
    cross = {"up": [], "down": [], "up shifted": []}
    for k in range(10):
        n0 = torch.as_tensor(rng.choice(S + 1, size=(B, 1), p=p0))
        tt = torch.full((B,), t, dtype=torch.float64)

        def loss(c_up, c_dn, k=k, n0=n0, tt=tt):
            gen = torch.Generator().manual_seed(100 + k)
            return float(eh.rate_matching_loss(make_model(c_up, c_dn), n0, tt, S,
                                               generator=gen))

        assert np.isfinite(loss(0.0, 0.0))
        cross["up"].append((loss(c, 0.0) - loss(-c, 0.0)) / (4 * c))
        cross["down"].append((loss(0.0, c) - loss(0.0, -c)) / (4 * c))
        cross["up shifted"].append((loss(0.5 + c, 0.0) - loss(0.5 - c, 0.0)) / (4 * c))
    for key in ("up", "down"):
        v = np.array(cross[key])
        assert abs(v.mean()) <= 5 * v.std(ddof=1) / np.sqrt(v.size), key
    # the shifted model has bias 0.5 * P(n < S), about 0.5; the noise is about 0.002
    assert np.mean(cross["up shifted"]) > 0.4


def test_fit_rate_model_reduces_the_loss_and_gives_rates():
    pytest.importorskip("torch")
    S = 20
    p0 = eh.lattice_pmf(GM.log_prob, S)
    data = np.random.default_rng(0).choice(S + 1, size=2000, p=p0)
    model, losses = eh.fit_rate_model(data, S, steps=200, batch=64, hidden=32, T=3.0, seed=0)
    assert losses.shape == (200,) and np.all(np.isfinite(losses))
    assert losses[-50:].mean() < losses[:50].mean()
    rates = eh.model_rates(model, S)
    n = np.arange(S + 1)
    for shape_n in (n, n[:, None]):
        up, dn = rates(shape_n, np.full(S + 1, 0.5))
        assert up.shape == dn.shape == shape_n.shape
        assert np.all(up >= 0) and np.all(dn >= 0)
        assert np.ravel(up)[S] == 0 and np.ravel(dn)[0] == 0
    # scalar times broadcast
    np.testing.assert_allclose(rates(n, 0.5)[0], rates(n, np.full(S + 1, 0.5))[0])
    # the learned up rates at t = 1 are much closer to the exact ones than the data-blind
    # rates (n+1)/2 of a zero model (observed: 0.04 against 0.41, p_t-weighted relative error)
    up, _ = rates(n, 1.0)
    exact, _ = eh.reverse_rates(n, 1.0, S, p0)
    pt = eh.marginal(p0, 1.0, S)
    m = n < S
    err_model = np.sum(pt[m] * np.abs(up[m] / exact[m] - 1))
    err_blind = np.sum(pt[m] * np.abs((n[m] + 1) / 2 / exact[m] - 1))
    assert err_model < 0.5 * err_blind
    # the learned rates can drive the samplers
    run = eh.sample_reverse_tau(rates, eh.sample_stationary(S, 100, 1), 3.0, S, rng=2,
                                n_steps=20, t_min=0.01)
    assert run.states.shape == (100, 1)


def test_cutoff_at_half_log_S():
    # Chapter 2: from n0 = S the TV distance to Binomial(S, 1/2) crosses 1/2 at t = log(S)/2 +
    # a constant: the crossing moves by log(10)/2 = 1.151 per factor 10 in S (to 0.02)
    def crossing(S):
        stat = binom.pmf(np.arange(S + 1), S, 0.5)
        lo, hi = 0.0, 20.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if tv(eh.transition_matrix(S, mid, n0=S)[0], stat) > 0.5 \
                else (lo, mid)
        return lo
    t_half = np.array([crossing(S) for S in (100, 1000, 10_000)])
    np.testing.assert_allclose(np.diff(t_half), 0.5 * np.log(10), atol=0.02)
