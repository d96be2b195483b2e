"""``python -m benchmarks [NAME ...]``: run the benchmarks (optionally those whose name contains
one of the given words) and print each as a ratio against its baseline."""

import sys

from . import (  # noqa: F401  (register their benchmarks)
    bench_ctmc,
    bench_dsb,
    bench_ehrenfest,
    bench_images,
    bench_score,
    bench_sde,
)
from .harness import run

if __name__ == "__main__":
    misses = run(sys.argv[1:])
    print(f"{misses} benchmark(s) missed their target" if misses else "all targets met")
    sys.exit(1 if misses else 0)
