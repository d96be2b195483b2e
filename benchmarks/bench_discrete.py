r"""Benchmark of :mod:`diffnotes.discrete_images`: the masked and the uniform chain on the 8x8
digits (Chapter 6), quality and speed beside the Ehrenfest sampler of Chapter 5.

One case, ``discrete: digits samplers``, quick by default (``DIFFNOTES_BENCH_FULL=1``: 1000
samples per sampler instead of 300). The networks are the shipped ones: ``pretrained("masked")``
and ``pretrained("uniform")`` of :mod:`diffnotes.discrete_images`, and for Ehrenfest the score
network ``images.pretrained("digits-score")`` (the ``digits`` preset of Chapter 5, trained
for 3000 steps like the discrete ones); a missing
file is an error, with no fallback. Everything runs on the CPU with one torch thread.

* Samplers, at equal network evaluations (NFE, the decoder step included): the masked chain's
  unmasking sampler (:func:`~diffnotes.discrete.sample_unmask`, ``NFE - 1`` steps) at
  10, 25, 100 and 200 NFE; tau-leaping (:func:`~diffnotes.discrete.sample_tau`) of the masked
  chain at 100 NFE and of the uniform chain at 25, 100 and 200 NFE; Ehrenfest
  (:func:`diffnotes.images.sample` with its default step, ``NFE - 1`` steps and the denoising
  step) at 10, 25, 100 and 200 NFE. All three networks were trained for 3000 steps of 64.
* Quality: the protocol of :mod:`benchmarks.bench_images` (:func:`diffnotes.images.metrics.quality`
  at ``n = 150`` against the 300 held-out digits, ``N_DRAWS = 6`` paired draws, classifier
  trained on the training split only): FD as a multiple of its floor (the distance between
  two disjoint held-out sets), with the standard deviation of the per-draw ratios, KID, the
  memorisation ratio; speed as images/s; tau-leaping's rejected multi-moves.
* Targets (recorded; a miss is a FAIL): masked unmasking at 100 NFE within
  :data:`MASKED_BOUND` x the floor; uniform tau-leaping at 100 NFE within :data:`UNIFORM_BOUND`
  x the floor; the row's speed ratio, Ehrenfest-100's time over masked unmasking-100's on the
  same 300 (1000) images, at least :data:`SPEED_BOUND` (the same network cost per evaluation;
  the unmasking sampler adds only a categorical draw). The per-draw spread is the held-out
  side's noise (quick mode reuses the same 300 samples in every draw): a ratio within about
  twice it of a bound is not resolved by one run.

Measured (quick mode, on the 2-core build machine under load, 22:55 UTC 2026-12-01): floor FD
8.97 +- 2.64; masked unmasking 1.25, 1.39, 0.97, 0.89 x floor at 10, 25, 100, 200 NFE (per-draw
spread 0.23-0.33), masked tau-leaping 0.94 at 100; uniform tau-leaping 1.66, 1.05, 1.13 at 25,
100, 200; Ehrenfest 1.56, 0.92, 1.06, 0.85 at 10, 25, 100, 200. Between 10 and 100 NFE the
three rank differently from one run (or sample size) to the next; at 10 NFE masked unmasking
leads. Speed at 100 NFE (23:17 UTC, after the closed-form reverse rates of
:mod:`diffnotes.discrete`): 31.0 images/s (masked unmasking), 29.6 (Ehrenfest), 31.9 and 31.2
(masked and uniform tau-leaping; 8.6 for the uniform chain before), ratio 1.1x: the network's
evaluations are the cost of every sampler.
"""

import time

import numpy as np

from diffnotes import discrete_images as DI
from diffnotes import images
from diffnotes.images import metrics
from diffnotes.images.training import to_unit

from .harness import FULL, Case, benchmark, target
from .harness import one_thread as _one_thread

SEED = 1
N_SET = 150                          # the protocol's n (the 300 held out = 2 n)
N_SAMPLES = 1000 if FULL else 2 * N_SET
N_DRAWS = 6
RUNS = [("masked", "unmask", k) for k in (10, 25, 100, 200)] + [("masked", "tau", 100)] + \
    [("uniform", "tau", k) for k in (25, 100, 200)] + \
    [("ehrenfest", "ehrenfest", k) for k in (10, 25, 100, 200)]
MASKED_BOUND = 1.5                   # masked unmasking, 100 NFE: FD <= this x floor
UNIFORM_BOUND = 1.5                  # uniform tau-leaping, 100 NFE
SPEED_BOUND = 0.5                    # Ehrenfest-100 time / masked unmasking-100 time

_CACHE: dict = {}


def _line(text):
    print(f"  | {text} [cpu x1]")


def _nets():
    if not _CACHE:
        try:
            for kind in DI.KINDS:
                _CACHE[kind] = DI.pretrained(kind)
            _CACHE["ehrenfest"] = images.pretrained("digits-score", device="cpu")
        except (ValueError, FileNotFoundError) as err:
            raise RuntimeError(f"discrete: a shipped digits network is missing ({err})") \
                from err
    return _CACHE


def _draw(chain, sampler, nfe):
    """``(pixels, seconds, rejected)`` of ``N_SAMPLES`` images at ``nfe`` evaluations."""
    nets = _nets()
    if chain == "ehrenfest":
        model, config, _ = nets["ehrenfest"]
        out = images.sample(model, config, N_SAMPLES, sampler="ehrenfest",
                            n_steps=nfe - 1, seed=SEED)   # + the denoising step
        assert out.nfe == nfe
        return out.pixels, out.seconds, 0
    model, config, _ = nets[chain]
    pixels, run = DI.sample(model, N_SAMPLES, nfe - 1, sampler=sampler, config=config,
                            seed=SEED)
    assert run.n_evals == nfe
    return pixels, run.seconds, run.n_rejected


@benchmark
def discrete_digits_samplers():
    def check(ehr, masked):
        x_tr, y_tr, _ = images.dataset("digits", "train")
        x_ev, y_ev, _ = images.dataset("digits", "eval")
        t0 = time.perf_counter()
        clf = metrics.train_classifier(x_tr, y_tr, seed=0, device="cpu")
        _line(f"classifier: trained on the {x_tr.shape[0]} training digits in "
              f"{time.perf_counter() - t0:.1f} s, accuracy on the {x_ev.shape[0]} held-out "
              f"digits {metrics.accuracy(clf, x_ev, y_ev):.4f}")
        for name in ("masked", "uniform"):
            _, cfg, info = _nets()[name]
            _line(f"pretrained({name!r}): {cfg.steps} steps of {cfg.batch_size}, final loss "
                  f"{info['losses'][-100:].mean():.1f} nats/image, trained in "
                  f"{info['seconds']:.0f} s")
        runs = {("ehrenfest", "ehrenfest", 100): ehr, ("masked", "unmask", 100): masked}
        for key in RUNS:
            if key not in runs:
                runs[key] = _draw(*key)
        _line(f"{N_SAMPLES} samples per sampler, scored at n = {N_SET} against the "
              f"{x_ev.shape[0]} held-out digits, {N_DRAWS} paired draws")
        scores = {}
        for key, (pixels, seconds, rejected) in runs.items():
            x = to_unit(pixels, 16)
            q = metrics.quality(clf, x, x_ev, N_SET, n_draws=N_DRAWS, rng=0)
            r = np.array(q.fd.values) / np.array(q.floor_fd.values)
            scores[key] = (q.fd.mean / q.floor_fd.mean, float(r.std(ddof=1)))
            nn = metrics.memorisation(x, x_tr, x_ev[:N_SET])
            chain, sampler, nfe = key
            extra = (f", multi-moves rejected {rejected / (N_SAMPLES * 64 * (nfe - 1)):.1e}"
                     if sampler == "tau" else "")
            _line(f"{chain:9s} {sampler:9s} {nfe:4d} NFE: FD {q.fd.mean:6.2f} +- "
                  f"{q.fd.std:.2f} = {scores[key][0]:5.2f} +- {scores[key][1]:.2f} x floor; "
                  f"KID {q.kid.mean:6.3f} +- {q.kid.std:.3f}; NN ratio {nn.ratio:.2f}; "
                  f"{seconds:6.1f} s ({N_SAMPLES / seconds:6.1f} images/s){extra}")
        fl = q.floor_fd
        _line(f"floor (two disjoint held-out sets of {N_SET}): FD {fl.mean:.2f} +- "
              f"{fl.std:.2f}")
        for key, bound in ((("masked", "unmask", 100), MASKED_BOUND),
                           (("uniform", "tau", 100), UNIFORM_BOUND)):
            r, sd = scores[key]
            ok = r <= bound
            detail = (f"{key[0]} {key[1]} {key[2]} NFE: FD = {r:.2f} +- {sd:.2f} x floor "
                      f"(target <= {bound:g}x)")
            _line(f"{detail} {'PASS' if ok else 'FAIL'}")
            target(f"discrete: {key[0]} {key[1]}-{key[2]} <= {bound:g}x floor", ok, detail)

    return Case(
        name="discrete: digits, Ehrenfest-100 vs masked unmasking-100",
        baseline=_one_thread(lambda: _draw("ehrenfest", "ehrenfest", 100)),
        candidate=_one_thread(lambda: _draw("masked", "unmask", 100)),
        target=SPEED_BOUND,
        check=_one_thread(check),
        repeats=1,
    )
