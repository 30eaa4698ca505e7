"""Reading TF checkpoint bundles (`{prefix}.index` + `{prefix}.data-*`) to numpy.

Names:
- TF1 name-based savers (`tf.compat.v1.train.Saver`, RETURNN, tensorpack, raw `SaveV2`, this project): the stored
  names, e.g. `l1/W`, `l1/W/Adam`, `global_step`. A variable saved from TF1 partitioned variables (slices of one
  tensor) is listed once under its full name and reads as the whole tensor.
- TF2 object-based `tf.train.Checkpoint`: the key without its `/.ATTRIBUTES/VARIABLE_VALUE` suffix, e.g.
  `net/w`. A slot variable of an optimizer, stored as `{var}/.OPTIMIZER_SLOT/{opt}/{slot}/.ATTRIBUTES/...`, is named
  `{opt}/{var}/{slot}` (e.g. `opt/net/w/m`), so all optimizer state sits under the optimizer's name.
  `_CHECKPOINTABLE_OBJECT_GRAPH`, `save_counter` and other non-variable attributes are skipped.
- String tensors are not params and are skipped.

Reading values (`_read_direct`): a tensor's bytes are read straight from its `.data-*` file, at the offset and size
that the bundle's `.index` gives (an SSTable of `BundleEntryProto`s: `parse_bundle_index`), into a fresh 64-byte
aligned buffer that TF adopts without a copy (DLPack; `Variable.assign` then shares it: no copy either). Each read
is checked against the entry's crc32c (`_bundle_index.crc32c`, google-crc32c). Where its C extension is missing,
for a bundle that is not on the local disk, and for sliced (TF1 partitioned) variables, compressed index blocks,
big-endian bundles and non-numeric dtypes, TF's own reader (`RestoreV2` / `get_tensor`, which checks the crc32c too)
is used instead; both give the same values and the same CheckpointErrors for damaged files. An index that declares
more bytes than the data files hold is refused before anything is allocated.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import numpy as np

from transition.checkpoint._bundle_index import (
    BUNDLE_VERSION,
    UnsupportedIndex,
    crc32c,
    fast_crc32c_available,
    parse_bundle_index,
    unmask_crc,
)
from transition.checkpoint._naming import INDEX_SUFFIX, data_suffix, parse_data_suffix
from transition.checkpoint._reader_base import CheckpointReader, Shape, first_line
from transition.errors import CheckpointError
from transition.internal import _fs
from transition.internal._aligned import adopt, aligned_empty

__all__ = ["TFBundleReader", "tf_key_to_name"]

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_SLOT_MARK = "/.OPTIMIZER_SLOT/"
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


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


def _data_files(prefix: str) -> dict[str, int]:
    """{data file path: size} of the bundle at `prefix`; CheckpointError naming the missing ones."""
    directory, base = os.path.split(prefix)
    try:
        names = _fs.listdir(directory or ".")
    except OSError as exc:
        raise CheckpointError(f"cannot list the directory of TF checkpoint {prefix}: {exc}") from exc
    shards = set()
    for name in names:
        parsed = parse_data_suffix(name)
        if parsed is not None and name == base + data_suffix(*parsed):
            shards.add(parsed)
    counts = {count for _, count in shards}
    if not counts:
        raise CheckpointError(
            f"TF checkpoint {prefix} has an index but no data file ({prefix}.data-00000-of-NNNNN); the checkpoint is "
            f"incomplete: copy its data files next to {prefix}.index or use another checkpoint"
        )
    if len(counts) == 1:
        count = counts.pop()
        missing = [prefix + data_suffix(i, count) for i in range(count) if (i, count) not in shards]
        if missing:
            raise CheckpointError(
                f"TF checkpoint {prefix} is incomplete: missing data file(s) {missing}; copy them next to "
                f"{prefix}.index or use another checkpoint"
            )
    return {prefix + data_suffix(i, n): _fs.size(prefix + data_suffix(i, n)) for i, n in sorted(shards)}


def _check_declared_sizes(prefix: str, entries: dict[str, tuple[Shape, np.dtype]], data_bytes: int) -> None:
    """Refuse an index that declares more bytes for `entries` than the data files hold (before anything is
    allocated)."""
    declared = 0
    for name, (shape, dtype) in entries.items():
        if any(d < 0 for d in shape):
            raise CheckpointError(f"TF checkpoint {prefix}: tensor {name!r} has a bad shape {list(shape)}; the index "
                                  "is damaged, use another checkpoint")
        declared += math.prod(shape) * dtype.itemsize
    if declared > data_bytes:
        raise CheckpointError(
            f"TF checkpoint {prefix} is damaged: its index declares {declared} bytes of tensors, its data files hold "
            f"{data_bytes} (truncated?); restore it from a backup or use another checkpoint"
        )


class TFBundleReader(CheckpointReader):
    """A TF checkpoint bundle at `prefix` (TF1 name-based or TF2 object-based).

    `direct=False` reads every value through TF's own reader instead of straight from the data files.
    """

    kind = "tf"

    def __init__(self, prefix: str, *, direct: bool = True):
        tf = _tf()
        try:
            # NewCheckpointReader takes the prefix as is (load_checkpoint would treat a directory specially)
            reader = tf.compat.v1.train.NewCheckpointReader(prefix)
            shapes = reader.get_variable_to_shape_map()
            dtypes = reader.get_variable_to_dtype_map()
        except Exception as exc:  # TF raises OpError / ValueError / RuntimeError for damaged files
            raise _damaged(prefix, "the index", exc) from exc
        data_files = _data_files(prefix)
        self._reader = reader
        self._keys: dict[str, str] = {}
        entries: dict[str, tuple[Shape, np.dtype]] = {}
        for key in sorted(shapes):
            name = tf_key_to_name(key)
            if name is None or dtypes[key] == tf.string:
                continue
            if name in self._keys:
                raise CheckpointError(
                    f"TF checkpoint {prefix} has two keys for the name {name!r}: {self._keys[name]!r} and {key!r}; "
                    f"read it with tf.train.load_checkpoint instead"
                )
            self._keys[name] = key
            entries[name] = (tuple(int(d) for d in shapes[key]), np.dtype(dtypes[key].as_numpy_dtype))
        super().__init__(prefix, entries)
        self._data_sizes = data_files
        self._direct = direct and _fs.is_local(prefix) and fast_crc32c_available()
        self._index: dict[str, Any] | None = None  # stored key -> BundleEntryProto, read on first use
        self._num_shards = 1
        self._fds: dict[int, int] = {}

    def read_all(self, names: Any = None) -> dict[str, np.ndarray]:
        """Read the given names (default: all); first refuses an index that declares more bytes than the data files
        hold."""
        keys = [self._lookup(n) for n in (self.names() if names is None else names)]
        _check_declared_sizes(self.path, {k: self._entries[k] for k in keys}, sum(self._data_sizes.values()))
        return super().read_all(keys)

    def _check_fits(self, name: str) -> None:
        """Before TF's reader allocates it: `name` must fit into the data files (else they are truncated)."""
        _check_declared_sizes(self.path, {name: self._entries[name]}, sum(self._data_sizes.values()))

    def stored_key(self, name: str) -> str:
        """The key under which `name` is stored in the bundle (differs for object-based checkpoints)."""
        return self._keys[self._lookup(name)]

    def _index_entry(self, key: str) -> Any:
        """The key's BundleEntryProto where the direct reader can read it, else None."""
        if self._index is None:
            self._index = {}
            if self._direct:
                try:
                    header, entries = parse_bundle_index(self.path + INDEX_SUFFIX)
                except (UnsupportedIndex, ValueError, OSError):  # TF's reader handles (or reports) it
                    return None
                native = header.endianness == (0 if sys.byteorder == "little" else 1)
                if native and header.version.min_consumer <= BUNDLE_VERSION:
                    self._index, self._num_shards = entries, max(1, header.num_shards)
        return self._index.get(key)

    def _data_fd(self, shard: int) -> int:
        if shard not in self._fds:
            path = _fs.local_path(self.path + data_suffix(shard, self._num_shards))
            self._fds[shard] = os.open(path, os.O_RDONLY)
        return self._fds[shard]

    def _read_direct(self, name: str) -> np.ndarray | None:
        """Read `name`'s bytes from its data file into a fresh aligned array and check their crc32c; None where
        the direct reader does not apply (then TF's reader is used)."""
        key = self._keys[name]
        entry = self._index_entry(key)
        shape, dtype = self._entries[name]
        if entry is None or entry.slices or dtype.kind not in "biufc" or not dtype.isnative:
            return None
        nbytes = math.prod(shape) * dtype.itemsize
        if entry.size != nbytes:
            return None
        shard_size = self._data_sizes.get(self.path + data_suffix(entry.shard_id, self._num_shards), 0)
        if entry.offset + nbytes > shard_size:
            raise ValueError(
                f"data file shard {entry.shard_id} ends at byte {shard_size}, inside {key!r} (bytes "
                f"{entry.offset}..{entry.offset + nbytes}): it is truncated"
            )
        fd = self._data_fd(entry.shard_id)
        array = aligned_empty(nbytes)
        view = memoryview(array)
        done = 0
        while done < nbytes:
            got = os.preadv(fd, [view[done:]], entry.offset + done)
            if got <= 0:
                raise ValueError(
                    f"data file shard {entry.shard_id} ends at byte {entry.offset + done}, inside {key!r} (bytes "
                    f"{entry.offset}..{entry.offset + nbytes}): it is truncated"
                )
            done += got
        if crc32c(array) != unmask_crc(entry.crc32c):
            raise ValueError(f"crc32c mismatch for {key!r} in data file shard {entry.shard_id}: its bytes changed")
        return array.view(dtype).reshape(shape)

    def _read(self, name: str) -> np.ndarray:
        array = self._read_direct(name)
        if array is not None:
            return array
        self._check_fits(name)
        return np.asarray(self._reader.get_tensor(self._keys[name]))

    def _read_for_assign(self, name: str) -> Any:
        array = self._read_direct(name)
        if array is not None:
            return adopt(array)  # TF adopts the buffer: no copy here, none in the assign
        self._check_fits(name)
        tf = _tf()
        dtype = tf.as_dtype(self._entries[name][1])
        (tensor,) = tf.raw_ops.RestoreV2(  # one op, straight into a tensor: no numpy copy before the assign
            prefix=self.path, tensor_names=[self._keys[name]], shape_and_slices=[""], dtypes=[dtype]
        )
        return tensor

    def _release(self) -> None:
        self._reader = None
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
