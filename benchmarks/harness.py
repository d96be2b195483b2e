"""A tiny benchmark harness: time a baseline and a candidate in the same process, print the ratio.

A benchmark is a function decorated with :func:`benchmark` that returns a :class:`Case`: two
zero-argument callables doing the same work (``baseline``, ``candidate``), a ``check`` that the
two results agree, and the ratio ``target`` the candidate should reach.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

REGISTRY: list[Callable[[], Case]] = []


@dataclass
class Case:
    name: str
    baseline: Callable[[], object]
    candidate: Callable[[], object]
    target: float
    check: Callable[[object, object], None] | None = None
    repeats: int = 3


def benchmark(fn):
    """Register a benchmark (a function returning a Case)."""
    REGISTRY.append(fn)
    return fn


def timed(fn, times: dict, key: str):
    """``fn`` wrapped so that its best wall time is kept in ``times[key]`` (for benchmarks that
    report the timings of their baseline and candidate in their own detail lines)."""
    def wrapped():
        t0 = time.perf_counter()
        out = fn()
        times[key] = min(times.get(key, float("inf")), time.perf_counter() - t0)
        return out
    return wrapped


def one_thread(fn):
    """``fn`` run with one torch thread (:func:`diffnotes.utils.torch_threads`): the small
    networks of the benchmarks gain nothing from more, and shared cores make more threads slow."""
    from diffnotes.utils import torch_threads

    def wrapped(*args):
        with torch_threads(1):
            return fn(*args)
    return wrapped


def best_time(fn, repeats):
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run(selected=None) -> int:
    """Run the registered benchmarks; return the number that missed their target."""
    misses = 0
    print(f"{'benchmark':58s} {'baseline':>10s} {'candidate':>10s} {'ratio':>8s} {'target':>7s}")
    for make in REGISTRY:
        case = make()
        if selected and not any(s in case.name for s in selected):
            continue
        tb, rb = best_time(case.baseline, max(1, case.repeats - 2))
        tc, rc = best_time(case.candidate, case.repeats)
        if case.check is not None:
            case.check(rb, rc)
        ratio = tb / tc
        ok = ratio >= case.target
        misses += not ok
        print(f"{case.name:58s} {tb:9.4f}s {tc:9.4f}s {ratio:7.1f}x {case.target:6.0f}x "
              f"{'ok' if ok else 'MISSED'}")
    return misses
