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
    mean_err = {}
    for n_f in (10, 1000):
        errs = []
        for seed in range(20):
            pop = ctmc.simulate(Q, ctmc.sample_states(p_data, n_f, seed), T, rng=500 + seed,
                                times=fine)
            errs.append(final_tv(fine, pop.marginals(2, pseudocount=0.5)))
        mean_err[n_f] = np.mean(errs)
    # N^{-1/2} predicts a ratio of 10 over a factor 100 in N; require more than 3
    assert mean_err[10] / mean_err[1000] > 3
    assert mean_err[1000] > floor_fine


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
