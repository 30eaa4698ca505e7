"""Writing a TF name-based checkpoint bundle (`{prefix}.index` + `{prefix}.data-00000-of-00001`) from numpy arrays or
TF tensors: the one bundle writer, used by the store and by `convert` / `avg`.

The files are what TF's `SaveV2` writes (`tf.train.load_checkpoint(prefix)` and RETURNN see each array under its
given name, e.g. `layer/param`), written without TensorFlow: the data file is the arrays' bytes in name order, no
padding, written straight from the arrays' own buffers (a CPU tensor's buffer too: no copy) in `CHUNK`-sized pieces,
each piece's crc32c computed while it is in the CPU cache; the index (`_bundle_encode`) records every tensor's dtype,
shape, offset, size and crc32c. The crc32c of each whole file comes back in `WrittenBundle` (no re-read).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np

from transition.checkpoint._bundle_encode import crc32c_combine, encode_entry, encode_header, encode_table
from transition.checkpoint._bundle_table import crc32c, fast_crc32c_available
from transition.checkpoint._naming import INDEX_SUFFIX, SINGLE_DATA_SUFFIX
from transition.errors import CheckpointError
from transition.internal import _fs

__all__ = ["WrittenBundle", "write_bundle", "tf_dtype_enum"]

CHUNK = 4 << 20  # bytes written (and hashed) at a time: fits the CPU cache
_COMBINE_MIN = 1 << 20  # from this size on, combining two crc32c (~80 us) is cheaper than hashing again

# numpy dtype name -> TF DataType enum (the inverse of `_bundle_index.numpy_dtype` for the types SaveV2 writes as
# their raw little-endian bytes; the quantized types share numpy dtypes with plain ints and are never written)
_ENUMS = {
    "float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6, "complex64": 8, "int64": 9,
    "bool": 10, "bfloat16": 14, "uint16": 17, "complex128": 18, "float16": 19, "uint32": 22, "uint64": 23,
    "float8_e5m2": 24, "float8_e4m3fn": 25, "float8_e4m3fnuz": 26, "float8_e4m3b11fnuz": 27, "float8_e5m2fnuz": 28,
}


@attrs.frozen
class WrittenBundle:
    """What `write_bundle` wrote: the names in data-file order and each file's size and crc32c."""

    names: tuple[str, ...]
    data_size: int
    data_crc32c: int
    index_size: int
    index_crc32c: int


def tf_dtype_enum(dtype: np.dtype) -> int | None:
    """TF's DataType enum for a numpy dtype the writer takes (None for any other)."""
    return _ENUMS.get(dtype.name) if dtype.byteorder != ">" else None


def _check_names(names: Iterable[str]) -> None:
    for name in names:
        if not isinstance(name, str) or not name or name != name.strip() or "\x00" in name:
            raise CheckpointError(f"bad tensor name {name!r} for a checkpoint bundle: use a non-empty 'layer/param'")


def _host_array(prefix: str, name: str, value: Any) -> tuple[np.ndarray, int]:
    """`value` as a C-contiguous numpy array (a CPU tf.Tensor: a view of its buffer) and its TF dtype enum."""
    array = np.asarray(value)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("="))
    enum = tf_dtype_enum(array.dtype)
    if enum is None:
        raise CheckpointError(f"array {name!r} for {prefix} has dtype {array.dtype}; a checkpoint bundle takes "
                              f"numeric arrays ({', '.join(sorted(_ENUMS))})")
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return array, enum


def _write_array(out: Any, array: np.ndarray, file_crc: int) -> tuple[int, int]:
    """Write the array's bytes to `out` piece by piece (each piece hashed just before it is written, so the write
    copies it from the cache); (their crc32c, `file_crc` extended by them)."""
    if not array.nbytes:
        return 0, file_crc
    view = memoryview(array.reshape(-1).view(np.uint8))
    crc = 0
    for start in range(0, len(view), CHUNK):
        piece = view[start : start + CHUNK]
        crc = crc32c(piece, crc)
        out.write(piece)
    if len(view) >= _COMBINE_MIN:
        return crc, crc32c_combine(file_crc, crc, len(view))
    return crc, crc32c(view, file_crc)  # small: hashing again is cheaper than combining


def write_bundle(prefix: str, arrays: Mapping[str, Any]) -> WrittenBundle:
    """Write `arrays` (numpy arrays or TF tensors) as a single-shard TF bundle at `prefix` (not fsynced)."""
    names = sorted(arrays)
    _check_names(names)
    if not names:
        raise CheckpointError(f"nothing to write at {prefix}: a checkpoint needs at least one array")
    if not fast_crc32c_available():
        warnings.warn("google-crc32c runs without its C extension here: checkpoints save and verify slowly (about "
                      "100x); reinstall it from a wheel for this platform (pip install --force-reinstall "
                      "google-crc32c)", RuntimeWarning, stacklevel=2)
    hosts = [_host_array(prefix, name, arrays[name]) for name in names]
    table = [(b"", encode_header(num_shards=1))]
    offset, data_crc = 0, 0
    with _fs.open_binary(prefix + SINGLE_DATA_SUFFIX, "wb") as out:
        for name, (array, enum) in zip(names, hosts):
            crc, data_crc = _write_array(out, array, data_crc)
            table.append((name.encode("utf-8"), encode_entry(enum, array.shape, offset, array.nbytes, crc)))
            offset += array.nbytes
    index = encode_table(table)
    with _fs.open_binary(prefix + INDEX_SUFFIX, "wb") as out:
        out.write(index)
    return WrittenBundle(names=tuple(names), data_size=offset, data_crc32c=data_crc, index_size=len(index),
                         index_crc32c=crc32c(index))
