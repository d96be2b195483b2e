"""Checks of :mod:`diffnotes.images.metrics`: the Fréchet distance against closed forms and an
independent computation, the input checks, and the small classifier with the classifier-FID
and label statistics computed from it on scikit-learn's 8x8 digits.

Exact relations are checked to rounding. The Monte Carlo check is against a bound of 5
standard errors estimated in the test from repeated samples. Training checks use seed 0 and
200 steps (about 2 s on one core), with margins of 2x or more over the values observed for
seeds 0-3 (test accuracy 95-97%, halves-vs-noise FID ratio > 100, one-class-removed FID
5-7x its floor, 99% of the zeros recognised).
"""

import math

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from sklearn.datasets import load_digits

from diffnotes.images import metrics as im
from diffnotes.metrics import Floor
from diffnotes.utils import torch_threads

A2 = np.array([[2.0, 0.7], [0.7, 0.5]])
B2 = np.array([[0.4, -0.3], [-0.3, 1.5]])  # does not commute with A2


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _random_cov(d, seed):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((d, d))
    return m @ m.T / d + 0.1 * np.eye(d)


def _reference_fd(mu1, c1, mu2, c2):
    """The textbook formula with ``scipy.linalg.sqrtm`` of C1 C2 (real part)."""
    d = np.asarray(mu1) - np.asarray(mu2)
    return float(d @ d + np.trace(c1 + c2 - 2 * np.real(sqrtm(c1 @ c2))))


# --------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m1,s1,m2,s2", [(0.0, 1.0, 0.0, 1.0), (1.0, 2.0, -0.5, 0.5),
                                         (3.0, 0.1, 3.0, 4.0)])
def test_frechet_1d_closed_form(m1, s1, m2, s2):
    exact = (m1 - m2) ** 2 + (s1 - s2) ** 2
    assert im.frechet_distance([m1], [[s1**2]], [m2], [[s2**2]]) == pytest.approx(exact,
                                                                                abs=1e-12)
    assert im.frechet_distance(m1, s1**2, m2, s2**2) == pytest.approx(exact, abs=1e-12)


def test_frechet_commuting_covariances():
    a, b = np.array([1.0, 4.0, 0.25, 2.0]), np.array([9.0, 1.0, 0.25, 0.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    exact = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert im.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(exact,
                                                                                 rel=1e-12)


def test_frechet_non_commuting_against_sqrtm():
    assert not np.allclose(A2 @ B2, B2 @ A2)
    mu1, mu2 = np.array([0.3, -1.0]), np.array([1.0, 0.5])
    ref = _reference_fd(mu1, A2, mu2, B2)
    assert im.frechet_distance(mu1, A2, mu2, B2) == pytest.approx(ref, rel=1e-10)
    c1, c2 = _random_cov(6, 1), _random_cov(6, 2)
    m1, m2 = np.arange(6.0), np.zeros(6)
    assert im.frechet_distance(m1, c1, m2, c2) == pytest.approx(_reference_fd(m1, c1, m2, c2),
                                                                rel=1e-9)


def test_frechet_symmetric_zero_and_translation():
    c1, c2 = _random_cov(5, 3), _random_cov(5, 4)
    m1, m2 = np.linspace(-1, 1, 5), np.ones(5)
    d12, d21 = im.frechet_distance(m1, c1, m2, c2), im.frechet_distance(m2, c2, m1, c1)
    assert d12 > 0
    assert d12 == pytest.approx(d21, rel=1e-10)
    same = im.frechet_distance(m1, c1, m1, c1)
    assert 0.0 <= same < 1e-12 * np.trace(c1)
    shift = np.array([0.5, -2.0, 0.0, 1.0, 3.0])
    centred = im.frechet_distance(m1, c1, m1, c2)
    assert im.frechet_distance(m1, c1, m1 + shift, c2) == pytest.approx(
        centred + shift @ shift, rel=1e-10)
    # singular covariances are allowed, and a point mass against itself is at distance 0
    p = np.outer([1.0, 2.0], [1.0, 2.0])
    assert im.frechet_distance([0, 0], p, [0, 0], p) == pytest.approx(0.0, abs=1e-12)
    assert im.frechet_distance([0, 0], np.zeros((2, 2)), [0, 0], np.eye(2)) == pytest.approx(2)


def test_frechet_of_sample_stats_approaches_closed_form():
    c1 = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 0.5]])
    c2 = np.array([[1.0, -0.4, 0.2], [-0.4, 1.5, 0.0], [0.2, 0.0, 0.8]])
    m1, m2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.5, 0.0])
    exact = im.frechet_distance(m1, c1, m2, c2)
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(20):
        a = rng.multivariate_normal(m1, c1, 10_000)
        b = rng.multivariate_normal(m2, c2, 10_000)
        vals.append(im.frechet_distance(a.mean(0), np.cov(a, rowvar=False),
                                        b.mean(0), np.cov(b, rowvar=False)))
    vals = np.array(vals)
    se = vals.std(ddof=1) / np.sqrt(len(vals))
    # the plug-in bias is O(d / n), about 0.003 here, well within the bound
    assert abs(vals.mean() - exact) < 5 * se + 0.01


@pytest.mark.parametrize("args,name", [
    (([0, 0], np.eye(2), [0, 0, 0], np.eye(3)), "mu2"),
    (([0, 0], np.eye(3), [0, 0], np.eye(2)), "cov1"),
    (([0, 0], np.eye(2), [0, 0], np.ones(2)), "cov2"),
    (([np.nan, 0], np.eye(2), [0, 0], np.eye(2)), "mu1"),
    (([0, 0], np.eye(2), [0, 0], [[1, np.inf], [np.inf, 1]]), "cov2"),
    (([0, 0], [[1, 0], [0, -1]], [0, 0], np.eye(2)), "cov1"),
    (([0, 0], np.eye(2), [0, 0], [[1, 0.5], [0, 1]]), "cov2"),
    (([[0, 0]], np.eye(2), [0, 0], np.eye(2)), "mu1"),
])
def test_frechet_bad_inputs(args, name):
    with pytest.raises(ValueError, match=name):
        im.frechet_distance(*args)


# --------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = torch.tensor(2 * d.images / 16 - 1, dtype=torch.float32)[:, None]
    return x, torch.tensor(d.target, dtype=torch.int64)


@pytest.fixture(scope="module")
def trained(digits):
    x, y = digits
    with torch_threads(1):
        return im.train_classifier(x[:1400], y[:1400], n_steps=200, seed=0, device="cpu")


@pytest.mark.parametrize("size", [8, 28])
def test_classifier_shapes(size):
    net = im.Classifier(size, features=32, width=8, seed=1)
    x = torch.rand(5, 1, size, size) * 2 - 1
    assert net(x).shape == (5, 10)
    assert net.features(x).shape == (5, 32)
    p = net.predict_proba(x, batch_size=2)
    assert p.shape == (5, 10) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert net.embed(x.numpy()).shape == (5, 32)
    assert net.training  # predict_proba restores the mode
    with pytest.raises(ValueError, match="x"):
        net(torch.zeros(5, 1, size + 1, size + 1))


def test_classifier_init_is_seeded_without_global_rng():
    state = torch.random.get_rng_state()
    a, b, c = im.Classifier(8, seed=3), im.Classifier(8, seed=3), im.Classifier(8, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.head.weight, c.head.weight)


def test_trained_accuracy(trained, digits):
    x, y = digits
    assert im.accuracy(trained, x[1400:], y[1400:]) > 0.9
    assert not trained.training


def test_training_is_reproducible(digits):
    x, y = digits
    kw = dict(n_steps=15, batch_size=64, seed=5, device="cpu")
    a = im.train_classifier(x[:300], y[:300], **kw)
    b = im.train_classifier(x[:300].numpy(), y[:300].numpy(), **kw)
    c = im.train_classifier(x[:300], y[:300], **{**kw, "seed": 6})
    d = im.train_classifier(x[:300], y[:300], **{**kw, "augment": False})
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert not torch.equal(a.head.weight, c.head.weight)
    assert not torch.equal(a.head.weight, d.head.weight)


def test_state_round_trip(trained, digits, tmp_path):
    x, _ = digits
    path = tmp_path / "classifier.pt"
    torch.save(trained.state(), path)
    loaded = im.Classifier.from_state(torch.load(path, weights_only=True))
    assert (loaded.size, loaded.n_features, loaded.width, loaded.seed) == (8, 64, 16, 0)
    with torch.no_grad():
        assert torch.equal(loaded(x[:50]), trained(x[:50]))
    np.testing.assert_array_equal(loaded.predict_proba(x[:50]), trained.predict_proba(x[:50]))
    with pytest.raises(ValueError, match="state"):
        im.Classifier.from_state({"size": 8})


def test_shift_augmentation_keeps_pixels_and_fills_background():
    x = torch.rand(50, 1, 8, 8) * 2 - 1
    s = im._shift(x, 1, torch.Generator().manual_seed(0))
    assert s.shape == x.shape
    for i in range(50):  # each image is one of the nine shifts of its original
        padded = torch.nn.functional.pad(x[i, 0], (1, 1, 1, 1), value=-1.0)
        assert any(torch.equal(s[i, 0], padded[r:r + 8, c:c + 8])
                   for r in range(3) for c in range(3))


# --------------------------------------------------------------------------------------------
# Classifier-FID, its floor and label statistics
# --------------------------------------------------------------------------------------------
def test_feature_stats(trained, digits):
    x, _ = digits
    mu, cov = im.feature_stats(trained, x[:300], batch_size=64)
    f = trained.embed(x[:300])
    assert mu.dtype == np.float64 and mu.shape == (64,) and cov.shape == (64, 64)
    np.testing.assert_allclose(mu, f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(f, rowvar=False), rtol=1e-10, atol=1e-14)


def test_classifier_fid_separates_data_from_noise(trained, digits):
    x, _ = digits
    a, b = x[::2], x[1::2]
    noise = torch.randn(a.shape, generator=torch.Generator().manual_seed(1)).clamp(-1, 1)
    same = im.classifier_fid(trained, a, b)
    assert 0 < same
    assert im.classifier_fid(trained, a, noise) > 20 * same  # observed ratio > 100
    assert im.classifier_fid(trained, a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_features_and_the_n_above_d_rule(trained, digits):
    x, _ = digits
    fa, fb = trained.embed(x[:300]), trained.embed(x[300:500])
    expect = im.frechet_distance(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0),
                                 np.cov(fb, rowvar=False))
    assert im.frechet_features(fa, fb) == pytest.approx(expect, rel=1e-12)
    assert im.classifier_fid(trained, x[:300], x[300:500]) == pytest.approx(expect, rel=1e-9)
    # n = d = 64: singular covariance, refused, naming n and the feature dimension
    for call in (lambda: im.frechet_features(fa[:64], fb),
                 lambda: im.classifier_fid(trained, x[:64], x[300:500]),
                 lambda: im.feature_stats(trained, x[:64])):
        with pytest.raises(ValueError, match="n = 64 images for feature dimension 64"):
            call()
    with pytest.raises(ValueError, match="images_b: .*n = 10 images"):
        im.classifier_fid(trained, x[:300], x[:10])
    assert im.frechet_features(fa[:65], fb) > 0   # n = d + 1 is allowed
    with pytest.raises(ValueError, match="features_b"):
        im.frechet_features(fa, fb[:, :10])


# --------------------------------------------------------------------------------------------
# KID
# --------------------------------------------------------------------------------------------
def _kid_loops(a, b):
    """Direct O(n^2) double loops of the unbiased MMD^2 with the cubic kernel."""
    d = a.shape[1]

    def k(u, v):
        return (float(np.dot(u, v)) / d + 1.0) ** 3
    m, n = len(a), len(b)
    saa = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j)
    sbb = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j)
    sab = sum(k(a[i], b[j]) for i in range(m) for j in range(n))
    return saa / (m * (m - 1)) + sbb / (n * (n - 1)) - 2 * sab / (m * n)


def test_kid_against_direct_loops():
    rng = np.random.default_rng(0)
    for m, n, d in [(2, 2, 1), (7, 5, 3), (12, 9, 6)]:
        a, b = rng.standard_normal((m, d)), 0.5 + rng.standard_normal((n, d))
        assert im.kid(a, b) == pytest.approx(_kid_loops(a, b), rel=1e-10, abs=1e-12)
        assert im.kid(a, b) == pytest.approx(im.kid(b, a), rel=1e-12)


def test_kid_is_unbiased_where_the_plug_in_estimate_is_not():
    """Mean of KID over 2000 pairs of samples of size 8 from one law: 0 within 5 standard
    errors; the biased V-statistic (diagonal included) is positive by many of them."""
    rng = np.random.default_rng(1)
    d, n, reps = 4, 8, 2000
    u, v = [], []
    for _ in range(reps):
        a, b = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        u.append(im.kid(a, b))
        k = (np.vstack([a, b]) @ np.vstack([a, b]).T / d + 1) ** 3
        v.append(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())
    u, v = np.array(u), np.array(v)
    se = u.std(ddof=1) / np.sqrt(reps)
    assert abs(u.mean()) < 5 * se
    assert v.mean() > 5 * v.std(ddof=1) / np.sqrt(reps) and v.mean() > 10 * se


@pytest.mark.parametrize("mu", [0.3, 1.0])
def test_kid_mean_is_the_closed_form_mmd_in_1d(mu):
    """In d = 1, (xy + 1)^3 = x^3 y^3 + 3 x^2 y^2 + 3 x y + 1, so MMD^2 between N(0, 1) and
    N(mu, 1) is (m3 - m3')^2 + 3 (m2 - m2')^2 + 3 (m1 - m1')^2 with the raw moments
    m1 = mu, m2 = mu^2 + 1, m3 = mu^3 + 3 mu: the mean of KID over many pairs of samples of
    size 20 matches it within 5 standard errors."""
    exact = (mu**3 + 3 * mu) ** 2 + 3 * (mu**2) ** 2 + 3 * mu**2
    rng = np.random.default_rng(2)
    vals = np.array([im.kid(rng.standard_normal((20, 1)), mu + rng.standard_normal((20, 1)))
                     for _ in range(3000)])
    se = vals.std(ddof=1) / np.sqrt(vals.size)
    assert abs(vals.mean() - exact) < 5 * se
    assert se < 0.1 * exact   # sharp enough to tell mu = 0.3 from 0.33


def test_kid_bad_inputs(trained, digits):
    x, _ = digits
    a = np.ones((5, 3))
    with pytest.raises(ValueError, match="features_a"):
        im.kid(a[:1], a)
    with pytest.raises(ValueError, match="features_b must have 3 columns"):
        im.kid(a, np.ones((5, 2)))
    with pytest.raises(ValueError, match="features_a"):
        im.kid(np.ones(5), a)
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="features_b"):
        im.kid(a, bad)
    with pytest.raises(ValueError, match="images_a"):
        im.classifier_kid(trained, x[:1], x[:10])
    # KID needs no n > d: 10 images in 64 dimensions
    assert np.isfinite(im.classifier_kid(trained, x[:10], x[10:20]))


# --------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------
def test_quality_floor_and_generator_at_the_same_n(trained, digits):
    """Real images of the same law as the held-out ones score within the floor's band; a set
    without the digit 3 is far above it; the held-out draws (and so the floor) do not depend
    on the samples."""
    x, y = digits
    held, same = x[1400:1600], x[1600:]            # 200 and 197 images the classifier never saw
    n = 100
    q = im.quality(trained, same, held, n, n_draws=6, rng=0)
    assert isinstance(q, im.Quality) and q.n == n
    for s in (q.floor_fd, q.floor_kid, q.fd, q.kid):
        assert isinstance(s, Floor) and len(s.values) == 6
        assert s.mean == pytest.approx(np.mean(s.values)) and s.std == pytest.approx(
            np.std(s.values, ddof=1))
    band = 3 * np.hypot(q.floor_fd.std, q.fd.std)
    assert abs(q.fd.mean - q.floor_fd.mean) < band
    assert abs(q.floor_kid.mean) < 3 * q.floor_kid.std   # KID: no bias at finite n
    no3 = x[:1400][y[:1400] != 3]
    q3 = im.quality(trained, no3, held, n, n_draws=6, rng=0)
    assert q3.floor_fd == q.floor_fd and q3.floor_kid == q.floor_kid
    assert q3.fd.mean > q.floor_fd.mean + 3 * q.floor_fd.std   # observed about 3x the floor
    assert q3.kid.mean > q.floor_kid.mean + 2 * q.floor_kid.std   # observed 2.8 sd
    assert im.quality(trained, same, held, n, n_draws=6, rng=0) == q
    only = im.quality(trained, None, held, n, n_draws=6, rng=0)
    assert only.fd is None and only.kid is None and only.floor_fd == q.floor_fd
    assert "floor" in str(q) and "KID" in str(q)


def test_quality_draws_as_documented(trained, digits):
    """The draws recomputed independently: per draw, the two disjoint held-out sets are the
    two halves of the first 2 n of a permutation, and with n_draws * n samples or more the
    samples' sets are disjoint blocks of one permutation; the generator meets set A."""
    x, _ = digits
    held, samples = x[1400:1650], x[:700]
    n, draws = 100, 3
    q = im.quality(trained, samples, held, n, n_draws=draws, rng=5)
    seed_h, seed_g = np.random.default_rng(5).integers(2**63, size=2)
    rng_h = np.random.default_rng(seed_h)
    blocks = np.random.default_rng(seed_g).permutation(700)
    f_h, f_g = trained.embed(held), trained.embed(samples)
    for r in range(draws):
        p = rng_h.permutation(250)
        a, b = f_h[p[:n]], f_h[p[n:2 * n]]
        g = f_g[blocks[r * n:(r + 1) * n]]
        assert q.floor_fd.values[r] == pytest.approx(im.frechet_features(a, b), rel=1e-12)
        assert q.floor_kid.values[r] == pytest.approx(im.kid(a, b), rel=1e-12)
        assert q.fd.values[r] == pytest.approx(im.frechet_features(g, a), rel=1e-12)
        assert q.kid.values[r] == pytest.approx(im.kid(g, a), rel=1e-12)


def test_quality_bad_inputs(trained, digits):
    x, _ = digits
    held = x[1400:1600]
    with pytest.raises(ValueError, match="n = 64 images for feature dimension 64"):
        im.quality(trained, x[:100], held, 64, rng=0)
    q = im.quality(trained, x[:100], held, 64, rng=0, fd=False)   # KID only
    assert q.fd is None and q.floor_fd is None and q.kid is not None
    assert "FD" not in str(q)
    with pytest.raises(ValueError, match="heldout must hold at least 2 n = 240"):
        im.quality(trained, x[:200], held, 120, rng=0)
    with pytest.raises(ValueError, match="samples must hold at least n = 100"):
        im.quality(trained, x[:99], held, 100, rng=0)
    with pytest.raises(ValueError, match="n_draws"):
        im.quality(trained, x[:100], held, 100, n_draws=1, rng=0)
    with pytest.raises(ValueError, match="rng"):
        im.quality(trained, x[:100], held, 100, rng=None)
    with pytest.raises(ValueError, match="fd"):
        im.quality(trained, x[:100], held, 100, rng=0, fd="yes")
    with pytest.raises(ValueError, match="samples"):
        im.quality(trained, torch.zeros(100, 1, 28, 28), held, 100, rng=0)
    with pytest.raises(ValueError, match="classifier"):
        im.quality(None, x[:100], held, 100, rng=0)


# --------------------------------------------------------------------------------------------
# Memorisation
# --------------------------------------------------------------------------------------------
def test_memorisation_distances_are_nearest_neighbours(trained, digits):
    x, _ = digits
    train, held, samples = x[:700], x[1400:1500], x[1500:1600]
    m = im.memorisation(samples, train, held)
    assert m.space == "pixels"
    brute = torch.cdist(samples.flatten(1).double(), train.flatten(1).double()).min(1).values
    np.testing.assert_allclose(m.samples, brute.numpy(), rtol=1e-9, atol=1e-9)
    mf = im.memorisation(samples, train, held, classifier=trained)
    assert mf.space == "features"
    brute_f = torch.cdist(torch.as_tensor(trained.embed(held)),
                          torch.as_tensor(trained.embed(train))).min(1).values
    np.testing.assert_allclose(mf.heldout, brute_f.numpy(), rtol=1e-9, atol=1e-9)
    # new images of the same law: ratio near 1 and about 5% nearer than 95% of held-out
    assert 0.8 < m.ratio < 1.25 and m.frac_closer < 0.2
    s = m.summary()
    assert s["ratio"] == m.ratio and s["samples_median"] == pytest.approx(np.median(brute))


def test_memorisation_sees_copies(digits):
    x, _ = digits
    train, held = x[:700], x[1400:1500]
    noisy_copies = train[:100] + 0.01 * torch.randn(100, 1, 8, 8,
                                                    generator=torch.Generator().manual_seed(0))
    m = im.memorisation(train[:100], train, held)
    np.testing.assert_allclose(m.samples, 0.0, atol=1e-6)
    assert m.ratio < 1e-6 and m.frac_closer == 1.0
    mn = im.memorisation(noisy_copies, train, held)
    assert mn.ratio < 0.1 and mn.frac_closer > 0.9
    assert "ratio" in str(mn)


def test_memorisation_bad_inputs(trained, digits):
    x, _ = digits
    with pytest.raises(ValueError, match="train"):
        im.memorisation(x[:10], torch.zeros(10, 1, 28, 28), x[20:30])
    with pytest.raises(ValueError, match="heldout"):
        im.memorisation(x[:10], x[10:20], x[20:21])
    with pytest.raises(ValueError, match="classifier"):
        im.memorisation(x[:10], x[10:20], x[20:30], classifier=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="samples"):
        im.memorisation(x[:10, 0], x[10:20], x[20:30])


def test_label_stats(trained, digits):
    x, y = digits
    real = im.label_stats(trained, x[1400:])
    assert set(real) == {"entropy", "marginal_entropy", "coverage", "class_freq"}
    assert real["coverage"] == 1.0
    assert real["marginal_entropy"] == pytest.approx(math.log(10), abs=0.02)
    assert 0 <= real["entropy"] < 0.5
    assert real["class_freq"].shape == (10,)
    assert real["class_freq"].sum() == pytest.approx(1.0)
    zeros = im.label_stats(trained, x[y == 0])
    assert zeros["coverage"] == pytest.approx(0.1)
    assert zeros["class_freq"][0] > 0.95
    assert zeros["marginal_entropy"] < 0.5
    noise = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    assert im.label_stats(trained, noise)["entropy"] > real["entropy"]


# --------------------------------------------------------------------------------------------
# Input checks of the image functions
# --------------------------------------------------------------------------------------------
def test_bad_image_and_label_inputs(trained, digits):
    x, y = digits
    with pytest.raises(ValueError, match="images"):
        im.train_classifier(x[:20, 0], y[:20], n_steps=1)  # rank 3
    with pytest.raises(ValueError, match="images"):
        im.train_classifier(x[:20].expand(20, 3, 8, 8), y[:20], n_steps=1)  # 3 channels
    bad = x[:20].clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="images"):
        im.train_classifier(bad, y[:20], n_steps=1)
    for labels in (y[:20] + 1, y[:20] - 1):  # a 10 or a -1
        with pytest.raises(ValueError, match=r"labels must be in 0\.\.9"):
            im.train_classifier(x[:20], labels, n_steps=1)
    with pytest.raises(ValueError, match="labels"):
        im.train_classifier(x[:20], y[:19], n_steps=1)
    with pytest.raises(ValueError, match="labels"):
        im.train_classifier(x[:20], y[:20].float(), n_steps=1)
    with pytest.raises(ValueError, match="n_steps"):
        im.train_classifier(x[:20], y[:20], n_steps=0)
    with pytest.raises(ValueError, match="images_b"):
        im.classifier_fid(trained, x[:100], torch.zeros(100, 1, 28, 28))
    with pytest.raises(ValueError, match="images"):
        im.feature_stats(trained, x[:1])
    with pytest.raises(ValueError, match="threshold"):
        im.label_stats(trained, x[:10], threshold=0)
    with pytest.raises(ValueError, match="classifier"):
        im.label_stats(torch.nn.Linear(2, 2), x[:10])
    with pytest.raises(ValueError, match="size"):
        im.Classifier(2)
