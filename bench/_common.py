"""Helpers shared by the benchmarks: the benchmark network and medians of interleaved rounds."""

from __future__ import annotations

import statistics
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


def interleaved_medians(
    contenders: dict[str, Callable[[], object]],
    rounds: int,
    before: Callable[[], object] | None = None,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Time every contender once per round, round-robin, `rounds` times; the median wall time of each, and all times.

    Interleaving makes a noisy machine's load hit the contenders alike; `before` runs untimed ahead of each call
    (e.g. `os.sync()`, so that no contender pays for another's writeback).
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            if before is not None:
                before()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}, times


def median_ratio(times: dict[str, list[float]], floor: str, ours: str) -> float:
    """The median over rounds of floor time / our time (speed relative to the floor; >= 1 is as fast)."""
    return statistics.median(f / t for f, t in zip(times[floor], times[ours]))
