"""Claims of Chapter 1 beyond single formulas: rates of convergence, costs of estimation, the
corrections to the note. Each could be false; each is computed independently of the chapter."""

import numpy as np
import pytest

from diffnotes import ctmc
from diffnotes.metrics import total_variation as tv

C = 1.0
NOISE = np.array([0.5, 0.5])


def test_total_variation():
    assert tv([1, 0], [0, 1]) == 1.0
    assert tv([0.5, 0.5], [0.8, 0.2]) == pytest.approx(0.3)
    np.testing.assert_allclose(tv([[1, 0], [0.5, 0.5]], [0.5, 0.5]), [0.5, 0.0])
    with pytest.raises(ValueError, match="q"):
        tv([1, 0], [1, 0, 0])


def test_classical_and_noising_gaps_are_both_C_the_notes_half_C_is_wrong():
    for pa in (1.0, 0.9, 0.5, 0.0):
        assert ctmc.spectral_gap(ctmc.independence_generator([pa, 1 - pa], C)) == \
            pytest.approx(C)
    assert ctmc.spectral_gap(ctmc.uniform_generator(2, C)) == pytest.approx(C)


@pytest.mark.parametrize("pa", [0.9, 0.6, 0.5])
def test_gap_under_a_cap_on_each_rate(pa):
    # classical rates scaled so that the larger one equals C: gap C (1 + p_min / p_max)
    pb = 1 - pa
    scale = C / max(pa, pb)
    Q = ctmc.two_state_generator(scale * pb, scale * pa)
    assert max(Q[0, 1], Q[1, 0]) == pytest.approx(C)
    np.testing.assert_allclose(ctmc.stationary_distribution(Q), [pa, pb])
    assert ctmc.spectral_gap(Q) == pytest.approx(C * (1 + min(pa, pb) / max(pa, pb)))
    # the noising chain with both rates at the cap has gap 2C
    assert ctmc.spectral_gap(ctmc.two_state_generator(C, C)) == pytest.approx(2 * C)


def test_reverse_error_identity_and_doubled_exponent():
    p_data = np.array([0.8, 0.2])
    Q = ctmc.uniform_generator(2, C)
    errs_d, errs_c = [], []
    for T in (4.0, 5.0, 6.0):
        K = ctmc.reverse_kernel(Q, p_data, T)
        p_T = ctmc.forward_marginals(Q, p_data, [T])[0]
        # Eq. (ch1-reverse-error)
        lhs = NOISE @ K - p_data
        rhs = sum((NOISE[x] - p_T[x]) * (K[x] - p_data) for x in range(2))
        np.testing.assert_allclose(lhs, rhs, atol=1e-15)
        # the final law computed independently: reverse KFE from the noise, then exact step
        eps = 1e-3
        rates = ctmc.reverse_rates(Q, lambda s: ctmc.forward_marginals(Q, p_data, s), T)
        q = ctmc.solve_kfe(rates, NOISE, [0.0, T - eps], rtol=1e-11, atol=1e-14)[-1]
        np.testing.assert_allclose(q @ ctmc.reverse_kernel(Q, p_data, eps), NOISE @ K, atol=1e-8)
        errs_d.append(tv(NOISE @ K, p_data))
        errs_c.append(tv(ctmc.forward_marginals(ctmc.independence_generator(p_data, C), NOISE,
                                                [T])[0], p_data))
    np.testing.assert_allclose(np.array(errs_d[1:]) / errs_d[:-1], np.exp(-2 * C), rtol=0.02)
    np.testing.assert_allclose(np.array(errs_c[1:]) / errs_c[:-1], np.exp(-C), rtol=1e-9)
    # data with a zero: the reverse kernel forgets its start entirely, the error is 0
    K = ctmc.reverse_kernel(Q, [1.0, 0.0], 2.0)
    np.testing.assert_allclose(NOISE @ K, [1.0, 0.0], atol=1e-15)


def test_early_stopping_error():
    Q = ctmc.uniform_generator(2, C)
    for eps in (0.1, 0.01, 0.001):
        p_eps = ctmc.forward_marginals(Q, [1.0, 0.0], [eps])[0]
        assert p_eps[1] == pytest.approx(0.5 * (1 - np.exp(-C * eps)), rel=1e-10)


def test_estimated_marginals_cost_accuracy_at_the_monte_carlo_rate():
    """The TV error of the reverse chain driven by estimated marginals falls like N^{-1/2}: the
    log-log slope fitted over N_f = 10 ... 3000 (80 populations each) lies in [-0.6, -0.4].
    With 80 populations the mean error has a relative standard error of about 8 %, which
    moves the fitted slope by about 0.015 (one standard deviation): the bound is ~6 of them."""
    p_data = np.array([0.8, 0.2])
    Q = ctmc.uniform_generator(2, C)
    T = 3.0

    def final_tv(grid, marginals):
        rates = ctmc.reverse_rates(Q, ctmc.step_interpolant(grid, marginals), T)
        return tv(ctmc.piecewise_marginals(rates, NOISE, T - grid[::-1])[-1], p_data)

    # the floor: exact marginals on the grid; it shrinks as the grid is refined
    coarse, fine = np.linspace(0, T, 61), np.linspace(0, T, 301)
    floor_coarse = final_tv(coarse, ctmc.forward_marginals(Q, p_data, coarse))
    floor_fine = final_tv(fine, ctmc.forward_marginals(Q, p_data, fine))
    assert floor_fine < floor_coarse / 3
    sizes = np.array([10, 30, 100, 300, 1000, 3000])
    mean_err = []
    for n_f in sizes:
        errs = []
        for seed in range(80):
            pop = ctmc.simulate(Q, ctmc.sample_states(p_data, n_f, seed), T, rng=500 + seed,
                                times=fine)
            errs.append(final_tv(fine, pop.marginals(2, pseudocount=0.5)))
        mean_err.append(np.mean(errs))
    slope = np.polyfit(np.log(sizes), np.log(mean_err), 1)[0]
    assert -0.6 <= slope <= -0.4, (slope, mean_err)
    assert mean_err[-1] > 3 * floor_fine   # the sizes fitted are above the floor


def test_arrhenius_local_slope_of_the_metropolis_gap():
    """Chapter 1: for two_peaks(13, beta) and local Metropolis moves, d log(gap) / d beta is
    -0.07 at beta = 0, between -0.95 and -0.65 on [3, 8] (falling), and tends to -1 only for
    deep valleys. Local slopes by central differences of the exact spectral gap."""
    A = ctmc.path_adjacency(13)

    def log_gap(b):
        return np.log(ctmc.spectral_gap(ctmc.metropolis_generator(ctmc.two_peaks(13, b), A, C)))

    h = 1e-4

    def slope(b):
        return (log_gap(b + h) - log_gap(b - h)) / (2 * h)

    mid = np.array([slope(b) for b in np.linspace(3, 8, 11)])
    assert np.all(np.diff(mid) < 0)
    assert -0.95 < mid.min() and mid.max() < -0.65, mid
    assert -0.1 < (log_gap(h) - log_gap(0.0)) / h < -0.05
    assert slope(16.0) == pytest.approx(-1.0, abs=0.01)
    # the chapter's grid derivative (np.gradient, step 0.1) agrees with the local slopes
    betas = np.linspace(0, 16, 161)
    grid = np.gradient([log_gap(b) for b in betas], betas)
    for b in (3.0, 8.0, 16.0):
        assert grid[np.argmin(np.abs(betas - b))] == pytest.approx(slope(b), abs=2e-3)


def test_exercise_euler_oscillates_exactly_when_dt_exceeds_one_over_the_gap():
    """Exercise ch1-ex-euler: the Euler chain's second eigenvalue 1 - lambda dt is negative for
    dt > 1/lambda, and the recursion (ch1-euler) then overshoots pi at every step."""
    u_ab, u_ba = 1.0, 0.5
    Q = ctmc.two_state_generator(u_ab, u_ba)
    lam = u_ab + u_ba
    pi_a = ctmc.stationary_distribution(Q)[0]
    for dt, oscillates in ((0.5 / lam, False), (0.9 / lam, False), (1.2 / lam, True),
                           (1 / max(u_ab, u_ba), True)):
        ev = np.sort(np.linalg.eigvals(np.eye(2) + dt * Q).real)
        assert ev[0] == pytest.approx(1 - lam * dt) and ev[1] == pytest.approx(1.0)
        p, signs = np.array([1.0, 0.0]), []
        for _ in range(6):
            p = p @ (np.eye(2) + dt * Q)
            signs.append(np.sign(p[0] - pi_a))
        assert (np.all(np.diff(signs) != 0)) == oscillates


def test_exercise_early_stopping_proposals_grow_like_log_not_one_over_eps():
    """Exercise ch1-ex-early-stopping: with p_data = (1, 0) the reverse rate B -> A is about
    1/(T - t); one global bound costs about (1 - eps)/eps proposals on [T - 1, T - eps], while
    simulate's piecewise bounds cost O(log(1/eps)) (expected proposals = sum of bound x length).
    """
    Q = ctmc.uniform_generator(2, C)
    T = 3.0
    rates = ctmc.reverse_rates(Q, lambda s: ctmc.forward_marginals(Q, [1.0, 0.0], s), T)
    cost = {}
    for eps in (1e-2, 1e-3, 1e-4):
        span = T - eps

        def shifted(t, span=span):  # the stretch [T - 1, T - eps] mapped to [0, 1 - eps]
            return rates(t + (T - 1.0))

        global_bound = -rates(np.array([span]))[0, 1, 1]        # the largest rate there
        assert global_bound * (1 - eps) == pytest.approx((1 - eps) / eps, rel=0.01)
        segments = ctmc._thinning_segments(shifted, 1.0 - eps)
        cost[eps] = sum(lam * (b - a) for a, b, lam in segments)
    # per factor 10 in 1/eps the piecewise cost grows by a bounded amount (~ c log 10), not x10
    steps = np.diff([cost[e] for e in (1e-2, 1e-3, 1e-4)])
    assert np.all(steps > 0) and np.all(steps < 5 * np.log(10)), cost
    assert cost[1e-4] < 0.01 * (1 - 1e-4) / 1e-4


def test_note_estimator_without_pseudocount_divides_by_zero():
    Q = ctmc.uniform_generator(2, C)
    grid = np.linspace(0, 1, 11)
    pop = ctmc.simulate(Q, np.zeros(100, dtype=int), 1.0, rng=0, times=grid)
    p_hat = pop.marginals(2)  # all chains start in A: p_hat(B) = 0 at s = 0
    rates = ctmc.reverse_rates(Q, ctmc.step_interpolant(grid, p_hat), 1.0)
    with pytest.raises(ValueError, match="strictly positive"):
        rates(np.array([1.0]))
    assert np.all(np.isfinite(ctmc.reverse_rates(
        Q, ctmc.step_interpolant(grid, pop.marginals(2, pseudocount=0.5)), 1.0)(grid)))
