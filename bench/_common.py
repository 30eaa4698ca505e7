"""Helpers shared by the benchmarks: the benchmark network and best-of-N timing."""

from __future__ import annotations

import time
from collections.abc import Callable


def net_dict(n_layers: int, units: int) -> dict:
    """`n_layers` linear layers of `units`; the last one is "output" (so growing inserts a layer before it)."""
    d = {}
    src = "data"
    for i in range(n_layers - 1):
        d[f"l{i}"] = {"class": "linear", "activation": "relu", "n_out": units, "from": [src]}
        src = f"l{i}"
    d["output"] = {"class": "linear", "activation": None, "n_out": units, "from": [src]}
    return d


def best_time(fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None) -> float:
    """The shortest wall time of `repeat` calls of `fn` (`before` runs untimed ahead of each)."""
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
