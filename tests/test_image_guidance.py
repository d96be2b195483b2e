"""images.guidance: classifier-free guidance as a model every sampler takes."""

import pytest
import torch

from diffnotes.images import PRESETS, UNet, guided, make_sde, sample
from diffnotes.sde import VPSDE


def _net(parameterization="noise", seed=0):
    net = UNet(size=8, channels=(8, 16), num_classes=4, parameterization=parameterization)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return net.eval()


@pytest.mark.parametrize("parameterization", ["noise", "score", "data"])
def test_guided_score_is_the_weighted_difference_of_scores(parameterization):
    net, sde = _net(parameterization), VPSDE()
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.02, 0.1, 0.3, 0.6, 0.9])
    with torch.no_grad():
        sc, su = net.score(x, t, sde, label=2), net.score(x, t, sde)
        for w in (0.0, 0.5, 3.0):
            g = guided(net, 2, w)
            expect = (1 + w) * sc - w * su
            assert torch.allclose(g.score(x, t, sde), expect, atol=1e-5, rtol=1e-4)
        assert torch.equal(guided(net, 2, 0.0)(x, t), net(x, t, 2))


def test_every_sampler_takes_a_guided_model():
    net = _net()
    config = PRESETS["digits"].replace(channels=(8, 16), num_classes=4)
    g = guided(net, 1, 2.0)
    for sampler, k in (("em", 4), ("heun", 3), ("ehrenfest", 4)):
        run = sample(g, config, 6, sampler=sampler, n_steps=k, seed=0, batch_size=4)
        assert run.pixels.shape == (6, 8, 8)
        assert int(run.pixels.min()) >= 0 and int(run.pixels.max()) <= config.levels
    # the guided model differs from the unconditional one
    a = sample(g, config, 4, sampler="heun", n_steps=3, seed=0).x
    b = sample(net, config, 4, sampler="heun", n_steps=3, seed=0).x
    assert (a - b).abs().max() > 1e-4
    assert make_sde(config).T == 1.0


def test_bad_guidance_arguments():
    net = _net()
    with pytest.raises(ValueError, match="class-conditional"):
        guided(UNet(size=8, channels=(8, 16)), 0, 1.0)
    with pytest.raises(ValueError, match="label"):
        guided(net, 4, 1.0)
    with pytest.raises(ValueError, match="weight"):
        guided(net, 0, -1.0)
    with pytest.raises(ValueError, match="already"):
        guided(net, 0, 1.0)(torch.zeros(1, 1, 8, 8), 0.5, 1)


def test_per_image_labels_in_one_batch():
    net = _net()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 3, 1, 3])
    g = guided(net, labels, 1.5)
    with torch.no_grad():
        out = g(x, 0.3)
        for i, c in enumerate(labels.tolist()):
            assert torch.allclose(out[i], guided(net, c, 1.5)(x[i:i + 1], 0.3)[0], atol=1e-5)
    config = PRESETS["digits"].replace(channels=(8, 16), num_classes=4)
    assert sample(g, config, 4, sampler="heun", n_steps=2).pixels.shape == (4, 8, 8)
    with pytest.raises(ValueError, match="per-image labels"):
        sample(g, config, 6, sampler="heun", n_steps=2)
    with pytest.raises(ValueError, match="label must lie"):
        guided(net, torch.tensor([0, 4]), 1.0)
    with pytest.raises(ValueError, match="integer"):
        guided(net, torch.tensor([0.0, 1.0]), 1.0)
