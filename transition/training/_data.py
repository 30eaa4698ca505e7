"""Training data helpers: per-epoch shuffle seeds, numpy data in batches, and users' per-epoch data functions.

Numpy data is a dict of arrays keyed like extern_data, shuffled per epoch with a seed derived from the job's seed
and the epoch, so a resumed epoch sees the same order and skips what was trained; a data function returns a
tf.data.Dataset (called with `epoch` / `seed` where it accepts them; the user makes it deterministic).

Sequence lengths, as in RETURNN: a key with a time axis may come with `"<key>:seq_len"` ([N] ints) beside its padded
array [N, T, ...], or as a list of N arrays of different lengths; a batch is padded (zeros) to its longest sequence
and carries `"<key>:seq_len"`. A time-axis array without its own lengths that is padded like one with lengths (same
T) is cut with it. A tf.data pipeline gives `"<key>:seq_len"` in its dict batches itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from transition.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from transition.network._layers_base import DataInfo

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


_SEQ_LEN = ":seq_len"


def _layout(info: DataInfo) -> str:
    """[N, T, dim] and the like: what extern_data says one key's data looks like."""
    return "[" + ", ".join(["N"] + (["T"] if info.time else []) + ([] if info.sparse else [str(info.dim)])) + "]"


def _check_shape(name: str, key: str, shape: tuple[int, ...], info: DataInfo, spec: Any, what: str = "") -> None:
    """A ConfigError naming the key, both shapes and the fix, unless `shape` (with the batch axis) fits `info`."""
    want_rank = 1 + int(info.time) + int(not info.sparse)
    if len(shape) == want_rank and (info.sparse or shape[-1] == info.dim):
        return
    got = f"{name} data {key!r}{what} has shape {shape}"
    if not info.sparse and info.time and len(shape) == 2 and shape[-1] == info.dim:
        raise ConfigError(
            f"{got}, but extern_data[{key!r}] = {spec!r} means {_layout(info)}: 'dim' alone gives a time axis "
            f"(RETURNN's default). For data without a time axis set extern_data[{key!r}] = "
            f"{{'shape': ({info.dim},)}}; for sequences give [N, T, {info.dim}] arrays (with {key + _SEQ_LEN!r}) or "
            "a list of [T, dim] arrays")
    raise ConfigError(f"{got}, but extern_data[{key!r}] = {spec!r} expects {_layout(info)}; reshape the data or fix "
                      f"extern_data[{key!r}]")


def _is_ragged(value: Any) -> bool:
    """A list (or object array) of per-sequence arrays of different lengths."""
    if isinstance(value, np.ndarray):
        return value.dtype == object
    if not isinstance(value, (list, tuple)) or not value:
        return False
    lengths = {np.shape(v)[:1] for v in value}
    return len(lengths) > 1


def check_numpy_data(name: str, data: Mapping[str, Any], extern_data: Mapping[str, Any]
                     ) -> dict[str, np.ndarray | list[np.ndarray]]:
    """Check a dict of arrays against extern_data (known keys, shapes as extern_data says, equal numbers of rows,
    `"<key>:seq_len"` for keys with a time axis); returns numpy arrays (a list of arrays for variable-length
    sequences, padded per batch by `numpy_batches`)."""
    from transition.network._extern_data import parse_extern_data  # imports TensorFlow: only when needed

    infos = parse_extern_data(extern_data)
    arrays: dict[str, Any] = {}
    for key, value in data.items():
        base = key[: -len(_SEQ_LEN)] if isinstance(key, str) and key.endswith(_SEQ_LEN) else None
        if base is not None:
            if base not in infos or not infos[base].time:
                raise ConfigError(f"{name} data has {key!r}, but extern_data has no key {base!r} with a time axis; "
                                  f"sequence lengths go with such a key ({sorted(k for k in infos if infos[k].time)})")
            continue
        if key not in infos:
            raise ConfigError(
                f"{name} data has key {key!r}, which is not in extern_data{did_you_mean(key, extern_data)}; "
                f"use the extern_data keys {sorted(extern_data)}"
            )
        info = infos[key]
        if _is_ragged(value) and info.time:
            if key + _SEQ_LEN in data:
                raise ConfigError(f"{name} data {key!r} is a list of sequences of different lengths and also has "
                                  f"{key + _SEQ_LEN!r}; give either the list or a padded array with its lengths")
            items = [np.asarray(v) for v in value]
            for i, item in enumerate(items):
                _check_shape(name, key, (1, *item.shape), info, extern_data[key], f" (sequence {i})")
            arrays[key] = items
        else:
            arrays[key] = np.asarray(value)
            _check_shape(name, key, tuple(arrays[key].shape), info, extern_data[key])
    for key in data:
        if isinstance(key, str) and key.endswith(_SEQ_LEN):
            arrays[key] = _seq_lens(name, key, data[key], arrays.get(key[: -len(_SEQ_LEN)]))
    if not arrays:
        raise ConfigError(f"{name} data is empty; give a dict of numpy arrays keyed like extern_data")
    sizes = {key: len(a) for key, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ConfigError(f"{name} data arrays have different numbers of rows: {sizes}; they must be equal")
    if next(iter(sizes.values())) == 0:
        raise ConfigError(f"{name} data has no rows")
    return arrays


def _seq_lens(name: str, key: str, value: Any, padded: Any) -> np.ndarray:
    lens = np.asarray(value)
    if padded is None:
        raise ConfigError(f"{name} data has {key!r} but not {key[: -len(_SEQ_LEN)]!r}; give the padded array too")
    if lens.ndim != 1 or not np.issubdtype(lens.dtype, np.integer):
        raise ConfigError(f"{name} data {key!r} must be ints [N], got {lens.dtype} of shape {lens.shape}")
    t_len = np.shape(padded)[1]
    if lens.size and (lens.min() < 0 or lens.max() > t_len):
        raise ConfigError(f"{name} data {key!r} has lengths in [{lens.min()}, {lens.max()}], but the padded array "
                          f"has {t_len} frames; each length must be in [0, {t_len}]")
    return lens.astype(np.int32)


def num_numpy_batches(arrays: Mapping[str, Any], batch_size: int) -> int:
    """The number of batches (the last one may be smaller)."""
    n = len(next(iter(arrays.values())))
    return -(-n // batch_size)


def numpy_batches(
    arrays: Mapping[str, Any], batch_size: int, *, seed: int | None, start: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of `arrays` in the order of a permutation drawn from `seed` (None: in order), from batch `start`;
    variable-length sequences padded to the batch's longest, padded arrays with lengths cut to it."""
    n = len(next(iter(arrays.values())))
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    for b in range(start, -(-n // batch_size)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        yield _batch(arrays, idx)


def _pad(items: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lens = np.array([len(x) for x in items], np.int32)
    out = np.zeros((len(items), int(lens.max(initial=0)), *items[0].shape[1:]), items[0].dtype)
    for i, x in enumerate(items):
        out[i, : len(x)] = x
    return out, lens


def _batch(arrays: Mapping[str, Any], idx: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, a in arrays.items():
        if isinstance(a, list):
            out[key], out[key + _SEQ_LEN] = _pad([a[i] for i in idx])
        else:
            out[key] = a[idx]
    cut: dict[int, int] = {}  # padded length -> the batch's longest sequence, from the keys given with lengths
    for key, a in arrays.items():
        if key.endswith(_SEQ_LEN) and not isinstance(arrays.get(key[: -len(_SEQ_LEN)]), list):
            full = np.shape(arrays[key[: -len(_SEQ_LEN)]])[1]
            cut[full] = max(cut.get(full, 0), int(out[key].max(initial=0)))
    for key, a in arrays.items():
        if not isinstance(a, list) and not key.endswith(_SEQ_LEN) and a.ndim >= 2 and a.shape[1] in cut:
            out[key] = out[key][:, : cut[a.shape[1]]]
    return out


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
