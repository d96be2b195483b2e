r"""Benchmarks for :mod:`diffnotes.sde`: the probability-flow ODE against reverse-time
Euler-Maruyama, both driven by the exact score of :func:`diffnotes.mixtures.moons_mixture`
under :class:`diffnotes.sde.VPSDE`, from the prior at ``T = 1`` down to ``t_min = 1e-3``.

The issue's target: *the probability-flow ODE reaches within 10% of the 1000-step
Euler-Maruyama quality with at most 100 function evaluations (report the NFE curve).*

What "within 10% of the EM quality" can mean
--------------------------------------------
Quality is the sliced Wasserstein-2 distance (128 fixed random directions) between a sampler's
points and the target law :math:`q_{t_{\min}}` (the moons mixture diffused to ``t_min``, known
exactly). With the exact score, neither sampler's own error is visible at any affordable sample
size: both distances sit at the *noise floor*, the distance of the same number of exact draws
of the target, and that floor fluctuates by about 30% from one sample to the next whatever the
sample size (the fluctuation is mostly how the points split between the 16 modes). One
comparison of two such numbers at the 10% level is therefore a coin toss. The benchmark

* measures against the exact target rather than against a second sample: each projected target
  is replaced by its ``n`` quantiles at :math:`(i - \tfrac12)/n` (a stratified, noise-free
  ``n``-point version of the law, computed once), which removes a reference sample's noise;
* runs every sampler once on the *same* ``R n = 128000`` prior draws (one batch: the samplers
  treat the points independently; the ODE shares its adaptive steps over the batch, and its
  NFE is that of the batch, the same as for a few thousand points) and splits the output into
  ``R = 64`` replicates of ``n = 2000`` points. A mean over replicates then has a standard
  error of about 4% (30% / sqrt(64)), and the ratio of two means about 6%; a few large
  replicates (say 8 x 16000) would resolve it to only ~15%, as the floor's relative spread does
  not shrink with ``n``;
* to afford 1000 Euler-Maruyama steps on 128000 points, evaluates the exact score with a
  closed form for mixtures of equal isotropic Gaussians (``_isotropic_score``: one softmax),
  checked against :meth:`~diffnotes.mixtures.GaussianMixture.score_function` to 1e-12 and
  about 7x faster; every sampler uses it, so the comparison is unchanged;
* reports every mean with its standard error, the floor measured the same way (``R`` sets of
  ``n`` exact draws), the ratio to EM-1000 with its standard error and, for information, the
  distance of the whole pooled batch with its floor: at ``128000`` points it resolves errors
  that the 10% criterion at ``n = 2000`` lets through.

The PASS/FAIL criterion is the literal one, on these means: mean SW2(ODE) <= 1.1 x mean
SW2(EM-1000) with NFE <= 100. Since EM-1000 sits at the floor, this says that the ODE's own
error adds less than 10% to the floor at ``n = 2000``, i.e. (squared distances add) that it is
below about :math:`\sqrt{1.1^2 - 1} \approx 0.46` times that floor (about 0.011 in the data's
units; the modes have standard deviation 0.12); a larger ``n`` would make the 10% stricter but
unresolvable at this cost. Controls show that the criterion can fail: the ODE at the loose
tolerances 3e-2 and 1e-2 (NFE 14 and 26), EM with 50 steps and PC with 25 steps miss it. A
noise-free complement: the pathwise (RMS) distance between the ODE's points and those of a
tightly converged ODE from the same draws, an upper bound on the ODE's own W2 error, compared
with the floor.

The harness's row times EM-1000 (baseline) against the ODE at ``rtol = atol = 1e-4``
(candidate, NFE 68), on the whole batch. That tolerance is the loosest on the curve whose
pathwise error is negligible against the floor (2% of it, against 30% at 1e-3 with NFE 50),
chosen from that noise-free measure rather than from the noisy quality ratio. The issue's NFE
budget (100 against 1000) is a 10x reduction of score evaluations, so the target speed-up is
10x.
"""

import time

import numpy as np
from scipy.special import ndtr

from diffnotes import sde
from diffnotes.mixtures import moons_mixture

from .harness import Case, benchmark
from .harness import timed as _timed

N, R, T_MIN = 2000, 64, 1e-3         # replicates of N points; one batch of R * N points
N_PROJ, N_PROJ_POOLED = 128, 32
EM_STEPS = 1000
ODE_TOL = 1e-4                      # the candidate's rtol = atol (see the module docstring)
CURVE_TOLS = (3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-5)
TIGHT_TOL = 1e-7
NFE_BUDGET, QUALITY_SLACK = 100, 1.1


def _line(text):
    print(f"  | {text}")


def _verdict(ok):
    return "PASS" if ok else "FAIL"


class StratifiedSW2:
    r"""Sliced W2 between clouds of ``n`` points and a Gaussian mixture ``gm``, each projected
    law replaced by its ``n`` quantiles at :math:`(i - \tfrac12)/n` (no reference sample, so
    no reference noise). Directions: ``n_proj`` fixed random unit vectors."""

    def __init__(self, gm, n, n_proj=N_PROJ, seed=0):
        theta = np.random.default_rng(seed).standard_normal((gm.dim, n_proj))
        self.theta = theta / np.linalg.norm(theta, axis=0)
        mu = gm.means @ self.theta                                          # (K, P)
        sd = np.sqrt(np.einsum("ip,kij,jp->kp", self.theta, gm.covs, self.theta))
        w = gm.weights
        u = (np.arange(n) + 0.5) / n
        self.q = np.empty((n, n_proj))
        for p in range(n_proj):
            m, s = mu[:, p], sd[:, p]
            grid = np.linspace((m - 9 * s).min(), (m + 9 * s).max(), 4001)
            q = np.interp(u, ndtr((grid[:, None] - m) / s) @ w, grid)
            for _ in range(4):                                  # Newton on F(q) = u
                z = (q[:, None] - m) / s
                pdf = (np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * s)) @ w
                q = q - (ndtr(z) @ w - u) / pdf
            self.q[:, p] = q
        self.n = n

    def __call__(self, x):
        """The distance of each consecutive group of ``n`` points of ``x`` (a batch of
        ``R n`` points gives ``R`` values)."""
        x = np.asarray(x, float).reshape(-1, self.n, self.theta.shape[0])
        proj = np.sort(x @ self.theta, axis=1)                              # (R, n, P)
        return np.sqrt(np.mean((proj - self.q) ** 2, axis=(1, 2)))


def _isotropic_score(gm, sde):
    """The exact score of ``gm`` diffused by ``sde`` when all its components share one
    isotropic covariance ``c I`` (as in ``moons_mixture``): with ``v = alpha^2 c + sigma^2``,
    the responsibilities are a softmax of ``(alpha mu_k . x - alpha^2 |mu_k|^2 / 2) / v +
    log w_k`` and the score is ``(alpha sum_k r_k mu_k - x) / v``."""
    c = gm.covs[0, 0, 0]
    assert np.allclose(gm.covs, c * np.eye(gm.dim)), "components must share one c I"
    mu, logw = gm.means, np.log(gm.weights)
    mu2 = np.sum(mu * mu, axis=1)

    def score(x, t):
        a, s = sde.alpha_sigma(float(t))
        v = a * a * c + s * s
        logits = (x @ (a * mu).T - 0.5 * a * a * mu2) / v + logw
        r = np.exp(logits - logits.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        return (a * (r @ mu) - x) / v

    return score


def _mean_se(v):
    v = np.asarray(v, float)
    return v.mean(), v.std(ddof=1) / np.sqrt(v.size)


def _ratio_se(a, b):
    """Ratio of the means of two independent sets of replicates and its (delta-method) SE."""
    (ma, sa), (mb, sb) = _mean_se(a), _mean_se(b)
    return ma / mb, ma / mb * np.hypot(sa / ma, sb / mb)


@benchmark
def probability_flow_vs_euler_maruyama():
    vp = sde.VPSDE()
    gm = moons_mixture()
    score = _isotropic_score(gm, vp)
    target = gm.at(T_MIN, vp)
    for t in (T_MIN, 0.01, 0.1, 0.5, 1.0):
        pts = gm.at(t, vp).sample(2000, 7)
        exact = gm.score(pts, t, vp)
        assert np.abs(score(pts, t) - exact).max() <= 1e-12 * np.abs(exact).max(), t
    prior = vp.prior_sample(R * N, 2, 1000)
    times = {}

    def em(n_steps):
        return sde.euler_maruyama(vp, score, prior, 2000, n_steps=n_steps, t_min=T_MIN)

    def pc(n_steps):
        return sde.predictor_corrector(vp, score, prior, 3000, n_steps=n_steps, t_min=T_MIN)

    def ode(tol):
        return sde.probability_flow(vp, score, prior, t_min=T_MIN, rtol=tol, atol=tol)

    def check(run_em, run_ode):
        t_all = time.perf_counter()
        sw2 = StratifiedSW2(target, N)
        sw2_pooled = StratifiedSW2(target, R * N, n_proj=N_PROJ_POOLED)
        floor_batch = target.sample(R * N, 4000)
        floor = sw2(floor_batch)
        f_mean, f_se = _mean_se(floor)
        f_pooled = [float(sw2_pooled(target.sample(R * N, 5000 + i))[0]) for i in range(4)]

        def report(label, x, nfe):
            q = sw2(x)
            m, se = _mean_se(q)
            ratio, r_se = _ratio_se(q, em_q)
            pooled = float(sw2_pooled(x)[0])
            _line(f"  {label:34s} NFE {nfe:5d}: {m:.4f} ± {se:.4f}, ratio {ratio:5.2f} "
                  f"± {r_se:.2f}; pooled {pooled:.4f}")
            return m, ratio

        _line(f"VPSDE, exact moons_mixture score, prior -> t_min = {T_MIN:g}, one batch of "
              f"{R * N} prior draws shared by all samplers")
        _line(f"quality = sliced W2 ({N_PROJ} directions) of each of R = {R} replicates of "
              f"n = {N} points to the stratified exact target: mean ± SE over replicates")
        _line(f"noise floor (n exact draws): {f_mean:.4f} ± {f_se:.4f} (spread of one replicate "
              f"{np.std(floor, ddof=1) / f_mean:.0%}); pooled {R * N} exact draws ({N_PROJ_POOLED} "
              f"directions): {np.mean(f_pooled):.4f} (4 draws: "
              f"{', '.join(f'{v:.4f}' for v in f_pooled)})")
        em_q = sw2(run_em.x)
        e_mean, e_se = _mean_se(em_q)
        _line(f"EM {EM_STEPS} steps (the baseline), {times['em']:.1f} s: {e_mean:.4f} ± "
              f"{e_se:.4f} = {e_mean / f_mean:.2f} x floor; pooled "
              f"{float(sw2_pooled(run_em.x)[0]):.4f}")
        _line(f"NFE curve of the ODE (RK45, rtol = atol = tol), ratio = mean / EM-{EM_STEPS} "
              f"mean ± SE; meets = NFE <= {NFE_BUDGET} and ratio <= {QUALITY_SLACK:g}:")
        curve = {}
        for tol in CURVE_TOLS:
            run = run_ode if tol == ODE_TOL else ode(tol)
            m, ratio = report(f"ODE tol {tol:.0e} ({run.seconds:5.2f} s)", run.x, run.nfe)
            curve[tol] = (run, m, ratio)
            ok = run.nfe <= NFE_BUDGET and ratio <= QUALITY_SLACK
            _line(f"    {'meets' if ok else 'misses'}"
                  f"{'  <- the candidate' if tol == ODE_TOL else ''}")
        _line("the stochastic samplers at a matching NFE:")
        for steps in (50, NFE_BUDGET):
            run = em(steps)
            report(f"EM {steps} steps ({run.seconds:5.2f} s)", run.x, run.nfe)
        for steps in (25, NFE_BUDGET // 2):
            run = pc(steps)
            report(f"PC {steps} steps + 1 corrector ({run.seconds:5.2f} s)", run.x, run.nfe)

        tight = ode(TIGHT_TOL)
        _line(f"pathwise error of the ODE against a converged one (tol {TIGHT_TOL:g}, NFE "
              f"{tight.nfe}) from the same draws: RMS over the batch (an upper bound on its "
              f"own W2 error, free of sampling noise), against the floor {f_mean:.4f}:")
        for tol, (run, _, _) in curve.items():
            rms = np.sqrt(np.mean(np.sum((run.x - tight.x) ** 2, axis=1)))
            _line(f"  tol {tol:.0e} (NFE {run.nfe:3d}): {rms:.2e} = {rms / f_mean:.3f} x floor")

        run, m, ratio = curve[ODE_TOL]
        ok_nfe = run.nfe <= NFE_BUDGET
        ok_q = ratio <= QUALITY_SLACK
        speed = times["em"] / times["ode"]
        _line(f"candidate ODE tol {ODE_TOL:g}: NFE {run.nfe} <= {NFE_BUDGET} {_verdict(ok_nfe)}; "
              f"quality {m:.4f} <= {QUALITY_SLACK:g} x EM-{EM_STEPS} {e_mean:.4f} = "
              f"{QUALITY_SLACK * e_mean:.4f} (ratio {ratio:.2f}) {_verdict(ok_q)}")
        _line(f"wall time on {R * N} points: EM-{EM_STEPS} {times['em']:.2f} s (one run), ODE "
              f"{times['ode']:.2f} s (best of 3): speed-up {speed:.1f}x (target >= 10x) "
              f"{_verdict(speed >= 10)}")
        _line(f"(the quality measurements took {time.perf_counter() - t_all:.0f} s)")
        assert ok_nfe and ok_q, (f"probability-flow ODE misses its target: NFE {run.nfe}, "
                                 f"quality ratio {ratio:.2f} to EM-{EM_STEPS}")

    return Case(
        name=f"sde: probability-flow ode tol {ODE_TOL:g} vs EM {EM_STEPS}, moons {R * N} pts",
        baseline=_timed(lambda: em(EM_STEPS), times, "em"),
        candidate=_timed(lambda: ode(ODE_TOL), times, "ode"),
        target=10.0,
        check=check,
        repeats=3,
    )
