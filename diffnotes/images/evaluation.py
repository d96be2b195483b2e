r"""Scoring a trained image network at scale: one function for one (sampler, steps) point.

:func:`score_point` draws ``n`` images with a sampler and reports what Chapter 5 reads off
them, by the book's protocol (:func:`~diffnotes.images.metrics.quality`): classifier-FID and
KID against held-out sets of the same ``n``, beside the floor between two disjoint held-out
sets; the fraction of pixels at level 0 (real MNIST backgrounds are black); the classifier's
predictive and marginal label entropies and class coverage
(:func:`~diffnotes.images.metrics.label_stats`); the nearest-neighbour memorisation ratio; the
number of network evaluations and the wall time.

:data:`MNIST_MEASURED` records one run of :func:`score_point` over the two shipped MNIST
networks (``mnist8k``: the noise loss; ``mnist8k-cond``: the velocity loss, class-conditional,
sampled here without a label) at ``n = 1000``, on the CPU that builds the book. Drawing 1000
MNIST images takes one CPU thread 7-30 minutes per point, so the chapter prints the record;
``benchmarks/bench_images.py`` (case ``images_mnist_networks``) measures it again.
"""

from __future__ import annotations

import numpy as np

from . import metrics
from .config import TrainConfig
from .sampling import sample
from .training import dataset, to_unit

__all__ = ["MNIST_MEASURED", "MNIST_POINTS", "score_point"]

MNIST_POINTS = (("heun", 9), ("heun", 25), ("ehrenfest", 50), ("ehrenfest", 200), ("em", 200))
"""The (sampler, steps) points of :data:`MNIST_MEASURED`: 19, 51, 51, 201 and 200 evaluations
(with the last denoising step, 201)."""


def score_point(model, config: TrainConfig, sampler: str, n_steps: int, *, n: int = 1000,
                seed: int = 0, classifier=None, n_draws: int = 5, batch_size: int = 250
                ) -> dict:
    """Draw ``n`` images of ``model`` with ``sampler`` at ``n_steps`` and score them (see the
    module docstring) against ``n`` of the held-out images of ``config.dataset`` (which needs
    ``2 n`` of them). ``classifier`` defaults to the one shipped for the data set
    (:func:`~diffnotes.images.classifier.pretrained_classifier`; the digits have none: pass
    one). Returns a dict of plain floats: ``"nfe"``, ``"seconds"``, ``"fd"``, ``"kid"``,
    ``"floor_fd"``, ``"floor_kid"`` (each ``(mean, spread)`` over ``n_draws``), ``"zero"``,
    ``"zero_real"``, ``"entropy"``, ``"marginal_entropy"``, ``"coverage"``, ``"nn_ratio"``.
    """
    x_tr, _, _ = dataset(config.dataset, "train")
    x_ev, _, _ = dataset(config.dataset, "eval")
    if x_ev.shape[0] < 2 * n:
        raise ValueError(f"n must be at most {x_ev.shape[0] // 2} (half the {x_ev.shape[0]} "
                         f"held-out images of {config.dataset}), got {n}")
    clf = classifier if classifier is not None else metrics.pretrained_classifier(
        config.dataset)
    run = sample(model, config, n, sampler=sampler, n_steps=n_steps, seed=seed,
                 batch_size=batch_size)
    x = to_unit(run.pixels, config.levels)
    q = metrics.quality(clf, x, x_ev, n, n_draws=n_draws, rng=0)
    stats = metrics.label_stats(clf, x)
    real_pixels = np.round((x_ev[:n].numpy() + 1) / 2 * config.levels)
    return {
        "nfe": run.nfe, "seconds": round(run.seconds, 1),
        "fd": (q.fd.mean, q.fd.std), "kid": (q.kid.mean, q.kid.std),
        "floor_fd": (q.floor_fd.mean, q.floor_fd.std),
        "floor_kid": (q.floor_kid.mean, q.floor_kid.std),
        "zero": float(np.mean(run.pixels == 0)), "zero_real": float(np.mean(real_pixels == 0)),
        "entropy": float(stats["entropy"]), "marginal_entropy": float(stats["marginal_entropy"]),
        "coverage": float(stats["coverage"]),
        "nn_ratio": float(metrics.memorisation(x, x_tr, x_ev[:n]).ratio),
    }


MNIST_MEASURED: dict = {}
"""``(network, sampler, steps) -> score_point(...)`` at ``n = 1000``, ``seed = 0`` (rounded),
measured with one CPU thread per point on the 2-core machine that builds the book."""
