"""Reading TF checkpoint bundles (`{prefix}.index` + `{prefix}.data-*`) to numpy.

Names:
- TF1 name-based savers (`tf.compat.v1.train.Saver`, RETURNN, tensorpack, raw `SaveV2`, this project): the stored
  names, e.g. `l1/W`, `l1/W/Adam`, `global_step`. A variable saved from TF1 partitioned variables (slices of one
  tensor) is listed once under its full name and reads as the whole tensor.
- TF2 object-based `tf.train.Checkpoint`: the key without its `/.ATTRIBUTES/VARIABLE_VALUE` suffix, e.g.
  `net/w`. A slot variable of an optimizer, stored as `{var}/.OPTIMIZER_SLOT/{opt}/{slot}/.ATTRIBUTES/...`, is named
  `{opt}/{var}/{slot}` (e.g. `opt/net/w/m`), so all optimizer state sits under the optimizer's name.
  `_CHECKPOINTABLE_OBJECT_GRAPH`, `save_counter` and other non-variable attributes are skipped.
- String, resource and variant tensors are not params and are skipped.

The index is parsed and checked by `_bundle_index.read_bundle_index` (no TensorFlow) before anything reads the
files; names, shapes and dtypes come from it, so listing a bundle never imports TensorFlow. Values
(`_read_direct`) are read straight from the `.data-*` files at the offset and size of their entry, into a fresh
64-byte aligned buffer that TF adopts without a copy (DLPack; `Variable.assign` then shares it: no copy either), and
checked against the entry's crc32c (google-crc32c), piece by piece as they are read (each piece hashed while it is
in the CPU cache); a TF1 partitioned variable is assembled from its slices. Only
where google-crc32c lacks its C extension (or with `direct=False`) are values read by TF's own reader (`RestoreV2`
/ `get_tensor`, which checks the crc32c too), and only after that check: both give the same values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from transition.checkpoint._bundle_index import (
    BundleEntry,
    crc32c,
    fast_crc32c_available,
    numpy_dtype,
    read_bundle_index,
    unmask_crc,
)
from transition.checkpoint._reader_base import CheckpointReader, Shape, first_line
from transition.errors import CheckpointError
from transition.internal import _fs
from transition.internal._aligned import adopt, aligned_empty

__all__ = ["TFBundleReader", "tf_key_to_name"]

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_SLOT_MARK = "/.OPTIMIZER_SLOT/"
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_CHUNK = 1 << 20  # bytes read (and hashed) at a time: fits the CPU cache (L2)


def tf_key_to_name(key: str) -> str | None:
    """Map a stored key to our name (see the module docstring); None for keys that are not variables."""
    if key == _OBJECT_GRAPH:
        return None
    if "/.ATTRIBUTES/" in key or key.startswith(".ATTRIBUTES/"):
        if not key.endswith(_VALUE_SUFFIX):
            return None  # e.g. OBJECT_CONFIG_JSON
        name = key[: -len(_VALUE_SUFFIX)]
        if name == "save_counter":
            return None
        if _SLOT_MARK in name:
            var, _, rest = name.partition(_SLOT_MARK)
            opt, _, slot = rest.rpartition("/")
            return f"{opt}/{var}/{slot}" if opt else f"{var}/{slot}"
        return name
    return key


def _tf():
    from transition.internal._quiet import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    return tf


def _damaged(path: str, what: str, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"cannot read {what} of TF checkpoint {path}: {first_line(exc)}. The checkpoint is damaged or incomplete "
        f"(truncated or overwritten file?); restore it from a backup or use an earlier checkpoint"
    )


def _extent(extents: tuple[tuple[int, int], ...], shape: Shape) -> tuple[slice, ...]:
    return tuple(slice(start, start + (dim if length == -1 else length))
                 for (start, length), dim in zip(extents, shape))


class TFBundleReader(CheckpointReader):
    """A TF checkpoint bundle at `prefix` (TF1 name-based or TF2 object-based).

    `direct=False` reads every value through TF's own reader instead of straight from the data files.
    """

    kind = "tf"

    def __init__(self, prefix: str, *, direct: bool = True):
        self._index = read_bundle_index(prefix)  # every entry checked: nothing reads the files before this
        self._keys: dict[str, str] = {}
        entries: dict[str, tuple[Shape, np.dtype]] = {}
        for key in sorted(self._index.entries):
            entry = self._index.entries[key]
            name, dtype = tf_key_to_name(key), numpy_dtype(entry.dtype)
            if name is None or dtype is None:
                continue  # not a variable, or a string / resource / variant
            if name in self._keys:
                raise CheckpointError(
                    f"TF checkpoint {prefix} has two keys for the name {name!r}: {self._keys[name]!r} and {key!r}; "
                    f"read it with tf.train.load_checkpoint instead"
                )
            self._keys[name] = key
            entries[name] = (entry.shape, dtype)
        super().__init__(prefix, entries)
        self._direct = direct and fast_crc32c_available()
        self._files: dict[int, _fs.RandomAccessFile] = {}
        self._tf_reader: Any = None

    def stored_key(self, name: str) -> str:
        """The key under which `name` is stored in the bundle (differs for object-based checkpoints)."""
        return self._keys[self._lookup(name)]

    def _shard(self, shard: int) -> _fs.RandomAccessFile:
        if shard not in self._files:
            self._files[shard] = _fs.open_random(self._index.shard_paths[shard])
        return self._files[shard]

    def _fill(self, key: str, entry: BundleEntry, out: np.ndarray) -> None:
        """Read the entry's bytes into the uint8 array `out` and check their crc32c, piece by piece (each piece
        hashed right after it is read, while it is in the CPU cache)."""
        shard, crc = self._shard(entry.shard_id), 0
        try:
            for start in range(0, out.size, _CHUNK):
                piece = out[start : start + _CHUNK]
                shard.read_into(piece, entry.offset + start)
                crc = crc32c(piece, crc)
        except EOFError as exc:
            raise ValueError(f"data file shard {entry.shard_id} is shorter than the index says, inside {key!r} "
                             f"(bytes {entry.offset}..{entry.offset + entry.size}): it is truncated ({exc})") from None
        if crc != unmask_crc(entry.crc32c):
            raise ValueError(f"crc32c mismatch for {key!r} in data file shard {entry.shard_id}: its bytes changed")

    def _read_direct(self, name: str) -> np.ndarray | None:
        """Read `name`'s bytes from its data file(s) into a fresh aligned array and check their crc32c; None where
        TF's reader is used instead (`direct=False`, no C crc32c)."""
        if not self._direct:
            return None
        key = self._keys[name]
        shape, dtype = self._entries[name]
        array = aligned_empty(math.prod(shape) * dtype.itemsize)
        parts = self._index.slices.get(key)
        if parts is None:
            self._fill(key, self._index.entries[key], array)
            return array.view(dtype).reshape(shape)
        full = array.view(dtype).reshape(shape)
        for extents, part in zip(self._index.entries[key].slices, parts):
            chunk = aligned_empty(part.size)
            self._fill(key, part, chunk)
            full[_extent(extents, shape)] = chunk.view(dtype).reshape(part.shape)
        return full

    def _tf_get(self, name: str) -> np.ndarray:
        if self._tf_reader is None:
            try:  # NewCheckpointReader takes the prefix as is; the index was checked above
                self._tf_reader = _tf().compat.v1.train.NewCheckpointReader(self.path)
            except Exception as exc:  # noqa: BLE001 - OpError / ValueError / RuntimeError for damaged files
                raise _damaged(self.path, "the index", exc) from exc
        return np.asarray(self._tf_reader.get_tensor(self._keys[name]))

    def _read(self, name: str) -> np.ndarray:
        array = self._read_direct(name)
        return array if array is not None else self._tf_get(name)

    def _read_for_assign(self, name: str) -> Any:
        array = self._read_direct(name)
        if array is not None:
            return adopt(array)  # TF adopts the buffer: no copy here, none in the assign
        tf = _tf()
        dtype = tf.as_dtype(self._entries[name][1])
        (tensor,) = tf.raw_ops.RestoreV2(  # one op, straight into a tensor: no numpy copy before the assign
            prefix=self.path, tensor_names=[self._keys[name]], shape_and_slices=[""], dtypes=[dtype]
        )
        return tensor

    def _release(self) -> None:
        self._tf_reader = None
        files, self._files = self._files, {}
        for f in files.values():
            f.close()
