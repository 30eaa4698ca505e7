"""Write and read a TF name-based checkpoint bundle ({prefix}.index + {prefix}.data-*) from / to numpy.

The bundle is written with `tf.raw_ops.SaveV2`, so `tf.train.load_checkpoint(prefix)` and RETURNN-style readers see
each array under its given name (e.g. `layer/param`). No copies beyond the one TF makes when it wraps an array.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

import numpy as np

from transition._errors import CheckpointError

__all__ = ["write_bundle", "read_bundle", "bundle_data_crc32", "DATA_SUFFIX"]

DATA_SUFFIX = ".data-00000-of-00001"  # SaveV2 writes a single shard


def _tf():
    import tensorflow as tf

    return tf


def _check_names(names: Iterable[str]) -> None:
    for name in names:
        if not isinstance(name, str) or not name or name != name.strip() or "\x00" in name:
            raise CheckpointError(f"bad tensor name {name!r} for a checkpoint bundle: use a non-empty 'layer/param'")


def write_bundle(prefix: str, arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Write `arrays` as a TF bundle at `prefix`; returns the names in the order their bytes are in the data file.

    Names are written sorted, so the data file is the concatenation of the arrays in that order (TF's BundleWriter
    adds no padding); `bundle_data_crc32` relies on that and the caller checks it via the file size.
    """
    tf = _tf()
    names = sorted(arrays)
    _check_names(names)
    if not names:
        raise CheckpointError(f"nothing to write at {prefix}: a checkpoint needs at least one array")
    tensors = []
    for name in names:
        value = arrays[name]
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise CheckpointError(f"array {name!r} for {prefix} is {type(value).__name__}; expected a numeric numpy array")
        tensors.append(value if value.flags.c_contiguous else value.copy(order="C"))  # keeps 0-d arrays 0-d
    try:
        tf.raw_ops.SaveV2(
            prefix=prefix,
            tensor_names=tf.constant(names, dtype=tf.string),
            shape_and_slices=tf.constant([""] * len(names), dtype=tf.string),
            tensors=tensors,
        )
    except tf.errors.OpError as exc:
        raise CheckpointError(f"could not write checkpoint bundle {prefix}: {exc.message}") from exc
    return names


def bundle_data_crc32(arrays: Mapping[str, np.ndarray], order: list[str]) -> tuple[int, int]:
    """The (crc32, size) of the data file `write_bundle` writes for `arrays`, computed from memory (no re-read)."""
    crc, size = 0, 0
    for name in order:
        value = arrays[name]
        if not value.flags.c_contiguous:
            value = value.copy(order="C")
        view = memoryview(value.reshape(-1).view(np.uint8)) if value.size else b""
        crc = zlib.crc32(view, crc)
        size += value.nbytes
    return crc, size


def read_bundle(prefix: str, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read the arrays `names` (default: all) of the TF bundle at `prefix` into read-only numpy arrays."""
    tf = _tf()
    try:
        # NewCheckpointReader, not tf.train.load_checkpoint: the latter mistakes a prefix on ram:// for a directory
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        dtypes = reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint bundle {prefix}: {exc}") from exc
    wanted = sorted(dtypes) if names is None else list(names)
    missing = [n for n in wanted if n not in dtypes]
    if missing:
        raise CheckpointError(f"checkpoint bundle {prefix} has no tensor(s) {missing[:5]}; it has {len(dtypes)} others")
    if not wanted:
        return {}
    try:
        tensors = tf.raw_ops.RestoreV2(
            prefix=prefix,
            tensor_names=tf.constant(wanted, dtype=tf.string),
            shape_and_slices=tf.constant([""] * len(wanted), dtype=tf.string),
            dtypes=[dtypes[n] for n in wanted],
        )
    except tf.errors.OpError as exc:
        raise CheckpointError(f"cannot read checkpoint bundle {prefix}: {exc.message}") from exc
    # np.asarray on a CPU EagerTensor shares its buffer (no second copy; the arrays are read-only).
    return {name: np.asarray(t) for name, t in zip(wanted, tensors)}
