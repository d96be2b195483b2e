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
MNIST images takes one CPU thread 10-15 minutes per point, so the chapter prints the record;
``benchmarks/bench_images.py`` (case ``images_mnist_networks``) measures it again.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import positive_int
from . import metrics
from .config import TrainConfig
from .guidance import guided
from .sampling import sample, to_pixels
from .training import dataset, to_unit

__all__ = ["MNIST_MEASURED", "MNIST_POINTS", "score_point"]

MNIST_POINTS = (("heun", 25), ("ehrenfest", 50), ("em", 100))
"""The (sampler, steps) points of :data:`MNIST_MEASURED`: Heun at 25 steps and the Ehrenfest
sampler at 50 (51 evaluations each, with the last denoising step), Euler-Maruyama at 100
(101). 1000 images at Euler-Maruyama's 1000 steps would take one CPU thread about four hours
per network; the GPU is one argument away (``device="cuda"``)."""


def score_point(model, config: TrainConfig, sampler: str, n_steps: int, *, n: int = 1000,
                seed: int = 0, classifier=None, n_draws: int = 5, batch_size: int = 250,
                labels: str | None = None) -> dict:
    """Draw ``n`` images of ``model`` with ``sampler`` at ``n_steps`` and score them (see the
    module docstring) against ``n`` of the held-out images of ``config.dataset`` (which needs
    ``2 n`` of them). ``classifier`` defaults to the one shipped for the data set
    (:func:`~diffnotes.images.classifier.pretrained_classifier`; the digits have none: pass
    one). ``labels`` (class-conditional networks only): ``None`` samples the network without
    a label (its unconditional model); ``"data"`` draws ``n`` labels at random from the
    training labels (generator seeded by ``seed``) and samples each image of its class,
    without guidance: the conditional model mixed over the data's class frequencies, a model
    of the same law. Returns a dict of plain floats: ``"nfe"``, ``"seconds"``, ``"fd"``,
    ``"kid"``, ``"floor_fd"``, ``"floor_kid"`` (each ``(mean, spread)`` over ``n_draws``),
    ``"zero"``, ``"zero_real"``, ``"entropy"``, ``"marginal_entropy"``, ``"coverage"``,
    ``"nn_ratio"``.
    """
    n = positive_int(n, "n", minimum=2)
    if labels not in (None, "data"):
        raise ValueError(f"labels must be None or 'data', got {labels!r}")
    if labels == "data" and getattr(model, "num_classes", 0) < 1:
        raise ValueError("labels='data' needs a class-conditional network (num_classes > 0)")
    x_tr, y_tr, _ = dataset(config.dataset, "train")
    x_ev, _, _ = dataset(config.dataset, "eval")
    if x_ev.shape[0] < 2 * n:
        raise ValueError(f"n must be at most {x_ev.shape[0] // 2} (half the {x_ev.shape[0]} "
                         f"held-out images of {config.dataset}), got {n}")
    clf = classifier if classifier is not None else metrics.pretrained_classifier(
        config.dataset)
    if labels == "data":
        gen = torch.Generator().manual_seed(seed)
        drawn = torch.as_tensor(y_tr)[torch.randint(len(y_tr), (n,), generator=gen)]
        model, batch_size = guided(model, drawn, 0.0), n
    run = sample(model, config, n, sampler=sampler, n_steps=n_steps, seed=seed,
                 batch_size=batch_size)
    x = to_unit(run.pixels, config.levels)
    q = metrics.quality(clf, x, x_ev, n, n_draws=n_draws, rng=0)
    stats = metrics.label_stats(clf, x)
    real_pixels = to_pixels(x_ev[:n], config.levels)[0]
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


MNIST_MEASURED = {
    ("mnist8k", "heun", 25): {
        "nfe": 51, "seconds": 938.6, "fd": (1.1027, 0.1117), "kid": (0.1734, 0.0784),
        "floor_fd": (0.3428, 0.1467), "floor_kid": (-0.0411, 0.0977), "zero": 0.5279,
        "zero_real": 0.7906, "entropy": 0.3857, "marginal_entropy": 2.2949, "coverage": 1.0,
        "nn_ratio": 1.1706,
    },
    ("mnist8k", "ehrenfest", 50): {
        "nfe": 51, "seconds": 623.1, "fd": (2.0971, 0.1158), "kid": (0.8045, 0.0926),
        "floor_fd": (0.3428, 0.1467), "floor_kid": (-0.0411, 0.0977), "zero": 0.4022,
        "zero_real": 0.7906, "entropy": 0.3852, "marginal_entropy": 2.291, "coverage": 1.0,
        "nn_ratio": 1.1136,
    },
    ("mnist8k", "em", 100): {
        "nfe": 101, "seconds": 827.2, "fd": (1.072, 0.0715), "kid": (0.2184, 0.0466),
        "floor_fd": (0.3428, 0.1467), "floor_kid": (-0.0411, 0.0977), "zero": 0.4307,
        "zero_real": 0.7906, "entropy": 0.3652, "marginal_entropy": 2.2945, "coverage": 1.0,
        "nn_ratio": 1.1092,
    },
    ("mnist8k-cond", "heun", 25): {
        "nfe": 51, "seconds": 485.9, "fd": (0.7612, 0.1275), "kid": (0.1243, 0.0903),
        "floor_fd": (0.3428, 0.1467), "floor_kid": (-0.0411, 0.0977), "zero": 0.4712,
        "zero_real": 0.7906, "entropy": 0.2056, "marginal_entropy": 2.2979, "coverage": 1.0,
        "nn_ratio": 1.1009,
    },
    ("mnist8k-cond", "ehrenfest", 50): {
        "nfe": 51, "seconds": 500.0, "fd": (0.7602, 0.1115), "kid": (0.143, 0.0723),
        "floor_fd": (0.3428, 0.1467), "floor_kid": (-0.0411, 0.0977), "zero": 0.2403,
        "zero_real": 0.7906, "entropy": 0.1447, "marginal_entropy": 2.2963, "coverage": 1.0,
        "nn_ratio": 1.0242,
    },
    ("mnist8k-cond", "em", 100): {
        "nfe": 101, "seconds": 997.5, "fd": (0.6043, 0.071), "kid": (0.045, 0.0474),
        "floor_fd": (0.3428, 0.1467), "floor_kid": (-0.0411, 0.0977), "zero": 0.5115,
        "zero_real": 0.7906, "entropy": 0.1791, "marginal_entropy": 2.2966, "coverage": 1.0,
        "nn_ratio": 1.0544,
    },
    ("mnist8k-cond, no label", "heun", 25): {
        "nfe": 51, "seconds": 384.2, "fd": (3.2861, 0.1381), "kid": (0.6944, 0.0714),
        "floor_fd": (0.3428, 0.1467), "floor_kid": (-0.0411, 0.0977), "zero": 0.4618,
        "zero_real": 0.7906, "entropy": 0.5371, "marginal_entropy": 2.2672, "coverage": 1.0,
        "nn_ratio": 1.2292,
    },
    ("mnist8k-cond, no label", "ehrenfest", 50): {
        "nfe": 51, "seconds": 389.0, "fd": (3.1772, 0.0635), "kid": (0.6542, 0.0436),
        "floor_fd": (0.3428, 0.1467), "floor_kid": (-0.0411, 0.0977), "zero": 0.2519,
        "zero_real": 0.7906, "entropy": 0.5131, "marginal_entropy": 2.2682, "coverage": 1.0,
        "nn_ratio": 1.1378,
    },
}
"""``(network, sampler, steps) -> score_point(...)`` at ``n = 1000``, ``seed = 0`` (rounded),
measured with one CPU thread per point on the 2-core machine that builds the book (two points
at a time), 2026-12-02. ``"mnist8k-cond"``: ``labels="data"``; ``"mnist8k-cond, no label"``:
``labels=None``. ``"seconds"`` is the sampling time alone."""
