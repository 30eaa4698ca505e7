"""Writing a TF name-based checkpoint bundle (`{prefix}.index` + `{prefix}.data-00000-of-00001`) from numpy arrays or
TF tensors: the one bundle writer, used by the store and by `convert` / `avg`.

The bundle is written with `tf.raw_ops.SaveV2`, so `tf.train.load_checkpoint(prefix)` and RETURNN see each array
under its given name (e.g. `layer/param`). Large numpy arrays reach TF through DLPack from a 64-byte aligned buffer:
no copy when they are aligned already, else one plain memcpy (TF's own conversion is much slower).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from transition.errors import CheckpointError
from transition.internal._aligned import ADOPT_MIN_BYTES, aligned_copy, needs_copy

__all__ = ["write_bundle", "bundle_data_crc32"]


def _check_names(names: Iterable[str]) -> None:
    for name in names:
        if not isinstance(name, str) or not name or name != name.strip() or "\x00" in name:
            raise CheckpointError(f"bad tensor name {name!r} for a checkpoint bundle: use a non-empty 'layer/param'")


def _to_tensor(tf: Any, value: Any) -> Any:
    """A numpy array as a TF tensor without a copy where TF allows it (aligned, large, plain numeric dtype)."""
    if (
        isinstance(value, np.ndarray)
        and value.nbytes >= ADOPT_MIN_BYTES
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
    import tensorflow as tf

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
        message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", exc.message)
        raise CheckpointError(f"could not write checkpoint bundle {prefix}: {message}") from exc
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
