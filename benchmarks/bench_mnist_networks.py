"""Benchmark: the two shipped MNIST networks by the book's protocol (issue 13, item 6;
:mod:`diffnotes.images.evaluation`).

``images_mnist_networks`` (needs the MNIST test split; skipped with a one-line reason
otherwise) scores ``pretrained("mnist8k")`` (the noise loss) and ``pretrained("mnist8k-cond")``
(the velocity loss, class-conditional with label dropout; each image of a label drawn from the
training labels, no guidance, and, for information, without a label) with
:func:`~diffnotes.images.evaluation.score_point` on one CPU thread: classifier-FID and KID of
``N`` samples against held-out sets of ``N`` beside the floor (five draws), the fraction of
pixels at level 0, the label entropies and coverage, the memorisation ratio. Quick mode:
``N = 256`` at Heun-25 and Ehrenfest-50 (about 15 minutes of one core); full mode
(``DIFFNOTES_BENCH_FULL=1``): ``N = 1000`` at every point of
:data:`~diffnotes.images.evaluation.MNIST_POINTS` (about 75 minutes of one core; minutes on
a GPU).
Targets: at each point the retrained network's FD is at most the old one's plus the spread
of their difference; in the full mode also its Heun-25 within 1.10x of its Euler-Maruyama-100.
The row times the old network's Heun-25 (baseline) against the new one's (candidate);
information. It prints the record (:data:`~diffnotes.images.evaluation.MNIST_MEASURED`)
beside each measured point.
"""


import numpy as np

from diffnotes import images
from diffnotes.images import evaluation

from .harness import FULL, Case, benchmark, require_mnist, target
from .harness import one_thread as _one_thread

NETWORKS = ("mnist8k", "mnist8k-cond", "mnist8k-cond, no label")
N = 1000 if FULL else 256
POINTS = evaluation.MNIST_POINTS if FULL else (("heun", 25), ("ehrenfest", 50))
_RUNS = {}


def _point(net, sampler, steps):
    if (net, sampler, steps) not in _RUNS:
        name, _, mode = net.partition(", ")
        model, config, _ = images.pretrained(name, device="cpu")
        labels = "data" if config.num_classes and not mode else None
        _RUNS[(net, sampler, steps)] = evaluation.score_point(model, config, sampler, steps,
                                                              n=N, seed=0, labels=labels)
    return _RUNS[(net, sampler, steps)]


def _line(net, sampler, steps, r, tag):
    print(f"  {tag:8s} {net:13s} {sampler:9s} {steps:4d} steps {r['nfe']:4d} NFE: FD "
          f"{r['fd'][0]:6.2f} +- {r['fd'][1]:.2f} (floor {r['floor_fd'][0]:.2f} +- "
          f"{r['floor_fd'][1]:.2f}), KID {r['kid'][0]:.2f} +- {r['kid'][1]:.2f} (floor "
          f"{r['floor_kid'][0]:.2f}); at 0: {r['zero']:.3f} (real {r['zero_real']:.3f}); "
          f"entropy {r['entropy']:.3f}, marginal {r['marginal_entropy']:.3f}, coverage "
          f"{r['coverage']:.1f}; NN {r['nn_ratio']:.2f}; {r['seconds']:.0f} s")


@benchmark
def images_mnist_networks():
    require_mnist()

    def check(_, __):
        for sampler, steps in POINTS:
            for net in NETWORKS:
                _line(net, sampler, steps, _point(net, sampler, steps), f"n = {N}")
                rec = evaluation.MNIST_MEASURED.get((net, sampler, steps))
                if rec is not None:
                    _line(net, sampler, steps, rec, "record")
            old, new = (_point(net, sampler, steps)["fd"] for net in NETWORKS[:2])
            bound = old[0] + float(np.hypot(old[1], new[1]))
            target(f"images: MNIST {sampler}-{steps}, mnist8k-cond FD <= mnist8k's + spread",
                   new[0] <= bound, f"n = {N}: {new[0]:.2f} against {old[0]:.2f} (bound "
                   f"{bound:.2f})")
        if FULL:
            heun, em = (_point(NETWORKS[1], *p)["fd"][0] for p in (("heun", 25), ("em", 100)))
            target("images: MNIST mnist8k-cond Heun-25 <= 1.10x EM-100", heun <= 1.10 * em,
                   f"n = {N}: {heun:.2f} against {em:.2f} ({heun / em:.2f}x)")

    return Case(
        name=f"images: MNIST networks mnist8k vs mnist8k-cond, Heun-25, n = {N}",
        baseline=_one_thread(lambda: _point(NETWORKS[0], "heun", 25)),
        candidate=_one_thread(lambda: _point(NETWORKS[1], "heun", 25)),
        target=0.0,
        check=_one_thread(check),
        repeats=1,
    )
