"""Write and read a TF name-based checkpoint bundle ({prefix}.index + {prefix}.data-*) from / to numpy.

The bundle is written with `tf.raw_ops.SaveV2`, so `tf.train.load_checkpoint(prefix)` and RETURNN-style readers see
each array under its given name (e.g. `layer/param`). Large numpy arrays reach TF through DLPack from a 64-byte
aligned buffer: no copy when they are aligned already, else one plain memcpy (TF's own conversion is much slower).
"""

from __future__ import annotations

import math
import os
import threading
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from transition.internal._aligned import ALIGN as _ALIGN
from transition.internal._aligned import aligned_empty
from transition.errors import CheckpointError

__all__ = [
    "write_bundle", "read_bundle", "bundle_data_crc32", "aligned_copy", "needs_copy", "HostBufferPool", "DATA_SUFFIX",
]

DATA_SUFFIX = ".data-00000-of-00001"  # SaveV2 writes a single shard


def _tf():
    import tensorflow as tf

    return tf


def _check_names(names: Iterable[str]) -> None:
    for name in names:
        if not isinstance(name, str) or not name or name != name.strip() or "\x00" in name:
            raise CheckpointError(f"bad tensor name {name!r} for a checkpoint bundle: use a non-empty 'layer/param'")


_ZERO_COPY_MIN_BYTES = 1 << 16


def aligned_copy(value: Any, buffer: np.ndarray | None = None) -> np.ndarray:
    """A C-contiguous copy of `value` (numpy array or CPU TF tensor) in a 64-byte aligned host buffer.

    One memcpy (into `buffer`, an aligned uint8 array of the right size, when given); `write_bundle` then hands it to
    TF without a second copy.
    """
    source = np.asarray(value)  # a CPU tensor: a view of its buffer
    if buffer is None or buffer.nbytes != source.nbytes:
        buffer = aligned_empty(source.nbytes)
    out = buffer.view(source.dtype).reshape(source.shape)
    np.copyto(out, source, casting="no")
    return out


def needs_copy(value: np.ndarray) -> bool:
    """Whether `write_bundle` would copy this numpy array (large and not aligned / not contiguous)."""
    return value.nbytes >= _ZERO_COPY_MIN_BYTES and not (
        value.flags.c_contiguous and value.ctypes.data % _ALIGN == 0
    )


class HostBufferPool:
    """Aligned host buffers kept from one save to the next, so that repeated saves copy into memory that is already
    mapped (a fresh gigabyte costs more in page faults than the copy itself). Holds at most one save's buffers.
    """

    def __init__(self) -> None:
        self._free: dict[int, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def copy(self, value: Any) -> np.ndarray:
        """`aligned_copy(value)` into a pooled buffer; hand it back with `release` once the save is done."""
        nbytes = np.asarray(value).nbytes
        with self._lock:
            free = self._free.get(nbytes)
            buffer = free.pop() if free else None
        return aligned_copy(value, buffer)

    def release(self, arrays: Iterable[np.ndarray]) -> None:
        """Keep the buffers of `arrays` (results of `copy`) for the next save, dropping older ones."""
        kept: dict[int, list[np.ndarray]] = {}
        for array in arrays:
            kept.setdefault(array.nbytes, []).append(array.reshape(-1).view(np.uint8))
        with self._lock:
            self._free = kept

    def clear(self) -> None:
        with self._lock:
            self._free = {}


def _to_tensor(tf: Any, value: Any) -> Any:
    """A numpy array as a TF tensor without a copy where TF allows it (aligned, large, plain numeric dtype)."""
    if (
        isinstance(value, np.ndarray)
        and value.nbytes >= _ZERO_COPY_MIN_BYTES
        and value.dtype.kind in "biuf"
        and value.dtype.isbuiltin == 1
    ):
        if needs_copy(value):
            value = aligned_copy(value)  # a plain memcpy: several times faster than TF's own conversion
        try:
            # the capsule keeps `value` alive as long as the tensor lives
            return tf.experimental.dlpack.from_dlpack(value.__dlpack__())
        except Exception:  # noqa: BLE001 - dtype or layout dlpack does not take: let TF copy
            pass
    if isinstance(value, np.ndarray) and not value.flags.c_contiguous:
        return value.copy(order="C")
    return value


def _host_view(value: Any) -> np.ndarray:
    array = np.asarray(value)  # numpy: itself; a CPU tf.Tensor: a view of its buffer
    return array if array.flags.c_contiguous else array.copy(order="C")


def write_bundle(prefix: str, arrays: Mapping[str, Any]) -> list[str]:
    """Write `arrays` (numpy arrays or TF tensors) as a TF bundle at `prefix`; returns the names in data-file order.

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
        if isinstance(value, np.ndarray) and value.dtype == object:
            raise CheckpointError(f"array {name!r} for {prefix} has dtype object; expected a numeric array")
        tensors.append(_to_tensor(tf, value))
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


def bundle_data_crc32(arrays: Mapping[str, Any], order: list[str]) -> tuple[int, int]:
    """The (crc32, size) of the data file `write_bundle` writes for `arrays`, computed from memory (no re-read)."""
    crc, size = 0, 0
    for name in order:
        value = _host_view(arrays[name])
        view = memoryview(value.reshape(-1).view(np.uint8)) if value.size else b""
        crc = zlib.crc32(view, crc)
        size += value.nbytes
    return crc, size


def _check_declared_sizes(tf: Any, prefix: str, shapes: Mapping, dtypes: Mapping, names: list[str]) -> None:
    """Refuse an index that declares more bytes than the data files hold (before TF allocates them)."""
    directory, base = os.path.split(prefix)
    try:
        data_bytes = sum(
            tf.io.gfile.stat(os.path.join(directory, n)).length
            for n in tf.io.gfile.listdir(directory or ".")
            if n.startswith(base + ".data-")
        )
    except Exception:  # noqa: BLE001 - listing is not possible everywhere; TF's own checks still apply
        return
    declared = 0
    for name in names:
        if dtypes[name] == tf.string:
            continue
        shape = shapes[name]
        if any(d < 0 for d in shape):
            raise CheckpointError(f"checkpoint bundle {prefix}: tensor {name!r} has a bad shape {shape}")
        declared += math.prod(shape) * dtypes[name].size
    if declared > data_bytes:
        raise CheckpointError(
            f"checkpoint bundle {prefix} is damaged: its index declares {declared} bytes of tensors, its data files "
            f"hold {data_bytes}"
        )


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
    _check_declared_sizes(tf, prefix, reader.get_variable_to_shape_map(), dtypes, wanted)
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
