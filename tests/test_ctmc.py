"""Numerical checks of every formula of Chapter 1 (module :mod:`diffnotes.ctmc`).

Each test compares against a closed form, an independent computation (scipy's ``expm`` or
``solve_ivp``), or a simulation with a stated statistical bound. Simulation tests use fixed seeds
and bounds of 5 standard errors at each of at most ~50 checked times, so a correct
implementation fails them with probability below 1e-4 for any seed.
"""

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

from diffnotes import ctmc


def random_generator(n, rng):
    Q = rng.uniform(0.1, 2.0, size=(n, n))
    np.fill_diagonal(Q, 0.0)
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q


def within_5_se(freq, p, n_chains):
    """|empirical - exact| <= 5 standard errors (+ a floor for p close to 0 or 1)."""
    se = np.sqrt(np.clip(p * (1 - p), 0, None) / n_chains)
    return np.all(np.abs(freq - p) <= 5 * se + 5.0 / n_chains)


# ----------------------------------------------------------------------------- the KFE
@pytest.mark.parametrize("u_ab,u_ba,p0_a", [(1.0, 0.5, 1.0), (0.0, 2.0, 0.3), (3.0, 0.0, 0.0),
                                             (0.7, 0.7, 0.5), (0.0, 0.0, 0.2)])
def test_two_state_closed_form_matches_expm(u_ab, u_ba, p0_a):
    Q = ctmc.two_state_generator(u_ab, u_ba)
    t = np.linspace(0, 7, 29)
    closed = ctmc.two_state_marginals(u_ab, u_ba, p0_a, t)
    via_expm = np.array([np.array([p0_a, 1 - p0_a]) @ scipy.linalg.expm(s * Q) for s in t])
    np.testing.assert_allclose(closed, via_expm, atol=1e-12)
    np.testing.assert_allclose(ctmc.forward_marginals(Q, [p0_a, 1 - p0_a], t), via_expm,
                               atol=1e-12)


def test_transition_matrix_is_stochastic_and_semigroup():
    rng = np.random.default_rng(0)
    Q = random_generator(4, rng)
    P1, P2, P3 = (ctmc.transition_matrix(Q, t) for t in (0.4, 0.7, 1.1))
    np.testing.assert_allclose(P1.sum(axis=1), 1.0)
    assert np.all(P1 >= 0)
    np.testing.assert_allclose(P1 @ P2, P3, atol=1e-12)  # Chapman-Kolmogorov
    np.testing.assert_allclose(ctmc.transition_matrix(Q, 0.0), np.eye(4))


def test_forward_marginals_solve_the_kfe_ode():
    rng = np.random.default_rng(1)
    Q = random_generator(5, rng)
    p0 = rng.dirichlet(np.ones(5))
    t = np.linspace(0, 3, 13)
    sol = scipy.integrate.solve_ivp(lambda s, p: p @ Q, (0, 3), p0, t_eval=t, rtol=1e-11,
                                    atol=1e-13)
    np.testing.assert_allclose(ctmc.forward_marginals(Q, p0, t), sol.y.T, atol=1e-9)


def test_forward_marginals_defective_generator_falls_back_to_expm():
    # 0 -> 1 -> 2 at equal rates: eigenvalue -1 is defective (a Jordan block).
    Q = np.array([[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0], [0.0, 0.0, 0.0]])
    t = np.array([0.0, 0.5, 1.0, 4.0])
    expected = np.array([[1.0, 0, 0] @ scipy.linalg.expm(s * Q) for s in t])
    # closed form: P(X_t = 1) = t e^{-t} for a chain started in 0
    np.testing.assert_allclose(expected[:, 1], t * np.exp(-t), atol=1e-12)
    np.testing.assert_allclose(ctmc.forward_marginals(Q, [1, 0, 0], t), expected, atol=1e-10)


def test_solve_kfe_matches_closed_forms():
    Q = ctmc.two_state_generator(1.3, 0.4)
    t = np.linspace(0, 4, 9)
    np.testing.assert_allclose(ctmc.solve_kfe(Q, [0.2, 0.8], t),
                               ctmc.two_state_marginals(1.3, 0.4, 0.2, t), atol=1e-8)

    # time-dependent rates G_t = (1 + sin t) Q: p_t = p_0 expm(L(t) Q), L(t) = t + 1 - cos t
    def rates(s):
        return (1 + np.sin(s))[:, None, None] * Q[None]

    expected = np.array([[0.2, 0.8] @ scipy.linalg.expm((s + 1 - np.cos(s)) * Q) for s in t])
    np.testing.assert_allclose(ctmc.solve_kfe(rates, [0.2, 0.8], t), expected, atol=1e-8)


def test_two_state_eigenvalues_equilibrium_and_gap():
    u_ab, u_ba = 1.7, 0.3
    Q = ctmc.two_state_generator(u_ab, u_ba)
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(Q).real), [-(u_ab + u_ba), 0.0],
                               atol=1e-12)
    np.testing.assert_allclose(ctmc.stationary_distribution(Q),
                               [u_ba / (u_ab + u_ba), u_ab / (u_ab + u_ba)], atol=1e-12)
    assert ctmc.spectral_gap(Q) == pytest.approx(u_ab + u_ba, rel=1e-12)


def test_two_state_distance_to_equilibrium_decays_exactly_with_the_gap():
    # For two states the constant M of the note is 1: ||x_t - pi||_1 = ||x_0 - pi||_1 e^{-gap t}
    u_ab, u_ba = 0.9, 2.1
    Q = ctmc.two_state_generator(u_ab, u_ba)
    pi = ctmc.stationary_distribution(Q)
    t = np.linspace(0, 3, 7)
    p = ctmc.forward_marginals(Q, [1.0, 0.0], t)
    dist = np.abs(p - pi).sum(axis=1)
    np.testing.assert_allclose(dist, np.abs([1.0, 0.0] - pi).sum() * np.exp(-3.0 * t), rtol=1e-9)


def test_stationary_distribution_of_random_generators():
    rng = np.random.default_rng(2)
    for n in (2, 3, 6, 10):
        Q = random_generator(n, rng)
        pi = ctmc.stationary_distribution(Q)
        assert pi.sum() == pytest.approx(1.0)
        assert np.all(pi > 0)
        np.testing.assert_allclose(pi @ Q, 0.0, atol=1e-12)
        # the marginal from any start converges to pi
        np.testing.assert_allclose(ctmc.forward_marginals(Q, np.eye(n)[0], [200.0])[0], pi,
                                   atol=1e-10)


def test_stationary_distribution_refuses_reducible_chains():
    Q = np.zeros((3, 3))
    Q[0, 1], Q[0, 0] = 1.0, -1.0  # states 1 and 2 are both absorbing
    with pytest.raises(ValueError, match="irreducible"):
        ctmc.stationary_distribution(Q)


# ------------------------------------------------------------------ noising and classical chains
def test_uniform_generator_has_uniform_equilibrium_and_gap_equal_to_rate():
    for n, rate in [(2, 1.0), (5, 0.7), (12, 3.0)]:
        Q = ctmc.uniform_generator(n, rate)
        np.testing.assert_allclose(ctmc.stationary_distribution(Q), np.full(n, 1 / n))
        assert ctmc.spectral_gap(Q) == pytest.approx(rate, rel=1e-10)
    # n = 2 is the note's forward chain with u_AB = u_BA = C / 2
    np.testing.assert_allclose(ctmc.uniform_generator(2, 2.0), ctmc.two_state_generator(1, 1))


@pytest.mark.parametrize("p", [[1.0, 0.0], [0.5, 0.5], [0.9, 0.1], [0.05, 0.2, 0.75],
                               [0.7, 0.0, 0.2, 0.1]])
def test_independence_chain_gap_is_rate_whatever_p(p):
    C = 1.6
    Q = ctmc.independence_generator(p, C)
    np.testing.assert_allclose(ctmc.stationary_distribution(Q), p, atol=1e-12)
    assert ctmc.spectral_gap(Q) == pytest.approx(C, rel=1e-10)
    if len(p) == 2:  # the note's classical rates: u_AB = C p_B, u_BA = C p_A
        np.testing.assert_allclose(Q, ctmc.two_state_generator(C * p[1], C * p[0]))


def test_metropolis_detailed_balance_and_random_walk_gap():
    rng = np.random.default_rng(3)
    n = 9
    p = rng.dirichlet(np.ones(n))
    A = ctmc.path_adjacency(n)
    Q = ctmc.metropolis_generator(p, A, 1.5)
    flux = p[:, None] * Q
    np.testing.assert_allclose(flux, flux.T, atol=1e-14)  # detailed balance
    np.testing.assert_allclose(ctmc.stationary_distribution(Q), p, atol=1e-10)
    # uniform target: the simple random walk on the path, gap 2 C (1 - cos(pi / n))
    Qrw = ctmc.metropolis_generator(np.full(n, 1 / n), A, 1.5)
    assert ctmc.spectral_gap(Qrw) == pytest.approx(2 * 1.5 * (1 - np.cos(np.pi / n)), rel=1e-9)


def test_two_peaks_family():
    np.testing.assert_allclose(ctmc.two_peaks(10, 0.0), np.full(10, 0.1))
    n, beta = 13, 2.5
    p = ctmc.two_peaks(n, beta)
    assert p.sum() == pytest.approx(1.0)
    # n - 1 = 12: modes at 3 and 9, valley at 6, distance (n - 1) / 4 = 3 from both modes
    assert p[6] / p[3] == pytest.approx(np.exp(-beta))
    assert p[3] == pytest.approx(p[9]) and p[3] == pytest.approx(p.max())
    assert p[6] == pytest.approx(p[:4].min()) and p[6] == pytest.approx(p[3:10].min())
    # p(x) ~ exp(-beta d(x)), d = distance to the nearer mode in units of (n - 1) / 4
    d = np.minimum(np.abs(np.arange(n) - 3), np.abs(np.arange(n) - 9)) / 3
    np.testing.assert_allclose(p, np.exp(-beta * d) / np.exp(-beta * d).sum(), rtol=1e-12)


def test_metropolis_gap_collapses_for_peaked_bimodal_targets_but_noising_gap_does_not():
    n, C = 12, 1.0
    A = ctmc.path_adjacency(n)
    gaps = [ctmc.spectral_gap(ctmc.metropolis_generator(ctmc.two_peaks(n, b), A, C))
            for b in (0.0, 2.0, 4.0, 8.0)]
    assert np.all(np.diff(gaps) < 0)
    assert gaps[-1] < 0.05 * gaps[0]
    # Arrhenius law: for n = 13 the valley/peak mass ratio is e^{-beta}, and log(gap) falls
    # with slope -1 in beta once the valley is deep
    A13 = ctmc.path_adjacency(13)
    g10, g12 = (ctmc.spectral_gap(ctmc.metropolis_generator(ctmc.two_peaks(13, b), A13, C))
                for b in (10.0, 12.0))
    assert -1.05 < np.log(g12 / g10) / 2 < -0.95
    # noising chains do not see p_data at all
    assert ctmc.spectral_gap(ctmc.uniform_generator(n, C)) == pytest.approx(C)


# ------------------------------------------------------------------------------- time reversal
def test_reverse_generator_is_a_generator_and_formula():
    rng = np.random.default_rng(4)
    Q = random_generator(4, rng)
    p = rng.dirichlet(np.ones(4))
    R = ctmc.reverse_generator(Q, p)
    ctmc.check_generator(R)
    for x in range(4):
        for y in range(4):
            if x != y:
                assert R[x, y] == pytest.approx(Q[y, x] * p[y] / p[x])
    # stacked marginals give stacked generators
    P = rng.dirichlet(np.ones(4), size=3)
    Rs = ctmc.reverse_generator(Q, P)
    for k in range(3):
        np.testing.assert_allclose(Rs[k], ctmc.reverse_generator(Q, P[k]))


def test_reverse_of_stationary_reversible_chain_is_itself():
    p = np.array([0.1, 0.6, 0.3])
    Q = ctmc.metropolis_generator(p, np.ones((3, 3)) - np.eye(3))
    np.testing.assert_allclose(ctmc.reverse_generator(Q, p), Q, atol=1e-14)


def test_reverse_chain_reproduces_forward_marginals_backwards():
    # Solve the reverse KFE from p_T with the time-varying reverse generator (solve_ivp) and
    # compare with the forward marginals read backwards: q_t = p_{T - t}.
    rng = np.random.default_rng(5)
    Q = random_generator(4, rng)
    p0 = np.array([0.7, 0.2, 0.1, 0.0])  # a zero in the data distribution
    T, eps = 2.0, 1e-3

    def marg(s):
        return ctmc.forward_marginals(Q, p0, s)

    rates = ctmc.reverse_rates(Q, marg, T)
    t = np.linspace(0, T - eps, 21)
    q = ctmc.solve_kfe(rates, marg([T])[0], t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(q, marg(T - t), atol=1e-7)


def test_reverse_rate_into_a_data_zero_blows_up_like_one_over_time_left():
    # data (1, 0), forward u_AB = u_BA = C/2: the reverse rate B -> A at forward time s is
    # (C/2) x_A(s) / x_B(s) ~ 1 / s as s -> 0.
    C = 2.0
    Q = ctmc.uniform_generator(2, C)
    s = np.array([1e-2, 1e-3, 1e-4])
    R = ctmc.reverse_generator(Q, ctmc.forward_marginals(Q, [1.0, 0.0], s))
    np.testing.assert_allclose(R[:, 1, 0] * s, 1.0, rtol=2 * C * s.max())
    with pytest.raises(ValueError, match="p must be strictly positive"):
        ctmc.reverse_generator(Q, [1.0, 0.0])


def test_reverse_kernel_bayes_and_small_step_limit():
    rng = np.random.default_rng(6)
    Q = random_generator(3, rng)
    p_s = np.array([0.5, 0.5, 0.0])
    for dt in (0.05, 0.5, 2.0):
        K = ctmc.reverse_kernel(Q, p_s, dt)
        np.testing.assert_allclose(K.sum(axis=1), 1.0)
        p_t = p_s @ scipy.linalg.expm(dt * Q)
        np.testing.assert_allclose(p_t @ K, p_s, atol=1e-12)  # the kernel carries p_t to p_s
        assert np.all(K[:, 2] == 0)  # never lands on a state of zero mass
    # for small dt, K = I + dt R(p_{s+dt}) + O(dt^2)
    p_s = rng.dirichlet(np.ones(3))
    dt = 1e-5
    K = ctmc.reverse_kernel(Q, p_s, dt)
    R = ctmc.reverse_generator(Q, p_s @ scipy.linalg.expm(dt * Q))
    np.testing.assert_allclose((K - np.eye(3)) / dt, R, rtol=1e-3, atol=1e-3)


def test_empirical_marginals_and_step_interpolant():
    states = np.array([[0, 0, 1, 1], [0, 0, 0, 0]])
    np.testing.assert_allclose(ctmc.empirical_marginals(states, 2), [[0.5, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(ctmc.empirical_marginals(states, 2, pseudocount=1.0),
                               [[0.5, 0.5], [5 / 6, 1 / 6]])
    f = ctmc.step_interpolant([0.0, 1.0, 2.0], np.array([[1.0], [2.0], [3.0]]))
    np.testing.assert_allclose(f([0.0, 0.5, 1.0, 1.99, 2.0, 5.0])[:, 0], [1, 1, 2, 2, 3, 3])


# ---------------------------------------------------------------------------------- simulation
def test_gillespie_population_matches_kfe():
    Q = ctmc.two_state_generator(1.0, 0.5)
    N = 20_000
    pop = ctmc.simulate(Q, np.zeros(N, dtype=int), 4.0, rng=10, times=np.linspace(0, 4, 41))
    exact = ctmc.two_state_marginals(1.0, 0.5, 1.0, pop.times)
    assert within_5_se(pop.marginals(2)[:, 0], exact[:, 0], N)
    assert np.all(pop.states[0] == 0)


def test_gillespie_n_states_and_jump_counts():
    rng = np.random.default_rng(11)
    Q = random_generator(4, rng)
    N = 20_000
    p0 = np.array([0.4, 0.3, 0.2, 0.1])
    x0 = ctmc.sample_states(p0, N, rng)
    pop = ctmc.simulate(Q, x0, 2.0, rng=rng, times=np.linspace(0, 2, 11))
    exact = ctmc.forward_marginals(Q, p0, pop.times)
    assert within_5_se(pop.marginals(4), exact, N)
    # with equal exit rates lam from every state, jumps form a Poisson(lam T) count
    lam, T = 1.5, 3.0
    pop = ctmc.simulate(ctmc.uniform_generator(3, lam * 3 / 2), np.zeros(N, dtype=int), T,
                        rng=12)
    mean, var = pop.n_jumps.mean(), pop.n_jumps.var()
    assert abs(mean - lam * T) < 5 * np.sqrt(lam * T / N)
    assert abs(var / (lam * T) - 1) < 0.06  # sd of the sample variance ratio ~ 0.012 here


def test_thinning_matches_time_dependent_closed_form():
    Q = ctmc.two_state_generator(1.0, 0.3)

    def rates(s):
        return (1 + np.sin(3 * s))[:, None, None] * Q[None]

    N, T = 20_000, 3.0
    pop = ctmc.simulate(rates, np.zeros(N, dtype=int), T, rng=13, times=np.linspace(0, T, 31))
    L = pop.times + (1 - np.cos(3 * pop.times)) / 3
    exact = np.array([[1.0, 0.0] @ scipy.linalg.expm(l_ * Q) for l_ in L])
    assert within_5_se(pop.marginals(2)[:, 0], exact[:, 0], N)


def test_reverse_population_ends_at_the_data_distribution():
    # Forward noising from data (0.8, 0.2, 0) on 3 states; the reverse chain started from the
    # exact p_T, run to T - eps, then the exact last step, is distributed as the data.
    Q = ctmc.uniform_generator(3, 1.0)
    p_data = np.array([0.8, 0.2, 0.0])
    T, eps, N = 3.0, 1e-3, 20_000

    def marg(s):
        return ctmc.forward_marginals(Q, p_data, s)

    rng = np.random.default_rng(14)
    x0 = ctmc.sample_states(marg([T])[0], N, rng)
    pop = ctmc.simulate(ctmc.reverse_rates(Q, marg, T), x0, T - eps, rng=rng,
                        times=np.linspace(0, T - eps, 31))
    assert within_5_se(pop.marginals(3), marg(T - pop.times), N)
    x_end = ctmc.sample_transitions(ctmc.reverse_kernel(Q, p_data, eps), pop.states[-1], rng)
    assert within_5_se(np.bincount(x_end, minlength=3) / N, p_data, N)
    assert np.all(x_end != 2)


def test_thinning_refuses_a_rate_bound_that_is_too_small():
    Q = ctmc.two_state_generator(5.0, 5.0)

    def rates(s):
        return np.repeat(Q[None], len(s), axis=0)

    with pytest.raises(ValueError, match="rate_bound"):
        ctmc.simulate(rates, np.zeros(100, dtype=int), 2.0, rng=0, rate_bound=1.0)


def test_fixed_step_population_follows_its_own_law_and_its_bias_is_first_order():
    u_ab, u_ba, dt, T, N = 1.0, 0.5, 0.25, 3.0, 20_000
    Q = ctmc.two_state_generator(u_ab, u_ba)
    pop = ctmc.simulate_fixed_step(Q, np.zeros(N, dtype=int), T, dt, rng=15)
    law = np.array([np.linalg.matrix_power(np.eye(2) + dt * Q, k)[0] for k in range(13)])
    assert within_5_se(pop.marginals(2)[:, 0], law[:, 0], N)
    # the scheme keeps the right equilibrium: pi (I + dt Q) = pi
    pi = ctmc.stationary_distribution(Q)
    np.testing.assert_allclose(pi @ (np.eye(2) + dt * Q), pi, atol=1e-15)
    # leading-order bias at time t: -(x0 - pi) lam^2 t dt e^{-lam t} / 2, lam = u_AB + u_BA
    lam, pi_a, t = u_ab + u_ba, u_ba / (u_ab + u_ba), 1.0
    for dt in (1e-2, 1e-3):
        k = int(round(t / dt))
        bias = np.linalg.matrix_power(np.eye(2) + dt * Q, k)[0, 0] - \
            ctmc.two_state_marginals(u_ab, u_ba, 1.0, [t])[0, 0]
        predicted = -(1 - pi_a) * lam**2 * t * dt * np.exp(-lam * t) / 2
        assert bias == pytest.approx(predicted, rel=3 * lam * dt + 1e-3)


def test_fixed_step_with_time_dependent_rates_converges_to_the_exact_law():
    Q = ctmc.two_state_generator(1.0, 0.3)

    def rates(s):
        return (1 + np.sin(3 * s))[:, None, None] * Q[None]

    T = 2.0
    exact = [1.0, 0.0] @ scipy.linalg.expm((T + (1 - np.cos(3 * T)) / 3) * Q)
    errs = []
    for dt in (0.1, 0.05, 0.025):
        p = np.array([1.0, 0.0])
        for k in range(int(round(T / dt))):
            p = p @ (np.eye(2) + dt * rates(np.array([k * dt]))[0])
        errs.append(abs(p[0] - exact[0]))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    np.testing.assert_allclose(ratios, 2.0, rtol=0.15)  # first order: halving dt halves it


def test_simulations_are_reproducible_from_the_seed():
    Q = ctmc.two_state_generator(1.0, 2.0)
    a = ctmc.simulate(Q, np.zeros(50, dtype=int), 2.0, rng=7)
    b = ctmc.simulate(Q, np.zeros(50, dtype=int), 2.0, rng=7)
    np.testing.assert_array_equal(a.states, b.states)


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,arg", [
    (lambda: ctmc.two_state_generator(-1.0, 1.0), "u_ab"),
    (lambda: ctmc.two_state_generator(1.0, float("nan")), "u_ba"),
    (lambda: ctmc.check_generator([[-1.0, 1.0], [1.0, -2.0]]), "row 1"),
    (lambda: ctmc.check_generator([[1.0, -1.0], [1.0, -1.0]]), "non-negative off-diagonal"),
    (lambda: ctmc.check_generator([[0.0, 0.0, 0.0]]), "square"),
    (lambda: ctmc.forward_marginals([[-1.0, 1.0], [1.0, -1.0]], [0.6, 0.6], [1.0]), "p0"),
    (lambda: ctmc.forward_marginals([[-1.0, 1.0], [1.0, -1.0]], [1.0, 0.0, 0.0], [1.0]), "p0"),
    (lambda: ctmc.forward_marginals([[-1.0, 1.0], [1.0, -1.0]], [1.0, 0.0], [-1.0]), "times"),
    (lambda: ctmc.two_state_marginals(1.0, 1.0, 1.5, [0.0]), "p0_a"),
    (lambda: ctmc.transition_matrix([[-1.0, 1.0], [1.0, -1.0]], -0.5), "t"),
    (lambda: ctmc.piecewise_marginals([[-1.0, 1.0], [1.0, -1.0]], [1.0, 0.0], [1.0, 0.5]),
     "edges"),
    (lambda: ctmc.step_interpolant([0.0, 1.0], np.ones((3, 2))), "values"),
    (lambda: ctmc.sample_transitions([[0.5, 0.6], [0.5, 0.5]], [0, 1], 0), "P"),
    (lambda: ctmc.reverse_generator([[-1.0, 1.0], [1.0, -1.0]], [1.0, 0.0]), "p"),
    (lambda: ctmc.reverse_generator([[-1.0, 1.0], [1.0, -1.0]], [0.5, 0.25, 0.25]), "p"),
    (lambda: ctmc.reverse_rates([[-1.0, 1.0], [1.0, -1.0]], lambda s: s, -1.0), "T"),
    (lambda: ctmc.uniform_generator(1), "n"),
    (lambda: ctmc.metropolis_generator([0.5, 0.5], [[0, 1], [0, 0]]), "adjacency"),
    (lambda: ctmc.metropolis_generator([0.5, 0.5, 0.0], ctmc.path_adjacency(3)), "p"),
    (lambda: ctmc.simulate([[-1.0, 1.0], [1.0, -1.0]], [0, 2], 1.0, rng=0), "x0"),
    (lambda: ctmc.simulate([[-1.0, 1.0], [1.0, -1.0]], [0.0, 1.0], 1.0, rng=0), "x0"),
    (lambda: ctmc.simulate([[-1.0, 1.0], [1.0, -1.0]], [0, 1], 0.0, rng=0), "T"),
    (lambda: ctmc.simulate([[-1.0, 1.0], [1.0, -1.0]], [0, 1], 1.0, rng=None), "rng"),
    (lambda: ctmc.simulate([[-1.0, 1.0], [1.0, -1.0]], [0, 1], 1.0, rng=0, times=[0, 2]),
     "times"),
    (lambda: ctmc.simulate_fixed_step([[-4.0, 4.0], [1.0, -1.0]], [0, 1], 1.0, 0.5, rng=0),
     "dt"),
    (lambda: ctmc.simulate_fixed_step([[-1.0, 1.0], [1.0, -1.0]], [0, 1], 1.0, 0.3, rng=0),
     "dt must divide T"),
    (lambda: ctmc.empirical_marginals(np.array([[0, 3]]), 2), "states"),
    (lambda: ctmc.sample_states([0.5, 0.6], 10, 0), "p"),
    (lambda: ctmc.two_peaks(10, -1.0), "beta"),
    (lambda: ctmc.stationary_distribution(np.array([[np.inf, 0.0], [0.0, 0.0]])), "Q"),
])
def test_bad_input_raises_a_value_error_naming_the_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
