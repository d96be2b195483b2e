"""The U-Net's raw output head (``out_channels``) and class conditioning (``num_classes``)."""

import pytest
import torch

from diffnotes.images import UNet
from diffnotes.sde import VPSDE


def _perturbed(net, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return net


def test_unconditional_weights_do_not_depend_on_the_new_options():
    # the label embedding is built last: a network with no classes is the one of before,
    # weight for weight, and a conditional one shares every other initial weight with it
    a = UNet(size=8, channels=(8, 16), seed=2)
    b = UNet(size=8, channels=(8, 16), seed=2, num_classes=10)
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sb) - set(sa) == {"label_emb.weight"}
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert b.label_emb.weight.shape == (11, 4 * 8)


def test_out_channels_head():
    net = _perturbed(UNet(size=8, channels=(8, 16), out_channels=17))
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert net(x, 0.3).shape == (3, 17, 8, 8)
    with pytest.raises(ValueError, match="out_channels"):
        net.score(x, 0.3, VPSDE())
    with pytest.raises(ValueError, match="out_channels"):
        UNet(size=8, channels=(8, 16), out_channels=0)
    copy = UNet(**net.config())
    assert copy.out_channels == 17 and copy.config() == net.config()


def test_labels_change_the_output_and_none_is_the_null_class():
    net = _perturbed(UNet(size=8, channels=(8, 16), num_classes=3))
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = {c: net(x, 0.4, c) for c in range(4)}
        none = net(x, 0.4)
        assert torch.equal(none, out[3])                   # None = the "no label" entry
        assert (out[0] - out[1]).abs().max() > 1e-4
        # per-image labels: row i is the output at its own label
        mixed = net(x, 0.4, torch.tensor([0, 1, 2, 3]))
        for i in range(4):
            assert torch.allclose(mixed[i], out[i][i], atol=1e-6)
        s = net.score(x, 0.4, VPSDE(), label=1)
        assert s.shape == x.shape and (s - net.score(x, 0.4, VPSDE())).abs().max() > 0


def test_bad_labels():
    net = UNet(size=8, channels=(8, 16), num_classes=3)
    x = torch.zeros(2, 1, 8, 8)
    for bad in (4, -1, torch.tensor([0, 5])):
        with pytest.raises(ValueError, match="label must lie in 0..3"):
            net(x, 0.5, bad)
    with pytest.raises(ValueError, match="shape"):
        net(x, 0.5, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integers"):
        net(x, 0.5, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="unconditional"):
        UNet(size=8, channels=(8, 16))(x, 0.5, 1)
    with pytest.raises(ValueError, match="num_classes"):
        UNet(size=8, channels=(8, 16), num_classes=-1)
