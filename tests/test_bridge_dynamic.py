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


# ---------------------------------------------------------------------------------------------
# couplings for flow matching (diffnotes.ot_couplings, diffnotes.ot_flow_train)

from itertools import permutations  # noqa: E402

from diffnotes import ot_couplings as oc  # noqa: E402
from diffnotes.bridge import static_bridge  # noqa: E402


@pytest.mark.parametrize("m", [2, 3, 5, 6])
def test_ot_pairing_is_the_cheapest_permutation(m):
    """Against brute force over all m! permutations, for five random batches each."""
    rng = np.random.default_rng(m)
    for _ in range(5):
        x0, x1 = rng.standard_normal((m, 2)), rng.standard_normal((m, 2)) + 0.5
        tau = oc.ot_pairing(x0, x1)
        assert sorted(tau.tolist()) == list(range(m))
        cost = np.sum((x0 - x1[tau]) ** 2)
        best = min(np.sum((x0 - x1[list(p)]) ** 2) for p in permutations(range(m)))
        assert cost == pytest.approx(best, rel=1e-12, abs=1e-12)
    assert oc.transport_cost(x0, x1[tau]) <= oc.transport_cost(x0, x1) + 1e-12


def test_sb_pairing_draws_from_the_entropic_plan():
    """POT's Sinkhorn plan equals the static bridge's (log-domain IPF) to 1e-6; the pairs'
    frequencies match its rows within 5 SE; its cost lies between OT and independent."""
    rng = np.random.default_rng(0)
    x0, x1 = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    w = np.full(5, 0.2)
    plan = oc.entropic_plan(x0, x1, 0.7)
    np.testing.assert_allclose(plan, static_bridge(x0, w, x1, w, 0.7).plan, atol=1e-6)
    n_rep = 1500
    counts = np.zeros((5, 5))
    gen = np.random.default_rng(1)
    for _ in range(n_rep):
        counts[np.arange(5), oc.sb_pairing(x0, x1, 0.7, gen)] += 1
    p = plan / plan.sum(1, keepdims=True)
    assert np.all(np.abs(counts / n_rep - p) <= 5 * np.sqrt(p * (1 - p) / n_rep) + 1e-9)
    x0, x1 = rng.standard_normal((128, 2)), rng.standard_normal((128, 2))
    # the plan's expected cost <pi, |x0 - x1|^2> rises from the OT cost (sigma -> 0) to the
    # independent coupling's (sigma -> infinity)
    ot_cost = oc.transport_cost(x0, oc.pair(x0, x1, "ot"))
    M = np.sum((x0[:, None] - x1[None]) ** 2, axis=2)
    costs = [np.sum(oc.entropic_plan(x0, x1, s) * M) for s in (0.1, 0.5, 3.0)]
    assert ot_cost <= costs[0] <= 1.1 * ot_cost                 # measured 1.03
    assert costs[0] < costs[1] < costs[2]
    assert costs[2] >= 0.8 * M.mean()                         # nearly independent
    np.testing.assert_array_equal(oc.pair(x0, x1, "ot"), x1[oc.ot_pairing(x0, x1)])
    np.testing.assert_array_equal(oc.pair(x0, x1, "independent"), x1)


def test_bridge_interpolant_target_is_the_time_derivative():
    rng = np.random.default_rng(3)
    x0, x1, z = (rng.standard_normal((4, 2)) for _ in range(3))
    t, h = np.array([0.1, 0.3, 0.6, 0.9]), 1e-6
    _, u = oc.bridge_interpolant(x0, x1, t, 0.5, z)
    xp, _ = oc.bridge_interpolant(x0, x1, t + h, 0.5, z)
    xm, _ = oc.bridge_interpolant(x0, x1, t - h, 0.5, z)
    np.testing.assert_allclose(u, (xp - xm) / (2 * h), atol=1e-6)
    from diffnotes.flow import LinearPath

    xt, ut = oc.bridge_interpolant(x0, x1, t, 0.0, z)
    for i, ti in enumerate(t):
        np.testing.assert_allclose(xt[i], LinearPath().sample(x0[i:i + 1], x1[i:i + 1],
                                                              ti)[0])
        np.testing.assert_allclose(ut[i], LinearPath().conditional_velocity(
            x0[i:i + 1], x1[i:i + 1], ti)[0])


def test_straightness_closed_forms():
    """A constant field is straight (S = 0, one Euler step exact); the rotation v = Jx (unit
    angular speed) has S = |x0|^2 (1 - 4 sin^2(1/2)), to O(1/n_steps)."""
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal((50, 2))
    s, x1 = oc.straightness(lambda x, t: np.ones_like(x) * [1.0, -2.0], x0, 20)
    assert s == pytest.approx(0.0, abs=1e-24)
    np.testing.assert_allclose(x1, x0 + [1.0, -2.0])
    err = oc.endpoint_error(lambda x, t: np.ones_like(x), x0, (1, 2))
    assert err == pytest.approx(0, abs=1e-12)
    J = np.array([[0.0, -1.0], [1.0, 0.0]])
    s, _ = oc.straightness(lambda x, t: x @ J.T, x0, 2000)
    want = np.mean(np.sum(x0**2, 1)) * (1 - 4 * np.sin(0.5) ** 2)
    assert s == pytest.approx(want, rel=2e-3)
    err = oc.endpoint_error(lambda x, t: x @ J.T, x0, (4, 8, 16))
    assert np.all(np.diff(np.log2(err)) < -0.8)               # first order


def test_couplings_bad_input():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="coupling"):
        oc.pair(x, x, "nope")
    with pytest.raises(ValueError, match="sigma"):
        oc.pair(x, x, "sb", sigma=0.0)
    with pytest.raises(ValueError, match="same shape"):
        oc.ot_pairing(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="velocity"):
        oc.straightness("v", x)


@pytest.fixture(scope="module")
def learned_flows():
    """Independent, minibatch-OT and one reflow of the independent model on the eight
    Gaussians: 300 steps each, ScoreMLP(hidden=64), reflow on 10 000 pairs from 10 Heun
    steps (the setting of Chapter 4)."""
    pytest.importorskip("torch")
    from diffnotes import data
    from diffnotes.flow_train import velocity_function
    from diffnotes.ot_flow_train import train
    from diffnotes.score import ScoreMLP

    pts = data.sample("eight_gaussians", 20_000, 0)
    out = {}
    for c in ("independent", "ot"):
        r = train(ScoreMLP(2, hidden=64, seed=0), pts, c, n_steps=300, progress=False)
        out[c] = velocity_function(r.ema)
    pairs = oc.reflow_pairs(out["independent"], 10_000, 2, 3, n_steps=10)
    r = train(ScoreMLP(2, hidden=64, seed=0), pairs, "paired", n_steps=300, progress=False)
    out["reflow"] = velocity_function(r.ema)
    return out


def test_ot_and_reflow_straighten_the_flow(learned_flows):
    """The ordering Chapter 4's race shows (its printed table has the measured values, with the
    warm start of ot_flow_train): S_ot, S_reflow <= S_independent / 10, and 2-step Euler errors
    at most half the independent model's."""
    x0 = np.random.default_rng(1).standard_normal((1000, 2))
    s = {k: oc.straightness(v, x0, 50)[0] for k, v in learned_flows.items()}
    assert s["ot"] <= s["independent"] / 10
    assert s["reflow"] <= s["independent"] / 10
    e = {k: oc.endpoint_error(v, x0, (2,), reference_steps=50)[0]
         for k, v in learned_flows.items()}
    assert e["ot"] <= e["independent"] / 2
    assert e["reflow"] <= e["independent"] / 2


def test_ot_flow_train_validates():
    pytest.importorskip("torch")
    from diffnotes.ot_flow_train import train
    from diffnotes.score import ScoreMLP

    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="coupling"):
        train(ScoreMLP(2), x, "nope", progress=False)
    with pytest.raises(ValueError, match="sigma"):
        train(ScoreMLP(2), x, "sb", 0.0, progress=False)
    with pytest.raises(ValueError, match="pair"):
        train(ScoreMLP(2), x, "paired", progress=False)
    r = train(ScoreMLP(2, hidden=16, depth=1), np.random.default_rng(0).standard_normal((64, 2)),
              "sb", 0.5, n_steps=5, batch_size=16, progress=False)
    assert r.losses.shape == (5,) and np.all(np.isfinite(r.losses))
