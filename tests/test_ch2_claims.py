"""Claims of Chapter 2 beyond single formulas: the Taylor expansion behind the midpoint transfer,
the lattice floor of the Wasserstein distance, the reverse-OU limit of the reverse rates, what
the thinning sampler guarantees, and the costs and accuracies the text quotes. Each could be
false; each is computed independently of the chapter's cells."""

import numpy as np
import pytest
import scipy.integrate
from scipy.stats import norm

from diffnotes import ehrenfest as eh
from diffnotes.metrics import wasserstein1
from diffnotes.mixtures import bimodal_1d

GM = bimodal_1d()


def _slope(x, y):
    return np.polyfit(np.log(x), np.log(y), 1)[0]


# ------------------------------------------------------------------ Eq. (ch2-taylor)
def test_taylor_expansion_of_the_density_ratio_and_the_midpoint_rule():
    """q(x + d)/q(x) = exp(d s + d^2/2 s' + O(d^3)) = 1 + d s + d^2/2 (s^2 + s') + O(d^3), and
    the score at the midpoint matches the exponent to O(d^3) (error d^3 s''/24). The form the
    text used to print, exp(d s + d^2/2 (s^2 + s')), is only O(d^2)."""
    alpha, sigma = eh.ou_coefficients(0.3)
    q = GM.diffuse(float(alpha), float(sigma))      # the mixture pushed through the OU process
    x = np.linspace(-3, 3, 61)
    h = 1e-4
    s = q.score(x)
    ds = (q.score(x + h) - q.score(x - h)) / (2 * h)                  # s', error ~ h^2
    d2s = (q.score(x + h) - 2 * s + q.score(x - h)) / h**2             # s'', error ~ 1e-8 / h^2
    deltas = np.array([0.2, 0.1, 0.05, 0.025])
    errs = {"exp": [], "linear": [], "midpoint": [], "printed": []}
    for d in deltas:
        log_ratio = q.log_prob(x + d) - q.log_prob(x)
        errs["exp"].append(np.abs(log_ratio - (d * s + d**2 / 2 * ds)).max())
        errs["linear"].append(np.abs(np.exp(log_ratio) - (1 + d * s + d**2 / 2 * (s**2 + ds)))
                              .max())
        mid = log_ratio - d * q.score(x + d / 2)
        errs["midpoint"].append(np.abs(mid).max())
        if d < 0.03:  # the leading term only: the next one is d^4 s''' / 48
            np.testing.assert_allclose(mid, d**3 / 24 * d2s, atol=0.02 * d**3)
        errs["printed"].append(np.abs(log_ratio - (d * s + d**2 / 2 * (s**2 + ds))).max())
    for key in ("exp", "linear", "midpoint"):
        assert 2.8 < -_slope(1 / deltas, errs[key]) < 3.2, (key, errs[key])
    assert 1.8 < -_slope(1 / deltas, errs["printed"]) < 2.2, errs["printed"]


# ------------------------------------------------------------------ the lattice floor
@pytest.mark.parametrize("S", [16, 64, 256, 1024, 4096])
def test_lattice_projection_is_half_over_sqrt_S_from_the_data(S):
    """The data moved to the nearest lattice point is E|X - x_nearest| = 1/(2 sqrt S) away in
    W1 (to 1e-3), as a brute-force integral of |F_lattice - F| confirms; the density sampled on
    the lattice (lattice_pmf) is farther, and no lattice law is closer."""
    pmf, w1 = eh.lattice_projection(GM, S)
    x = eh.scale(np.arange(S + 1), S)
    comp = zip(GM.weights, GM.means[:, 0], np.sqrt(GM.covs[:, 0, 0]), strict=True)
    params = list(comp)
    edges = np.concatenate([[-np.inf], x[:-1] + 1 / np.sqrt(S), [np.inf]])
    cdf = sum(w * norm.cdf(edges, mu, sd) for w, mu, sd in params)
    np.testing.assert_allclose(pmf, np.diff(cdf), atol=1e-15)
    g = np.linspace(-7, 7, 1_400_001)
    F = np.concatenate([[0.0], np.cumsum(pmf)])[np.searchsorted(x, g, side="right")]
    Fc = sum(w * norm.cdf(g, mu, sd) for w, mu, sd in params)
    assert w1 == pytest.approx(scipy.integrate.trapezoid(np.abs(F - Fc), g), rel=1e-4)
    assert w1 == pytest.approx(1 / (2 * np.sqrt(S)), rel=1e-3)
    other = eh.lattice_pmf(GM.log_prob, S)
    Fo = np.concatenate([[0.0], np.cumsum(other)])[np.searchsorted(x, g, side="right")]
    assert scipy.integrate.trapezoid(np.abs(Fo - Fc), g) > w1


def test_transfer_error_is_mostly_the_lattice():
    """Chapter 2's table: at S = 16 the samples of the transferred sampler are closer to the
    lattice law than the lattice law is to the data; at S = 1024 their distance to the lattice
    law is within 3 Monte Carlo floors (m = 4000 exact draws from the lattice law)."""
    sc = eh.mixture_score(GM)
    rng = np.random.default_rng(3)
    m = 4000
    for S in (16, 1024):
        run = eh.sample_reverse_tau(eh.score_rates(sc, S), eh.sample_stationary(S, (m, 1), rng),
                                    5.0, S, rng=rng, n_steps=400, t_min=1e-3)
        lattice, floor = eh.lattice_projection(GM, S)
        pts = eh.scale(np.arange(S + 1), S)
        xs = eh.scale(run.states[:, 0], S)
        to_lattice = wasserstein1(xs, pts, y_weights=lattice)
        mc = np.mean([wasserstein1(eh.scale(rng.choice(S + 1, m, p=lattice), S), pts,
                                   y_weights=lattice) for _ in range(5)])
        if S == 16:
            assert to_lattice < floor
            grid = np.linspace(-6, 6, 24001)
            assert wasserstein1(xs, grid, y_weights=np.exp(GM.log_prob(grid))) > floor * 0.99
        else:
            assert to_lattice < 3 * mc, (to_lattice, mc)


# ------------------------------------------------------------------ Eq. (ch2-reverse-limit)
@pytest.mark.parametrize("t, Ss, const", [(0.1, (256, 512, 1024, 2048), 150),
                                          (0.3, (64, 128, 256, 512, 1024), 20),
                                          (1.0, (64, 128, 256, 512, 1024), 20)])
def test_reverse_rates_converge_to_the_reverse_ou_coefficients(t, Ss, const):
    """delta (r+ - r-) -> x + 2 s(x, t) and delta^2 (r+ + r-) -> 2, both O(1/S): fitted
    log-log slopes of the sup errors over |x| <= 3 within 0.1 of -1 (at t = 0.1 the scores are
    steeper and the 1/S regime starts at larger S)."""
    sc = eh.mixture_score(GM)
    Ss = np.array(Ss)
    drift, var = [], []
    for S in Ss:
        n = np.arange(1, S)
        up, dn = eh.reverse_rates(n, t, S, eh.lattice_pmf(GM.log_prob, S))
        x, d = eh.scale(n, S), 2 / np.sqrt(S)
        bulk = np.abs(x) <= 3
        drift.append(np.abs(d * (up - dn) - (x + 2 * sc(x[:, None], t)[:, 0]))[bulk].max())
        var.append(np.abs(d**2 * (up + dn) - 2)[bulk].max())
    assert abs(_slope(Ss, drift) + 1) < 0.1, drift
    assert abs(_slope(Ss, var) + 1) < 0.1, var
    assert max(drift[-1], var[-1]) < const / Ss[-1], (drift, var)  # the constants in O(1/S)


# ------------------------------------------------------------------ samplers
def test_exact_sampler_makes_about_S_over_2_jumps_per_unit_time():
    """'The exact sampler needs about S/2 Theta(T) jumps per sample' (to 3 %)."""
    S, m, T = 256, 200, 3.0
    run = eh.sample_reverse_exact(eh.score_rates(eh.mixture_score(GM), S),
                                  eh.sample_stationary(S, (m, 1), 0), T, S, rng=1, t_min=1e-3)
    assert run.n_jumps / m == pytest.approx(S / 2 * (T - 1e-3), rel=0.03)


def test_thinning_check_sees_only_candidate_times():
    """The documented limit of sample_reverse_exact: a rate spike between candidates is not
    detected (no raise) and its jumps are missed, while a spike that a candidate hits raises."""
    S, m = 20, 200
    n_T = eh.sample_stationary(S, (m, 1), 0)

    def spiky(width):
        def rates(n, t):
            up = np.where(n < S, 1.0, 0.0)
            dn = np.where(n > 0, 1.0, 0.0)
            f = np.where(np.abs(t - 1.0) < width / 2, 1e4, 1.0)[:, None]
            return up * f, dn * f
        return rates

    # a spike of width 1e-6: about 2 e-6 candidates per sample fall into it, so none does, but
    # the process should have made ~ 2e-2 extra jumps per sample there (4 in all)
    run = eh.sample_reverse_exact(spiky(1e-6), n_T, 2.0, S, rng=0)
    assert run.n_jumps > 0
    # a wide spike is met by candidates and raises
    with pytest.raises(ValueError, match="thinning bound"):
        eh.sample_reverse_exact(spiky(0.5), n_T, 2.0, S, rng=0)


def test_tau_leaping_needs_a_few_hundred_steps_whatever_S():
    """'Tau-leaping reaches the same accuracy with a few hundred steps, independent of S': with
    200 steps, at S = 64 and at S = 4096, the samples are within 3 Monte Carlo floors of the
    lattice law in W1, as the exact sampler's are at S = 64."""
    sc = eh.mixture_score(GM)
    rng = np.random.default_rng(11)
    m, T = 2000, 5.0
    for S in (64, 4096):
        rates = eh.score_rates(sc, S)
        lattice, _ = eh.lattice_projection(GM, S)
        pts = eh.scale(np.arange(S + 1), S)

        def to_lattice(states, S=S, lattice=lattice, pts=pts):
            return wasserstein1(eh.scale(states, S), pts, y_weights=lattice)

        mc = np.mean([to_lattice(rng.choice(S + 1, m, p=lattice)) for _ in range(5)])
        n_T = eh.sample_stationary(S, (m, 1), rng)
        tau = eh.sample_reverse_tau(rates, n_T, T, S, rng=rng, n_steps=200, t_min=1e-3)
        assert to_lattice(tau.states[:, 0]) < 3 * mc, (S, to_lattice(tau.states[:, 0]), mc)
        if S == 64:
            ex = eh.sample_reverse_exact(rates, n_T, T, S, rng=rng, t_min=1e-3)
            assert to_lattice(ex.states[:, 0]) < 3 * mc


def test_exercise_stationary_chain_is_reversible():
    """Exercise ex-ch2-reversible: from Bin(S, 1/2) the reverse rates are the forward rates."""
    S = 30
    n = np.arange(S + 1)
    binom = eh.transition_matrix(S, 60.0, n0=0)[0]
    for t in (0.05, 0.7, 3.0):
        up, dn = eh.reverse_rates(n, t, S, binom)
        np.testing.assert_allclose(up, (S - n) / 2, atol=1e-9)
        np.testing.assert_allclose(dn, n / 2, atol=1e-9)
