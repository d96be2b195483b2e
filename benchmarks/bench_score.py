"""Benchmark for :mod:`diffnotes.score`: does the default training recipe learn a 2-D score well
enough, fast enough?

:class:`~diffnotes.score.ScoreMLP` (defaults) is trained by :func:`~diffnotes.score.train`
(defaults) on fresh draws of the two-moons mixture :func:`~diffnotes.mixtures.moons_mixture`
with :class:`~diffnotes.sde.VPSDE`, and 2000 points are sampled from the averaged (EMA) model by
:func:`~diffnotes.sde.euler_maruyama` (1000 steps). Targets, on the detail lines:

- training wall time < 30 s (reported, not enforced: it depends on the load of the machine);
- sliced-W2 of the samples to 2000 fresh draws of the mixture <= 2x the noise floor (the same
  distance between two independent sets of 2000 draws, mean over 5 pairs, in the same run);
  a miss raises once the lines are printed.

The harness's row times the same sampler with the *exact* mixture score (baseline) against
training plus sampling (candidate); its ratio is for information (target 0). The detail lines
also give the SW2 of the exact-score sampler (the best this sampler can do: what is left is
discretisation and sampling noise), the relative L2 error of the learned score against the exact
one at several times, the final training loss against the DSM loss of the exact score (the
floor no network can beat), and the same recipe on :func:`diffnotes.data.two_moons`.

A second case, ``score_weighting_moons`` (Chapter 3, "What to weight and where to sample"),
trains the same network with four choices of loss weighting and time sampling -- (noise,
sigma2), (noise, likelihood), (velocity, velocity), and the likelihood weighting importance-
sampled (:class:`~diffnotes.score._weighting.LogSNRClockVP`: t uniform in log-SNR) -- two seeds
each at the same budget, and prints SW2 to the data of Euler-Maruyama-1000 and Heun-18 samples
against the noise floor and the ODE's NLL of held-out points against the exact NLL. Targets:
(noise, sigma2) within 2x the floor on every seed; importance sampling lowers the likelihood
weighting's NLL gap. Its numbers are recorded in ``WEIGHTING_RECORDS`` of
``diffnotes/score/_weighting.py``.
"""

import time

import numpy as np
import torch

from diffnotes import data, score, sde
from diffnotes.metrics import noise_floor, sliced_wasserstein2
from diffnotes.mixtures import moons_mixture
from diffnotes.score._weighting import LogSNRClockVP

from .harness import Case, benchmark
from .harness import one_thread as _one_thread
from .harness import target as record_target

N, STEPS, TIMES = 2000, 1000, (0.05, 0.1, 0.3, 0.6, 0.9)


def _verdict(ok):
    return "PASS" if ok else "FAIL"


def _line(text):
    print(f"  | {text}")


def _sample(sde_, score_fn, seed):
    return sde.euler_maruyama(sde_, score_fn, sde_.prior_sample(N, 2, seed), seed + 1,
                              n_steps=STEPS).x


def _rel_err(score_fn, gm, sde_, t, n=4000):
    """Relative L2 error of a score against the exact one, weighted by draws of q_t."""
    x = sde_.sample_marginal(gm.sample(n, 11), t, 12)
    exact = gm.score(x, t, sde_)
    return float(np.sqrt(np.sum((score_fn(x, t) - exact) ** 2) / np.sum(exact**2)))


class _Exact(torch.nn.Module):
    """The exact mixture score as a 'network' (for the DSM loss of the exact score)."""

    parameterization = "score"

    def __init__(self, gm, sde_):
        super().__init__()
        self.gm, self.sde = gm, sde_

    def forward(self, x, t):
        return torch.as_tensor(self.gm.score(x.double().numpy(), t.double().numpy(), self.sde))


def _exact_loss(gm, sde_, n=200_000):
    """Monte Carlo DSM loss (sigma2 weighting, t ~ U(1e-3, 1)) of the exact score, +- 1 SE
    (from 10 batches)."""
    gen = torch.Generator().manual_seed(0)
    vals = [float(score.denoising_loss(_Exact(gm, sde_), torch.as_tensor(gm.sample(n // 10, i)),
                                       sde_, gen)) for i in range(10)]
    return np.mean(vals), np.std(vals, ddof=1) / np.sqrt(len(vals))


@benchmark
def learned_moons_vs_exact_score():
    gm, vp = moons_mixture(), sde.VPSDE()
    target = gm.sample(N, 123)
    state = {}

    def exact():
        return _sample(vp, gm.score_function(vp), 5)

    def learned():
        res = score.train(score.ScoreMLP(), vp, gm.sample, progress=False)
        state["res"] = res
        return _sample(vp, score.score_function(res.ema, vp), 5)

    def check(x_exact, x_learned):
        res = state["res"]
        model = res.ema
        n_par = sum(p.numel() for p in model.parameters())
        _line(f"ScoreMLP() ({n_par} parameters, {model.parameterization} parameterisation) "
              f"trained by score.train() defaults on fresh draws of moons_mixture(), {vp}")
        steps = res.losses.size
        ok_t = res.seconds < 30
        _line(f"training: {steps} steps in {res.seconds:.1f} s ({steps / res.seconds:.0f} "
              f"steps/s) (target < 30 s) {_verdict(ok_t)}")
        floor = noise_floor(sliced_wasserstein2, gm.sample, N, 7, n_repeats=5)
        sw_exact = sliced_wasserstein2(x_exact, target)
        sw = sliced_wasserstein2(x_learned, target)
        sw_last = sliced_wasserstein2(_sample(vp, score.score_function(res.model, vp), 5),
                                      target)
        ratio = sw / floor.mean
        _line(f"noise floor, SW2 of two independent sets of {N} draws: {floor}")
        _line(f"SW2 to {N} draws, Euler-Maruyama ({STEPS} steps, {N} samples): exact score "
              f"{sw_exact:.4f} (information), last iterate {sw_last:.4f} (information)")
        _line(f"SW2 of the EMA model {sw:.4f} = {ratio:.2f}x the floor (target <= 2x) "
              f"{_verdict(ratio <= 2)}")
        errs = [_rel_err(score.score_function(model, vp), gm, vp, t) for t in TIMES]
        base = [_rel_err(lambda x, t: -x, gm, vp, t) for t in TIMES]
        _line("relative L2 error of the learned score on q_t draws (information): "
              + ", ".join(f"t={t:g}: {e:.2g}" for t, e in zip(TIMES, errs, strict=True)))
        _line("  the same for the score -x of N(0, I): "
              + ", ".join(f"t={t:g}: {e:.2g}" for t, e in zip(TIMES, base, strict=True)))
        lo, se = _exact_loss(gm, vp)
        final = res.losses[-500:].mean()
        _line(f"final loss (mean of the last 500 steps) {final:.4f}; DSM loss of the exact score "
              f"{lo:.4f} +- {se:.4f} (the floor of any network; information)")
        # the same recipe on the two-moons point cloud of diffnotes.data (no exact score)
        t0 = time.perf_counter()
        moons = score.train(score.ScoreMLP(), vp, data.two_moons, progress=False)
        x2 = _sample(vp, score.score_function(moons.ema, vp), 5)
        fl2 = noise_floor(sliced_wasserstein2, data.two_moons, N, 7, n_repeats=5)
        sw2 = sliced_wasserstein2(x2, data.two_moons(N, 123))
        _line(f"(information) data.two_moons (noise 0.05): trained in {moons.seconds:.1f} s "
              f"({time.perf_counter() - t0:.1f} s with sampling), SW2 {sw2:.4f} = "
              f"{sw2 / fl2.mean:.2f}x its floor {fl2}")
        assert ratio <= 2, "the learned sampler misses its target SW2 <= 2x the noise floor"

    return Case(
        name="score: train + EM sampling of 2-D moons (vs EM, exact score)",
        baseline=exact,
        candidate=_one_thread(learned),
        target=0.0,
        check=_one_thread(check),
        repeats=1,
    )


# --------------------------------------------------------------------------------------------
# Which weighting of the DSM loss works best? (Chapter 3, "What to weight and where to sample")
# --------------------------------------------------------------------------------------------
T_MIN, N_NLL, ERR_TIMES = 1e-3, 500, (0.01, 0.1, 0.5)
# (name, parameterisation, weighting, t sampled uniform in log-SNR)
WEIGHTING_VARIANTS = (("noise, sigma2", "noise", "sigma2", False),
                      ("noise, likelihood", "noise", "likelihood", False),
                      ("velocity, velocity", "velocity", "velocity", False),
                      ("noise, likelihood, IS", "noise", "sigma2", True))
WEIGHTING_SEEDS = (0, 1)


def _train_variant(gm, vp, param, weighting, logsnr, seed, n_steps):
    """Train one variant; return its VP score function and the training seconds."""
    net = score.ScoreMLP(parameterization=param, seed=seed)
    on = LogSNRClockVP(t_min=T_MIN) if logsnr else vp
    res = score.train(net, on, gm.sample, weighting=weighting, seed=seed, n_steps=n_steps,
                      progress=False)
    fn = score.score_function(res.ema, on)
    if logsnr:
        return (lambda x, t: fn(x, on.u_of_t(t))), res.seconds
    return fn, res.seconds


def weighting_experiment(n_steps=3000, seeds=WEIGHTING_SEEDS, variants=WEIGHTING_VARIANTS,
                         n=N, n_nll=N_NLL):
    """Train every variant with every seed on fresh draws of the two-moons mixture (VP SDE,
    ``score.train`` defaults but ``n_steps``) and score it: SW2 of ``n`` Euler-Maruyama-1000 and
    Heun-18 samples to ``n`` fresh draws of the data noised to ``t_min``, and the NLL (nats) of
    ``n_nll`` held-out draws of the same law by the ODE (``sde.log_likelihood``). Returns the
    records dict of :mod:`diffnotes.score._weighting_records` (without its metadata)."""
    gm, vp = moons_mixture(), sde.VPSDE()
    target = gm.at(T_MIN, vp)
    floor = noise_floor(sliced_wasserstein2, target.sample, n, 7, n_repeats=5)
    held = target.sample(n_nll, 99)
    exact_nll = float(-target.log_prob(held).mean())
    out = {"err_times": ERR_TIMES, "n_steps": n_steps, "n": n, "n_nll": n_nll,
           "floor_mean": floor.mean, "floor_sd": floor.std, "exact_nll": exact_nll, "runs": {}}
    for name, param, weighting, logsnr in variants:
        rows = []
        for seed in seeds:
            fn, secs = _train_variant(gm, vp, param, weighting, logsnr, seed, n_steps)
            x_t = vp.prior_sample(n, 2, 100 + seed)
            em = sde.euler_maruyama(vp, fn, x_t, 200 + seed, n_steps=STEPS).x
            heun = sde.heun_flow(vp, fn, x_t, n_steps=18).x
            ref = target.sample(n, 300 + seed)
            ll = sde.log_likelihood(vp, fn, held, rtol=1e-4, atol=1e-4).log_prob
            rows.append({"seed": seed, "seconds": round(secs, 1),
                         "sw2_em": float(sliced_wasserstein2(em, ref)),
                         "sw2_heun": float(sliced_wasserstein2(heun, ref)),
                         "em_far": int(np.sum(np.hypot(*em.T) > 4)),
                         "rel_err": [round(_rel_err(fn, gm, vp, t), 4) for t in ERR_TIMES],
                         "nll": float(-ll.mean()),
                         "nll_gap_se": float((-ll - (-target.log_prob(held))).std(ddof=1)
                                             / np.sqrt(n_nll))})
            r = rows[-1]
            _line(f"{name:22s} seed {seed}: {secs:5.1f} s, SW2 EM {r['sw2_em']:.4f} "
                  f"({r['sw2_em'] / floor.mean:.2f}x floor, {r['em_far']} beyond |x| = 4), "
                  f"Heun-18 {r['sw2_heun']:.4f} "
                  f"({r['sw2_heun'] / floor.mean:.2f}x), NLL {r['nll']:.3f} "
                  f"(gap {r['nll'] - exact_nll:+.3f} +- {r['nll_gap_se']:.3f})")
        out["runs"][name] = rows
    return out


def weighting_table(rec):
    """Lines of a table of the records (mean over seeds): SW2 / floor and the NLL gap."""
    fl, lines = rec["floor_mean"], []
    lines.append(f"{'variant':22s} {'EM-1000 / floor':>16s} {'Heun-18 / floor':>16s} "
                 f"{'NLL - exact (nats)':>19s}")
    for name, rows in rec["runs"].items():
        em = np.mean([r["sw2_em"] for r in rows]) / fl
        hn = np.mean([r["sw2_heun"] for r in rows]) / fl
        gap = np.mean([r["nll"] for r in rows]) - rec["exact_nll"]
        lines.append(f"{name:22s} {em:16.2f} {hn:16.2f} {gap:19.3f}")
    return lines


@benchmark
def score_weighting_moons():
    state = {}

    def run():
        state["rec"] = weighting_experiment()
        return state["rec"]

    def check(_, rec):
        _line(f"floor {rec['floor_mean']:.4f} +- {rec['floor_sd']:.4f}; exact NLL of the "
              f"{rec['n_nll']} held-out points {rec['exact_nll']:.3f} nats")
        for text in weighting_table(rec):
            _line(text)
        _line("records (WEIGHTING_RECORDS of diffnotes/score/_weighting.py):")
        print(repr(rec))
        # targets: the default recipe (noise, sigma2) samples within 2x the floor on every seed;
        # importance sampling (t uniform in log-SNR) lowers the likelihood weighting's NLL gap
        runs = rec["runs"]
        worst = max(r["sw2_em"] for r in runs["noise, sigma2"]) / rec["floor_mean"]
        ok1 = record_target("weighting: (noise, sigma2) EM-1000 SW2 <= 2x the floor, every seed",
                            worst <= 2, f"worst {worst:.2f}x")
        _line(f"target: (noise, sigma2) EM-1000 within 2x the floor on every seed "
              f"(worst {worst:.2f}x) {_verdict(ok1)}")
        gap = {k: np.mean([r["nll"] for r in runs[k]]) - rec["exact_nll"]
               for k in ("noise, likelihood", "noise, likelihood, IS")}
        ok2 = record_target(
            "weighting: importance sampling lowers the likelihood weighting's NLL gap",
            gap["noise, likelihood, IS"] < gap["noise, likelihood"],
            f"{gap['noise, likelihood, IS']:.3f} vs {gap['noise, likelihood']:.3f} nats")
        _line(f"target: NLL gap with importance sampling {gap['noise, likelihood, IS']:.3f} < "
              f"uniform t {gap['noise, likelihood']:.3f} nats {_verdict(ok2)}")

    return Case(name="score: DSM weightings on 2-D moons (samples and NLL)",
                baseline=lambda: None, candidate=_one_thread(run), target=0.0,
                check=_one_thread(check), repeats=1)
