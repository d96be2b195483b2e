"""Benchmarks for :mod:`diffnotes.dsb`: DSB (IPF, mean matching) and bridge matching.

1. ``dsb_two_moons``: the DSB paper's 2-D configuration (20 steps, gamma = 0.01, batch 512,
   lr 1e-4, 5000 Adam steps per half-step; ``DIFFNOTES_BENCH_FULL=1``) or a quick one (500
   steps per half-step at lr 1e-3, the default), two moons -> N(0, I). Detail lines: wall time
   per IPF iteration, and the sliced-W2 and MMD of 2000 generated points (backward from
   N(0, I)) to 2000 fresh draws, against their noise floors. Target: SW2 <= 3x the floor at the
   last iteration (quick) or 2x (full). The harness's row times building one forward-path cache
   (2000 paths, 20 steps, targets included) in a hand-written step-by-step loop (baseline)
   against ``DSB._cache`` (candidate; also one call per step on all paths); information.
2. ``dsb_s_curve``: the DSB reference code's own 2-D problem (:mod:`diffnotes.dsb_problems`:
   the s-curve at scale 7 -> N(0, 49 I), OU reference towards it) at its settings (20 steps of
   gamma 0.01, batch 512, Adam 1e-4, 5000 steps per half-step, cache of 10,000 paths redrawn
   every 100 steps), ``DSB``'s defaults otherwise. Detail lines per IPF iteration: wall and CPU
   seconds, SW2 and MMD of 2000 samples against 2000 fresh draws, against their floors; the
   reference code's numbers (issue 13); a run of our choosing (:data:`S_CURVE_GOOD_FIT`: a
   longer horizon on the paper's symmetric step schedule); with ``DIFFNOTES_BENCH_FULL=1`` also
   the old defaults; exact IPF at the same discretisation (``dsb_problems.exact_ipf_sw2``,
   Sinkhorn on 5000 x 5000 points) for both schedules. Targets (recorded): SW2 <= 1.0 after two
   iterations (issue 13; below what exact IPF reaches at T = 0.2, about 1.6-1.7, so FAIL),
   within 0.2 of exact IPF after two iterations, and <= 28 s per iteration (a third of the
   reference code's), at the reference settings; SW2 <= 2x the floor with ours; and bridge
   matching on the same horizon (:func:`s_curve_bridge_matching`, Brownian reference with
   sigma^2 = 2T = 0.4, which keeps both marginals at every iteration): SW2 <= 1.0 after two
   iterations (measured 0.45, 0.41, about 40 s CPU per iteration at a load of 7-10).
   :func:`s_curve_run` is the driver behind ``dsb_problems.S_CURVE_MEASURED``.
3. ``dsb_gaussian_d20``: N(-0.1, I) -> N(0.1, S) in d = 20 (S with eigenvalues in [0.5, 2]),
   Brownian reference with sigma = 1 (DSB: 20 steps of gamma = 0.025). Detail lines: the
   relative error ||C - C_exact||_F / ||C_exact||_F of the learned cross-covariance per
   iteration, for DSB and bridge matching, against the same error of exact draws (the floor).
   Six iterations; DSB with ``DSB.fit``'s defaults (a cache of 10,000 paths redrawn every 100
   steps) and the learning rate decaying to lr/10 over each half-step. Targets at the last
   iteration: bridge matching <= 0.15, DSB <= 0.35, and (recorded, issue 13 item 2) DSB <=
   0.10. With the old cache (1000 paths redrawn every 1000 steps) and a constant rate, the
   error grew over the iterations (0.20 -> 0.28 in the quick mode: a single small cache of
   targets of variance 2 d / gamma per half-step); with the cache alone it settles near 0.12,
   with the decay too near 0.10 (0.24, 0.11, 0.096, 0.094, 0.098, 0.099 in the quick mode; the
   floor of exact draws is 0.05). Exact IPF at the same discretisation
   (``dsb_problems.gaussian_dsb_ipf``: DSB's mean-matching IPF with exact regressions, in
   closed form) per iteration, and simulated on the same 20,000 paths; target (recorded, issue
   13 item 2): DSB's last error within 2x of exact IPF's so measured (exact IPF: 0.017 / 0.008
   closed form, 0.053 measured after six iterations). The row times DSB (baseline) against
   bridge matching (candidate), same Adam steps; information.
"""

import time

import numpy as np
import torch

from diffnotes import bridge, data, dsb_problems
from diffnotes.dsb import DSB, BridgeMatching, coupling, gammas
from diffnotes.metrics import mmd, noise_floor, sliced_wasserstein2

from .harness import FULL, Case, benchmark, target
from .harness import one_thread as _one_thread
from .harness import timed as _timed


def _verdict(ok):
    return "PASS" if ok else "FAIL"


def _line(text):
    print(f"  | {text}")


# --------------------------------------------------------------------------------------------
# Two moons -> N(0, I), the paper's 2-D configuration
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def _per_step_cache(model, x0, gen):
    """The backward half-step's regression pairs built step by step (the paper's way)."""
    g, s = model._tables(x0.device)
    x, xs, ts, ys = x0, [], [], []
    for k in range(model.n_steps):
        f = model._f(x, k, s)
        x_next = x + g[k] * f + torch.sqrt(2 * g[k]) * torch.randn(x.shape, generator=gen)
        ys.append((x - x_next) / g[k] + f - model._f(x_next, k, s))
        xs.append(x_next)
        ts.append(s[k + 1].expand(x.shape[0]))
        x = x_next
    return torch.cat(xs), torch.cat(ts), torch.cat(ys)


@benchmark
def dsb_two_moons():
    n, n_ipf = 2000, (10 if FULL else 4)
    cfg = dict(n_train=5000, lr=1e-4) if FULL else dict(n_train=500, lr=1e-3)
    sw_target = 2.0 if FULL else 3.0
    model = DSB(2, 20, 0.01)            # ScoreMLP defaults: 128 wide, 3 hidden layers
    # a trained-looking forward net for the cache timing: one quick iteration
    warm = DSB(2, 20, 0.01)
    _one_thread(lambda: warm.fit(data.two_moons, n_ipf=1, n_train=20, progress=False))()
    x0 = torch.as_tensor(data.two_moons(n, 0), dtype=torch.float32)
    times = {}

    def check(_, __):
        note = " (the paper)" if FULL else " (quick; FULL=1: the paper's 5000 steps, lr 1e-4)"
        _line(f"DSB two moons -> N(0, I): {model.n_steps} steps, gamma 0.01 (T = {model.T:g}, "
              f"sigma = {model.sigma:.3f}), batch 512, {cfg['n_train']} Adam steps per "
              f"half-step, lr {cfg['lr']:g}{note}")
        _line(f"cache of {n} paths x 20 steps: per-step loop {1e3 * times['loop']:.1f} ms, "
              f"DSB._cache {1e3 * times['batched']:.1f} ms (information)")
        target = data.two_moons(n, 123)
        fl_sw = noise_floor(sliced_wasserstein2, data.two_moons, n, 7, n_repeats=5)
        fl_mmd = noise_floor(mmd, data.two_moons, n, 7, n_repeats=5)
        _line(f"noise floors ({n} vs {n} draws): SW2 {fl_sw}; MMD {fl_mmd}")
        z = np.random.default_rng(5).standard_normal((n, 2))
        sw = None
        for it in range(n_ipf):
            t0 = time.perf_counter()
            model.fit(data.two_moons, "gaussian", n_ipf=1, batch_size=512, seed=it,
                      progress=False, **cfg)
            dt = time.perf_counter() - t0
            x = model.sample_backward(z, seed=it)[0]
            xf = model.sample_forward(target, seed=it)[-1]
            sw = sliced_wasserstein2(x, target)
            m = mmd(x, target)
            sw_prior = sliced_wasserstein2(xf, z)
            _line(f"iteration {it}: {dt:.1f} s; backward samples SW2 {sw:.4f} "
                  f"({sw / fl_sw.mean:.2f}x floor), MMD {m:.4f} ({m / fl_mmd.mean:.2f}x floor); "
                  f"forward end vs N(0, I): SW2 {sw_prior:.4f}")
        ratio = sw / fl_sw.mean
        ok = ratio <= sw_target
        _line(f"last iteration SW2 {ratio:.2f}x the floor (target <= {sw_target:g}x) "
              f"{_verdict(ok)}")
        assert ok, f"DSB two moons misses SW2 <= {sw_target:g}x the noise floor"

    def loop():
        return _per_step_cache(warm, x0, torch.Generator().manual_seed(0))

    def batched():
        return warm._cache("backward", x0, torch.Generator().manual_seed(0))

    return Case(
        name="dsb: two moons -> N(0, I) (cache: per step vs batched)",
        baseline=_one_thread(_timed(loop, times, "loop")),
        candidate=_one_thread(_timed(batched, times, "batched")),
        target=0.0,
        check=_one_thread(check),
        repeats=5,
    )


# --------------------------------------------------------------------------------------------
# The reference code's own 2-D problem: the s-curve -> N(0, 49 I), OU reference
# --------------------------------------------------------------------------------------------
S_CURVE_FIT = dict(batch_size=512, lr=1e-4, n_train=5000, cache_size=10_000, cache_refresh=100)
"""The reference code's 2-D settings (conf/dataset/2d.yaml, num_iter=5000 as in its README)."""
S_CURVE_REFERENCE = {"SW2": (1.25, 1.01, 1.23), "seconds": (68, 84, 86)}
"""The reference code on this 2-core machine, one torch thread (issue 13): per IPF iteration."""
S_CURVE_OLD = dict(hidden=128, embed_dim=32, drift_scale=1.0)
"""The old defaults of DSB: 128 wide, ScoreMLP's time embedding (32 features, frequencies up to
1000), the networks predicting the drifts in the points' units."""
S_CURVE_GOOD_FIT = dict(n_ipf=4, gamma_max=0.5)
"""Settings of our choosing for the 2x-floor target (``DIFFNOTES_BENCH_FULL=1``): the same 20
steps on the DSB paper's symmetric schedule from 0.01 up to 0.5 (``gammas(20, 0.01, 0.5)``,
T = 5.1 instead of 0.2), everything else as the reference code. Measured (seed 0): SW2 1.24,
0.84, 0.61, 0.44 over four iterations, about 23 s each; a longer horizon brings the reference
nearer the prior and IPF converges faster (Sinkhorn with a larger entropic blur)."""


def s_curve_run(n_ipf, fit=None, model=None, n=2000, seed=0, gamma_max=None):
    """Train ``DSB(2, 20, gamma, alpha=1/49, **model)`` on the s-curve problem (``gamma`` 0.01,
    or ``gammas(20, 0.01, gamma_max)``), one IPF iteration at a time, and score it after each:
    the wall and CPU seconds of the iteration, and the sliced-W2 and MMD of ``n`` points
    generated from ``n`` prior draws against ``n`` fresh data draws. Returns a list of dicts,
    one per iteration."""
    fit = {**S_CURVE_FIT, **(fit or {})}
    gamma = 0.01 if gamma_max is None else gammas(20, 0.01, gamma_max)
    m = DSB(2, 20, gamma, alpha=dsb_problems.S_CURVE_ALPHA, seed=seed, **(model or {}))
    target = dsb_problems.s_curve(n, 123 + seed)
    z = dsb_problems.s_curve_prior(n, 5 + seed)
    rows = []
    for it in range(n_ipf):
        t0, c0 = time.perf_counter(), time.process_time()
        m.fit(dsb_problems.s_curve, dsb_problems.s_curve_prior, n_ipf=1, seed=1000 * seed + it,
              progress=False, **fit)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        x = m.sample_backward(z, seed=it)[0]
        rows.append(dict(iteration=it + 1, wall=wall, cpu=cpu,
                         sw2=sliced_wasserstein2(x, target), mmd=mmd(x, target)))
    return rows


S_CURVE_BM_FIT = dict(n_train=5000, batch_size=512, lr=1e-3, cache_size=10_000,
                      cache_refresh=1000)
"""Bridge matching on the s-curve (``BridgeMatching``'s defaults otherwise)."""


def s_curve_bridge_matching(n_ipf, n=2000, seed=0):
    """Bridge matching (iterative Markovian fitting) on the s-curve problem with the same
    horizon as DSB's reference (a Brownian reference with sigma^2 = 2T = 0.4, 20 Euler steps):
    per iteration the wall and CPU seconds and the SW2 and MMD of ``n`` points generated
    backward from ``n`` prior draws against ``n`` fresh data draws (as :func:`s_curve_run`)."""
    m = BridgeMatching(2, float(np.sqrt(0.4)), n_steps=20, seed=seed)
    target = dsb_problems.s_curve(n, 123 + seed)
    z = dsb_problems.s_curve_prior(n, 5 + seed)
    rows = []
    for it in range(n_ipf):
        t0, c0 = time.perf_counter(), time.process_time()
        m.fit(dsb_problems.s_curve, dsb_problems.s_curve_prior, n_ipf=1, seed=1000 * seed + it,
              progress=False, **S_CURVE_BM_FIT)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        x = m.sample(z, "backward", seed=it)[0]
        rows.append(dict(iteration=it + 1, wall=wall, cpu=cpu,
                         sw2=sliced_wasserstein2(x, target), mmd=mmd(x, target)))
    return rows


def _s_curve_floors(n=2000):
    return (noise_floor(sliced_wasserstein2, dsb_problems.s_curve, n, 7, n_repeats=10),
            noise_floor(mmd, dsb_problems.s_curve, n, 7, n_repeats=10))


def _print_rows(label, rows, fl_sw, fl_mmd):
    for r in rows:
        _line(f"{label} iteration {r['iteration']}: {r['wall']:.1f} s wall ({r['cpu']:.1f} s "
              f"CPU); SW2 {r['sw2']:.3f} ({r['sw2'] / fl_sw.mean:.2f}x floor), MMD "
              f"{r['mmd']:.4f} ({(r['mmd'] - fl_mmd.mean) / fl_mmd.std:+.1f} floor SDs)")


@benchmark
def dsb_s_curve():
    """The DSB reference code's 2-D configuration (issue 13, item 1)."""
    state = {}
    good = dict(S_CURVE_GOOD_FIT)

    def candidate():
        state["new"] = s_curve_run(2)
        return state["new"]

    def check(_, __):
        fl_sw, fl_mmd = _s_curve_floors()
        _line("s-curve (reference code's scaling) -> N(0, 49 I), OU reference towards it, 20 "
              "steps of gamma 0.01, batch 512, Adam 1e-4, 5000 steps per half-step, cache "
              "10,000 paths redrawn every 100 steps; 2000 samples vs 2000 fresh draws")
        _line(f"noise floors: SW2 {fl_sw}; MMD {fl_mmd}")
        ref = S_CURVE_REFERENCE
        _line("reference code (issue 13, this machine): SW2 " + ", ".join(
            f"{v:.2f}" for v in ref["SW2"]) + "; seconds " + ", ".join(
            f"{v:d}" for v in ref["seconds"]))
        if FULL:
            _print_rows("old defaults", s_curve_run(2, model=S_CURVE_OLD), fl_sw, fl_mmd)
        rows = state["new"]
        _print_rows("DSB defaults", rows, fl_sw, fl_mmd)
        exact = dsb_problems.exact_ipf_sw2(len(rows))
        _line("exact IPF at the same discretisation (Sinkhorn on 5000 x 5000 points, "
              "dsb_problems.exact_ipf): SW2 " + ", ".join(f"{v:.3f}" for v in exact))
        last, slowest = rows[-1]["sw2"], max(r["wall"] for r in rows)
        target("dsb s-curve: SW2 <= 1.0 after two IPF iterations", last <= 1.0,
               f"SW2 {last:.3f} (issue's reference-code run 1.01; exact IPF {exact[-1]:.3f}, "
               f"a faithful port of the reference code 1.56)")
        target("dsb s-curve: SW2 after two iterations <= exact IPF's + 0.2 (noise of one run)",
               last <= exact[-1] + 0.2, f"SW2 {last:.3f}, exact IPF {exact[-1]:.3f}")
        target("dsb s-curve: <= 28 s per IPF iteration (one thread)", slowest <= 28.0,
               f"slowest {slowest:.1f} s wall, {max(r['cpu'] for r in rows):.1f} s CPU "
               f"(reference code 84 s)")
        rows = s_curve_bridge_matching(2)
        _print_rows("bridge matching, sigma^2 = 2T", rows, fl_sw, fl_mmd)
        target("dsb s-curve: bridge matching on the same horizon, SW2 <= 1.0 after two "
               "iterations", rows[-1]["sw2"] <= 1.0,
               f"SW2 {rows[-1]['sw2']:.3f} = {rows[-1]['sw2'] / fl_sw.mean:.2f}x the floor, "
               f"slowest {max(r['wall'] for r in rows):.1f} s wall")
        rows = s_curve_run(good.pop("n_ipf"), **good)
        _print_rows("gammas(20, 0.01, 0.5)", rows, fl_sw, fl_mmd)
        exact = dsb_problems.exact_ipf_sw2(len(rows), gammas(20, 0.01, good["gamma_max"]))
        _line("exact IPF on gammas(20, 0.01, 0.5): SW2 " + ", ".join(f"{v:.3f}" for v in exact))
        last = rows[-1]["sw2"]
        target("dsb s-curve: SW2 <= 2x the floor with settings of our choosing",
               last <= 2 * fl_sw.mean, f"SW2 {last:.3f} = {last / fl_sw.mean:.2f}x the floor "
               f"after {len(rows)} iterations ({S_CURVE_GOOD_FIT})")

    return Case(
        name="dsb: s-curve, the reference code's 2-D problem",
        baseline=lambda: None,
        candidate=_one_thread(candidate),
        target=0.0,
        check=_one_thread(check),
        repeats=1,
    )


# --------------------------------------------------------------------------------------------
# Gaussian -> Gaussian in d = 20: cross-covariance against the closed form
# --------------------------------------------------------------------------------------------
def _gaussian_problem(d=20, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    cov1 = (q * np.linspace(0.5, 2.0, d)) @ q.T
    m0, m1 = -0.1 * np.ones(d), 0.1 * np.ones(d)
    chol = np.linalg.cholesky(cov1)

    def s0(n, rng):
        return m0 + rng.standard_normal((n, d))

    def s1(n, rng):
        return m1 + rng.standard_normal((n, d)) @ chol.T

    return m0, np.eye(d), m1, cov1, s0, s1


def _simulate_chain(chain, x, gamma, rng, backward=False):
    """Run a linear-Gaussian chain of ``dsb_problems.gaussian_dsb_ipf`` on the points ``x``:
    forward ``X_{k+1} = A_k X_k + b_k + sqrt(2 gamma) Z`` from time 0, or backward
    ``X_k = P_k X_{k+1} + q_k + ...`` from time N. Returns the path, shape (N + 1, m, d)."""
    xs, order = [x], range(len(chain) - 1, -1, -1) if backward else range(len(chain))
    for k in order:
        m, v = chain[k]
        x = x @ m.T + v + np.sqrt(2 * gamma[k]) * rng.standard_normal(x.shape)
        xs.append(x)
    return np.stack(xs[::-1] if backward else xs)


def gaussian_exact_errors(m0, c0, m1, c1, gamma, n_ipf, x_data, x_prior, c_exact, seed=0):
    """Exact IPF at DSB's discretisation (``dsb_problems.gaussian_dsb_ipf``) on the d = 20
    problem: per iteration, the relative cross-covariance errors (forward, backward) of the
    closed form, and of its chains simulated from the same points as the learned ones (the
    error as DSB's is measured, sampling noise included)."""
    norm = np.linalg.norm(c_exact)
    g = np.full(20, gamma) if np.ndim(gamma) == 0 else np.asarray(gamma)
    rng = np.random.default_rng(seed)
    exact, measured = [], []
    for r in dsb_problems.gaussian_dsb_ipf(m0, c0, m1, c1, g, n_steps=len(g), n_ipf=n_ipf):
        exact.append(tuple(np.linalg.norm(r[k] - c_exact) / norm
                           for k in ("cross_forward", "cross_backward")))
        fwd = _simulate_chain(r["forward"], x_data, g, rng)
        back = _simulate_chain(r["backward"], x_prior, g, rng, backward=True)
        measured.append(tuple(np.linalg.norm(coupling(t).cross_cov - c_exact) / norm
                              for t in (fwd, back)))
    return exact, measured


@benchmark
def dsb_gaussian_d20():
    d, sigma, n = 20, 1.0, 20_000
    n_ipf = 6
    cfg = dict(n_train=5000, lr=1e-4) if FULL else dict(n_train=500, lr=1e-3)
    m0, c0, m1, c1, s0, s1 = _gaussian_problem(d)
    exact = bridge.gaussian_bridge(m0, c0, m1, c1, sigma)
    c_exact = exact.cross_cov
    norm = np.linalg.norm(c_exact)
    x_data, x_prior = s0(n, np.random.default_rng(1)), s1(n, np.random.default_rng(2))
    curves = {}

    def err(c):
        return np.linalg.norm(c - c_exact) / norm

    def run(cls):
        if cls is DSB:
            model = DSB(d, 20, sigma**2 / 2 / 20)
        else:
            model = BridgeMatching(d, sigma, n_steps=50)
        errs, secs = [], []
        for it in range(n_ipf):
            t0 = time.perf_counter()
            extra = dict(lr_min=cfg["lr"] / 10) if cls is DSB else {}
            model.fit(s0, s1, n_ipf=1, batch_size=512, seed=it, progress=False, **cfg, **extra)
            secs.append(time.perf_counter() - t0)
            if cls is DSB:
                fwd, back = model.sample_forward(x_data), model.sample_backward(x_prior)
            else:
                fwd, back = model.sample(x_data, "forward"), model.sample(x_prior, "backward")
            errs.append((err(coupling(fwd).cross_cov), err(coupling(back).cross_cov)))
        curves[cls.__name__] = (errs, secs)
        return errs

    def check(_, __):
        joint = np.random.default_rng(3).multivariate_normal(exact.joint_mean(),
                                                             exact.joint_cov(), n)
        floor = err(coupling(np.stack([joint[:, :d], joint[:, d:]])).cross_cov)
        _line(f"N(-0.1, I) -> N(0.1, S), d = {d}, sigma = {sigma:g} (DSB: 20 steps, gamma "
              f"{sigma**2 / 40:g}); {cfg['n_train']} Adam steps per half-step, lr {cfg['lr']:g}, "
              f"batch 512; errors on {n} paths")
        _line(f"relative error ||C - C_exact||_F / ||C_exact||_F of exact draws (the floor): "
              f"{floor:.3f}; ||C_exact||_F = {norm:.3f}, independent coupling error 1")
        ok = True
        for name, (errs, secs) in curves.items():
            for it, ((ef, eb), s) in enumerate(zip(errs, secs, strict=True)):
                _line(f"{name:14s} iteration {it}: {s:.1f} s, error forward {ef:.3f}, "
                      f"backward {eb:.3f}")
            last, tol = max(errs[-1]), (0.35 if name == "DSB" else 0.15)
            ok_m = last <= tol
            ok &= ok_m
            _line(f"{name}: last iteration max error {last:.3f} (target <= {tol:g}) "
                  f"{_verdict(ok_m)}")
        dsb_last = max(curves["DSB"][0][-1])
        target(f"dsb d20: DSB error <= 0.10 after {n_ipf} IPF iterations (cache 10,000 / 100, "
               f"lr decay to lr/10)", dsb_last <= 0.10, f"error {dsb_last:.3f}, floor {floor:.3f}")
        ex, ex_meas = gaussian_exact_errors(m0, c0, m1, c1, sigma**2 / 2 / 20, n_ipf, x_data,
                                            x_prior, c_exact)
        for it, ((ef, eb), (mf, mb)) in enumerate(zip(ex, ex_meas, strict=True)):
            _line(f"exact IPF, same discretisation, iteration {it}: error forward {ef:.3f}, "
                  f"backward {eb:.3f} (closed form); simulated on the same {n} paths "
                  f"{mf:.3f}, {mb:.3f}")
        ex_last = max(ex_meas[-1])
        target(f"dsb d20: DSB error within 2x of exact IPF's at the same discretisation after "
               f"{n_ipf} iterations (both measured on {n} paths)", dsb_last <= 2 * ex_last,
               f"DSB {dsb_last:.3f}, exact IPF {ex_last:.3f} (closed form {max(ex[-1]):.3f}), "
               f"ratio {dsb_last / ex_last:.2f}")
        assert ok, "a Gaussian d = 20 bridge misses its cross-covariance target"

    return Case(
        name="dsb: Gaussian d=20 cross-cov (DSB vs bridge matching)",
        baseline=_one_thread(lambda: run(DSB)),
        candidate=_one_thread(lambda: run(BridgeMatching)),
        target=0.0,
        check=check,
        repeats=1,
    )
