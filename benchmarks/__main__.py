"""``python -m benchmarks [NAME ...]``: run the benchmarks (optionally those whose function or
module name contains one of the given words, e.g. ``ctmc`` or ``dsb_two_moons``), print each as
a ratio against its baseline, then a summary of every target (PASS, FAIL, SKIP). The exit
status is 1 when any target failed (a selection that matches nothing included)."""

import sys

from . import (  # noqa: F401  (register their benchmarks)
    bench_ctmc,
    bench_discrete,
    bench_dsb,
    bench_ehrenfest,
    bench_flow,
    bench_images,
    bench_mnist_networks,
    bench_recipe,
    bench_score,
    bench_sde,
)
from .harness import run

if __name__ == "__main__":
    sys.exit(1 if run(sys.argv[1:]) else 0)
