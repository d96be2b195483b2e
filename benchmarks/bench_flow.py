"""Benchmark for :mod:`diffnotes.flow` and :mod:`diffnotes.flow_train`: how long does flow
matching train, and how many velocity evaluations does its sampler need, before 2000 samples
of the two-moons mixture (:func:`~diffnotes.mixtures.moons_mixture`, the mixture of
``bench_score``) are at the sliced-W2 noise floor?

The quality criterion, for both recipes: the mean SW2 of two sets of 2000 samples to two sets
of 2000 fresh draws of the mixture is <= 1.2x the noise floor (the mean SW2 between two
independent sets of 2000 draws, over 5 pairs, in the same run). Every training runs on one
torch thread; evaluation time is not counted as training time.

- **Candidate (ours)**: :class:`~diffnotes.score.ScoreMLP` (defaults) trained by
  :func:`diffnotes.flow_train.train` (the defaults of :func:`diffnotes.score.train`: Adam at
  2e-2 with cosine decay, batch 256, gradient clipping, EMA) on the linear path, for a ladder of
  training lengths; each run is sampled by the midpoint rule, Heun and Euler at a ladder of NFE
  up to 20, and the first run with a sampler at the criterion gives the training time and the
  NFE. Targets: <= 10 s of training, <= 20 NFE.
- **Baseline**: the 2-D recipe of the flow-matching library (Lipman et al.), re-implemented
  here: a 4-hidden-layer MLP of width 512 with Swish (SiLU) activations on ``(x, t)``, Adam at
  1e-3 (constant), batch 512, t ~ U(0, 1), no EMA, sampled by the midpoint
  rule at step 0.05 (20 steps, 40 NFE); evaluated every 500 steps until it reaches the criterion
  (or 240 s of training).

Run it alone with ``python -m benchmarks flow_matching`` (or ``bench_flow``): the word ``flow``
also selects ``bench_sde``'s ``probability_flow_vs_euler_maruyama``.

The harness row times the two procedures end to end (evaluations included; information only,
target 0); the detail lines and the targets carry the numbers that count.
"""

import time

import numpy as np
import torch
from torch import nn

from diffnotes import flow, flow_train
from diffnotes.metrics import noise_floor, sliced_wasserstein2
from diffnotes.mixtures import moons_mixture
from diffnotes.score import ScoreMLP

from .harness import Case, benchmark, target
from .harness import one_thread as _one_thread

N, FACTOR = 2000, 1.2
LADDER = (500, 1000, 1500, 2000, 3000)                      # training steps tried, in order
SAMPLERS = [("midpoint", n) for n in (2, 3, 4, 5, 6, 8, 10)] + \
           [("heun", n) for n in (5, 8, 10)] + [("euler", n) for n in (10, 20)]
MAX_TRAIN_NFE, MAX_TRAIN_S = 20, 10.0
BASE_EVERY, BASE_MAX_S = 500, 240.0


def _line(text):
    print(f"  | {text}")


class _LibraryMLP(nn.Module):
    """The flow-matching library's 2-D MLP: (x, t) -> 4 x [Linear(512), Swish] -> Linear(2)."""

    def __init__(self, dim=2, hidden=512, seed=0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers, width = [], dim + 1
            for _ in range(4):
                layers += [nn.Linear(width, hidden), nn.SiLU()]
                width = hidden
            self.net = nn.Sequential(*layers, nn.Linear(hidden, dim))
        self.dim = dim

    def forward(self, x, t):
        return self.net(torch.cat([x, t.reshape(-1, 1).expand(x.shape[0], 1)], dim=1))


class _Quality:
    """The criterion: mean SW2 of 2 sample sets to 2 target sets, over the noise floor."""

    def __init__(self):
        self.gm = moons_mixture()
        self.path = flow.LinearPath()
        self.floor = noise_floor(sliced_wasserstein2, self.gm.sample, N, 7, n_repeats=5)
        self.targets = [self.gm.sample(N, 123 + i) for i in range(2)]
        self.starts = [self.path.prior_sample(N, 2, 5 + i) for i in range(2)]

    def ratio(self, velocity, method, n_steps):
        sw = [sliced_wasserstein2(flow.sample_ode(velocity, x0, n_steps=n_steps, method=method),
                                  y) for x0, y in zip(self.starts, self.targets, strict=True)]
        return float(np.mean(sw)) / self.floor.mean


def _ours(q):
    """Train the ladder of lengths until a sampler with <= 20 NFE reaches the criterion."""
    runs = []
    for n_steps in LADDER:
        res = flow_train.train(ScoreMLP(), q.gm.sample, q.path, n_steps=n_steps,
                               progress=False)
        vel = flow_train.velocity_function(res.ema)
        table = sorted(((flow.nfe(m, n), m, n, q.ratio(vel, m, n)) for m, n in SAMPLERS))
        hit = next((row for row in table if row[3] <= FACTOR), None)
        runs.append((n_steps, res.seconds, table, hit))
        if hit is not None and hit[0] <= MAX_TRAIN_NFE:
            break
    return runs


def _baseline(q):
    """The library's recipe, evaluated every BASE_EVERY steps (evaluation not timed)."""
    model = _LibraryMLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    vel = flow_train.velocity_function(model)
    seconds, steps, history = 0.0, 0, []
    while seconds < BASE_MAX_S:
        model.train()
        t0 = time.perf_counter()
        for _ in range(BASE_EVERY):
            x1 = torch.from_numpy(q.gm.sample(512, rng).astype(np.float32))
            loss = flow_train.flow_matching_loss(model, x1, q.path, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds += time.perf_counter() - t0
        steps += BASE_EVERY
        model.eval()
        r = q.ratio(vel, "midpoint", 20)
        history.append((steps, seconds, r))
        if r <= FACTOR:
            break
    return history


@benchmark
def flow_matching_moons_vs_library_recipe():
    q = _Quality()
    state = {}

    def baseline():
        state["base"] = _baseline(q)
        return state["base"]

    def candidate():
        state["ours"] = _ours(q)
        return state["ours"]

    def check(base, ours):
        _line(f"noise floor, SW2 of two independent sets of {N} draws of moons_mixture(): "
              f"{q.floor}; criterion: mean SW2 of 2 sample sets <= {FACTOR}x its mean")
        ex = flow.velocity_function(q.gm, q.path)
        _line("exact velocity (information): " + ", ".join(
            f"{m} {flow.nfe(m, n)} NFE {q.ratio(ex, m, n):.2f}x"
            for m, n in (("euler", 20), ("heun", 5), ("midpoint", 3), ("midpoint", 5))))
        for n_steps, secs, table, _hit in ours:
            best = ", ".join(f"{m}/{nfe} NFE {r:.2f}x" for nfe, m, _, r in table
                             if m == "midpoint" or nfe in (9, 10, 15, 19, 20))
            _line(f"ours, ScoreMLP() + flow_train.train(n_steps={n_steps}): {secs:.1f} s; {best}")
        n_steps, secs, _, hit = ours[-1]
        reached = hit is not None and hit[0] <= MAX_TRAIN_NFE
        if reached:
            _line(f"ours: {FACTOR}x the floor after {n_steps} steps, {secs:.1f} s of training, "
                  f"{hit[1]} at {hit[0]} NFE ({hit[3]:.2f}x)")
        else:
            _line(f"ours: not at {FACTOR}x the floor with <= {MAX_TRAIN_NFE} NFE after the "
                  f"longest run ({n_steps} steps, {secs:.1f} s)")
        n_par = sum(p.numel() for p in _LibraryMLP().parameters())
        last = base[-1]
        _line(f"library recipe ({n_par} parameters, batch 512, Adam 1e-3, midpoint step 0.05 = "
              "40 NFE): " + ", ".join(f"{s} steps {sec:.0f} s {r:.2f}x" for s, sec, r in base))
        base_ok = last[2] <= FACTOR
        _line(f"library recipe: {'reached' if base_ok else 'NOT reached'} {FACTOR}x the floor "
              f"after {last[0]} steps, {last[1]:.1f} s of training (evaluated every "
              f"{BASE_EVERY} steps)"
              + (f"; ours is {last[1] / secs:.1f}x faster to train" if reached and base_ok
                 else ""))
        target("flow: ours at <= 1.2x the SW2 floor with <= 20 NFE", reached,
               f"{hit[3]:.2f}x at {hit[0]} NFE ({hit[1]})" if reached else "not reached")
        target("flow: ours' training time to the floor <= 10 s", reached and secs <= MAX_TRAIN_S,
               f"{secs:.1f} s ({n_steps} steps, one thread)")

    return Case(
        name="flow: time to the SW2 floor, ours vs the library's recipe",
        baseline=_one_thread(baseline),
        candidate=_one_thread(candidate),
        target=0.0,
        check=check,
        repeats=1,
    )
