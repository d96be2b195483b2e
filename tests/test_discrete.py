"""Tests of diffnotes.discrete: closed forms against expm, the exact reverse rates against
brute force, the ELBO against the exact likelihood, the samplers against the exact law."""

import numpy as np
import pytest
import scipy.linalg

from diffnotes import ctmc, schedules
from diffnotes import discrete as D

SCH = schedules.vp(0.1, 10.0)
T = 6.0


def _p0(seed=0, n=3, d=2):
    p = np.random.default_rng(seed).random((n,) * d) + 0.05
    return p / p.sum()


def _tv(states, p, n):
    idx = np.ravel_multi_index(tuple(states.T), (n,) * states.shape[1])
    h = np.bincount(idx, minlength=p.size) / len(states)
    return 0.5 * np.abs(h - p.ravel()).sum()


@pytest.mark.parametrize("kind", D.KINDS)
@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("schedule", [None, SCH])
def test_transition_matrix_is_expm(kind, n, schedule):
    Q = D.generator(kind, n)
    assert np.allclose(Q.sum(1), 0)
    for t in [0.0, 0.1, 0.7, 2.5]:
        theta = float(schedules.as_schedule(schedule).integral(t))
        P = D.transition_matrix(kind, n, t, schedule)
        assert np.abs(P - scipy.linalg.expm(theta * Q)).max() < 1e-12


def test_generators_conventions():
    assert np.allclose(D.generator("uniform", 4), ctmc.uniform_generator(4))
    Qm = D.generator("masked", 3)
    assert Qm.shape == (4, 4) and np.all(Qm[3] == 0) and np.all(Qm[:3, 3] == 1)
    # the uniform chain mixes at rate 1 (gap 1); the masked chain is absorbed at rate 1
    assert abs(ctmc.spectral_gap(D.generator("uniform", 5)) - 1) < 1e-9
    assert np.all(D.transition_matrix("masked", 3, 40.0)[:, 3] > 1 - 1e-15)


@pytest.mark.parametrize("kind", D.KINDS)
def test_sample_forward_matches_kernel(kind):
    n, m = 4, 200_000
    x0 = np.repeat(np.arange(n), m // n)[:, None]
    xt = D.sample_forward(kind, x0, 0.4, n, rng=0, schedule=SCH)
    P = D.transition_matrix(kind, n, 0.4, SCH)
    for a in range(n):
        h = np.bincount(xt[x0[:, 0] == a, 0], minlength=P.shape[1]) / (m // n)
        se = np.sqrt(P[a] * (1 - P[a]) / (m // n)) + 1e-12
        assert np.all(np.abs(h - P[a]) < 5 * se + 1e-9)


@pytest.mark.parametrize("kind", D.KINDS)
def test_marginal_is_joint_expm(kind):
    p0 = _p0()
    G = D.joint_generator(kind, 3, 2)
    theta = float(SCH.integral(0.5))
    K = G.shape[0]
    P = scipy.linalg.expm(theta * G)
    pad = np.zeros((K,))
    states = D.joint_states(int(round(np.sqrt(K))), 2)
    clean = (states < 3).all(axis=1)
    pad[clean] = p0.ravel()
    assert np.abs(pad @ P - D.marginal(kind, p0, 0.5, 3, schedule=SCH)).max() < 1e-12


@pytest.mark.parametrize("kind", D.KINDS)
def test_exact_denoiser_is_bayes(kind):
    p0 = _p0(1)
    den = D.exact_denoiser(kind, p0, 3, schedule=SCH)
    K = 4 if kind == "masked" else 3
    xs = D.joint_states(K, 2)
    t = 0.3
    P = D.transition_matrix(kind, 3, t, SCH)
    probs = den(xs, np.full(len(xs), t))
    for k, x in enumerate(xs):
        post = p0 * P[:3, x[0]][:, None] * P[:3, x[1]][None, :]
        post /= post.sum()
        assert np.allclose(probs[k, 0], post.sum(1)) and np.allclose(probs[k, 1], post.sum(0))


@pytest.mark.parametrize("kind", D.KINDS)
@pytest.mark.parametrize("schedule", [None, SCH])
def test_factorised_reverse_rates_equal_brute_force(kind, schedule):
    p0 = _p0(2)
    den = D.exact_denoiser(kind, p0, 3, schedule=schedule)
    for t in [0.05, 0.4, 1.5]:
        G1 = D.exact_reverse_generator(kind, p0, t, 3, schedule=schedule)
        G2 = D.model_generator(kind, den, t, 3, 2, schedule=schedule)
        assert np.abs(G1 - G2).max() < 1e-9 * max(1.0, np.abs(G1).max())
    # a move changes one coordinate: the joint generator has K^d (d (K - 1) + 1) nonzeros at most
    K = G1.shape[0]
    assert (np.abs(G1) > 0).sum() <= K * (2 * (round(np.sqrt(K)) - 1) + 1)


def test_masked_path_term_is_weighted_cross_entropy():
    rng = np.random.default_rng(3)
    n, d, m = 3, 2, 50
    x0 = rng.integers(0, n, (m, d))
    t = rng.uniform(0.05, 2, m)
    x = D.sample_forward("masked", x0, t, n, rng, schedule=SCH)
    probs = rng.dirichlet(np.ones(n), (m, d))
    sch = schedules.as_schedule(SCH)
    got = D._path_term("masked", n, x, x0, t, probs, sch)
    ce = -np.log(np.take_along_axis(probs, x0[:, :, None], -1)[..., 0])
    want = D.masked_weight(t, SCH) * np.where(x == n, ce, 0).sum(1)
    assert np.allclose(got, want)


def _noisy(den, eps, seed=0):
    """A deliberately wrong denoiser: the exact one mixed with a fixed random law."""
    def f(x, t):
        p = den(x, t)
        q = np.random.default_rng(seed).dirichlet(np.ones(p.shape[-1]), p.shape[1])
        return (1 - eps) * p + eps * q[None]
    return f


@pytest.mark.parametrize("kind", D.KINDS)
def test_elbo_bounds_the_exact_likelihood(kind):
    p0 = _p0(4)
    x0 = D.joint_states(3, 2)
    den = D.exact_denoiser(kind, p0, 3)
    e = D.elbo(kind, den, x0, 3, T)
    e2 = D.elbo(kind, den, x0, 3, T, n_nodes=96)
    assert np.abs(e["total"] - e2["total"]).max() < 1e-8  # quadrature converged
    nll_model = -np.log(D.model_likelihood(kind, den, 3, 2, T).ravel())
    assert np.all(e["total"] >= nll_model - 1e-6)
    # with the exact denoiser the bound is tight up to the prior and t_min: within 3e-3 nats
    assert np.abs(e["total"] + np.log(p0.ravel())).max() < 3e-3
    bad = _noisy(den, 0.3)
    eb = D.elbo(kind, bad, x0, 3, T)
    nll_bad = -np.log(D.model_likelihood(kind, bad, 3, 2, T).ravel())
    assert np.all(eb["total"] >= nll_bad - 1e-6)
    assert (p0.ravel() * eb["total"]).sum() > (p0.ravel() * e["total"]).sum() + 0.01


@pytest.mark.parametrize("kind", D.KINDS)
def test_samplers_match_the_exact_law(kind):
    p0 = _p0(5)
    den = D.exact_denoiser(kind, p0, 3)
    law = D.model_likelihood(kind, den, 3, 2, T)
    m = 20_000  # TV noise floor of 9 cells ~ 0.01
    run = D.sample_tau(kind, den, m, 2, 3, T, rng=1, n_steps=60)
    assert _tv(run.states, law, 3) < 0.03
    assert run.n_evals == 61 and run.n_rejected >= 0
    ex = D.sample_exact(kind, den, 4000, 2, 3, T, rng=2)
    assert _tv(ex.states, law, 3) < 0.05
    if kind == "masked":
        fine = D.sample_unmask(den, m, 2, 3, T, rng=3, n_steps=60)
        assert _tv(fine.states, law, 3) < 0.03
        one = D.sample_unmask(den, m, 2, 3, T, rng=3, n_steps=1)
        assert _tv(one.states, law, 3) > 0.1  # unmasking all at once draws independent coords


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="kind"):
        D.generator("absorbing", 3)
    with pytest.raises(ValueError, match="n"):
        D.generator("uniform", 1)
    with pytest.raises(ValueError, match="t"):
        D.transition_matrix("masked", 3, -1.0)
    with pytest.raises(ValueError, match="x0"):
        D.sample_forward("masked", np.array([[3]]), 0.1, 3, rng=0)
    with pytest.raises(ValueError, match="p0"):
        D.exact_denoiser("masked", np.ones((3, 3)), 3)
    with pytest.raises(ValueError, match="probs"):
        D.reverse_rates("uniform", 3, np.zeros((2, 2), int), 0.1, np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="K\\^d"):
        D.joint_states(17, 4)
    with pytest.raises(ValueError, match="n_steps"):
        D.sample_unmask(None, 2, 2, 3, T, rng=0, n_steps=0)


def test_learning_without_torch_names_the_extra():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from diffnotes import discrete_learn as L\n"
            "L.fit_denoiser('masked', np.zeros((4, 2), int), 3, T=1.0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "diffnotes[learn]" in proc.stderr


def test_masked_loss_is_unbiased_for_the_elbo_path_term():
    """discrete_learn's masked loss estimates the path term of discrete.elbo without bias."""
    torch = pytest.importorskip("torch")
    from diffnotes import discrete_learn as DL

    n, d, t_min = 3, 2, 1e-3
    torch.manual_seed(0)
    model = DL._mlp("masked", n, d, 16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))  # an arbitrary, untrained denoiser
    x0 = D.joint_states(n, d)
    exact = D.elbo("masked", DL.as_denoiser("masked", model, n), x0, n, T,
                   schedule=SCH, t_min=t_min)["path"].mean()
    batch = torch.as_tensor(np.repeat(x0, 2000, 0), dtype=torch.long)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        est = np.array([DL.denoiser_loss("masked", model, batch, n, T=T, t_min=t_min,
                                         schedule=SCH, generator=gen).item()
                        for _ in range(20)])
    assert abs(est.mean() - exact) < 4 * est.std(ddof=1) / np.sqrt(len(est)) + 1e-3


@pytest.mark.parametrize("n_steps", [1, 3])
def test_unmasking_one_coordinate_is_exact_for_any_steps(n_steps):
    """With d = 1 nothing is unmasked jointly: the sampler draws the exact law at any step
    count."""
    p0 = np.array([0.5, 0.1, 0.15, 0.25])
    vp = schedules.vp(0.1, 20.0)  # alpha_1 = exp(-5)
    den = D.exact_denoiser("masked", p0, 4, schedule=vp)
    law = D.model_likelihood("masked", den, 4, 1, 1.0, schedule=vp)
    assert abs(law - p0).max() < 0.01  # the prior's mismatch, of order alpha_1
    m = 40_000
    run = D.sample_unmask(den, m, 1, 4, 1.0, rng=0, n_steps=n_steps, schedule=vp)
    h = np.bincount(run.states[:, 0], minlength=4) / m
    assert np.all(np.abs(h - law) < 5 * np.sqrt(law * (1 - law) / m))
