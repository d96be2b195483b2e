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


def test_missing_class_is_above_the_floor(trained, digits):
    x, y = digits
    a, b, yb = x[::2], x[1::2], y[1::2]
    n = 400
    floor = im.fid_floor(trained, a, b, n, n_rep=5, rng=0)
    assert isinstance(floor, Floor) and len(floor.values) == 5 and floor.mean > 0
    assert floor == im.fid_floor(trained, a, b, n, n_rep=5, rng=0)
    no3 = b[yb != 3]
    sub = no3[np.random.default_rng(1).choice(len(no3), n, replace=False)]
    fid = im.classifier_fid(trained, a, sub)
    assert fid > 2 * floor.mean and fid > max(floor.values)  # observed about 5x the floor


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
        im.classifier_fid(trained, x[:50], torch.zeros(50, 1, 28, 28))
    with pytest.raises(ValueError, match="images"):
        im.feature_stats(trained, x[:1])
    with pytest.raises(ValueError, match="n"):
        im.fid_floor(trained, x[:100], x[100:150], 51, rng=0)
    with pytest.raises(ValueError, match="n_rep"):
        im.fid_floor(trained, x[:100], x[100:150], 20, n_rep=1, rng=0)
    with pytest.raises(ValueError, match="rng"):
        im.fid_floor(trained, x[:100], x[100:150], 20, rng=None)
    with pytest.raises(ValueError, match="threshold"):
        im.label_stats(trained, x[:10], threshold=0)
    with pytest.raises(ValueError, match="classifier"):
        im.label_stats(torch.nn.Linear(2, 2), x[:10])
    with pytest.raises(ValueError, match="size"):
        im.Classifier(2)
