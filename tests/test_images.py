"""Checks of :mod:`diffnotes.images` (Chapter 5) apart from its metrics: the U-Net, training
(determinism, exact resumption, checkpoint files, two-process DDP under ``torchrun``), the
three samplers, the pixel rounding, the Ehrenfest transfer and the command line.

Everything runs on one CPU thread with tiny configurations (U-Nets with channels (8, 16), a
few to 40 training steps, a handful of images); the file takes well under a minute. Exact
identities (the SNR clock, the rate transfer, the Gaussian scaling of the score) are checked
to rounding; training is checked bitwise where the code promises bitwise reproducibility.
The MNIST check needs ``$DIFFNOTES_DATA`` (a folder with the MNIST test split) and is skipped
without it.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _shared import TINY

from diffnotes import data as _data
from diffnotes import ehrenfest
from diffnotes.ehrenfest import score_to_rates
from diffnotes.images import (
    PRESETS,
    SAMPLERS,
    TrainConfig,
    UNet,
    dataset,
    load_model,
    make_sde,
    pretrained,
    sample,
    to_pixels,
    train,
)
from diffnotes.images.__main__ import main as cli_main
from diffnotes.images.sampling import (
    _bridge_coefficients,
    bridge_moves,
    ehrenfest_clock,
    ehrenfest_rates,
)
from diffnotes.images.training import _digest, build_model, load_checkpoint, to_unit
from diffnotes.sde import VPSDE
from diffnotes.utils import torch_threads

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = os.environ.get("DIFFNOTES_DATA")



@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _perturbed(net, seed=0, scale=0.05):
    """``net`` with small random values added to every parameter (the fresh network's last
    convolutions are zero, so it outputs zero and ignores ``t``)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return net


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _python():
    return sys.executable


def _torchrun():
    path = Path(sys.executable).with_name("torchrun")
    return str(path) if path.is_file() else shutil.which("torchrun")


# ----------------------------------------------------------------------------------- UNet
@pytest.mark.parametrize("size,channels", [(8, (8, 16)), (28, (8, 16, 16))])
def test_unet_output_shape(size, channels):
    net = UNet(size=size, channels=channels)
    x = torch.randn(3, 1, size, size, generator=torch.Generator().manual_seed(0))
    out = net(x, 0.5)
    assert out.shape == x.shape and out.dtype == torch.float32
    # the last convolution starts at zero: the fresh network predicts zero noise
    assert torch.count_nonzero(out) == 0
    out = _perturbed(net)(x, 0.5)
    assert out.shape == x.shape and torch.count_nonzero(out) > 0


def test_unet_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        UNet(size=10, channels=(8, 16, 16))       # 10 is not divisible by 4
    with pytest.raises(ValueError, match="size"):
        UNet(size=27, channels=(8, 16))
    with pytest.raises(ValueError, match="channels"):
        UNet(size=8, channels=())
    net = UNet(size=8, channels=(8, 16))
    for shape in [(2, 1, 7, 7), (2, 2, 8, 8), (1, 8, 8), (2, 64)]:
        with pytest.raises(ValueError, match="x must have shape"):
            net(torch.zeros(shape), 0.5)
    with pytest.raises(ValueError, match="t must"):
        net(torch.zeros(2, 1, 8, 8), torch.tensor([0.1, 0.2, 0.3]))


def test_unet_time_conditioning():
    net = _perturbed(UNet(size=8, channels=(8, 16)))
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = net(x, 0.1), net(x, 0.9)
        assert (a - b).abs().max() > 1e-4
        # a float, a 0-d tensor and a (m,) tensor of the same time agree
        c, d = net(x, torch.tensor(0.1)), net(x, torch.full((4,), 0.1))
        assert torch.equal(a, c) and torch.equal(a, d)
        # per-image times: row i of a mixed batch is the output at its own time
        mixed = net(x, torch.tensor([0.1, 0.9, 0.1, 0.9]))
        assert torch.allclose(mixed[0], a[0], atol=1e-6)
        assert torch.allclose(mixed[1], b[1], atol=1e-6)


def test_unet_seed():
    state = torch.get_rng_state()
    a = UNet(size=8, channels=(8, 16), seed=3)
    assert torch.equal(torch.get_rng_state(), state)     # the global random state is left alone
    b = UNet(size=8, channels=(8, 16), seed=3)
    c = UNet(size=8, channels=(8, 16), seed=4)
    assert _same_state(a, b)
    assert not _same_state(a, c)


def test_unet_config_round_trip():
    net = UNet(size=28, channels=(8, 16, 16), n_res=2, attention=False, dropout=0.1,
               parameterization="score", seed=5)
    config = net.config()
    assert json.loads(json.dumps(config)) == config       # plain Python types
    copy = UNet(**config)
    sa, sb = net.state_dict(), copy.state_dict()
    assert sa.keys() == sb.keys()
    assert all(sa[k].shape == sb[k].shape for k in sa)
    assert _same_state(net, copy)                         # the seed is part of the config
    assert copy.config() == config


def test_unet_score_noise_parameterization():
    sde = VPSDE()
    net = _perturbed(UNet(size=8, channels=(8, 16)))
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0.05, 0.4, 0.95])
    with torch.no_grad():
        s = net.score(x, t, sde)
        raw = net(x, t)
    _, sigma = sde.alpha_sigma(t.double().numpy())
    expect = -raw / torch.as_tensor(sigma, dtype=torch.float32)[:, None, None, None]
    assert s.shape == x.shape
    assert torch.allclose(s, expect, rtol=1e-5, atol=1e-6)
    assert torch.count_nonzero(s) > 0
    with torch.no_grad():                                 # a float time
        s5 = net.score(x, 0.5, sde)
    assert torch.allclose(s5, -net(x, 0.5) / sde.alpha_sigma(0.5)[1], rtol=1e-5, atol=1e-6)


def test_mnist8k_architecture_size():
    n = sum(p.numel() for p in build_model(PRESETS["mnist8k"]).parameters())
    assert 1e6 < n < 4e6


def test_pretrained_unknown_name():
    with pytest.raises(ValueError, match="name"):
        pretrained("no-such-model")


# ------------------------------------------------------------------------------- training
def test_training_lowers_the_loss():
    r = train(TINY.replace(steps=40, ckpt_every=40, warmup=5), progress=False)
    assert r.losses.shape == (40,) and np.all(np.isfinite(r.losses))
    assert r.losses[-10:].mean() < 0.8 * r.losses[:10].mean()
    assert r.info["world_size"] == 1 and r.seconds > 0 and r.images_per_second > 0


def test_training_is_deterministic():
    a = train(TINY, progress=False)
    b = train(TINY, progress=False)
    assert _same_state(a.model, b.model) and _same_state(a.ema, b.ema)
    assert np.array_equal(a.losses, b.losses)
    c = train(TINY.replace(seed=1), progress=False)
    assert not _same_state(a.model, c.model)


class _Stop(Exception):
    pass


def test_resume_gives_the_same_run(tmp_path):
    a = train(TINY, out=tmp_path / "a", progress=False)

    def stop(step, loss):
        if step == 4:                 # after the checkpoint of step 3, before the one of 6
            raise _Stop

    with pytest.raises(_Stop):
        train(TINY, out=tmp_path / "b", progress=False, callback=stop)
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["step"] == 3 and not (tmp_path / "b" / "model.pt").exists()
    seen = []
    b = train(TINY, out=tmp_path / "b", progress=False,
              callback=lambda step, loss: seen.append(step))
    assert seen == [3, 4, 5]          # only the missing steps were run
    assert _same_state(a.model, b.model)
    assert _same_state(a.ema, b.ema)
    assert np.array_equal(a.losses, b.losses)
    # the files of the two runs hold the same weights
    for name in ("checkpoint.pt", "model.pt"):
        fa, fb = (load_checkpoint(tmp_path / d / name) for d in "ab")
        for key in ("model", "ema"):
            if key in fa:
                assert all(torch.equal(fa[key][k], fb[key][k]) for k in fa[key])
    # a run without files is the same run
    c = train(TINY, progress=False)
    assert _same_state(a.model, c.model) and _same_state(a.ema, c.ema)
    # a finished run resumes to itself
    seen.clear()
    d = train(TINY, out=tmp_path / "a", progress=False,
              callback=lambda step, loss: seen.append(step))
    assert seen == [] and _same_state(a.ema, d.ema) and np.array_equal(a.losses, d.losses)


def test_checkpoint_files(tmp_path):
    out = tmp_path / "run"
    r = train(TINY, out=out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "model.pt"]
    assert not list(out.glob(".*.tmp"))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    model = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["step"] == model["step"] == TINY.steps
    assert ckpt["config"] == model["config"] == TINY.to_dict()
    assert TrainConfig.from_dict(ckpt["config"]) == TINY
    assert {"model", "ema", "optimizer"} <= ckpt.keys()
    assert "ema" in model and "optimizer" not in model and "model" not in model
    assert np.array_equal(ckpt["losses"].numpy(), r.losses)
    assert all(torch.equal(v, r.ema.state_dict()[k]) for k, v in model["ema"].items())
    assert all(torch.equal(v, r.model.state_dict()[k]) for k, v in ckpt["model"].items())

    # load_model: the averaged weights, in eval mode, frozen (from either file)
    for name in ("model.pt", "checkpoint.pt"):
        net, config, info = load_model(out / name, device="cpu")
        assert isinstance(net, UNet) and config == TINY
        assert not net.training and not any(p.requires_grad for p in net.parameters())
        assert _same_state(net, r.ema)
        assert not _same_state(net, r.model)
        assert info["world_size"] == 1

    # a checkpoint of another configuration is refused, and left alone
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match="another configuration"):
        train(TINY.replace(lr=1e-3), out=out, progress=False)
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not list(out.glob(".*.tmp"))
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a diffnotes.images checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_train_config_checks():
    for changes, name in [({"dataset": "cifar"}, "dataset"), ({"lr": -1e-3}, "lr"),
                          ({"lr": 0.0}, "lr"), ({"t_min": 1.0}, "t_min"),
                          ({"t_min": 1.5}, "t_min"), ({"steps": 0}, "steps"),
                          ({"batch_size": 2.5}, "batch_size"), ({"seed": -1}, "seed"),
                          ({"ema_decay": 1.0}, "ema_decay")]:
        with pytest.raises(ValueError, match=name):
            PRESETS["digits"].replace(**changes)
    with pytest.raises(ValueError, match="not_a_field"):
        TrainConfig.from_dict({**PRESETS["digits"].to_dict(), "not_a_field": 1})
    with pytest.raises(ValueError, match="config"):
        train("no-such-preset", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train(TINY.replace(batch_size=2000), progress=False)
    # round trip, and the SDE of a configuration
    assert TrainConfig.from_dict(TINY.to_dict()) == TINY
    sde = make_sde(TINY.replace(beta_min=0.2, beta_max=10.0))
    assert isinstance(sde, VPSDE) and (sde.beta_min, sde.beta_max) == (0.2, 10.0)
    assert PRESETS["digits"].levels == 16 and PRESETS["mnist8k"].levels == 255
    assert PRESETS["digits"].size == 8 and PRESETS["mnist"].size == 28


# ------------------------------------------------------------------ two processes (gloo)
def test_torchrun_two_processes(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    torchrun = _torchrun()
    if torchrun is None:
        pytest.skip("no torchrun executable next to the Python interpreter or on PATH")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--standalone", "-m", "diffnotes.images", "train",
         "--preset", "digits", "--steps", "4", "--batch-size", "16", "--out", str(out),
         "--device", "cpu", "--threads", "1", "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(s) for s in proc.stdout.splitlines() if s.startswith("{")]
    assert len(lines) == 1                                   # rank 0 alone prints
    assert lines[0]["world_size"] == 2 and lines[0]["steps"] == 4
    assert (out / "checkpoint.pt").is_file() and (out / "model.pt").is_file()
    assert not list(out.glob(".*.tmp"))
    ckpt = load_checkpoint(out / "checkpoint.pt")
    info = ckpt["info"]
    assert info["world_size"] == 2
    digests = info["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    config = TrainConfig.from_dict(ckpt["config"])
    assert config.steps == 4 and config.batch_size == 16 and ckpt["step"] == 4
    net = build_model(config)
    net.load_state_dict(ckpt["model"])
    assert _digest(net) == digests[0]
    assert _digest(build_model(config)) != digests[0]        # the weights did move
    # seeding by global sample index: one process on the same global batches gives the same
    # weights up to the order of float reductions (measured 1.5e-8 after these 4 steps; with
    # the noise seeded per rank, as before, the difference was 4.5e-4)
    one = train(config, progress=False)
    assert one.info["world_size"] == 1
    for name, w in one.model.state_dict().items():
        assert torch.allclose(ckpt["model"][name], w, rtol=0, atol=1e-6), name
    # the logged loss is that of the whole global batch, as with one process
    assert np.allclose(ckpt["losses"].numpy(), one.losses, rtol=1e-5, atol=0)


# --------------------------------------------------------------------------- command line
def test_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    proc = subprocess.run(
        [_python(), "-m", "diffnotes.images", "train", "--preset", "digits", "--steps", "3",
         "--batch-size", "16", "--out", str(out), "--device", "cpu", "--threads", "1",
         "--no-progress"],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["steps"] == 3 and report["world_size"] == 1
    assert math.isfinite(report["final_loss"])
    net, config, _ = load_model(out / "model.pt", device="cpu")
    assert config.steps == 3 and config.batch_size == 16 and config.channels == (16, 32)

    grid = tmp_path / "grid.png"
    assert cli_main(["sample", "--model", str(out / "model.pt"), "--sampler", "heun",
                     "--steps", "2", "--n", "4", "--out", str(grid), "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["nfe"] == 5 and report["n"] == 4 and report["sampler"] == "heun"
    import matplotlib.pyplot as plt

    image = plt.imread(grid)       # 2 x 2 digits of 8 pixels, 1 between: 19 -> 22 x 19 = 418
    assert image.ndim == 3 and image.shape[:2] == (418, 418) and report["shape"] == [418, 418]

    npy = tmp_path / "x.npy"
    assert cli_main(["sample", "--model", str(out / "model.pt"), "--sampler", "ehrenfest",
                     "--steps", "2", "--n", "4", "--out", str(npy), "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["nfe"] == 3 and report["out"] == str(npy)    # 2 steps + the last step
    pixels = np.load(npy)
    assert pixels.dtype == np.uint8 and pixels.shape == (4, 8, 8) and pixels.max() <= 16


def test_command_line_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        cli_main(["train", "--preset", "cifar", "--out", "x"])
    with pytest.raises(SystemExit):
        cli_main(["sample", "--model", "m.pt", "--sampler", "ddim", "--out", "x.png"])
    capsys.readouterr()


# ------------------------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def tiny_model():
    with torch_threads(1):
        r = train(TINY.replace(steps=20, ckpt_every=20, warmup=4), progress=False)
    return r.ema, r.config


STEPS = {"em": 5, "heun": 3, "ehrenfest": 5}


class _CountCalls:
    def __init__(self, net):
        self.n = 0
        self.handle = net.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.n += 1


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers(tiny_model, sampler):
    net, config = tiny_model
    n, k = 6, STEPS[sampler]
    calls = _CountCalls(net)
    try:
        run = sample(net, config, n, sampler=sampler, n_steps=k, seed=1)
    finally:
        calls.handle.remove()
    nfe = (2 * k if sampler == "heun" else k) + 1      # + the final denoising
    assert run.nfe == nfe and calls.n == nfe           # one batch: one call per evaluation
    assert run.pixels.dtype == np.uint8 and run.pixels.shape == (n, 8, 8)
    assert run.pixels.max() <= config.levels == 16
    assert run.x.dtype == torch.float32 and run.x.shape == (n, 1, 8, 8)
    assert bool(torch.isfinite(run.x).all()) and run.seconds > 0
    pixels, n_clipped = to_pixels(run.x, config.levels)
    assert np.array_equal(pixels, run.pixels) and n_clipped == run.n_clipped
    if sampler == "ehrenfest":
        assert run.n_clipped == 0
        # the states are pixel levels: x = 2 n / S - 1 exactly
        assert torch.equal(run.x, 2 * torch.from_numpy(run.pixels)[:, None].float() / 16 - 1)
        assert run.n_rate_evals == n * 64 * k
        assert 0 <= run.n_rate_clipped <= 2 * run.n_rate_evals
    else:
        assert run.n_rate_evals == run.n_rate_clipped == 0
    # the same seed gives the same images, another seed other images
    again = sample(net, config, n, sampler=sampler, n_steps=k, seed=1)
    assert np.array_equal(again.pixels, run.pixels) and torch.equal(again.x, run.x)
    other = sample(net, config, n, sampler=sampler, n_steps=k, seed=2)
    assert not torch.equal(other.x, run.x)
    # batches smaller than n: the same number of images, and n_steps evaluations per batch
    calls = _CountCalls(net)
    try:
        small = sample(net, config, 5, sampler=sampler, n_steps=k, seed=1, batch_size=2)
    finally:
        calls.handle.remove()
    assert small.pixels.shape == (5, 8, 8) and small.x.shape == (5, 1, 8, 8)
    assert small.nfe == nfe and calls.n == 3 * nfe
    assert bool(torch.isfinite(small.x).all()) and small.pixels.max() <= 16


def test_sample_bad_arguments(tiny_model):
    net, config = tiny_model
    with pytest.raises(ValueError, match="sampler"):
        sample(net, config, 2, sampler="ddim", n_steps=2)
    with pytest.raises(ValueError, match="n must"):
        sample(net, config, 0, n_steps=2)
    with pytest.raises(ValueError, match="n_steps"):
        sample(net, config, 2, sampler="em", n_steps=0)
    with pytest.raises(ValueError, match="config"):
        sample(net, config.to_dict(), 2, n_steps=2)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("t_min", [1.0, 2.0])
def test_sample_t_min_beyond_the_horizon(tiny_model, sampler, t_min):
    # every sampler refuses a t_min at or beyond the horizon (the Ehrenfest one used to run
    # its clock forwards, or return the prior, without a word)
    net, config = tiny_model
    with pytest.raises(ValueError, match="t_min"):
        sample(net, config, 2, sampler=sampler, n_steps=2, t_min=t_min)


# ------------------------------------------------------------------------------ to_pixels
@pytest.mark.parametrize("S", [16, 255])
def test_to_pixels_levels(S):
    p = np.arange(S + 1)
    x = torch.from_numpy(2 * p / S - 1).float().reshape(1, 1, 1, S + 1)
    pixels, n_clipped = to_pixels(x, S)
    assert pixels.dtype == np.uint8 and pixels.shape == (1, 1, S + 1)
    assert np.array_equal(pixels[0, 0], p) and n_clipped == 0
    # (n, H, W) input, and values a third of a level off still round to the level
    off = 2 * (p + np.where(p % 2, 1, -1) / 3) / S - 1
    pixels, n_clipped = to_pixels(torch.from_numpy(off).reshape(1, 1, S + 1), S)
    assert np.array_equal(pixels[0, 0], p) and n_clipped == 0


def test_to_pixels_midpoints():
    S = 16
    mid = np.arange(S) + 0.5                       # halfway between levels p and p + 1
    x = torch.from_numpy(2 * mid / S - 1).float().reshape(1, 1, S)   # exact in float32
    pixels, n_clipped = to_pixels(x, S)
    got = pixels[0, 0].astype(float)
    assert n_clipped == 0
    assert np.all(np.abs(got - mid) == 0.5)        # one of the two neighbouring levels
    assert got.mean() == mid.mean()                # ties to even: no bias up or down


def test_to_pixels_clipping():
    S = 16
    x = torch.tensor([[[-1.5, -1.0 - 1.5 / S, -1.0, 0.0, 1.0, 1.0 + 1.5 / S, 3.0, 1e6]]])
    pixels, n_clipped = to_pixels(x, S)
    assert pixels[0, 0].tolist() == [0, 0, 0, 8, 16, 16, 16, 16]
    assert n_clipped == 5                          # all values more than half a level out
    # within half a level of an end: rounded to the end level, not a clip
    pixels, n_clipped = to_pixels(torch.tensor([[[-1.0 - 0.4 / S, 1.0 + 0.4 / S]]]), S)
    assert pixels[0, 0].tolist() == [0, 16] and n_clipped == 0
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN"):
            to_pixels(torch.tensor([[[0.0, bad]]]), S)
    with pytest.raises(ValueError, match="x must have shape"):
        to_pixels(torch.zeros(4, 4), S)
    with pytest.raises(ValueError, match="levels"):
        to_pixels(torch.zeros(1, 4, 4), 0)


# ---------------------------------------------------------------------- Ehrenfest transfer
@pytest.mark.parametrize("S", [16, 255])
def test_ehrenfest_clock_matches_the_snr(S):
    sde = VPSDE(0.1, 20.0)
    tau = np.linspace(1e-3, 1.0, 200)
    theta = ehrenfest_clock(tau, S, sde)
    alpha, sigma = sde.alpha_sigma(tau)
    a, b = np.exp(-theta), np.sqrt(-np.expm1(-2 * theta))
    assert np.allclose(np.sqrt(S) * a / b, alpha / sigma, rtol=1e-10, atol=0)
    assert np.all(np.diff(theta) > 0) and theta[0] > 0
    # the clock runs ahead of the SDE by the S-fold noise: more levels, later clock
    assert np.all(ehrenfest_clock(tau, 255, sde) > ehrenfest_clock(tau, 16, sde))


@pytest.mark.parametrize("S", [16, 255])
@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_ehrenfest_rates_match_chapter_2(S, scale):
    rng = np.random.default_rng(S)
    n = rng.integers(0, S + 1, size=400)
    n[:2] = [0, S]
    eps = scale * rng.standard_normal(400)
    for theta in (0.05, 0.7, 3.0):
        b = math.sqrt(-math.expm1(-2 * theta))
        up, dn, clipped = ehrenfest_rates(torch.from_numpy(eps), torch.from_numpy(n), S, theta)
        ref_up, ref_dn = score_to_rates(-eps / b, n, S, order=1)
        assert up.dtype == torch.float64
        assert np.allclose(up.numpy(), ref_up, rtol=1e-6, atol=1e-12)
        assert np.allclose(dn.numpy(), ref_dn, rtol=1e-6, atol=1e-12)
        assert up[n == S].eq(0).all() and dn[n == 0].eq(0).all()
        assert up.min() >= 0 and dn.min() >= 0
        delta_s = 2 / math.sqrt(S) * (-eps / b)
        assert clipped == int(np.sum(1 + delta_s < 0) + np.sum(1 - delta_s < 0))
        if scale == 3.0 and S == 16 and theta == 0.05:
            assert clipped > 0                     # the clipping branch is exercised


def test_ou_score_is_a_rescaled_vp_score():
    """For Gaussian data N(m, v) in the network's scale y, the exact score of the OU limit of
    the Ehrenfest process (data sqrt(S) y) at the matched clock equals (sigma/b) times the VP
    score at sigma x / b -- the identity behind the "ehrenfest" sampler."""
    sde = VPSDE(0.1, 20.0)
    m, v = 0.3, 0.2
    x = np.linspace(-6, 6, 41)
    for S in (16, 255):
        for tau in (0.01, 0.2, 0.5, 0.9):
            alpha, sigma = sde.alpha_sigma(tau)
            theta = float(ehrenfest_clock(tau, S, sde))
            a, b = math.exp(-theta), math.sqrt(-math.expm1(-2 * theta))

            def score_y(y, alpha=alpha, sigma=sigma):
                return -(y - alpha * m) / (alpha**2 * v + sigma**2)

            # x_theta = a x0 + b eps with x0 = sqrt(S) y0 ~ N(sqrt(S) m, S v)
            score_x = -(x - a * math.sqrt(S) * m) / (a**2 * S * v + b**2)
            assert np.allclose(score_x, sigma / b * score_y(sigma * x / b), rtol=1e-9,
                               atol=1e-12)
            # a clock off by 10% breaks it
            a2, b2 = math.exp(-1.1 * theta), math.sqrt(-math.expm1(-2.2 * theta))
            wrong = -(x - a2 * math.sqrt(S) * m) / (a2**2 * S * v + b2**2)
            assert not np.allclose(wrong, sigma / b2 * score_y(sigma * x / b2), rtol=1e-3)


# -------------------------------------------------------------------------------- datasets
def test_digits_dataset():
    """1497 training / 300 held-out digits, the held-out part a random subset (fixed
    permutation, seed 0: two disjoint sets of the chapter's n = 150), each in data order."""
    for split, size in [("train", 1497), ("eval", 300)]:
        x, labels, levels = dataset("digits", split)
        assert x.shape == (size, 1, 8, 8) and x.dtype == torch.float32
        assert labels.shape == (size,) and labels.dtype == torch.int64
        assert levels == 16
        assert x.min() == -1 and x.max() == 1
        steps = (x + 1) * levels / 2                  # on the lattice 2 p / S - 1
        assert torch.equal(steps, steps.round())
    images, labels = _data.load_digits()
    held = np.sort(np.random.default_rng(0).permutation(1797)[:300])
    rest = np.setdiff1d(np.arange(1797), held)
    x, y, _ = dataset("digits", "eval")
    assert torch.equal(x[:, 0], 2 * torch.from_numpy(images[held]).float() / 16 - 1)
    assert torch.equal(y, torch.from_numpy(labels[held]))
    x_tr, _, _ = dataset("digits", "train")
    assert torch.equal(x_tr[:, 0], 2 * torch.from_numpy(images[rest]).float() / 16 - 1)
    # a random part, not the last digits: spread over the whole set, every class in it
    assert np.sum(held < 1497) > 200 and set(labels[held]) == set(range(10))
    with pytest.raises(ValueError, match="name"):
        dataset("cifar")
    with pytest.raises(ValueError, match="split"):
        dataset("digits", "test")


def test_mnist8k_dataset():
    if not REAL_DATA:
        pytest.skip("DIFFNOTES_DATA is not set: no folder with the MNIST test split")
    x, labels, levels = dataset("mnist8k", "eval")
    assert x.shape == (2000, 1, 28, 28) and x.dtype == torch.float32
    assert labels.shape == (2000,) and levels == 255
    assert x.min() == -1 and x.max() == 1
    images, test_labels = _data.load_mnist("test", REAL_DATA)
    assert torch.equal(labels, torch.from_numpy(test_labels[8000:]))
    x_train, _, _ = dataset("mnist8k", "train")
    assert x_train.shape == (8000, 1, 28, 28)


def test_to_unit():
    p = np.array([[[0, 8], [16, 4]]], dtype=np.uint8)
    x = to_unit(p, 16)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert x.flatten().tolist() == [-1.0, 0.0, 1.0, -0.5]
    assert torch.equal(to_unit(p[:, None], 16), x)
    for bad in (np.array([[[17]]]), np.array([[[-1]]])):
        with pytest.raises(ValueError, match="pixels must lie in 0..16"):
            to_unit(bad, 16)
    with pytest.raises(ValueError, match="pixels must have shape"):
        to_unit(np.zeros((4, 4)), 16)


@pytest.mark.parametrize("sampler", ["em", "heun"])
def test_final_denoising_is_tweedie_of_the_last_point(tiny_model, sampler):
    """denoise=True replaces the last point y by (y - sigma eps_hat(y)) / alpha at t_min, for
    one more evaluation (eps_hat = -sigma times the score, whatever the net predicts: the
    preset's velocity); denoise=False returns y itself."""
    net, config = tiny_model
    assert net.parameterization == "velocity"
    raw = sample(net, config, 4, sampler=sampler, n_steps=3, seed=3, denoise=False)
    den = sample(net, config, 4, sampler=sampler, n_steps=3, seed=3)
    assert den.nfe == raw.nfe + 1
    sde = make_sde(config)
    alpha, sigma = (float(v) for v in sde.alpha_sigma(config.t_min))
    with torch.no_grad():
        eps_hat = -sigma * net.score(raw.x, config.t_min, sde)
        expected = (raw.x - sigma * eps_hat) / alpha
    torch.testing.assert_close(den.x, expected, rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------- the Ehrenfest bridge step
@pytest.mark.parametrize("theta, theta1", [(2.0, 1.9), (1.0, 0.6), (0.3, 0.05), (3.0, 0.01)])
def test_bridge_mean_is_the_exact_ehrenfest_bridge_mean(theta, theta1):
    """The mean of the "bridge" step (the OU bridge's, S/2 + A (n - S/2) + B (n0 - S/2)) is the
    exact mean of the Ehrenfest process at theta1 given its level n at theta and its clean level
    n0, computed from the exact transition matrices (S = 16), for every pair (n0, n) of
    probability above 1e-6 -- so with the exact posterior mean of n0 the step has the exact
    reverse mean, at any step size. (Its variance is only the OU limit's.)"""
    S = 16
    P1 = ehrenfest.transition_matrix(S, theta1)
    P2 = ehrenfest.transition_matrix(S, theta - theta1)
    P = ehrenfest.transition_matrix(S, theta)
    A, B, V = _bridge_coefficients(theta, theta1)
    lev = np.arange(S + 1)
    checked = 0
    for n0 in lev:
        for n in lev[P[n0] > 1e-6]:
            w = P1[n0] * P2[:, n]
            w = w / w.sum()
            assert abs(w @ lev - (S / 2 + A * (n - S / 2) + B * (n0 - S / 2))) < 1e-7
            checked += 1
    assert checked > 50
    # the variance in the OU scale, beside the exact one of the stationary start (n0 averaged)
    assert 0 < V < -math.expm1(-2 * theta1)


def test_bridge_moves_match_mean_and_variance():
    """bridge_moves: the mean exactly, the variance where the lattice allows it; where the
    variance asked for is below that of one-way moves with that mean, those are used and
    counted."""
    S = 255
    n0 = torch.tensor([0, 2, 100, 128, 250, 255, 40])
    mean = torch.tensor([0.3, 1.4, 90.0, 128.0, 252.0, 254.5, 40.5], dtype=torch.float64)
    var = torch.tensor([0.3, 0.9, 30.0, 10.0, 1.5, 0.4, 0.2], dtype=torch.float64)
    reps = 40_000
    gen = torch.Generator().manual_seed(0)
    out, n_wide = bridge_moves(n0.repeat(reps, 1), mean.repeat(reps, 1), var.repeat(reps, 1),
                               S, gen)
    assert out.dtype == torch.long and out.min() >= 0 and out.max() <= S
    assert n_wide == 2 * reps                      # the last two columns
    m, v = out.double().mean(0), out.double().var(0)
    se = (v / reps).sqrt()
    assert torch.all((m - mean).abs() < 5 * se + 1e-9), (m, mean)
    feasible = slice(0, 5)
    assert torch.allclose(v[feasible], var[feasible], rtol=0.04), (v, var)
    # the narrowest moves with the mean: one-way, variance r (1 - r / pool)
    assert torch.allclose(v[5:], torch.tensor([0.5 * (1 - 0.5 / 255)] * 2).double(), rtol=0.04)
    with pytest.raises(ValueError, match="var"):
        bridge_moves(n0, mean, -var, S)


class _BlackImageOracle(torch.nn.Module):
    """A stand-in network whose noise prediction is exact for one image, all black: the score
    of y_tau = -alpha + sigma eps."""

    parameterization = "noise"

    def __init__(self, size=28):
        super().__init__()
        self.in_channels, self.size = 1, size
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def score(self, y, tau, sde):
        alpha, sigma = (float(v) for v in sde.alpha_sigma(float(tau)))
        return -(y + alpha) / sigma**2


def test_bridge_step_is_exact_for_a_known_image_and_frozen_rates_lag():
    """With the exact noise prediction of an all-black image (S = 255), five bridge steps end
    (denoise=False) with the mean level of the exact forward law at theta(t_min),
    S (1 - exp(-theta)) / 2 ~ 1.76, within 0.05 (Monte Carlo error about 0.01); the last step
    then sets every pixel to 0. Five frozen-rate steps on the same grid are more than a
    level behind."""
    net = _BlackImageOracle()
    config = PRESETS["mnist8k"]
    theta_min = float(ehrenfest_clock(config.t_min, 255, make_sde(config)))
    exact = 255 * -math.expm1(-theta_min) / 2
    raw = sample(net, config, 64, sampler="ehrenfest", n_steps=5, seed=0, denoise=False)
    assert abs(raw.pixels.mean() - exact) < 0.05, (raw.pixels.mean(), exact)
    den = sample(net, config, 8, sampler="ehrenfest", n_steps=5, seed=0)
    assert den.nfe == 6 and den.pixels.max() == 0
    rates = sample(net, config, 64, sampler="ehrenfest", n_steps=5, seed=0, denoise=False,
                   ehrenfest_step="rates")
    assert rates.pixels.mean() > exact + 1.0, rates.pixels.mean()
    # Chapter 5: "even with the exact score of a black image, 50 such steps end 1.6 levels too
    # high, where the exact law is at 1.8"; 50 bridge steps are exact in mean
    rates = sample(net, config, 64, sampler="ehrenfest", n_steps=50, seed=0, denoise=False,
                   ehrenfest_step="rates")
    assert 1.4 < rates.pixels.mean() - exact < 1.8 and 1.7 < exact < 1.85
    raw = sample(net, config, 64, sampler="ehrenfest", n_steps=50, seed=0, denoise=False)
    assert abs(raw.pixels.mean() - exact) < 0.05
    with pytest.raises(ValueError, match="ehrenfest_step"):
        sample(net, config, 2, sampler="ehrenfest", n_steps=2, ehrenfest_step="tau")


def test_why_frozen_rates_fall_behind_near_the_data():
    """Chapter 5's diagnosis, in closed form (S = 255, the mnist8k clock): a black pixel's
    exact reverse down rate at level n is about n / theta near the data; on the log-SNR grid
    of 50 steps the last ten are each a quarter to a third of theta; and the exact law at
    theta(t_min) = 0.014 puts a black pixel at level 1.8 on average, at 0 with probability
    about 1/6."""
    from diffnotes.sde import _flow_grid

    S = 255
    p0 = np.zeros(S + 1)
    p0[0] = 1.0
    levels = np.arange(1, 6)
    for theta in (0.01, 0.03):
        _, dn = ehrenfest.reverse_rates(levels, theta, S, p0)
        assert np.allclose(dn, levels / theta, rtol=0.03)
    config = PRESETS["mnist8k"]
    sde = make_sde(config)
    theta = ehrenfest_clock(_flow_grid(sde, 50, config.t_min, sde.T, "logsnr")[0], S, sde)
    ratio = -np.diff(theta)[-10:] / theta[-11:-1]
    assert np.all((0.22 < ratio) & (ratio < 0.34)), ratio
    law = ehrenfest.marginal(p0, theta[-1], S)
    assert 0.0135 < theta[-1] < 0.0145
    assert abs(law @ np.arange(S + 1) - 1.76) < 0.02 and abs(law[0] - 1 / 6) < 0.01
