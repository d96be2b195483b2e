"""Checks of the 2-D toy distributions (:mod:`diffnotes.data`) and the sample-based metrics of
:mod:`diffnotes.metrics` (sliced W2, MMD, exact OT, noise floors).

Toys are checked against their documented geometry (exact for noise-free draws) and their
documented scale (mean 0, total variance 2, to 5 standard errors). Metrics are checked against
brute-force computations (double loops, assignment problems, quantile functions on a common
grid), closed forms (translations, Gaussian MMD) and each other. Seeds are fixed.
"""

import dataclasses
import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from diffnotes import data
from diffnotes.metrics import (
    Floor,
    mmd,
    noise_floor,
    ot_distance,
    sliced_wasserstein2,
    wasserstein1,
)
from diffnotes.mixtures import moons_mixture

NAMES = ["two_moons", "swiss_roll", "eight_gaussians", "checkerboard", "circles"]


def within_5_se(values, expected):
    """Sample mean of ``values`` (along axis 0) within 5 standard errors of ``expected``."""
    values = np.asarray(values, float)
    se = values.std(axis=0) / np.sqrt(values.shape[0])
    return np.all(np.abs(values.mean(axis=0) - expected) <= 5 * se)


# ------------------------------------------------------------------------ toys
def test_toys_registry_is_complete():
    assert sorted(data.TOYS) == sorted(NAMES)
    assert all(data.TOYS[name] is getattr(data, name) for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_toy_shape_and_reproducibility(name):
    x = data.sample(name, 257, 3)
    assert x.shape == (257, 2) and x.dtype == np.float64 and np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, data.sample(name, 257, 3))
    np.testing.assert_array_equal(x, data.TOYS[name](257, np.random.default_rng(3)))
    assert not np.allclose(x, data.sample(name, 257, 4))
    assert data.sample(name, 1, 0).shape == (1, 2)
    # a shared Generator moves on: two calls give two different samples
    g = np.random.default_rng(5)
    assert not np.allclose(data.sample(name, 50, g), data.sample(name, 50, g))


# documented noise-free law: mean 0 and E|x|^2 = 2; noise adds 2 noise^2 to E|x|^2
@pytest.mark.parametrize(("name", "kwargs", "second_moment"), [
    ("two_moons", {"noise": 0.0}, 2.0),
    ("two_moons", {}, 2 + 2 * 0.05**2),
    ("swiss_roll", {"noise": 0.0}, 2.0),
    ("swiss_roll", {"noise": 0.3}, 2 + 2 * 0.3**2),
    ("eight_gaussians", {}, 2 + 2 * 0.1**2),
    ("eight_gaussians", {"radius": 3.0, "std": 0.5}, 9 + 2 * 0.5**2),
    ("checkerboard", {}, 2.0),
    ("circles", {"noise": 0.0}, 2.0),
    ("circles", {"factor": 0.2, "noise": 0.1}, 2 + 2 * 0.1**2),
])
def test_toy_is_centred_and_scaled_as_documented(name, kwargs, second_moment):
    x = data.sample(name, 200_000, 11, **kwargs)
    assert within_5_se(x, np.zeros(2))
    assert within_5_se((x**2).sum(axis=1), second_moment)


def moon_distance(p):
    """Distance of points ``p`` (n, 2) to each of the two documented half circles: radius
    s, centres s(-1/2, -1/4) (upper half) and s(1/2, 1/4) (lower half); shape (n, 2)."""
    s = math.sqrt(2.0 / (0.75 + 0.5 - 4 / math.pi**2 + (2 / math.pi - 0.25) ** 2))
    out = []
    for centre, sign in ((s * np.array([-0.5, -0.25]), 1.0), (s * np.array([0.5, 0.25]), -1.0)):
        q = p - centre
        on_side = sign * q[:, 1] >= 0
        to_arc = np.abs(np.linalg.norm(q, axis=1) - s)
        to_ends = np.minimum(np.linalg.norm(q - [s, 0], axis=1), np.linalg.norm(q + [s, 0], axis=1))
        out.append(np.where(on_side, to_arc, to_ends))
    return np.stack(out, axis=1)


def test_two_moons_lie_on_the_documented_half_circles():
    x0 = data.two_moons(4000, 0, noise=0.0)
    d0 = moon_distance(x0)
    assert d0.min(axis=1).max() < 1e-12
    # both moons are used, each with probability 1/2
    on_upper = d0[:, 0] < 1e-12
    assert abs(on_upper.mean() - 0.5) < 5 * 0.5 / np.sqrt(4000)
    # with noise, the distance to the curve is at most the noise norm (Rayleigh(noise)):
    # P(> 3 noise) = exp(-4.5) ~ 1.1%, P(> 6 noise) = exp(-18)
    noise = 0.05
    d = moon_distance(data.two_moons(4000, 1, noise=noise)).min(axis=1)
    assert (d <= 3 * noise).mean() > 0.98
    assert d.max() <= 6 * noise
    assert d.mean() > 0.2 * noise                       # the noise is really there


def test_eight_gaussians_has_eight_clusters_on_the_circle():
    x0 = data.eight_gaussians(1000, 0, radius=3.0, std=0.0)
    centres = np.unique(np.round(x0, 12), axis=0)
    assert centres.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 3.0, rtol=1e-12)
    angles = np.sort(np.mod(np.arctan2(centres[:, 1], centres[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)
    # default: radius sqrt(2), std 0.1; every point is nearest its own centre
    n, std = 16_000, 0.1
    x = data.eight_gaussians(n, 1)
    k = np.round(np.arctan2(x[:, 1], x[:, 0]) / (np.pi / 4)).astype(int) % 8
    counts = np.bincount(k, minlength=8)
    assert np.all(np.abs(counts - n / 8) <= 5 * np.sqrt(n * (1 / 8) * (7 / 8)))
    a = 2 * np.pi * k / 8
    resid = x - math.sqrt(2) * np.stack([np.cos(a), np.sin(a)], axis=1)
    assert within_5_se(resid, np.zeros(2))
    assert within_5_se(resid**2, np.full(2, std**2))


def test_checkerboard_fills_the_dark_squares_uniformly():
    n = 80_000
    x = data.checkerboard(n, 2)
    side = math.sqrt(3) / 2
    assert np.all(np.abs(x) <= math.sqrt(3))
    col, row = np.floor(x / side + 2).astype(int).T
    assert np.all((col + row) % 2 == 0)
    counts = np.bincount(4 * col + row, minlength=16).reshape(4, 4)
    dark = (np.add.outer(np.arange(4), np.arange(4)) % 2) == 0
    assert np.all(counts[~dark] == 0)
    assert np.all(np.abs(counts[dark] - n / 8) <= 5 * np.sqrt(n * (1 / 8) * (7 / 8)))
    # documented moments: each coordinate variance 1, correlation exactly 3/16
    assert within_5_se(x**2, np.ones(2))
    assert within_5_se(x[:, 0] * x[:, 1], 3 / 16)


def test_circles_radii_and_swiss_roll_spiral():
    for factor in (0.5, 0.0, 0.8):
        x = data.circles(3000, 0, factor=factor, noise=0.0)
        r = np.linalg.norm(x, axis=1)
        outer = 2 / math.sqrt(1 + factor**2)
        on_outer = np.isclose(r, outer, rtol=1e-12)
        assert np.all(on_outer | np.isclose(r, factor * outer, rtol=1e-12, atol=1e-12))
        assert abs(on_outer.mean() - 0.5) < 5 * 0.5 / np.sqrt(3000)
    # swiss roll, noise-free: undoing the documented centring/scaling gives t (cos t, sin t)
    # with t = |raw| in [3 pi/2, 9 pi/2] and polar angle = t mod 2 pi
    s = math.sqrt(2.0 / (39 * math.pi**2 / 4 - 4 - 4 / (9 * math.pi**2)))
    raw = data.swiss_roll(3000, 0, noise=0.0) / s + [2.0, 2 / (3 * math.pi)]
    t = np.linalg.norm(raw, axis=1)
    assert t.min() >= 1.5 * math.pi - 1e-9 and t.max() <= 4.5 * math.pi + 1e-9
    phase = np.mod(np.arctan2(raw[:, 1], raw[:, 0]) - t + np.pi, 2 * np.pi) - np.pi
    assert np.abs(phase).max() < 1e-9
    # t is uniform: as many points in the first half of the range as in the second
    assert abs((t < 3 * math.pi).mean() - 0.5) < 5 * 0.5 / np.sqrt(3000)


def test_sample_forwards_kwargs_and_rejects_unknown_names():
    np.testing.assert_array_equal(data.sample("circles", 40, 1, factor=0.3, noise=0.1),
                                  data.circles(40, 1, factor=0.3, noise=0.1))
    with pytest.raises(ValueError, match="name must be one of.*checkerboard.*two_moons"):
        data.sample("moons", 10, 0)
    with pytest.raises(TypeError):
        data.sample("checkerboard", 10, 0, noise=0.1)   # checkerboard has no noise


@pytest.mark.parametrize(("call", "match"), [
    (lambda: data.two_moons(0, 0), "n must be an integer >= 1"),
    (lambda: data.swiss_roll(2.5, 0), "n must be an integer"),
    (lambda: data.checkerboard(10, None), "rng must be"),
    (lambda: data.circles(10, -1), "rng must be"),
    (lambda: data.two_moons(10, 0, noise=-0.1), "noise must be"),
    (lambda: data.swiss_roll(10, 0, noise=np.inf), "noise must be"),
    (lambda: data.eight_gaussians(10, 0, radius=0.0), "radius must be"),
    (lambda: data.eight_gaussians(10, 0, std=-1.0), "std must be"),
    (lambda: data.circles(10, 0, factor=1.0), "factor must be"),
    (lambda: data.circles(10, 0, factor=-0.5), "factor must be"),
])
def test_toys_reject_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------ sliced W2
def w2_1d_bruteforce(x, y):
    """Exact 1-D W2 between uniform empirical laws of sizes m, k: expand both to lcm(m, k)
    equal-weight atoms, then pair the sorted atoms."""
    m, k = len(x), len(y)
    L = math.lcm(m, k)
    xs = np.sort(np.repeat(x, L // m))
    ys = np.sort(np.repeat(y, L // k))
    return math.sqrt(np.mean((xs - ys) ** 2))


def test_sliced_w2_is_zero_on_the_same_cloud():
    x = np.random.default_rng(0).normal(size=(300, 3))
    assert sliced_wasserstein2(x, x) == 0.0
    assert sliced_wasserstein2(x, x[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_sliced_w2_is_exact_in_1d():
    g = np.random.default_rng(1)
    x, y = g.normal(size=60), g.exponential(size=60)
    assert sliced_wasserstein2(x, y) == pytest.approx(w2_1d_bruteforce(x, y), rel=1e-12)
    # unequal sizes use the quantile functions on the common grid
    x, y = g.normal(size=12), 1 + g.normal(size=18)
    expected = w2_1d_bruteforce(x, y)
    assert sliced_wasserstein2(x, y) == pytest.approx(expected, rel=1e-12)
    assert sliced_wasserstein2(x[:, None], y[:, None], n_projections=1, rng=7) == \
        pytest.approx(expected, rel=1e-12)
    # agrees with exact optimal transport (squared cost) in 1-D
    assert ot_distance(x, y, p=2) == pytest.approx(expected, rel=1e-9)


def test_sliced_w2_unequal_sizes_see_only_the_empirical_laws():
    g = np.random.default_rng(2)
    x, y = g.normal(size=(150, 2)), g.normal(size=(100, 2)) + 0.3
    sw = sliced_wasserstein2(x, y, rng=4)
    # duplicating every atom leaves the empirical law, hence the distance, unchanged
    assert sliced_wasserstein2(x, np.repeat(y, 3, axis=0), rng=4) == pytest.approx(sw, rel=1e-12)
    assert sliced_wasserstein2(np.repeat(x, 2, axis=0), y, rng=4) == pytest.approx(sw, rel=1e-12)
    assert sliced_wasserstein2(y, x, rng=4) == pytest.approx(sw, rel=1e-12)


def test_sliced_w2_of_a_translation():
    # each projection is shifted by <v, theta>, so SW2^2 = E <v, theta>^2 = |v|^2 / d;
    # with 20000 directions in d = 3 the Monte Carlo error on SW2 is ~0.3% (2% is 6 sigma)
    x = np.random.default_rng(3).normal(size=(200, 3))
    v = np.array([0.5, -1.0, 2.0])
    sw = sliced_wasserstein2(x, x + v, n_projections=20_000, rng=1)
    assert sw == pytest.approx(np.linalg.norm(v) / math.sqrt(3), rel=0.02)


def test_sliced_w2_between_shifted_gaussians():
    # N(0, I) vs N(m, I) in d = 2: SW2 -> |m| / sqrt(2); 2000 directions (~0.8% MC error)
    # and 3000 points (sampling floor ~0.05 added in quadrature) give 3%
    g = np.random.default_rng(4)
    mean = np.array([1.5, -2.0])
    x, y = g.normal(size=(3000, 2)), mean + g.normal(size=(3000, 2))
    sw = sliced_wasserstein2(x, y, n_projections=2000)
    assert sw == pytest.approx(np.linalg.norm(mean) / math.sqrt(2), rel=0.03)
    # the default (fixed) directions make it deterministic; another seed moves it a little
    assert sliced_wasserstein2(x, y, n_projections=2000) == sw
    assert sliced_wasserstein2(x, y, n_projections=2000, rng=1) != sw


# ------------------------------------------------------------------------ MMD
def mmd_bruteforce(x, y, h):
    k = lambda a, b: math.exp(-np.sum((a - b) ** 2) / (2 * h * h))  # noqa: E731
    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_mmd_matches_a_double_loop():
    g = np.random.default_rng(5)
    x, y = g.normal(size=(6, 2)), g.normal(size=(4, 2)) + [1.0, 0.0]
    for h in (0.3, 0.7, 2.5):
        assert mmd(x, y, bandwidth=h) == pytest.approx(mmd_bruteforce(x, y, h), rel=1e-12)
    # median heuristic: median distance over all pairs of the pooled sample
    z = np.concatenate([x, y])
    med = np.median([np.linalg.norm(z[a] - z[b]) for a in range(10) for b in range(a)])
    assert mmd(x, y) == pytest.approx(mmd_bruteforce(x, y, med), rel=1e-12)
    # 1-D input, shape (m,)
    assert mmd(x[:, 0], y[:, 0], bandwidth=0.7) == \
        pytest.approx(mmd_bruteforce(x[:, :1], y[:, :1], 0.7), rel=1e-12)


def test_mmd_is_unbiased_for_shifted_gaussians():
    # X ~ N(0, I_2), Y ~ N(mu, I_2), h = 1: E k(X, X') = (h^2 / (h^2 + 2))^(d/2) = 1/3 and
    # MMD^2 = 2/3 (1 - exp(-|mu|^2 / (2 (h^2 + 2)))) = 0.10207 for |mu| = 1
    exact = 2 / 3 * (1 - math.exp(-1 / 6))
    g = np.random.default_rng(6)
    vals = [mmd(g.normal(size=(600, 2)), g.normal(size=(500, 2)) + [0.6, 0.8], bandwidth=1.0)
            for _ in range(8)]
    assert within_5_se(vals, exact)
    assert abs(np.mean(vals) - exact) < 0.1 * exact


def test_mmd_separates_same_from_different_laws():
    same = [mmd(data.two_moons(800, s), data.two_moons(800, s + 100)) for s in range(4)]
    diff = mmd(data.two_moons(800, 0), data.circles(800, 0))
    assert np.all(np.abs(same) < 0.002)
    assert min(same) < 0                     # the U-statistic does go below 0
    assert diff > 0.01 and diff > 10 * np.abs(same).max()
    # the smooth mixture stand-in for the moons is far closer to two_moons than circles are
    close = mmd(data.two_moons(800, 1), moons_mixture(radius=1.418, std=0.12).sample(800, 2))
    assert abs(close) < diff / 3


# ------------------------------------------------------------------------ exact OT
def test_ot_distance_matches_an_assignment_problem():
    g = np.random.default_rng(7)
    x, y = g.normal(size=(40, 2)), g.uniform(-1, 2, size=(40, 2))
    dist = np.linalg.norm(x[:, None] - y[None], axis=2)
    for p in (1, 2, 3.5):
        cost = dist**p
        r, c = linear_sum_assignment(cost)
        expected = cost[r, c].mean() ** (1 / p)
        assert ot_distance(x, y, p=p) == pytest.approx(expected, rel=1e-9)
    assert ot_distance(x, x) == pytest.approx(0.0, abs=1e-12)


def test_ot_distance_w1_matches_wasserstein1():
    g = np.random.default_rng(8)
    x, y = g.normal(size=(50, 3)), g.normal(size=(35, 3)) + 0.5      # unequal sizes
    assert ot_distance(x, y, p=1) == pytest.approx(wasserstein1(x, y), rel=1e-9)
    a, b = g.normal(size=30), g.exponential(size=45)
    assert ot_distance(a, b, p=1) == pytest.approx(wasserstein1(a, b), rel=1e-9)
    # W_p is non-decreasing in p and dominates SW2
    assert ot_distance(x, y, p=1) <= ot_distance(x, y, p=2) <= ot_distance(x, y, p=3)
    assert sliced_wasserstein2(x, y) <= ot_distance(x, y, p=2)


# ------------------------------------------------------------------------ noise floors
def test_noise_floor_is_positive_and_shrinks_with_n():
    small = noise_floor(sliced_wasserstein2, data.two_moons, 200, 0)
    large = noise_floor(sliced_wasserstein2, data.two_moons, 3200, 0)
    assert isinstance(small, Floor) and len(small.values) == 5
    assert small.mean > 0 and large.mean > 0
    assert small.mean > 2 * large.mean          # ~ n^{-1/2}: expected ratio about 4
    assert small.mean == pytest.approx(np.mean(small.values), rel=1e-12)
    assert small.std == pytest.approx(np.std(small.values, ddof=1), rel=1e-12)
    assert small.std > 0
    assert f"{small.mean:.3g}" in str(small) and "over 5 pairs" in str(small)
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.mean = 0.0


def test_noise_floor_is_reproducible_and_forwards_kwargs():
    f1 = noise_floor(sliced_wasserstein2, data.circles, 300, 9, n_repeats=3)
    f2 = noise_floor(sliced_wasserstein2, data.circles, 300, 9, n_repeats=3)
    assert f1 == f2 and len(f1.values) == 3
    assert len(set(f1.values)) == 3                     # independent pairs, not one repeated
    f3 = noise_floor(sliced_wasserstein2, data.circles, 300, 9, n_repeats=3, n_projections=4)
    assert f3.values != f1.values
    # any (n, rng) sampler works, e.g. a Gaussian mixture; the MMD floor sits at about 0
    fm = noise_floor(mmd, moons_mixture().sample, 300, 1, n_repeats=4, bandwidth=0.5)
    assert abs(fm.mean) < 3 * fm.std + 1e-3


def test_sliced_w2_with_a_wrong_mean_stands_above_the_floor():
    floor = noise_floor(sliced_wasserstein2, data.eight_gaussians, 1000, 0)
    # a shift by 0.5 alone gives SW2 = 0.5 / sqrt(2) ~ 0.35; the floor is ~0.1
    shifted = sliced_wasserstein2(data.eight_gaussians(1000, 1) + [0.5, 0.0],
                                  data.eight_gaussians(1000, 2))
    assert shifted > floor.mean + 5 * floor.std


# ------------------------------------------------------------------------ bad inputs
X2 = np.zeros((5, 2))


@pytest.mark.parametrize(("call", "match"), [
    (lambda: sliced_wasserstein2(X2, np.zeros((5, 3))), "same dimension"),
    (lambda: sliced_wasserstein2(np.zeros((2, 2, 2)), X2), "x must have 1 or 2"),
    (lambda: sliced_wasserstein2(X2, [[np.nan, 0.0]]), "y must contain only finite"),
    (lambda: sliced_wasserstein2(np.zeros((0, 2)), X2), "x must contain at least one"),
    (lambda: sliced_wasserstein2(X2, X2, n_projections=0), "n_projections must be"),
    (lambda: sliced_wasserstein2(X2, X2, n_projections=2.0), "n_projections must be"),
    (lambda: sliced_wasserstein2(X2, X2, rng=None), "rng must be"),
    (lambda: mmd(X2, X2, bandwidth=0.0), "bandwidth must be"),
    (lambda: mmd(X2, X2, bandwidth=-1.0), "bandwidth must be"),
    (lambda: mmd(X2, X2), "bandwidth"),                       # median heuristic gives 0
    (lambda: mmd(X2[:1], X2), "x must contain at least 2"),
    (lambda: mmd(X2, X2[:1]), "y must contain at least 2"),
    (lambda: mmd(np.zeros((15_000, 1)), np.zeros((5_001, 1))), "at most 20000"),
    (lambda: mmd([[np.inf, 0.0]] * 3, X2), "x must contain only finite"),
    (lambda: ot_distance(X2, X2, p=0.5), "p must be"),
    (lambda: ot_distance(X2, X2, p=np.nan), "p must be"),
    (lambda: ot_distance(np.zeros((5001, 1)), X2[:, :1]), "x must have at most 5000"),
    (lambda: ot_distance(X2, np.zeros((5001, 2))), "y must have at most 5000"),
    (lambda: ot_distance(X2, np.zeros(5)), "same dimension"),
    (lambda: noise_floor("mmd", data.two_moons, 10, 0), "metric must be callable"),
    (lambda: noise_floor(mmd, None, 10, 0), "sampler must be callable"),
    (lambda: noise_floor(mmd, data.two_moons, 0, 0), "n must be"),
    (lambda: noise_floor(mmd, data.two_moons, 10, None), "rng must be"),
    (lambda: noise_floor(mmd, data.two_moons, 10, 0, n_repeats=1), "n_repeats must be"),
    (lambda: noise_floor(lambda a, b: np.nan, data.two_moons, 10, 0), "metric must return"),
    (lambda: noise_floor(lambda a, b: "x", data.two_moons, 10, 0), "metric must return"),
])
def test_metrics_reject_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
