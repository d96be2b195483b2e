"""The claims of Chapter 5 (book/05_images.md), checked at the chapter's own settings.

The digits model is trained exactly as in the chapter (the ``digits`` preset, seed 0, one CPU
thread), scored with the chapter's classifier-FID against the real-vs-real floor. Tolerances are
in units of the floor's spread over replicates, measured in the same test.
"""

import numpy as np
import pytest
import torch

from diffnotes import ehrenfest
from diffnotes import images as im
from diffnotes.images import metrics
from diffnotes.mixtures import GaussianMixture
from diffnotes.utils import torch_threads

N_EVAL = 150


@pytest.fixture(scope="module")
def digits():
    with torch_threads(1):
        run = im.train("digits", device="cpu", progress=False)
        xtr, ytr, _ = im.dataset("digits", "train")
        xev, yev, _ = im.dataset("digits", "eval")
        clf = metrics.train_classifier(xtr, ytr, seed=0)
        floor = metrics.fid_floor(clf, xtr, xev, N_EVAL, n_rep=5, rng=0)
    return run, clf, floor, xtr, xev, yev


def fid(digits, sampler, n_steps, seed=2):
    run, clf, _, xtr, _, _ = digits
    with torch_threads(1):
        out = im.sample(run.ema, run.config, N_EVAL, sampler=sampler, n_steps=n_steps,
                        seed=seed)
    x = im.to_unit(out.pixels, 16)
    return metrics.classifier_fid(clf, x, xtr), out


def test_digits_classifier_is_accurate(digits):
    _, clf, _, _, xev, yev = digits
    assert metrics.accuracy(clf, xev, yev) > 0.93


@pytest.mark.parametrize("sampler,n_steps", [("heun", 9), ("heun", 25), ("em", 60),
                                             ("ehrenfest", 60), ("ehrenfest", 200)])
def test_every_sampler_reaches_the_floor_band_on_a_modest_budget(digits, sampler, n_steps):
    """"within about one and a half times the floor ... Heun with about 20 evaluations, the
    two stochastic samplers with a few dozen"."""
    floor = digits[2]
    score, _ = fid(digits, sampler, n_steps)
    assert score < 1.5 * floor.mean, (score, floor.mean, floor.std)


def test_below_ten_evaluations_the_ode_error_takes_over(digits):
    floor = digits[2]
    score, _ = fid(digits, "heun", 3)
    assert score > 2 * floor.mean


def test_ehrenfest_clips_about_one_rate_in_six_at_17_levels(digits):
    """'about one rate evaluation in six' (S = 16), and the output never leaves the lattice."""
    _, out = fid(digits, "ehrenfest", 200, seed=4)
    frac = out.n_rate_clipped / out.n_rate_evals
    assert 0.08 < frac < 0.30
    assert out.n_clipped == 0


def test_noise_prediction_is_order_one_and_the_score_is_not(digits):
    """Exercise 'Why predict the noise?': rms of eps_hat stays O(1) while the score's rms
    grows by about 1/sigma (a factor of order 30 between t = 1 and t = 0.01)."""
    run, *_ = digits
    xev = digits[4]
    sde = im.make_sde(run.config)
    gen = torch.Generator().manual_seed(0)
    rms_eps, rms_score = [], []
    for t in (0.01, 0.1, 0.5, 1.0):
        alpha, sigma = sde.alpha_sigma(t)
        xt = float(alpha) * xev[:128] + float(sigma) * torch.randn(xev[:128].shape,
                                                                    generator=gen)
        with torch.no_grad():
            eps = run.ema(xt, t)
        rms_eps.append(float(eps.pow(2).mean().sqrt()))
        rms_score.append(float((eps / float(sigma)).pow(2).mean().sqrt()))
    assert all(0.4 < r < 1.2 for r in rms_eps)
    assert rms_score[0] / rms_score[-1] > 10


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


def test_shipped_mnist_network_is_within_a_small_multiple_of_the_floor():
    """'With fewer than 20 evaluations, the Heun sampler's digits are within a small multiple of
    the floor' (the issue's GPU target is 3x; here on the CPU, at the chapter's settings), and
    every class is covered."""
    with torch_threads(1):
        model, config, info = im.pretrained("mnist8k", device="cpu")
        x8k, y8k, _ = im.dataset("mnist8k", "train")
        x2k, y2k, _ = im.dataset("mnist8k", "eval")
        clf = metrics.train_classifier(x8k, y8k, n_steps=300, seed=0)
        floor = metrics.fid_floor(clf, x8k, x2k, 64, n_rep=5, rng=0)
        out = im.sample(model, config, 64, sampler="heun", n_steps=9, seed=6)
    assert metrics.accuracy(clf, x2k, y2k) > 0.95
    x = im.to_unit(out.pixels, 255)
    assert out.nfe < 20
    assert metrics.classifier_fid(clf, x, x8k) < 3 * floor.mean
    assert metrics.label_stats(clf, x)["coverage"] == 1.0
    assert info["device"] == "cpu" and info["world_size"] == 1


def test_shipped_network_record():
    """The record the chapter prints: 3000 steps of 64 images, about an hour on one core."""
    ckpt = im.training.load_checkpoint(im.PRETRAINED_DIR / "mnist8k.pt")
    assert ckpt["step"] == ckpt["config"]["steps"] == 3000
    assert ckpt["losses"].shape == (3000,)
    assert 30 * 60 < ckpt["seconds"] < 90 * 60
    assert "optimizer" not in ckpt   # the model file: config, averaged weights, record
