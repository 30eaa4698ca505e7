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
is checked against the entry's crc32c (`_bundle_index.crc32c`: google-crc32c or TF's own, hardware). Where no
crc32c is found (another platform or TF build), and for sliced (TF1 partitioned) variables, compressed
index blocks, big-endian bundles and non-numeric dtypes, TF's own reader (`RestoreV2` / `get_tensor`, which checks
the crc32c too) is used instead; both give the same values and the same CheckpointErrors for damaged files.
"""

from __future__ import annotations

import glob
import math
import os
import re
import sys
from typing import Any

import numpy as np

from transition.internal._aligned import adopt, aligned_empty
from transition.checkpoint._bundle_index import BUNDLE_VERSION, UnsupportedIndex, crc32c, parse_bundle_index, unmask_crc
from transition.checkpoint._bundle_index import _crc32c_function  # the direct reader's gate (bench/load.py replaces it here)
from transition.errors import CheckpointError
from transition.checkpoint._reader_base import CheckpointReader, Shape, first_line

__all__ = ["TFBundleReader", "tf_key_to_name"]

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_SLOT_MARK = "/.OPTIMIZER_SLOT/"
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_SHARD_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})$")


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
    import tensorflow as tf

    return tf


def _damaged(path: str, what: str, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"cannot read {what} of TF checkpoint {path}: {first_line(exc)}. The checkpoint is damaged or incomplete "
        f"(truncated or overwritten file?); restore it from a backup or use an earlier checkpoint"
    )


def _check_shards(prefix: str) -> None:
    shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
    counts = {m.group(2) for m in (_SHARD_RE.search(s) for s in shards) if m}
    if not counts:
        raise CheckpointError(
            f"TF checkpoint {prefix} has an index but no data file ({prefix}.data-00000-of-NNNNN); the checkpoint is "
            f"incomplete: copy its data files next to {prefix}.index or use another checkpoint"
        )
    for count in counts:
        missing = [
            f"{prefix}.data-{i:05d}-of-{count}"
            for i in range(int(count))
            if not os.path.exists(f"{prefix}.data-{i:05d}-of-{count}")
        ]
        if missing and len(counts) == 1:
            raise CheckpointError(
                f"TF checkpoint {prefix} is incomplete: missing data file(s) {missing}; copy them next to "
                f"{prefix}.index or use another checkpoint"
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
        _check_shards(prefix)
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
        self._direct = direct
        self._index: dict[str, Any] | None = None  # stored key -> BundleEntryProto, read on first use
        self._num_shards = 1
        self._fds: dict[int, int] = {}

    def stored_key(self, name: str) -> str:
        """The key under which `name` is stored in the bundle (differs for object-based checkpoints)."""
        return self._keys[self._lookup(name)]

    def _index_entry(self, key: str) -> Any:
        """The key's BundleEntryProto where the direct reader can read it, else None."""
        if self._index is None:
            self._index = {}
            if self._direct and _crc32c_function() is not None:
                try:
                    header, entries = parse_bundle_index(self.path + ".index")
                except (UnsupportedIndex, ValueError, OSError):  # TF's reader handles (or reports) it
                    return None
                native = header.endianness == (0 if sys.byteorder == "little" else 1)
                if native and header.version.min_consumer <= BUNDLE_VERSION:
                    self._index, self._num_shards = entries, max(1, header.num_shards)
        return self._index.get(key)

    def _data_fd(self, shard: int) -> int:
        if shard not in self._fds:
            self._fds[shard] = os.open(f"{self.path}.data-{shard:05d}-of-{self._num_shards:05d}", os.O_RDONLY)
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
        return np.asarray(self._reader.get_tensor(self._keys[name]))

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
        self._reader = None
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
