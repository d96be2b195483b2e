"""The claims of Chapter 5 (book/05_images.md), checked at the chapter's own settings.

The digits model is trained exactly as in the chapter (the ``digits`` preset, seed 0, one CPU
thread) and scored by the chapter's protocol (:func:`diffnotes.images.metrics.quality`): 150
samples against a held-out set of 150, beside the floor between two disjoint held-out sets of
150, mean and spread over 5 draws; memorisation by nearest-neighbour distances in pixel space.
Tolerances are in units of the spreads measured in the same test.
"""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from diffnotes import ehrenfest
from diffnotes import images as im
from diffnotes.images import metrics
from diffnotes.mixtures import GaussianMixture
from diffnotes.utils import torch_threads

N_EVAL = 150
MODEST = [("em", 60), ("heun", 9), ("ehrenfest", 60)]
BEYOND = MODEST + [("em", 200), ("heun", 25), ("ehrenfest", 200)]
CURVES = [("em", 20), ("heun", 3), ("heun", 5), ("ehrenfest", 20)] + BEYOND


@pytest.fixture(scope="module")
def digits():
    with torch_threads(1):
        run = im.train("digits", device="cpu", progress=False)
        xtr, ytr, _ = im.dataset("digits", "train")
        xev, yev, _ = im.dataset("digits", "eval")
        clf = metrics.train_classifier(xtr, ytr, seed=0)
        floor = metrics.quality(clf, None, xev, N_EVAL, rng=0)
    return run, clf, floor, xtr, xev, yev


@pytest.fixture(scope="module")
def scores(digits):
    """The chapter's sweep: (sampler, steps) -> (Quality, Memorisation, ImageRun)."""
    run, clf, _, xtr, xev, _ = digits
    out = {}
    with torch_threads(1):
        for sampler, k in CURVES:
            r = im.sample(run.ema, run.config, N_EVAL, sampler=sampler, n_steps=k, seed=2)
            x = im.to_unit(r.pixels, 16)
            out[(sampler, k)] = (metrics.quality(clf, x, xev, N_EVAL, rng=0),
                                 metrics.memorisation(x, xtr, xev[:N_EVAL]), r)
    return out


def test_split_is_random_and_the_classifier_sees_training_digits_only(digits):
    _, clf, floor, xtr, xev, yev = digits
    assert xtr.shape[0] == 1497 and xev.shape[0] == 300 == 2 * N_EVAL
    assert metrics.accuracy(clf, xev, yev) > 0.93
    assert floor.fd is None and len(floor.floor_fd.values) == 5


@pytest.mark.parametrize("key", MODEST)
def test_modest_budgets_are_within_two_floor_spreads(digits, scores, key):
    """'every sampler reaches the floor's band on a modest budget: Heun with 9 steps, the two
    stochastic samplers with 60 steps, each within two floor spreads' (FD), and 'KID tells the
    same story'."""
    floor = digits[2]
    q = scores[key][0]
    assert q.fd.mean < floor.floor_fd.mean + 2 * floor.floor_fd.std, (q.fd, floor.floor_fd)
    assert q.kid.mean < floor.floor_kid.mean + 2 * floor.floor_kid.std


def test_too_few_steps_are_far_above_the_floor(digits, scores):
    """'Heun with 3 steps scores ... times the floor, more than two floor spreads above it ...
    far above its floor' (FD and KID, each beyond two floor spreads)."""
    floor = digits[2]
    q = scores[("heun", 3)][0]
    assert q.fd.mean > floor.floor_fd.mean + 2 * floor.floor_fd.std
    assert q.kid.mean > floor.floor_kid.mean + 2 * floor.floor_kid.std


def test_ehrenfest_bridge_step_within_twice_the_floor_at_20_steps(digits, scores):
    """'The Ehrenfest sampler with 20 steps (21 evaluations), with its bridge step, is within
    twice the floor' (the frozen-rates step was above it)."""
    floor = digits[2]
    q = scores[("ehrenfest", 20)][0]
    assert q.fd.mean < 2 * floor.floor_fd.mean


def test_kid_every_other_run_within_two_floor_spreads(digits, scores):
    fk = digits[2].floor_kid
    for key, (q, _, _) in scores.items():
        if key not in (("heun", 3), ("ehrenfest", 20)):
            assert q.kid.mean < fk.mean + 2 * fk.std, key


def test_beyond_the_modest_budgets_no_two_points_differ_by_much(digits, scores):
    """'From the modest budgets on, no two points differ by more than ... times the spread of a
    difference of two scores (sqrt 2 times the floor's)': under 1.6 of them. And the premise:
    150 samples of one run vary from seed to seed about as 150 held-out digits do (the spread
    of Heun-25's FD over four sampling seeds is within 0.4 to 2.5 times the floor's)."""
    f_sd = digits[2].floor_fd.std
    gaps = [abs(scores[a][0].fd.mean - scores[b][0].fd.mean)
            for a, b in itertools.combinations(BEYOND, 2)]
    assert max(gaps) / (np.sqrt(2) * f_sd) < 1.6
    run, clf, _, _, xev, _ = digits
    with torch_threads(1):
        fds = [metrics.quality(clf, im.to_unit(im.sample(
            run.ema, run.config, N_EVAL, sampler="heun", n_steps=25, seed=s).pixels, 16),
            xev, N_EVAL, rng=0).fd.mean for s in (3, 4, 5, 6)]
    assert 0.4 * f_sd < np.std(fds, ddof=1) < 2.5 * f_sd, (fds, f_sd)


def test_no_sample_set_is_a_copy_of_the_training_digits(scores):
    """'the NN ratio is at least ... in every run, so the samples are further from their
    nearest training digit than held-out digits are'."""
    for key, (_, nn, _) in scores.items():
        assert nn.ratio > 1.0, key
        assert nn.frac_closer < 0.1, key


def test_ehrenfest_clips_about_one_rate_in_six_at_17_levels(digits):
    """The clipped fraction of the frozen-rates step the chapter glues (about 16%), and the
    output never leaves the lattice."""
    run = digits[0]
    with torch_threads(1):
        out = im.sample(run.ema, run.config, 64, sampler="ehrenfest", n_steps=200, seed=4,
                        ehrenfest_step="rates")
    frac = out.n_rate_clipped / out.n_rate_evals
    assert 0.08 < frac < 0.30
    assert out.n_clipped == 0


def test_noise_prediction_is_order_one_and_the_score_is_not(digits):
    """Exercise 'Why predict the noise?': rms of v_hat and eps_hat stay O(1), eps_hat smaller at
    t = 0.01, while the score's rms grows by a factor close to, and below, the growth of
    1/sigma between t = 1 and t = 0.01."""
    run, *_ = digits
    xev = digits[4]
    sde = im.make_sde(run.config)
    gen = torch.Generator().manual_seed(0)
    rms_eps, rms_score, rms_v, sigmas = [], [], [], []
    for t in (0.01, 0.1, 0.5, 1.0):
        alpha, sigma = sde.alpha_sigma(t)
        xt = float(alpha) * xev[:128] + float(sigma) * torch.randn(xev[:128].shape,
                                                                    generator=gen)
        with torch.no_grad():
            v = run.ema(xt, t)
            score = run.ema.score(xt, t, sde)
        rms_eps.append(float((-float(sigma) * score).pow(2).mean().sqrt()))
        rms_score.append(float(score.pow(2).mean().sqrt()))
        rms_v.append(float(v.pow(2).mean().sqrt()))
        sigmas.append(float(sigma))
    assert run.config.parameterization == "velocity"
    assert all(0.4 < r < 1.2 for r in rms_eps) and all(0.4 < r < 1.2 for r in rms_v)
    assert rms_eps[0] < rms_eps[-1]
    growth, inv_sigma = rms_score[0] / rms_score[-1], sigmas[-1] / sigmas[0]
    assert 0.5 * inv_sigma < growth < inv_sigma and growth > 10


@pytest.mark.parametrize("S", [16, 255])
def test_clock_matches_the_snr(S):
    """Exercise 'The clock': sqrt(S) a / b = alpha / sigma, and the horizons quoted."""
    sde = im.make_sde(im.PRESETS["digits"])
    tau = np.linspace(1e-3, 1, 200)
    alpha, sigma = sde.alpha_sigma(tau)
    theta = im.sampling.ehrenfest_clock(tau, S, sde)
    a, b = np.exp(-theta), np.sqrt(-np.expm1(-2 * theta))
    np.testing.assert_allclose(np.sqrt(S) * a / b, alpha / sigma, rtol=1e-12)
    # a larger S needs a longer horizon, by about log(S) / 2
    theta16 = im.sampling.ehrenfest_clock(1.0, 16, sde)
    theta255 = im.sampling.ehrenfest_clock(1.0, 255, sde)
    assert theta255 - theta16 == pytest.approx(0.5 * np.log(255 / 16), rel=1e-3)


def test_first_order_transfer_error_at_17_and_256_levels():
    """Exercise 'How good is the first-order transfer?': about 15% at S = 16 with about 2% of
    the mass clipped; below 0.1% and no clipping at S = 255."""
    theta = 0.1
    res = {}
    for S in (16, 255):
        levels = np.arange(S + 1)
        p0 = np.exp(-0.5 * ((levels - S / 3) / (S / 8)) ** 2)
        p0 /= p0.sum()
        up, _ = ehrenfest.reverse_rates(levels, theta, S, p0)
        x0 = ehrenfest.scale(levels, S)
        mix = GaussianMixture(p0, x0[:, None], np.full((S + 1, 1, 1), 1e-12))
        score = ehrenfest.mixture_score(mix)(x0[:, None], theta)[:, 0]
        up1, _ = ehrenfest.score_to_rates(score, levels, S, order=1)
        pt = ehrenfest.marginal(p0, theta, S)
        rel = np.abs(up1[:-1] - up[:-1]) / up[:-1]
        res[S] = (np.sum(pt[:-1] * rel) / np.sum(pt[:-1]), np.sum(pt[up1 == 0]))
    assert 0.08 < res[16][0] < 0.25 and 0.005 < res[16][1] < 0.05
    assert res[255][0] < 1e-3 and res[255][1] < 1e-6


def test_the_shipped_mnist_classifier_is_what_train_classifier_makes():
    from diffnotes.images.classifier import CLASSIFIER_RECIPES

    with torch_threads(1):
        x8k, y8k, _ = im.dataset("mnist8k", "train")
        fresh = metrics.train_classifier(x8k, y8k, **CLASSIFIER_RECIPES["mnist8k"])
    shipped = metrics.pretrained_classifier("mnist8k")
    a, b = fresh.state(), shipped.state()
    assert {k: v for k, v in a.items() if k != "state_dict"} == \
        {k: v for k, v in b.items() if k != "state_dict"}
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(v, b["state_dict"][k], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="name must be one of"):
        metrics.pretrained_classifier("digits")


def test_shipped_mnist_network_by_kid_at_64_images():
    """The MNIST section: 64 samples are too few for a Fréchet distance (refused); Heun with
    19 evaluations is within two floor spreads of the KID floor; the classifier is less sure
    of the samples than of real digits; every class is covered; the samples are further from
    the training images than held-out images are."""
    with torch_threads(1):
        model, config, info = im.pretrained("mnist8k", device="cpu")
        x8k, y8k, _ = im.dataset("mnist8k", "train")
        x2k, y2k, _ = im.dataset("mnist8k", "eval")
        clf = metrics.pretrained_classifier("mnist8k")
        out = im.sample(model, config, 64, sampler="heun", n_steps=9, seed=6)
    assert metrics.accuracy(clf, x2k, y2k) > 0.95
    x = im.to_unit(out.pixels, 255)
    assert out.nfe == 19
    with pytest.raises(ValueError, match="n = 64 images for feature dimension 64"):
        metrics.quality(clf, x, x2k, 64, rng=0)
    q = metrics.quality(clf, x, x2k, 64, rng=0, fd=False)
    assert q.kid.mean < q.floor_kid.mean + 2 * q.floor_kid.std
    stats, real = metrics.label_stats(clf, x), metrics.label_stats(clf, x2k[:64])
    assert stats["entropy"] > real["entropy"]
    assert stats["coverage"] == 1.0
    assert metrics.memorisation(x, x8k, x2k[:64]).ratio > 1.0
    assert info["device"] == "cpu" and info["world_size"] == 1


def test_full_mnist_preset_is_larger():
    """'the mnist preset trains on 20 times as many images, with a larger network'."""
    small, full = im.PRESETS["mnist8k"], im.PRESETS["mnist"]
    assert full.steps * full.batch_size == 20 * small.steps * small.batch_size
    n_params = [sum(p.numel() for p in im.training.build_model(c).parameters())
                for c in (small, full)]
    assert n_params[1] > n_params[0]


def test_shipped_network_record():
    """The record the chapter prints: 3000 steps of 64 images, about an hour on one core."""
    ckpt = im.training.load_checkpoint(im.PRETRAINED_DIR / "mnist8k.pt")
    assert ckpt["step"] == ckpt["config"]["steps"] == 3000
    assert ckpt["losses"].shape == (3000,)
    assert 30 * 60 < ckpt["seconds"] < 90 * 60
    assert "optimizer" not in ckpt   # the model file: config, averaged weights, record


def _border(x2k):
    """The pixels that are 0 in at least 99% of the 2000 held-out digits (the border)."""
    return (im.to_pixels(x2k, 255)[0] == 0).mean(0) >= 0.99


def test_mnist_backgrounds():
    """The MNIST grids (16 images, seed 5): real backgrounds are black (70% quantile 0, about
    three pixels in four at exactly 0); Heun's 9 steps come closer to it than 50 steps of
    Euler-Maruyama, whose grey background darkens from 20 to 50 steps. The Ehrenfest sampler
    with the bridge step at 50 steps (51 evaluations) has a black background (70% quantile at
    most 2, over a third of its pixels at exactly 0, border pixels below 1.5 levels on average);
    with the frozen rates (8 images, 50 evaluations, no last step) the background sits more than
    15 levels up, and hardly a pixel is at 0."""
    with torch_threads(1):
        model, config, _ = im.pretrained("mnist8k", device="cpu")
        x2k, _, _ = im.dataset("mnist8k", "eval")

        def pixels(sampler, k, m=16, **kw):
            return im.sample(model, config, m, sampler=sampler, n_steps=k, seed=5,
                             **kw).pixels

        def q70(p):
            return int(np.quantile(p, 0.7))
        border = _border(x2k)
        real = im.to_pixels(x2k[:16], 255)[0]
        heun = q70(pixels("heun", 9))
        em = (q70(pixels("em", 20)), q70(pixels("em", 50)))
        bridge = pixels("ehrenfest", 50)
        rates = pixels("ehrenfest", 50, m=8, ehrenfest_step="rates", denoise=False)
    assert q70(real) == 0 and 0.7 < (real == 0).mean() < 0.85
    assert em[0] > em[1] > heun, (em, heun)
    assert heun < 16, heun
    assert q70(bridge) <= 2 and (bridge == 0).mean() > 0.35, (q70(bridge), (bridge == 0).mean())
    assert bridge[:, border].mean() < 1.5
    assert q70(rates) > 15 and (rates == 0).mean() < 0.01 and rates[:, border].mean() > 15


def test_mnist_network_keeps_a_lifted_background():
    """'Asked to denoise a background lifted by k levels, the network returns one near k levels
    up': 16 held-out digits noised by the Ehrenfest process at theta = 0.05 (exact draws),
    their black pixels lifted by 5 levels; the network's clean estimate there is 4 to 6 levels
    up (without the lift, below 1)."""
    with torch_threads(1):
        model, config, _ = im.pretrained("mnist8k", device="cpu")
        x2k, _, _ = im.dataset("mnist8k", "eval")
        img = im.to_pixels(x2k[:16], 255)[0].astype(np.int64)
        sde = im.make_sde(config)
        theta = 0.05
        tau = brentq(lambda t: im.sampling.ehrenfest_clock(t, 255, sde) - theta, 1e-5, 0.5)
        alpha, sigma = (float(v) for v in sde.alpha_sigma(tau))
        b = np.sqrt(-np.expm1(-2 * theta))
        n_t = ehrenfest.sample_forward(img, theta, 255, np.random.default_rng(0))
        black = img == 0
        levels = {}
        for k in (0, 5):
            x = (2 / np.sqrt(255)) * (np.where(black, n_t + k, n_t) - 127.5)
            y = torch.from_numpy(x * sigma / b).float()[:, None]
            with torch.no_grad():
                y0 = (y - sigma * model(y, tau)) / alpha
            levels[k] = float((127.5 * (y0[:, 0].numpy() + 1))[black].mean())
    assert levels[0] < 1 and 4 < levels[5] < 6, levels


@pytest.mark.parametrize("S", [16, 100, 255])
def test_matched_pixel_laws_differ_by_the_lattice_alone(S):
    """'From about S = 100 the two laws are hard to tell apart': the W1 distance between the
    Ehrenfest pixels and the rescaled VP pixels at the matched clock is the lattice floor
    1/(2 sqrt S) (within 15%, Monte Carlo error about 0.005), 0.05 at S = 100 on a scale of
    about one; independent of tau."""
    from scipy.stats import wasserstein_distance

    from diffnotes.data import DIGITS_LEVELS, load_digits
    from diffnotes.sde import VPSDE

    img = np.rint(load_digits()[0][0] * S / DIGITS_LEVELS).astype(np.int64)
    for tau in (0.1, 0.6):
        x_e, x_c = im.sampling.matched_noisings(img, tau, S, VPSDE(), 2000, rng=S)
        w1 = wasserstein_distance(x_e.ravel(), x_c.ravel())
        assert abs(w1 - 0.5 / np.sqrt(S)) < 0.15 * 0.5 / np.sqrt(S)
        assert 0.9 < x_c.std() < 2.2


def test_matched_noisings_rejects_bad_levels():
    from diffnotes.sde import VPSDE

    with pytest.raises(ValueError, match="levels_img"):
        im.sampling.matched_noisings(np.array([[0, 17]]), 0.3, 16, VPSDE(), 10, rng=0)
    with pytest.raises(ValueError, match="tau"):
        im.sampling.matched_noisings(np.array([[0, 1]]), 0.0, 16, VPSDE(), 10, rng=0)
