"""images.config: where training draws its noise levels, and class-conditional training."""

import numpy as np
import pytest
import torch
from scipy import stats

from diffnotes.images import PRESETS, TrainConfig, train
from diffnotes.images.config import _log_rho, _t_of_log_rho, sample_times
from diffnotes.sde import VPSDE
from diffnotes.utils import torch_threads

TINY = PRESETS["digits"].replace(channels=(8, 16), steps=4, batch_size=16, ckpt_every=2,
                                 warmup=2)


def _u(n=20_000, seed=0):
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_log_rho_is_the_vp_sdes_and_its_inverse_inverts_it():
    c = TrainConfig()
    t = torch.linspace(1e-4, 1.0, 501, dtype=torch.float64)
    alpha, sigma = VPSDE(c.beta_min, c.beta_max).alpha_sigma(t.numpy())
    np.testing.assert_allclose(_log_rho(c, t).numpy(), np.log(sigma / alpha), rtol=1e-12)
    np.testing.assert_allclose(_t_of_log_rho(c, _log_rho(c, t)).numpy(), t.numpy(), rtol=1e-10)
    const = c.replace(beta_max=c.beta_min)                 # beta constant: the linear branch
    np.testing.assert_allclose(_t_of_log_rho(const, _log_rho(const, t)).numpy(), t.numpy(),
                               rtol=1e-10)


def test_uniform_sampling_is_the_old_formula_and_rarely_reaches_small_rho():
    c = TrainConfig()
    u = _u()
    assert torch.equal(sample_times(c, u), c.t_min + (1 - c.t_min) * u)
    # the docstring: fewer than one draw in a hundred has rho < 0.03
    frac = float((_log_rho(c, sample_times(c, u)) < np.log(0.03)).double().mean())
    assert 0.002 < frac < 0.01


@pytest.mark.parametrize("kind", ["logsnr", "lognormal"])
def test_log_rho_follows_its_law(kind):
    c = TrainConfig(t_sampling=kind)
    t = sample_times(c, _u())
    assert float(t.min()) >= c.t_min and float(t.max()) <= 1.0
    lo, hi = (float(v) for v in _log_rho(c, torch.tensor([c.t_min, 1.0], dtype=torch.float64)))
    r = _log_rho(c, t).numpy()
    if kind == "logsnr":
        cdf = stats.uniform(lo, hi - lo).cdf
    else:
        a, b = (lo + 1.2) / 1.2, (hi + 1.2) / 1.2
        cdf = stats.truncnorm(a, b, loc=-1.2, scale=1.2).cdf
    assert stats.kstest(r, cdf).pvalue > 1e-3
    # a wrong law is rejected by the same test
    other = stats.uniform(lo, hi - lo).cdf if kind == "lognormal" else stats.norm(-1.2, 1.2).cdf
    assert stats.kstest(r, other).pvalue < 1e-6
    # both put more than twice as many draws at small noise as uniform t does
    uniform = TrainConfig()
    base = float((_log_rho(uniform, sample_times(uniform, _u())) < np.log(0.03)).double().mean())
    assert float((r < np.log(0.03)).mean()) > 2 * base


def test_bad_configurations():
    with pytest.raises(ValueError, match="t_sampling"):
        TrainConfig(t_sampling="edm")
    with pytest.raises(ValueError, match="num_classes"):
        TrainConfig(label_dropout=0.1)
    with pytest.raises(ValueError, match="label_dropout"):
        TrainConfig(num_classes=10, label_dropout=1.5)
    with pytest.raises(ValueError, match="num_classes"):
        TrainConfig(num_classes=-2)


def test_older_config_dicts_load_with_the_new_defaults():
    d = TINY.to_dict()
    for k in ("t_sampling", "num_classes", "label_dropout"):
        d.pop(k)
    assert TrainConfig.from_dict(d) == TINY


def test_class_conditional_training(tmp_path):
    with torch_threads(1):
        cond = train(TINY.replace(num_classes=10, label_dropout=0.25), progress=False)
        plain = train(TINY, progress=False)
        again = train(TINY.replace(t_sampling="uniform"), progress=False)
        with pytest.raises(ValueError, match="num_classes = 5 is too small"):
            train(TINY.replace(num_classes=5), progress=False)
    assert cond.ema.num_classes == 10 and cond.ema.label_emb is not None
    assert np.all(np.isfinite(cond.losses))
    # an unconditional run draws no labels: its stream, and its weights, are unchanged
    sa, sb = plain.ema.state_dict(), again.ema.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.zeros(2, 1, 8, 8)
    with torch.no_grad():
        assert (cond.ema(x, 0.5, 3) - cond.ema(x, 0.5)).abs().max() > 0


def test_pretrained_names_only_score_networks():
    from diffnotes import images as im

    names = im._shipped_score_networks()
    assert {"mnist8k", "digits-cond"} <= set(names) and "digits-masked" not in names
    with pytest.raises(ValueError, match="discrete_images.pretrained"):
        im.pretrained("digits-masked")
    with pytest.raises(ValueError, match="name must be one of"):
        im.pretrained("no-such-network")
