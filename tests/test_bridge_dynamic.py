"""The dynamic Schrödinger bridge (diffnotes.bridge_dynamic) and OT / SB flow matching
(diffnotes.ot_couplings)."""

import numpy as np
import pytest

from diffnotes import bridge_dynamic as bd
from diffnotes.bridge import empirical_cross_cov, gaussian_bridge


@pytest.fixture(scope="module")
def bridge2d():
    return gaussian_bridge([1.0, -1.0], [[2.0, 0.5], [0.5, 1.0]], [-1.0, 2.0],
                           [[0.5, -0.2], [-0.2, 1.5]], 0.8)


def _cov_se(cov, n):
    """Standard error of each entry of a sample covariance of n Gaussian draws."""
    v = np.diag(cov)
    return np.sqrt((np.outer(v, v) + cov**2) / n)


def test_drift_shapes_and_method(bridge2d):
    x = np.random.default_rng(0).standard_normal((7, 2))
    u = bridge2d.drift(0.3, x)
    assert u.shape == (7, 2)
    np.testing.assert_allclose(u, bd.drift(bridge2d, 0.3, x))
    # affine: the drift at the mean is m1 - m0
    m, _ = bridge2d.marginal(0.3)
    np.testing.assert_allclose(bridge2d.drift(0.3, m[None]), [[-2.0, 3.0]], atol=1e-12)
    assert bd.drift_matrix(bridge2d, np.array([0.0, 0.5])).shape == (2, 2, 2)


def test_drift_solves_fokker_planck_and_riccati(bridge2d):
    """Sigma' = A Sigma + Sigma A^T + sigma^2 I (Fokker-Planck of a Gaussian); A' = -A^2
    (backward heat equation for log phi); A symmetric (a gradient field)."""
    s2, h = bridge2d.sigma**2, 1e-5
    for t in (0.05, 0.3, 0.6, 0.95):
        A = bd.drift_matrix(bridge2d, t)
        _, c = bridge2d.marginal(t)
        dc = (bridge2d.marginal(t + h)[1] - bridge2d.marginal(t - h)[1]) / (2 * h)
        np.testing.assert_allclose(A @ c + c @ A.T + s2 * np.eye(2), dc, atol=1e-8)
        dA = (bd.drift_matrix(bridge2d, t + h) - bd.drift_matrix(bridge2d, t - h)) / (2 * h)
        np.testing.assert_allclose(dA, -A @ A, atol=1e-7)
        np.testing.assert_allclose(A, A.T, atol=1e-12)


def test_drift_one_dimension_closed_form():
    """In 1-D, A_t = (Sigma_t' - sigma^2) / (2 Sigma_t), with the bridge's C = (sqrt 5 - 1)/2
    for unit variances and sigma = 1."""
    b = gaussian_bridge(0.0, 1.0, 0.0, 1.0, 1.0)
    C = (np.sqrt(5) - 1) / 2
    for t in (0.0, 0.25, 0.5, 1.0):
        sig = (1 - t) ** 2 + t**2 + 2 * t * (1 - t) * C + t * (1 - t)
        dsig = -2 * (1 - t) + 2 * t + 2 * (1 - 2 * t) * C + (1 - 2 * t)
        np.testing.assert_allclose(bd.drift_matrix(b, t)[0, 0], (dsig - 1) / (2 * sig),
                                   rtol=1e-12)


def test_simulated_sde_has_the_bridge_law(bridge2d):
    """Euler-Maruyama with 400 steps from N(m0, S0): means and covariances at t = 0.25, 0.5,
    1 and the end-point cross-covariance within 5 standard errors + 0.01 (Euler bias)."""
    n = 20_000
    r = bd.simulate(bridge2d, n, 0, n_steps=400, times=[0.25, 0.5, 1.0])
    np.testing.assert_allclose(r.times, [0.25, 0.5, 1.0])
    for t, p in zip(r.times, r.paths, strict=True):
        m, c = bridge2d.marginal(t)
        assert np.all(np.abs(p.mean(0) - m) <= 5 * np.sqrt(np.diag(c) / n) + 0.01)
        assert np.all(np.abs(np.cov(p.T) - c) <= 5 * _cov_se(c, n) + 0.01)
    np.testing.assert_array_equal(r.paths[-1], r.x1)
    jc = bridge2d.joint_cov()
    se = _cov_se(jc, n)[:2, 2:]
    assert np.all(np.abs(empirical_cross_cov(r.x0, r.x1) - bridge2d.cross_cov)
                  <= 5 * se + 0.01)


def test_control_cost_three_ways(bridge2d):
    """The Girsanov energy in closed form equals the static KL of the endpoint laws (to 1e-9),
    and the Monte Carlo energy along simulated paths agrees within 5 SE + 0.2 %."""
    kl = bridge2d.kl_to_reference()
    assert bd.control_cost(bridge2d) == pytest.approx(kl, rel=1e-9)
    r = bd.simulate(bridge2d, 20_000, 1, n_steps=400)
    se = r.cost.std() / np.sqrt(r.cost.size)
    assert abs(r.cost.mean() - kl) <= 5 * se + 2e-3 * kl
    b = gaussian_bridge(0.0, 1.0, 0.0, 4.0, 2.0)        # another case, 1-D, large sigma
    assert bd.control_cost(b) == pytest.approx(b.kl_to_reference(), rel=1e-9)


def test_schrodinger_system_heat_equations(bridge2d):
    """phi solves the backward heat equation (P' = s2 P^2, q' = s2 P q), phi-hat the forward
    one (Q' = -s2 Q^2, r' = -s2 Q r), and phi * phi-hat is the marginal's density."""
    s2, h = bridge2d.sigma**2, 1e-5
    for t in (0.1, 0.5, 0.9):
        p = bd.schrodinger_potentials(bridge2d, t)
        pp, pm = (bd.schrodinger_potentials(bridge2d, t + h),
                  bd.schrodinger_potentials(bridge2d, t - h))
        np.testing.assert_allclose((pp.P - pm.P) / (2 * h), s2 * p.P @ p.P, atol=1e-7)
        np.testing.assert_allclose((pp.q - pm.q) / (2 * h), s2 * p.P @ p.q, atol=1e-7)
        np.testing.assert_allclose((pp.Q - pm.Q) / (2 * h), -s2 * p.Q @ p.Q, atol=1e-6)
        np.testing.assert_allclose((pp.r - pm.r) / (2 * h), -s2 * p.Q @ p.r, atol=1e-6)
        m, c = bridge2d.marginal(t)
        prec = np.linalg.inv(c)
        np.testing.assert_allclose(np.linalg.solve(p.P + p.Q, p.q + p.r), m, atol=1e-10)
        # the drift is sigma^2 grad log phi
        x = np.array([[0.3, -0.2], [1.0, 2.0]])
        np.testing.assert_allclose(bridge2d.drift(t, x), s2 * (p.q - x @ p.P), atol=1e-10)
        assert np.all(np.linalg.eigvalsh(prec) > 0)


def test_bridge_dynamic_bad_input(bridge2d):
    with pytest.raises(ValueError, match="bridge"):
        bd.drift("no", 0.5, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="t must lie"):
        bridge2d.drift(1.5, np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        bridge2d.drift(0.5, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="n_steps"):
        bd.simulate(bridge2d, 10, 0, n_steps=0)
    with pytest.raises(ValueError, match="times"):
        bd.simulate(bridge2d, 10, 0, times=[0.5, 2.0])
