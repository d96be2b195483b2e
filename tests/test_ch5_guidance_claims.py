"""The claims of Chapter 5's guidance section (book/05_images.md, "Asking for a digit"),
checked at the chapter's own settings: the shipped ``digits-cond`` network, Heun with 9 steps,
15 digits per class, the chapter's classifier and quality protocol (150 against held-out sets
of 150, 5 draws), the same seeds."""

import numpy as np
import pytest
import torch

from diffnotes import images as im
from diffnotes.images import metrics
from diffnotes.sde import VPSDE
from diffnotes.utils import torch_threads

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)


@pytest.fixture(scope="module")
def sweep():
    with torch_threads(1):
        net, cfg, _ = im.pretrained("digits-cond", device="cpu")
        xtr, ytr, _ = im.dataset("digits", "train")
        xev, yev, _ = im.dataset("digits", "eval")
        clf = metrics.train_classifier(xtr, ytr, seed=0)
        labels = torch.arange(10).repeat_interleave(15)

        def scores(x, lab):
            q = metrics.quality(clf, x, xev, 150, rng=0)
            return {"fd": q.fd.mean, "fd_sd": q.fd.std, "floor": q.floor_fd.mean,
                    "entropy": metrics.label_stats(clf, x)["entropy"],
                    "accuracy": metrics.accuracy(clf, x, lab),
                    "spread": metrics.class_spread(x, lab)}

        rows = {}
        for w in WEIGHTS:
            out = im.sample(im.guided(net, labels, w), cfg, 150, sampler="heun", n_steps=9,
                            seed=3)
            rows[w] = scores(im.to_unit(out.pixels, 16), labels)
        out = im.sample(net, cfg, 150, sampler="heun", n_steps=9, seed=3)
        x_unc = im.to_unit(out.pixels, 16)
        unc = scores(x_unc, torch.as_tensor(clf.predict_proba(x_unc).argmax(1)))
        pick = np.random.default_rng(0)
        balanced = torch.cat([torch.as_tensor(pick.choice(np.flatnonzero(ytr == c), 15,
                                                          replace=False))
                              for c in range(10)])
        fd_bal = metrics.quality(clf, xtr[balanced], xev, 150, rng=0).fd.mean
        few = torch.arange(10).repeat_interleave(5)
        ehr = {}
        for w in (0.0, 4.0):
            out = im.sample(im.guided(net, few, w), cfg, 50, sampler="ehrenfest", n_steps=50,
                            seed=4)
            x = im.to_unit(out.pixels, 16)
            ehr[w] = (metrics.accuracy(clf, x, few), metrics.class_spread(x, few))
    return dict(rows=rows, unc=unc, fd_bal=fd_bal, ehr=ehr,
                real_spread=metrics.class_spread(xev, yev),
                real_entropy=metrics.label_stats(clf, xev)["entropy"])


def test_the_shipped_network_is_the_presets():
    _, cfg, _ = im.pretrained("digits-cond")
    assert cfg == im.PRESETS["digits-cond"]
    assert cfg.num_classes == 10 and cfg.label_dropout == 0.2


def test_guidance_raises_accuracy_and_lowers_entropy_below_real_digits(sweep):
    r = sweep["rows"]
    assert r[0.0]["accuracy"] < 0.97 < r[1.0]["accuracy"]
    assert r[1.0]["entropy"] < sweep["real_entropy"] < r[0.0]["entropy"]


def test_guidance_costs_diversity(sweep):
    r, real = sweep["rows"], sweep["real_spread"]
    # "falls from (above the held-out digits') at w = 0 to (below it) at w = 4"
    assert r[0.0]["spread"] > real > r[4.0]["spread"]
    assert r[0.0]["spread"] > r[1.0]["spread"] > r[4.0]["spread"]


def test_fd_is_lowest_at_a_moderate_weight_and_rises_at_4(sweep):
    r = sweep["rows"]
    best = min(WEIGHTS, key=lambda w: r[w]["fd"])
    assert 0 < best < 4
    assert r[4.0]["fd"] > r[1.0]["fd"] + r[1.0]["fd_sd"]


def test_class_balance_puts_real_and_guided_sets_below_the_floor(sweep):
    r = sweep["rows"]
    floor = r[0.0]["floor"]
    assert all(r[w]["fd"] < floor for w in WEIGHTS)
    assert sweep["fd_bal"] < 0.75 * floor


def test_the_no_label_model_is_the_weakest(sweep):
    r, unc = sweep["rows"], sweep["unc"]
    assert unc["fd"] > max(r[w]["fd"] for w in WEIGHTS)
    assert unc["spread"] > sweep["real_spread"]


def test_guided_ehrenfest_exercise(sweep):
    acc0, spread0 = sweep["ehr"][0.0]
    acc4, spread4 = sweep["ehr"][4.0]
    assert acc4 >= acc0
    # "the spread at w = 4 falls below Heun's"
    assert spread4 < sweep["rows"][4.0]["spread"]


def test_guidance_in_the_data_parameterisation_exercise():
    g = torch.Generator().manual_seed(0)
    net = im.UNet(size=8, channels=(8, 16), num_classes=3, parameterization="data")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        x = torch.randn(4, 1, 8, 8, generator=g)
        t = torch.tensor([0.05, 0.2, 0.5, 0.9])
        sde = VPSDE()
        mixed = im.guided(net, 1, 2.5).score(x, t, sde)
        by_hand = 3.5 * net.score(x, t, sde, label=1) - 2.5 * net.score(x, t, sde)
        # weights that do not sum to one are not the guided score
        wrong = im.guided(net, 1, 2.5).net(x, t, 1) * 3.5
    assert float((mixed - by_hand).abs().max()) < 1e-3 * float(by_hand.abs().max())
    alpha, sigma = (c[:, None, None, None] for c in sde._alpha_sigma(t))
    assert (((alpha * wrong - x) / sigma**2) - by_hand).abs().max() > 1.0
