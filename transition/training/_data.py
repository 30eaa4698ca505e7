"""Training data helpers: per-epoch shuffle seeds, numpy data in batches, and users' per-epoch data functions.

Numpy data is a dict of arrays keyed like extern_data, shuffled per epoch with a seed derived from the job's seed
and the epoch, so a resumed epoch sees the same order and skips what was trained; a data function returns a
tf.data.Dataset (called with `epoch` / `seed` where it accepts them; the user makes it deterministic).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from transition.errors import ConfigError, did_you_mean

__all__ = ["epoch_seed", "check_numpy_data", "numpy_batches", "num_numpy_batches", "data_for_epoch", "is_tf_dataset"]


def is_tf_dataset(data: object) -> bool:
    """Whether `data` is a `tf.data.Dataset`."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, tf.data.Dataset)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed derived from the job's seed and the epoch (stable across processes and platforms)."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, 0x7472616E])
    hi, lo = (int(x) for x in ss.generate_state(2, np.uint32))
    return ((hi << 32) | lo) & ((1 << 63) - 1)


def check_numpy_data(name: str, data: Mapping[str, Any], extern_data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check a dict of arrays against extern_data (known keys, equal numbers of rows); returns numpy arrays."""
    arrays = {}
    for key, value in data.items():
        if key not in extern_data:
            raise ConfigError(
                f"{name} data has key {key!r}, which is not in extern_data{did_you_mean(key, extern_data)}; "
                f"use the extern_data keys {sorted(extern_data)}"
            )
        arrays[key] = np.asarray(value)
    if not arrays:
        raise ConfigError(f"{name} data is empty; give a dict of numpy arrays keyed like extern_data")
    sizes = {key: len(a) for key, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ConfigError(f"{name} data arrays have different numbers of rows: {sizes}; they must be equal")
    if next(iter(sizes.values())) == 0:
        raise ConfigError(f"{name} data has no rows")
    return arrays


def num_numpy_batches(arrays: Mapping[str, np.ndarray], batch_size: int) -> int:
    """The number of batches (the last one may be smaller)."""
    n = len(next(iter(arrays.values())))
    return -(-n // batch_size)


def numpy_batches(
    arrays: Mapping[str, np.ndarray], batch_size: int, *, seed: int | None, start: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of `arrays` in the order of a permutation drawn from `seed` (None: in order), from batch `start`."""
    n = len(next(iter(arrays.values())))
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    for b in range(start, -(-n // batch_size)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        yield {key: a[idx] for key, a in arrays.items()}


def data_for_epoch(name: str, data: Callable[..., Any], *, epoch: int, seed: int) -> Any:
    """Call a user's data function with the keyword arguments it accepts among `epoch` and `seed`."""
    try:
        params = inspect.signature(data).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    accepts_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in (("epoch", epoch), ("seed", seed)) if accepts_kw or k in params}
    result = data(**kwargs)
    if result is None:
        raise ConfigError(
            f"the {name} data function {getattr(data, '__name__', data)!r} returned None; "
            "it must return a tf.data.Dataset (or an iterable of dict batches)"
        )
    return result
