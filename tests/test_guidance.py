"""Labelled mixtures, exact guidance (diffnotes.mixtures) and learned guidance
(diffnotes.guidance): every formula against an independent computation, the claims of the
Chapter 3 guidance section with stated bounds."""

import numpy as np
import pytest

from diffnotes import sde
from diffnotes.metrics import wasserstein1
from diffnotes.mixtures import (
    GaussianMixture,
    LabelledMixture,
    guided_score,
    labelled_moons,
    moons_mixture,
    tilted_density,
    tilted_sample,
)

VP = sde.VPSDE()


def mix1d():
    return LabelledMixture([0.5, 0.5], [-0.6, 0.6], [0.25, 0.25], [0, 1])


def mix3():
    """Three classes in 2-D, one with two components, full covariances."""
    covs = np.array([[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]],
                     [[0.1, 0.0], [0.0, 0.1]], [[0.25, 0.0], [0.0, 0.15]]])
    return LabelledMixture([0.2, 0.3, 0.4, 0.1], [[-1, 0], [1, 0.5], [0, 1], [0.5, -1]],
                           covs, [0, 1, 2, 1])


def fd_grad(f, x, h=1e-5):
    """Central finite differences of a function (m, d) -> (m,)."""
    g = np.zeros_like(x)
    for j in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[j] = h
        g[:, j] = (f(x + e) - f(x - e)) / (2 * h)
    return g


POINTS = np.random.default_rng(3).normal(size=(40, 2))


# ---------------------------------------------------------------------------------------
# Exact conditional scores and the classifier
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [None, 0.05, 0.4, 1.0])
@pytest.mark.parametrize("label", [0, 1, 2, None, "per-point"])
def test_conditional_score_is_the_gradient_of_its_log_density(t, label):
    m = mix3()
    if label == "per-point":
        label = np.arange(POINTS.shape[0]) % 3
    kw = {} if t is None else {"t": t, "sde": VP}
    s = m.score(POINTS, label=label, **kw)
    g = fd_grad(lambda y: m.log_prob(y, label=label, **kw), POINTS)
    np.testing.assert_allclose(s, g, rtol=1e-5, atol=1e-6)


def test_conditional_laws_are_the_sub_mixtures():
    m = mix3()
    np.testing.assert_allclose(m.class_weights, [0.2, 0.4, 0.4])
    for c in range(3):
        sub = m.conditional(c)
        np.testing.assert_allclose(m.log_prob(POINTS, 0.3, VP, label=c),
                                   sub.log_prob(POINTS, 0.3, VP), rtol=1e-12)
        np.testing.assert_allclose(m.score(POINTS, 0.3, VP, label=c),
                                   sub.score(POINTS, 0.3, VP), rtol=1e-10, atol=1e-12)
    plain = GaussianMixture(m.weights, m.means, m.covs)
    np.testing.assert_allclose(m.score(POINTS, 0.3, VP), plain.score(POINTS, 0.3, VP))


@pytest.mark.parametrize("t", [None, 0.2])
def test_classifier_is_bayes_rule_and_its_gradient_is_the_score_difference(t):
    m = mix3()
    kw = {} if t is None else {"t": t, "sde": VP}
    logp = m.class_log_prob(POINTS, **kw)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-12)
    for c in range(3):
        bayes = (np.log(m.class_weights[c]) + m.log_prob(POINTS, label=c, **kw)
                 - m.log_prob(POINTS, **kw))
        np.testing.assert_allclose(logp[:, c], bayes, rtol=1e-10, atol=1e-12)
        # the classifier gradient by finite differences of log p(c | x) ...
        g = fd_grad(lambda y, c=c: m.class_log_prob(y, **kw)[:, c], POINTS)
        np.testing.assert_allclose(m.classifier_grad(POINTS, t, VP if t else None, c), g,
                                   rtol=1e-5, atol=1e-6)
        # ... and s(x | c) = s(x) + grad log p(c | x)
        np.testing.assert_allclose(m.score(POINTS, label=c, **kw),
                                   m.score(POINTS, **kw) + g, rtol=1e-5, atol=1e-6)


def test_diffused_labelled_mixture_keeps_its_labels():
    m = mix3()
    mt = m.at(0.3, VP)
    assert isinstance(mt, LabelledMixture)
    for label in [None, 2]:
        np.testing.assert_allclose(mt.log_prob(POINTS, label=label),
                                   m.log_prob(POINTS, 0.3, VP, label=label), rtol=1e-10)
        np.testing.assert_allclose(mt.score(POINTS, label=label),
                                   m.score(POINTS, 0.3, VP, label=label), rtol=1e-8, atol=1e-10)


def test_labelled_samples_follow_class_weights_and_conditionals():
    m = mix3()
    x, y = m.sample_labelled(20000, 0)
    counts = np.bincount(y, minlength=3) / y.size
    # binomial standard error sqrt(p(1-p)/n) <= 0.0035: 5 of them
    np.testing.assert_allclose(counts, m.class_weights, atol=0.018)
    for c in range(3):
        mean_c = m.conditional(c).weights @ m.conditional(c).means
        assert np.linalg.norm(x[y == c].mean(axis=0) - mean_c) < 0.05


def test_labelled_moons_labels_each_moon():
    m = labelled_moons(n_components=5)
    assert m.n_classes == 2 and m.dim == 2
    np.testing.assert_array_equal(m.labels, [0] * 5 + [1] * 5)
    plain = moons_mixture(n_components=5)
    np.testing.assert_array_equal(m.conditional(0).means, plain.means[:5])
    np.testing.assert_array_equal(m.conditional(1).means, plain.means[5:])
    # the upper moon: y-coordinates above the lower moon's on average
    assert m.conditional(0).means[:, 1].mean() > m.conditional(1).means[:, 1].mean() + 0.4


# ---------------------------------------------------------------------------------------
# Guided scores
# ---------------------------------------------------------------------------------------
def test_guided_score_special_cases_and_classifier_guidance():
    m = mix3()
    t = 0.25
    cond, unc = m.score(POINTS, t, VP, label=1), m.score(POINTS, t, VP)
    np.testing.assert_array_equal(guided_score(m, POINTS, t, VP, 1, 0), cond)
    np.testing.assert_allclose(guided_score(m, POINTS, t, VP, 1, -1), unc, atol=1e-12)
    for w in [0.5, 3.0]:
        g = guided_score(m, POINTS, t, VP, 1, w)
        np.testing.assert_allclose(g, (1 + w) * cond - w * unc)
        # classifier guidance with scale 1 + w is the same field
        np.testing.assert_allclose(
            g, unc + (1 + w) * m.classifier_grad(POINTS, t, VP, 1), rtol=1e-9, atol=1e-9)
        # it is the score of the tilted law q_t(x|c)^(1+w) / q_t(x)^w at that t
        fd = fd_grad(lambda y, w=w: (1 + w) * m.log_prob(y, t, VP, label=1)
                     - w * m.log_prob(y, t, VP), POINTS)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)
    f = m.guided_score_function(VP, 1, 2.0)
    np.testing.assert_array_equal(f(POINTS, t), guided_score(m, POINTS, t, VP, 1, 2.0))


def test_tilted_density_special_cases_normalisation_and_score():
    m = mix1d()
    grid = np.linspace(-6, 8, 4001)
    np.testing.assert_allclose(tilted_density(m, grid, 1, 0), np.exp(m.log_prob(grid, label=1)),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(tilted_density(m, grid, 1, -1), np.exp(m.log_prob(grid)),
                               rtol=1e-6, atol=1e-9)
    p = tilted_density(m, grid, 1, 3.0)
    assert abs(np.trapezoid(p, grid) - 1) < 1e-12
    # d/dx log pi_w = guided score at t = 0
    dlog = np.gradient(np.log(p), grid)
    inner = slice(1000, 3000)
    np.testing.assert_allclose(dlog[inner], guided_score(m, grid, None, None, 1, 3.0)[inner],
                               rtol=1e-4, atol=1e-4)
    x = tilted_sample(m, grid, 1, 3.0, 20000, 0)
    mean = np.trapezoid(grid * p, grid)
    sd = np.sqrt(np.trapezoid((grid - mean) ** 2 * p, grid))
    assert abs(x.mean() - mean) < 4 * sd / np.sqrt(x.size)


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
def test_bad_input_names_the_argument():
    m = mix3()
    with pytest.raises(ValueError, match="labels"):
        LabelledMixture([0.5, 0.5], [0, 1], [1, 1], [0, 2])
    with pytest.raises(ValueError, match="labels"):
        LabelledMixture([0.5, 0.5], [0, 1], [1, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="labels"):
        LabelledMixture([0.5, 0.5], [0, 1], [1, 1], [0])
    with pytest.raises(ValueError, match="label"):
        m.score(POINTS, 0.1, VP, label=3)
    with pytest.raises(ValueError, match="label"):
        m.score(POINTS, 0.1, VP, label=np.zeros(3, int))
    with pytest.raises(ValueError, match="label"):
        m.score(POINTS, 0.1, VP, label=0.5)
    with pytest.raises(ValueError, match="label"):
        guided_score(m, POINTS, 0.1, VP, None, 1.0)
    with pytest.raises(ValueError, match="w must"):
        guided_score(m, POINTS, 0.1, VP, 0, -1.5)
    with pytest.raises(ValueError, match="w must"):
        guided_score(m, POINTS, 0.1, VP, 0, float("nan"))
    with pytest.raises(ValueError, match="w must"):
        m.guided_score_function(VP, 0, "2")
    with pytest.raises(ValueError, match="mixture"):
        guided_score(GaussianMixture([1.0], [[0, 0]], [1.0]), POINTS, 0.1, VP, 0, 1.0)
    with pytest.raises(ValueError, match="mixture"):
        tilted_density(m, np.linspace(-1, 1, 10), 0, 1.0)
    with pytest.raises(ValueError, match="grid"):
        tilted_density(mix1d(), [0.0, 2.0, 1.0], 0, 1.0)
    with pytest.raises(ValueError, match="sde"):
        m.guided_score_function(object(), 0, 1.0)


# ---------------------------------------------------------------------------------------
# Claim: the guided sampler does not sample the tilted law; what it samples instead
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def guided_runs():
    """Reverse-SDE (Euler-Maruyama, 500 steps) and probability-flow (Heun, 30 steps) samples
    with the exact guided score of mix1d, label 1, and exact tilted draws, n = 4000."""
    m = mix1d()
    grid = np.linspace(-6, 10, 8001)
    rng = np.random.default_rng(0)
    out = {}
    for w in [0.0, 1.0, 4.0]:
        f = m.guided_score_function(VP, 1, w)
        x0 = VP.prior_sample(4000, 1, rng)
        em = sde.euler_maruyama(VP, f, x0, rng, n_steps=500).x[:, 0]
        ode = sde.heun_flow(VP, f, x0, n_steps=30).x[:, 0]
        dens = tilted_density(m, grid, 1, w)
        ref = tilted_sample(m, grid, 1, w, 4000, rng)
        out[w] = dict(em=em, ode=ode, dens=dens, ref=ref, grid=grid, m=m)
    return out


def test_guided_sampler_misses_the_tilted_law_more_as_w_grows(guided_runs):
    d, floor = {}, {}
    for w, r in guided_runs.items():
        d[w] = wasserstein1(r["em"], r["grid"], y_weights=r["dens"])
        floor[w] = wasserstein1(r["ref"], r["grid"], y_weights=r["dens"])
    # the floor (exact draws, n = 4000) is about 0.01-0.02
    assert max(floor.values()) < 0.03
    assert d[0.0] < 3 * max(floor[0.0], 0.01)         # w = 0: the conditional law, sampled
    assert d[1.0] > 5 * floor[1.0] and d[4.0] > 10 * floor[4.0]   # measured ~0.11, ~0.24
    assert d[0.0] < d[1.0] < d[4.0]


def test_guided_samples_concentrate_away_from_the_other_class(guided_runs):
    m = guided_runs[0.0]["m"]
    pc = {w: np.exp(m.class_log_prob(r["em"])[:, 1]).mean() for w, r in guided_runs.items()}
    sd = {w: r["em"].std() for w, r in guided_runs.items()}
    mean = {w: r["em"].mean() for w, r in guided_runs.items()}
    # measured p(c|x): 0.84, 0.94, 0.98; std 0.50, 0.41, 0.37; mean 0.61, 0.83, 1.08
    assert pc[0.0] < pc[1.0] - 0.05 and pc[1.0] < pc[4.0] - 0.02
    assert sd[0.0] > sd[1.0] + 0.05 and sd[1.0] > sd[4.0] + 0.02
    assert mean[0.0] < mean[1.0] - 0.1 and mean[1.0] < mean[4.0] - 0.1
    # the tilted law moves less than the guided sampler's output (its mean is 0.71 at w = 1)
    for w in [1.0, 4.0]:
        r = guided_runs[w]
        tilted_mean = np.trapezoid(r["grid"] * r["dens"], r["grid"])
        assert mean[w] > tilted_mean + 0.08


def test_guided_sde_and_ode_agree_only_without_guidance(guided_runs):
    """The guided field is not the score of one diffusing law: the reverse SDE and the
    probability-flow ODE driven by it end at different laws for w > 0."""
    gap = {w: wasserstein1(r["em"], r["ode"]) for w, r in guided_runs.items()}
    assert gap[0.0] < 0.04                               # two samplers of one law, n = 4000
    assert gap[1.0] > 0.05 and gap[4.0] > 0.2            # measured ~0.08, ~0.3


# ---------------------------------------------------------------------------------------
# Learned guidance: one network, label dropout
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    torch = pytest.importorskip("torch")
    from diffnotes import guidance

    mix = labelled_moons()
    net = guidance.ConditionalScoreMLP(2, 2, seed=0)
    res = guidance.train(net, VP, mix.sample_labelled, n_steps=2000, seed=0)
    return torch, guidance, mix, res


def test_conditional_mlp_shapes_labels_and_null_label(trained):
    torch, guidance, mix, res = trained
    model = res.ema
    x = torch.zeros(5, 2)
    assert model(x, 0.3).shape == (5, 2)
    np.testing.assert_array_equal(model(x, 0.3).numpy(), model(x, 0.3, model.null_label).numpy())
    assert not torch.allclose(model(x, 0.3, 0), model(x, 0.3, 1))
    per_point = model(x, 0.3, torch.tensor([0, 1, 0, 1, 2]))
    np.testing.assert_allclose(per_point[1].numpy(), model(x, 0.3, 1)[1].numpy(), rtol=1e-6)
    # the null label is what diffnotes.score's wrapper of a plain ScoreMLP evaluates
    from diffnotes import score as sm

    xs = np.random.default_rng(0).normal(size=(7, 2))
    np.testing.assert_allclose(sm.score_function(model, VP)(xs, 0.3),
                               guidance.guided_score_function(model, VP, None, 5.0)(xs, 0.3),
                               rtol=1e-6)
    # the score of the noise parameterisation is -eps_hat / sigma
    _, sigma = VP.alpha_sigma(0.3)
    np.testing.assert_allclose(model.score(x, 0.3, VP, 1).numpy(),
                               -model(x, 0.3, 1).numpy() / sigma, rtol=1e-5)


def test_learned_scores_match_the_exact_ones(trained):
    torch, guidance, mix, res = trained
    times = [0.05, 0.2, 0.5]
    # measured (2000 steps, seed 0): w = 0: 0.21, 0.06, 0.02; w = 2: 0.49, 0.14, 0.06;
    # unconditional (w = -1): 0.48, 0.07, 0.02
    cond = guidance.score_errors(res.ema, mix, VP, times, 0, 0.0, rng=1)
    guided = guidance.score_errors(res.ema, mix, VP, times, 0, 2.0, rng=1)
    uncond = guidance.score_errors(res.ema, mix, VP, times, 0, -1.0, rng=1)
    assert np.all(cond[1:] < [0.15, 0.06]) and cond[0] < 0.4
    assert np.all(uncond[1:] < [0.15, 0.06]) and uncond[0] < 0.7
    assert np.all(guided[1:] < [0.3, 0.15])
    # all grow as t -> 0, where the score is steep
    for e in (cond, guided, uncond):
        assert e[0] > e[1] > e[2]
    # the weights 1 + w and -w amplify the errors of both outputs
    assert np.all(guided > cond) and np.all(guided[1:] > uncond[1:])
    # an untrained network is far off: the bounds are not vacuous
    fresh = guidance.ConditionalScoreMLP(2, 2, seed=1)
    assert np.all(guidance.score_errors(fresh, mix, VP, times[1:], 0, 0.0, rng=1) > 0.5)


def test_learned_guidance_sharpens_the_class_like_the_exact_one(trained):
    torch, guidance, mix, res = trained
    rng = np.random.default_rng(2)
    pc, left = {}, {}
    for w in [0.0, 4.0]:
        for name, f in [("learned", guidance.guided_score_function(res.ema, VP, 1, w)),
                        ("exact", mix.guided_score_function(VP, 1, w))]:
            x = sde.euler_maruyama(VP, f, VP.prior_sample(1000, 2, rng), rng,
                                   n_steps=300).x
            pc[name, w] = np.exp(mix.class_log_prob(x)[:, 1]).mean()
            left[name, w] = np.mean(x[:, 0] < 0)
    for w in [0.0, 4.0]:
        assert abs(pc["learned", w] - pc["exact", w]) < 0.03
    assert pc["learned", 4.0] > pc["learned", 0.0]
    # the left arm of the lower moon (class 1), inside the other moon's arc, empties:
    # measured (exact) 36 % of the samples at w = 0, 6 % at w = 4
    for name in ["exact", "learned"]:
        assert left[name, 0.0] > 0.28 and left[name, 4.0] < 0.15


def test_learned_guidance_bad_input(trained):
    torch, guidance, mix, res = trained
    model = guidance.ConditionalScoreMLP(2, 2)
    with pytest.raises(ValueError, match="label"):
        model(torch.zeros(3, 2), 0.1, 3)
    with pytest.raises(ValueError, match="label"):
        model(torch.zeros(3, 2), 0.1, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="p_uncond"):
        guidance.train(model, VP, mix.sample_labelled, p_uncond=1.0, n_steps=1)
    with pytest.raises(ValueError, match="labels"):
        guidance.train(model, VP, np.zeros((4, 2)), n_steps=1)
    with pytest.raises(ValueError, match="labels"):
        guidance.train(model, VP, np.zeros((4, 2)), np.array([0, 1, 2, 0]), n_steps=1)
    with pytest.raises(ValueError, match="model"):
        guidance.train(guidance.ScoreMLP(), VP, mix.sample_labelled, n_steps=1)
    with pytest.raises(ValueError, match="w must"):
        guidance.guided_score_function(model, VP, 0, -2.0)
    with pytest.raises(ValueError, match="sde"):
        guidance.guided_score_function(model, object(), 0, 1.0)
    with pytest.raises(ValueError, match="t_min"):
        guidance.train(model, VP, mix.sample_labelled, t_min=1.0, n_steps=1)
    with pytest.raises(ValueError, match="n_classes"):
        guidance.ConditionalScoreMLP(2, 0)
    # a labelled array trains too
    x, y = mix.sample_labelled(256, 0)
    r = guidance.train(guidance.ConditionalScoreMLP(2, 2, hidden=16), VP, x, y, n_steps=20)
    assert r.losses.shape == (20,) and np.all(np.isfinite(r.losses))


def test_separated_classes_tilted_law_is_the_class_but_guidance_still_moves_it():
    """Exercise ex-ch3g-separated: classes 12 standard deviations apart; the tilted law is the
    class-conditional law to 1e-3 in W1, the guided sampler's output is not."""
    m = LabelledMixture([0.5, 0.5], [-3.0, 3.0], [0.25, 0.25], [0, 1])
    grid = np.linspace(-8, 12, 8001)
    cond, tilt = tilted_density(m, grid, 1, 0.0), tilted_density(m, grid, 1, 3.0)
    assert wasserstein1(grid, grid, tilt, cond) < 1e-3
    rng = np.random.default_rng(0)
    x = sde.euler_maruyama(VP, m.guided_score_function(VP, 1, 3.0),
                           VP.prior_sample(4000, 1, rng), rng, n_steps=500).x[:, 0]
    # measured shift of the mean ~0.10 (standard error 0.5 / sqrt(4000) = 0.008)
    assert x.mean() - 3.0 > 0.06
    assert wasserstein1(x, grid, y_weights=tilt) > 0.06      # floor ~0.015


def test_tilted_laws_are_not_the_diffusions_of_one_another():
    """The guided score at time t is the score of q_t(x|c)^(1+w) q_t(x)^(-w); for w not in
    {-1, 0} that law is not the tilted data law diffused to t."""
    m = mix1d()
    grid = np.linspace(-6, 8, 2801)
    h = grid[1] - grid[0]
    alpha, sigma = VP.alpha_sigma(0.3)
    kernel = np.exp(-0.5 * ((grid[:, None] - alpha * grid[None, :]) / sigma) ** 2)
    kernel /= np.sqrt(2 * np.pi) * sigma
    tv = {}
    for w in [-1.0, 0.0, 2.0]:
        diffused = kernel @ (tilted_density(m, grid, 1, w) * h)
        logp = (1 + w) * m.log_prob(grid, 0.3, VP, label=1) - w * m.log_prob(grid, 0.3, VP)
        tilted_t = np.exp(logp - logp.max())
        tilted_t /= np.trapezoid(tilted_t, grid)
        tv[w] = 0.5 * np.trapezoid(np.abs(diffused - tilted_t), grid)
    assert tv[-1.0] < 1e-6 and tv[0.0] < 1e-6
    assert tv[2.0] > 0.05                          # measured 0.185
