"""The claims of Chapter 5's section "The better recipe on MNIST, with labels": the shipped
``mnist8k-cond`` network is what its preset and recorded command make, the record of
:data:`diffnotes.images.evaluation.MNIST_MEASURED` covers what the chapter plots and says what
the text says, and :func:`~diffnotes.images.evaluation.score_point` measures what it claims.
"""

import numpy as np
import pytest

from diffnotes import images as im
from diffnotes.images import evaluation
from diffnotes.utils import torch_threads

REC = evaluation.MNIST_MEASURED
NETS = ("mnist8k", "mnist8k-cond")


def test_the_shipped_network_is_the_presets():
    _, cfg, info = im.pretrained("mnist8k-cond")
    assert cfg == im.PRESETS["mnist8k-cond"]
    assert cfg.parameterization == "velocity" and cfg.weighting == "velocity"
    assert cfg.num_classes == 10 and cfg.label_dropout == 0.2
    old = im.PRESETS["mnist8k"]
    same = ("dataset", "channels", "n_res", "steps", "batch_size", "lr", "warmup", "ema_decay",
            "seed")
    assert all(getattr(cfg, f) == getattr(old, f) for f in same)
    ckpt = im.training.load_checkpoint(im.PRETRAINED_DIR / "mnist8k-cond.pt")
    assert ckpt["step"] == 3000 and ckpt["losses"].shape == (3000,)
    assert "optimizer" not in ckpt and info["device"] == "cpu"


def test_records_cover_both_networks_at_every_point_with_one_floor():
    assert {(n, s, k) for n in NETS for s, k in evaluation.MNIST_POINTS} <= set(REC)
    assert {n for n, _, _ in REC} == {*NETS, "mnist8k-cond, no label"}
    floors = {r["floor_fd"] for r in REC.values()}
    assert len(floors) == 1            # the same held-out draws for every point
    for (_, s, k), r in REC.items():
        assert r["nfe"] == (2 * k if s == "heun" else k) + 1
        assert r["coverage"] == 1.0 and 0 < r["zero"] < r["zero_real"]


def test_score_point_on_a_small_run():
    with torch_threads(1):
        model, cfg, _ = im.pretrained("mnist8k", device="cpu")
        r = evaluation.score_point(model, cfg, "heun", 2, n=80, n_draws=2)
        with pytest.raises(ValueError, match="n must be at most 1000"):
            evaluation.score_point(model, cfg, "heun", 2, n=1001)
        with pytest.raises(ValueError, match="n must be"):
            evaluation.score_point(model, cfg, "heun", 2, n=1)
        with pytest.raises(ValueError, match="labels must be None or 'data'"):
            evaluation.score_point(model, cfg, "heun", 2, n=80, labels="all")
        with pytest.raises(ValueError, match="class-conditional"):
            evaluation.score_point(model, cfg, "heun", 2, n=80, labels="data")
    assert r["nfe"] == 5 and r["fd"][0] > r["floor_fd"][0]
    assert 0.7 < r["zero_real"] < 0.85 and 0 <= r["zero"] <= 1
    x_ev = im.dataset("mnist8k", "eval")[0]
    assert r["zero_real"] == pytest.approx(float((x_ev[:80] == -1).float().mean()))
    assert np.isfinite(r["kid"][0]) and r["nn_ratio"] > 0


def test_exercise_where_the_background_goes():
    """Exercise 'Where the background goes': on held-out digits noised to t_min, 0.01, 0.05,
    both networks' clean estimates keep the border within half a level of black with most of
    its pixels rounding to 0, the velocity network's fewer at every time."""
    import torch

    from diffnotes import data

    with torch_threads(1):
        mnist, _ = data.load_mnist("test")
        border = (mnist[8000:] == 0).mean(0) >= 0.99
        x_real = im.dataset("mnist8k", "eval")[0][:64]
        noise = torch.randn(x_real.shape, generator=torch.Generator().manual_seed(0))
        at0 = {}
        for name in NETS:
            net, cfg, _ = im.pretrained(name, device="cpu")
            sde = im.make_sde(cfg)
            for t in (cfg.t_min, 0.01, 0.05):
                alpha, sigma = (float(v) for v in sde.alpha_sigma(t))
                xt = alpha * x_real + sigma * noise
                with torch.no_grad():
                    x0 = (xt + sigma**2 * net.score(xt, t, sde)) / alpha
                lev = im.to_pixels(x0.clamp(-1, 1), 255)[0][:, border]
                assert lev.mean() < 0.5 and np.mean(lev == 0) > 0.7, (name, t)
                at0[(name, t)] = np.mean(lev == 0)
    for t in (1e-3, 0.01, 0.05):
        assert at0[(NETS[1], t)] < at0[(NETS[0], t)]


def _fd(net, sampler, k):
    return REC[(net, sampler, k)]["fd"]


def test_the_recorded_findings():
    """The section's sentences on the record: the velocity network (labels from the data) is
    better with every sampler, beyond the spread of the difference; the Ehrenfest sampler gains
    most; neither reaches the FD floor; the velocity network's EM-100 is within one floor
    spread of the KID floor; the noise network's ODE is within 10% of its SDE, the velocity
    network's ratio is larger; without a label it is the weakest; no network's background
    reaches the real fraction at 0."""
    gains = {}
    for s, k in evaluation.MNIST_POINTS:
        old, new = _fd("mnist8k", s, k), _fd("mnist8k-cond", s, k)
        assert old[0] - new[0] > np.hypot(old[1], new[1]), (s, k)
        gains[s] = old[0] - new[0]
        assert new[0] > REC[("mnist8k-cond", s, k)]["floor_fd"][0]
    assert max(gains, key=gains.get) == "ehrenfest"
    em = REC[("mnist8k-cond", "em", 100)]
    assert em["kid"][0] < em["floor_kid"][0] + em["floor_kid"][1]
    ratio = {n: _fd(n, "heun", 25)[0] / _fd(n, "em", 100)[0] for n in NETS}
    assert ratio["mnist8k"] < 1.10 < ratio["mnist8k-cond"]
    for s, k in (("heun", 25), ("ehrenfest", 50)):
        no_label = _fd("mnist8k-cond, no label", s, k)[0]
        assert no_label > max(_fd(n, s, k)[0] for n in NETS)
    assert all(r["zero"] < r["zero_real"] - 0.2 for r in REC.values())
