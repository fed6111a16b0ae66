"""Timing helpers shared by the benchmarks: interleaved loops so both sides see the same machine noise."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99))}


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 20) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, alternating between them, after a warm-up of each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times
