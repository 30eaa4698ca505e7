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
is checked against the entry's crc32c, computed by TF's own (absl's, hardware) crc32c found in TF's library. Where
that function is not found (another platform or TF build), and for sliced (TF1 partitioned) variables, compressed
index blocks, big-endian bundles and non-numeric dtypes, TF's own reader (`RestoreV2` / `get_tensor`, which checks
the crc32c too) is used instead; both give the same values and the same CheckpointErrors for damaged files.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import math
import os
import re
import struct
import sys
from typing import Any

import numpy as np

from transition._errors import CheckpointError
from transition._reader_base import CheckpointReader, Shape, first_line

__all__ = ["TFBundleReader", "tf_key_to_name", "crc32c", "parse_bundle_index"]

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


# --- crc32c: TF's own (absl's) implementation, called through ctypes -----------------------------------------------

_CRC_SYMBOL = re.compile(
    rb"_ZN4absl(?:\d+lts_\d+)?12crc_internal20ExtendCrc32cInternalENS\d*_8crc32c_tESt17basic_string_viewIcSt11char_"
    rb"traitsIcEE"
)
_CRC_KNOWN = (
    b"_ZN4absl12lts_2025081412crc_internal20ExtendCrc32cInternalENS0_8crc32c_tESt17basic_string_viewIcSt11char_"
    b"traitsIcEE",
)
_CRC_MASK_DELTA = 0xA282EAD8
_TABLE_MAGIC = 0xDB4775248B80FB57
_BUNDLE_VERSION = 1  # TF's kTensorBundleVersion: the layout read here


class _StringView(ctypes.Structure):  # libstdc++'s std::string_view, passed by value
    _fields_ = [("len", ctypes.c_size_t), ("ptr", ctypes.c_void_p)]


def _dynamic_symbols(path: str) -> bytes:
    """The dynamic string table (`.dynstr`) of a 64-bit little-endian ELF file, or b""."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:6] != b"\x7fELF\x02\x01":
            return b""
        shoff, = struct.unpack_from("<Q", head, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", head, 0x3A)
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        sections = [struct.unpack_from("<IIQQQQI", table, i * shentsize) for i in range(shnum)]
        for _name, kind, _flags, _addr, _off, _size, link in sections:
            if kind == 11:  # SHT_DYNSYM: its sh_link is the string table
                off, size = sections[link][4], sections[link][5]
                f.seek(off)
                return f.read(size)
    return b""


@functools.cache
def _crc32c_function() -> Any:
    """absl's `crc_internal::ExtendCrc32cInternal` from TF's framework library, checked against a known value;
    None where it cannot be found (another platform or TF build): callers then use TF's own reader."""
    if sys.platform != "linux":
        return None
    try:
        lib_dir = os.path.dirname(_tf().__file__)
        for base in ("libtensorflow_framework.so.2", "libtensorflow_framework.so"):
            path = os.path.join(lib_dir, base)
            if not os.path.isfile(path):
                continue
            lib = ctypes.CDLL(path)  # loaded by TF already: the same handle
            names = [k for k in _CRC_KNOWN if hasattr(lib, k.decode())] or [  # else: another absl version
                m.group(0) for m in _CRC_SYMBOL.finditer(_dynamic_symbols(path))
            ]
            for name in names:
                fn = getattr(lib, name.decode(), None)
                if fn is None:
                    continue
                fn.restype = ctypes.c_uint32
                fn.argtypes = [ctypes.c_uint32, _StringView]
                test = b"123456789"
                if fn(0, _StringView(len(test), ctypes.cast(ctypes.c_char_p(test), ctypes.c_void_p))) == 0xE3069283:
                    return fn
    except Exception:  # noqa: BLE001 - no fast crc32c: TF's reader is used
        return None
    return None


def crc32c(data: Any, crc: int = 0) -> int:
    """The crc32c (Castagnoli) of a bytes-like object, extending `crc`; TF's own hardware implementation.
    Raises RuntimeError where it is not available (see `_crc32c_function`)."""
    fn = _crc32c_function()
    if fn is None:
        raise RuntimeError("no crc32c implementation found in TensorFlow's library")
    array = np.frombuffer(data, np.uint8)  # no copy; read-only buffers too
    if not array.size:
        return crc
    return int(fn(crc, _StringView(array.size, array.ctypes.data)))


def _unmask(masked: int) -> int:
    rot = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --- the bundle's .index: an SSTable of BundleEntryProtos ------------------------------------------------------------


class _Unsupported(Exception):
    """The index uses a feature the direct reader does not handle (TF's reader is used instead)."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("bad varint in the index")


def _block(data: bytes, handle: bytes, what: str) -> bytes:
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + 5 > len(data):
        raise ValueError(f"the {what} block lies beyond the end of the index file (truncated?)")
    contents = data[offset : offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if crc32c(data[offset + size : offset + size + 1], crc32c(contents)) != _unmask(stored):
        raise ValueError(f"checksum mismatch in the {what} block of the index")
    if kind != 0:
        raise _Unsupported(f"compressed index block (type {kind})")
    return contents


def _block_entries(block: bytes):
    if len(block) < 4:
        raise ValueError("index block too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise ValueError("bad restart count in an index block")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        own, pos = _varint(block, pos)
        size, pos = _varint(block, pos)
        if shared > len(key) or pos + own + size > end:
            raise ValueError("bad entry in an index block")
        key = key[:shared] + block[pos : pos + own]
        pos += own
        yield key, block[pos : pos + size]
        pos += size


def parse_bundle_index(index_path: str) -> tuple[Any, dict[str, Any]]:
    """(BundleHeaderProto, {stored key: BundleEntryProto}) of a bundle's `.index` file, every block crc-checked.

    Raises ValueError for a damaged file; an index the direct reader does not handle (compressed blocks) raises
    `_Unsupported`."""
    from tensorflow.core.protobuf import tensor_bundle_pb2 as pb

    with open(index_path, "rb") as f:
        data = f.read()
    if len(data) < 48 or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise ValueError(f"{index_path} is not an SSTable (bad footer)")
    footer = data[len(data) - 48 : len(data) - 8]
    _, pos = _varint(footer, 0)  # metaindex handle: offset, size
    _, pos = _varint(footer, pos)
    header = None
    entries: dict[str, Any] = {}
    for _, handle in _block_entries(_block(data, footer[pos:], "top-level index")):
        for key, value in _block_entries(_block(data, handle, "data")):
            if key == b"":
                header = pb.BundleHeaderProto.FromString(value)
            else:  # slices of partitioned variables have binary keys: kept, never looked up
                entries[key.decode("utf-8", "surrogateescape")] = pb.BundleEntryProto.FromString(value)
    if header is None:
        raise ValueError(f"{index_path} has no bundle header")
    return header, entries


_ALIGN = 64  # EIGEN_MAX_ALIGN_BYTES: TF adopts a buffer this aligned without copying it


def _aligned_empty(nbytes: int) -> np.ndarray:
    buf = np.empty(nbytes + _ALIGN, np.uint8)
    start = (-buf.ctypes.data) % _ALIGN
    return buf[start : start + nbytes]


def _as_tensor(array: np.ndarray) -> Any:
    """A TF tensor sharing the memory of `array` (DLPack), or `array` itself where DLPack does not take it."""
    if array.size and array.dtype.kind in "biufc":
        try:
            return _tf().experimental.dlpack.from_dlpack(array.__dlpack__())
        except Exception:  # noqa: BLE001 - a dtype DLPack does not take: the caller converts (one copy)
            pass
    return array


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
                except (_Unsupported, ValueError, OSError):  # TF's reader handles (or reports) it
                    return None
                native = header.endianness == (0 if sys.byteorder == "little" else 1)
                if native and header.version.min_consumer <= _BUNDLE_VERSION:
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
        array = _aligned_empty(nbytes)
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
        if crc32c(array) != _unmask(entry.crc32c):
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
            return _as_tensor(array)  # TF adopts the buffer: no copy here, none in the assign
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
