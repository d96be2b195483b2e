"""diffnotes.discrete_images: the categorical U-Net, its training, the numpy adapter, the
shipped digits networks."""

import numpy as np
import pytest
import torch

from diffnotes import discrete_images as DI
from diffnotes.discrete_learn import denoiser_loss
from diffnotes.images.training import dataset

TINY = {"channels": (8, 16), "attention": False, "warmup": 5, "lr": 3e-3}


@pytest.fixture(scope="module")
def nets():
    return {k: DI.CategoricalUNet(k, channels=(8, 16), attention=False, seed=1)
            for k in DI.KINDS}


def _states(kind, m, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 18 if kind == "masked" else 17, (m, 64))


@pytest.mark.parametrize("kind", DI.KINDS)
def test_shapes(nets, kind):
    x = torch.as_tensor(_states(kind, 5))
    out = nets[kind](x, torch.full((5,), 0.7))
    assert out.shape == (5, 64, 17)
    assert nets[kind].unet.in_channels == (2 if kind == "masked" else 1)
    p = DI.denoiser(nets[kind])(_states(kind, 5), 0.7)
    assert p.shape == (5, 64, 17) and np.allclose(p.sum(-1), 1)


@pytest.mark.parametrize("kind", DI.KINDS)
def test_adapter_agrees_with_the_network(nets, kind):
    """The adapter is the network's softmax (masked: on masked pixels; unmasked ones keep their
    level), whatever the chunk size."""
    x = _states(kind, 9, seed=3)
    t = np.linspace(0.01, 5, 9)
    with torch.no_grad():
        ref = torch.softmax(nets[kind](torch.as_tensor(x), torch.as_tensor(t).float())
                            .double(), -1).numpy()
    for bs in (1, 4, 1024):
        p = DI.denoiser(nets[kind], batch_size=bs)(x, t)
        if kind == "masked":
            masked = x == 17
            assert np.allclose(p[masked], ref[masked], atol=1e-6)
            assert np.array_equal(p[~masked].argmax(-1), x[~masked])
            assert np.allclose(p[~masked].max(-1), 1)
        else:
            assert np.allclose(p, ref, atol=1e-6)


def test_mask_channel_is_what_tells_a_mask_from_a_level(nets):
    """A masked pixel and a pixel at the middle level (scaled to 0) differ only in the mask
    channel; the network sees them differently."""
    x = np.full((1, 64), 8)
    y = x.copy()
    y[0, 10] = 17
    net = DI.CategoricalUNet("masked", channels=(8, 16), attention=False, seed=1)
    with torch.no_grad():   # a fresh network's head starts at zero: perturb it to see input
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
        a = net(torch.as_tensor(x), torch.tensor([1.0]))
        b = net(torch.as_tensor(y), torch.tensor([1.0]))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("kind", DI.KINDS)
def test_loss_is_finite_and_training_lowers_it(kind):
    _, _, info = DI.train(kind, steps=60, **TINY)
    losses = info["losses"]
    assert losses.shape == (60,) and np.all(np.isfinite(losses))
    assert losses[-15:].mean() < 0.9 * losses[:15].mean()
    # the loss of a batch is what discrete_learn.denoiser_loss says, in nats per image
    x0 = torch.as_tensor(DI.to_levels(dataset("digits")[0][:32]))
    net = DI.CategoricalUNet(kind, channels=(8, 16), attention=False)
    val = denoiser_loss(kind, net, x0, 17, T=8.0, generator=torch.Generator().manual_seed(0))
    assert np.isfinite(val.item()) and val.item() > 0


def test_checkpoints_load_with_weights_only_and_resume(tmp_path):
    model, cfg, info = DI.train("masked", steps=6, ckpt_every=3, out=tmp_path, **TINY)
    for name in ("model.pt", "checkpoint.pt"):
        ck = torch.load(tmp_path / name, weights_only=True)
        assert ck["config"]["kind"] == "masked" and ck["step"] == 6
    loaded, cfg2, info2 = DI.load_model(tmp_path / "model.pt")
    assert cfg2 == cfg and np.array_equal(info2["losses"], info["losses"])
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # a finished run resumes to itself; another configuration in the same folder is refused
    again, _, info3 = DI.train("masked", steps=6, ckpt_every=3, out=tmp_path, **TINY)
    assert info3["resumed_from"] == 6
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                 model.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="another configuration"):
        DI.train("masked", steps=7, ckpt_every=3, out=tmp_path, **TINY)


def test_resumed_run_equals_a_straight_run(tmp_path):
    """Step k's batch and noise depend on (seed, k) only: a run stopped after the checkpoint
    of step 4 and resumed gives the weights of 8 steps in one go."""
    straight, _, _ = DI.train("uniform", steps=8, ckpt_every=4, **TINY)

    def stop(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        DI.train("uniform", steps=8, ckpt_every=4, out=tmp_path, callback=stop, **TINY)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 4
    resumed, _, info = DI.train("uniform", steps=8, ckpt_every=4, out=tmp_path, **TINY)
    assert info["resumed_from"] == 4
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(),
                                                 straight.state_dict().values(), strict=True))


def test_bad_input_raises_naming_the_argument(nets):
    with pytest.raises(ValueError, match="kind"):
        DI.train("absorbing")
    with pytest.raises(ValueError, match="steps"):
        DI.train("masked", steps=0)
    with pytest.raises(ValueError, match="kind"):
        DI.CategoricalUNet("ordinal")
    with pytest.raises(ValueError, match="x must have shape"):
        nets["masked"](torch.zeros((2, 10), dtype=torch.long), torch.ones(2))
    with pytest.raises(ValueError, match="sampler"):
        DI.sample(nets["uniform"], 4, 3, sampler="unmask")
    with pytest.raises(ValueError, match="sampler"):
        DI.sample(nets["masked"], 4, 3, sampler="euler")
    with pytest.raises(ValueError, match="n_steps"):
        DI.sample(nets["masked"], 4, 0)
    with pytest.raises(ValueError, match="model"):
        DI.denoiser("not a network")
    with pytest.raises(ValueError, match="x must lie"):
        DI.to_levels(torch.full((1, 1, 8, 8), 1.5))
    with pytest.raises(ValueError, match="kind"):
        DI.pretrained("ehrenfest")


@pytest.mark.parametrize("kind", DI.KINDS)
def test_shipped_networks_load_and_sample_valid_levels(kind):
    path = DI.PRETRAINED_DIR / f"digits-{kind}.pt"
    assert path.stat().st_size < 2_000_000
    ck = torch.load(path, weights_only=True)
    assert ck["config"]["model"] == "discrete_images" and ck["step"] == ck["config"]["steps"]
    model, cfg, info = DI.pretrained(kind)
    assert model.kind == kind == cfg.kind and info["seconds"] > 0
    for sampler in (["unmask", "tau"] if kind == "masked" else ["tau"]):
        pixels, run = DI.sample(model, 6, 8, sampler=sampler, config=cfg, seed=0)
        assert pixels.shape == (6, 8, 8) and pixels.dtype == np.uint8
        assert pixels.max() <= 16 and run.states.max() <= 16   # no mask left
        assert run.n_evals == 9


def test_images_pretrained_refuses_the_discrete_networks():
    """``images.pretrained`` shares the folder: it lists only the score networks, and asking it
    for a discrete one fails with a ValueError that names this module's loader."""
    from diffnotes import images

    with pytest.raises(ValueError, match="discrete_images.pretrained"):
        images.pretrained("no-such-model")
    with pytest.raises(ValueError, match="discrete_images.pretrained"):
        images.pretrained("digits-masked")
