"""Every claim of Chapter 6 (book/06_discrete.md), checked on the chapter's own problem."""

import numpy as np
import pytest

from diffnotes import discrete as D
from diffnotes import ehrenfest

N, DIM, T = 3, 2, 6.0
P0 = np.array([[0.30, 0.02, 0.08],
               [0.02, 0.25, 0.03],
               [0.10, 0.05, 0.15]])
W0 = P0.ravel()
CLEAN = D.joint_states(N, DIM)
ENTROPY = -(W0 * np.log(W0)).sum()


def tv(p, q):
    return 0.5 * np.abs(np.ravel(p) - np.ravel(q)).sum()


def hist(states, m=None):
    idx = N * states[:, 0] + states[:, 1]
    return np.bincount(idx, minlength=N**DIM) / len(idx)


def test_mixing_of_the_three_chains():
    """uniform TV = (1 - 1/n) alpha, masked = alpha; Ehrenfest (S = 16) is last below 0.1
    and stays near one for small t."""
    n, S = 17, 16
    for t in (0.3, 1.0, 2.0):
        P = D.transition_matrix("uniform", n, t)
        assert abs(tv(P[0], np.full(n, 1 / n)) - (1 - 1 / n) * np.exp(-t)) < 1e-12
        Pm = D.transition_matrix("masked", n, t)
        assert abs(tv(Pm[0], np.eye(n + 1)[n]) - np.exp(-t)) < 1e-12
    stat = ehrenfest.transition_matrix(S, 60.0, n0=0)[0]
    ts = np.linspace(0.01, 5, 500)
    e = np.array([tv(ehrenfest.transition_matrix(S, t, n0=0)[0], stat) for t in ts])
    t10 = {"u": ts[np.argmax((1 - 1 / n) * np.exp(-ts) < 0.1)],
           "m": ts[np.argmax(np.exp(-ts) < 0.1)], "e": ts[np.argmax(e < 0.1)]}
    assert t10["u"] < t10["m"] < t10["e"]
    assert t10["e"] > t10["m"] + 0.3
    # at t = 1 the Ehrenfest chain is far behind the masked chain
    i1 = np.argmin(np.abs(ts - 1.0))
    assert e[i1] > 1.4 * np.exp(-ts[i1])


def test_masked_count_is_binomial():
    """Exercise ex-ch6-marginal: the number of masks is Bin(d, 1 - alpha) whatever the data."""
    rng = np.random.default_rng(0)
    d, t, m = 6, 0.7, 100_000
    for x0 in (np.zeros((m, d), int), rng.integers(0, 4, (m, d))):
        k = (D.sample_forward("masked", x0, t, 4, rng) == 4).sum(1)
        p = 1 - np.exp(-t)
        assert abs(k.mean() - d * p) < 5 * np.sqrt(d * p * (1 - p) / m)
        assert abs(k.var() - d * p * (1 - p)) < 0.02


def test_total_unmasking_rate():
    """Exercise ex-ch6-total-rate: rates out of a masked coordinate sum to w(t)."""
    r = np.random.default_rng(5)
    x = np.array([[3, 1], [3, 3]])
    R = D.reverse_rates("masked", 3, x, 0.4, r.dirichlet(np.ones(3), (2, 2)))
    w = D.masked_weight(0.4)
    assert np.allclose(R.sum(-1), np.where(x == 3, w, 0.0))


def test_exact_denoiser_elbo_is_nearly_tight():
    for kind, bound in (("masked", 3e-4), ("uniform", 3e-5)):
        e = D.elbo(kind, D.exact_denoiser(kind, P0, N), CLEAN, N, T)["total"]
        gap = (W0 * e).sum() - ENTROPY
        assert 0 < gap < bound
        # "what is left is the prior's mismatch at T and the cut at t_min": both shrink it
        e2 = D.elbo(kind, D.exact_denoiser(kind, P0, N), CLEAN, N, 9.0, t_min=1e-4)["total"]
        assert (W0 * e2).sum() - ENTROPY < 0.2 * gap


@pytest.fixture(scope="module")
def learned():
    import torch

    from diffnotes import discrete_learn as DL

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    data = CLEAN[rng.choice(len(CLEAN), 2000, p=W0)]
    out = {"emp": hist(data)}
    for kind in D.KINDS:
        model, _ = DL.fit_denoiser(kind, data, N, T=T, steps=1500)
        out[kind] = DL.as_denoiser(kind, model, N)
    return out


def test_learned_models(learned):
    tv_emp = tv(learned["emp"], W0)
    assert 0.01 < tv_emp < 0.05  # "a TV of a few hundredths"
    for kind in D.KINDS:
        den = learned[kind]
        nelbo = (W0 * D.elbo(kind, den, CLEAN, N, T)["total"]).sum()
        law = D.model_likelihood(kind, den, N, DIM, T).ravel()
        nll = -(W0 * np.log(law)).sum()
        assert ENTROPY < nll <= nelbo < nll + 0.02  # "the bound holds and is close"
        assert tv(law, W0) < 2 * tv_emp  # "on the scale of the samples' own TV"
        num = den_ = 0.0
        for t in (0.1, 0.5, 2.0):
            Ge = D.exact_reverse_generator(kind, P0, t, N)
            Gl = D.model_generator(kind, den, t, N, DIM)
            off = ~np.eye(len(Ge), dtype=bool) & (Ge > 0)
            num += ((Gl - Ge)[off] ** 2).sum()
            den_ += (Ge[off] ** 2).sum()
        assert np.sqrt(num / den_) < 0.3


def test_samplers_as_the_chapter_says():
    m = 20_000
    exact = {k: D.exact_denoiser(k, P0, N) for k in D.KINDS}
    target = {k: D.model_likelihood(k, exact[k], N, DIM, T).ravel() for k in D.KINDS}
    # mean TV of 20000 exact draws on these 9 cells: sum_k sqrt(p_k (1 - p_k) / (2 pi m))
    p = target["masked"]
    floor = np.sqrt(p * (1 - p) / (2 * np.pi * m)).sum()
    assert 0.005 < floor < 0.009
    tvs = [tv(hist(D.sample_unmask(exact["masked"], m, DIM, N, T, rng=1,
                                   n_steps=s).states), target["masked"])
           for s in (1, 5, 100)]
    assert tvs[0] > tvs[1] > tvs[2] and tvs[2] < 2 * floor  # "on the noise floor"
    prod = np.outer(P0.sum(1), P0.sum(0))
    assert abs(tvs[0] - tv(prod, P0)) < 0.03  # exercise ex-ch6-one-step
    rej, tvt = {}, {}
    for kind in D.KINDS:
        run = D.sample_tau(kind, exact[kind], m, DIM, N, T, rng=2, n_steps=60)
        tvt[kind] = tv(hist(run.states), target[kind])
        rej[kind] = run.n_rejected
    # over seeds 5-7 the TVs are 0.011-0.016 (masked) and 0.023 (uniform)
    assert tvt["masked"] < 0.02 and tvt["uniform"] < 0.04
    assert tvt["uniform"] > tvt["masked"] + 0.005  # "frozen rates cost the uniform more"
    assert rej["uniform"] > 3 * rej["masked"]
    # near T a uniform coordinate jumps at about (n-1)/n, a masked one is unmasked at w(T)
    x = np.array([[0, 1]])
    R = D.reverse_rates("uniform", N, x, T - 0.5, exact["uniform"](x, [T - 0.5]))
    assert np.allclose(R.sum(-1), (N - 1) / N, rtol=0.05)
    assert D.masked_weight(T - 0.5) < 0.01


# --------------------------------------------------------------------------------------------
# Images (section "Images: the digits' 17 grey levels"), at the chapter's settings and seeds
# --------------------------------------------------------------------------------------------
IMG_NFES = (10, 30, 100)
IMG_N = 150


@pytest.fixture(scope="module")
def digits_runs():
    """The chapter's image cell: the shipped networks, the classifier, 150 samples per chain
    and budget (seed 2), each scored by images.metrics.quality (rng 0)."""
    import torch

    from diffnotes import discrete_images as DI
    from diffnotes import images as im
    from diffnotes.discrete_learn import denoiser_loss
    from diffnotes.images import metrics
    from diffnotes.utils import torch_threads

    with torch_threads(1):
        nets = {k: DI.pretrained(k) for k in D.KINDS}
        ehr_net, ehr_cfg, _ = im.pretrained("digits-score", device="cpu")
        xtr, ytr, _ = im.dataset("digits", "train")
        xev, _, _ = im.dataset("digits", "eval")
        clf = metrics.train_classifier(xtr, ytr, seed=0)
        out = {}
        for chain in ("masked", "uniform", "ehrenfest"):
            for nfe in IMG_NFES:
                if chain == "ehrenfest":
                    r = im.sample(ehr_net, ehr_cfg, IMG_N, sampler="ehrenfest",
                                  n_steps=nfe - 1, seed=2)
                    assert r.nfe == nfe
                    pixels, rej = r.pixels, 0.0
                else:
                    model, cfg, _ = nets[chain]
                    pixels, run = DI.sample(model, IMG_N, nfe - 1, config=cfg, seed=2)
                    assert run.n_evals == nfe
                    rej = run.n_rejected / (IMG_N * 64 * (nfe - 1))
                x = im.to_unit(pixels, 16)
                out[chain, nfe] = (metrics.quality(clf, x, xev, IMG_N, rng=0),
                                   metrics.memorisation(x, xtr, xev[:IMG_N]), rej, pixels)
        model, cfg, info = nets["masked"]
        held = torch.as_tensor(DI.to_levels(xev))
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            nelbo = np.mean([denoiser_loss("masked", model, held, 17, T=cfg.T,
                                           generator=gen).item() for _ in range(20)])
    bpp = 1 / (64 * np.log(2))
    return out, bpp * info["losses"][-100:].mean(), bpp * nelbo, im.to_pixels(xev, 16)[0]


@pytest.fixture(scope="module")
def digits_runs_pixels(digits_runs):
    """Pooled level histograms of the 100-NFE samples and of the held-out digits."""
    runs, held = digits_runs[0], digits_runs[3]

    def h(p):
        return np.bincount(np.ravel(p), minlength=17) / np.size(p)

    return {c: h(runs[c, 100][3]) for c in ("masked", "uniform", "ehrenfest")}, h(held)


def _ratio(runs, key):
    q = runs[key][0]
    return q.fd.mean / q.floor_fd.mean


def test_images_masked_elbo_is_not_memorised(digits_runs):
    """Held-out negative ELBO within 5 % of the training loss, both well below log2(17)."""
    _, train_bpp, held_bpp, _ = digits_runs
    assert abs(held_bpp - train_bpp) < 0.05 * train_bpp
    assert held_bpp < 0.5 * np.log2(17)


def _within_one_spread(q):
    return abs(q.fd.mean - q.floor_fd.mean) <= q.floor_fd.std


def test_images_ten_evaluations(digits_runs):
    """At 10 NFE: masked within one floor spread of the floor; Ehrenfest above it, uniform
    above both."""
    runs = digits_runs[0]
    assert _within_one_spread(runs["masked", 10][0])
    m, e, u = (_ratio(runs, (c, 10)) for c in ("masked", "ehrenfest", "uniform"))
    assert m < e < u
    assert not _within_one_spread(runs["ehrenfest", 10][0])


def test_images_all_three_reach_the_floor_at_100(digits_runs):
    runs = digits_runs[0]
    for chain in ("masked", "uniform", "ehrenfest"):
        assert _within_one_spread(runs[chain, 100][0]), chain


def test_images_no_run_copies_the_training_digits(digits_runs):
    """Every NN ratio above 1; the unordered chains' samples farther from the training digits
    (in pixel space) than Ehrenfest's, at every budget."""
    runs = digits_runs[0]
    nn = {c: [runs[c, k][1].ratio for k in IMG_NFES] for c in ("masked", "uniform",
                                                                "ehrenfest")}
    assert min(map(min, nn.values())) > 1.0
    assert min(nn["masked"] + nn["uniform"]) > max(nn["ehrenfest"]) + 0.05


def test_images_uniform_tau_leaping_rejections(digits_runs):
    """Multi-moves rejected: a sizeable share at 10 NFE (the prose's percentage), falling
    with the budget."""
    runs = digits_runs[0]
    rej = [runs["uniform", k][2] for k in IMG_NFES]
    assert 0.1 < rej[0] < 0.4 and rej[0] > rej[1] > rej[2]
    assert all(runs["masked", k][2] == 0 for k in IMG_NFES)


def test_unmasking_steps_that_change_a_digit():
    """Exercise ex-ch6-no-clock: the expected number of the 99 steps that unmask a pixel of a
    64-pixel digit, k (1 - (1 - p)^64), about half of them; against a simulation of the
    sampler itself (a denoiser that records the state at every call)."""
    k, T_img = 99, 8.0
    a_T, a_min = np.exp(-T_img), np.exp(-1e-3)
    p = (a_min - a_T) / (k * (1 - a_T))
    expected = k * (1 - (1 - p) ** 64)
    assert 0.4 * k < expected < 0.55 * k
    m = 4000
    seen = []

    def recorder(x, t):
        seen.append(x.copy())
        return np.full(x.shape + (17,), 1 / 17)

    run = D.sample_unmask(recorder, m, 64, 17, T_img, rng=3, n_steps=k)
    assert len(seen) == k + 1 and run.n_evals == k + 1
    states = np.stack(seen)      # x before each of the k steps, then before the decoder
    changed = (states[:-1] != states[1:]).any(-1).sum(0)     # per digit
    se = changed.std() / np.sqrt(m)
    assert abs(changed.mean() - expected) < 4 * se


def test_images_elbo_prior_and_decoder_terms_are_small():
    """'the prior and decoder terms are of order alpha_T log 17 and t_min nats per pixel': the
    prior KL of one pixel is exactly alpha_T log 17; the shipped masked network's decoder term
    on the held-out digits is below 3 t_min per pixel."""
    from diffnotes import discrete_images as DI
    from diffnotes import images as im

    n, T_img, t_min = 17, 8.0, 1e-3
    qT = D.transition_matrix("masked", n, T_img)[:n]
    pi = D.prior("masked", n, T_img)
    kl = (qT * np.log(qT / pi, where=qT > 0, out=np.zeros_like(qT))).sum(1)
    assert np.allclose(kl, np.exp(-T_img) * np.log(n), rtol=1e-9)
    model, cfg, _ = DI.pretrained("masked")
    assert (cfg.T, cfg.t_min) == (T_img, t_min)
    x0 = DI.to_levels(im.dataset("digits", "eval")[0])
    xt = D.sample_forward("masked", np.repeat(x0, 20, 0), t_min, n, rng=0)
    p = DI.denoiser(model)(xt, t_min)
    ce = -np.log(np.take_along_axis(p, np.repeat(x0, 20, 0)[..., None], -1)[..., 0])
    dec = (ce * (xt == n)).sum() / xt.size
    assert 0 < dec < 3 * t_min


def test_images_level_histograms(digits_runs_pixels):
    """At 100 NFE the unordered chains' pooled level histograms are within half Ehrenfest's TV
    of the held-out one; Ehrenfest has fewer pixels at 0 and at 16 than held-out digits."""
    hist_of, held = digits_runs_pixels
    tvs = {c: tv(hist_of[c], held) for c in hist_of}
    assert max(tvs["masked"], tvs["uniform"]) < 0.5 * tvs["ehrenfest"]
    assert hist_of["ehrenfest"][0] < held[0] and hist_of["ehrenfest"][16] < held[16]


def test_shipped_digits_score_is_what_its_recorded_command_configures():
    """pretrained/README.md records the command that made digits-score.pt: the noise loss of
    the old digits preset for 3000 steps. The file's configuration is the one that command
    builds (the preset's velocity default overridden on the command line)."""
    import re
    import shlex
    from pathlib import Path

    from diffnotes import images as im
    from diffnotes.images.__main__ import _parser, _train_config

    readme = (Path(im.PRETRAINED_DIR) / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("| `digits-score.pt`"))
    cmd = shlex.split(re.search(r"`(python -m diffnotes.images train[^`]*)`", line).group(1))
    args = _parser().parse_args(cmd[3:])
    _, cfg, _ = im.pretrained("digits-score")
    assert _train_config(args) == cfg
    assert cfg.parameterization == "noise" and im.PRESETS["digits"].parameterization != "noise"
