"""A TF bundle's `.index` file (an SSTable of `BundleEntryProto`s) and the crc32c that checks bundles.

`parse_bundle_index(path)` gives the header and every entry (shard, offset, size, masked crc32c of the bytes);
every block of the index is crc-checked. `crc32c(data, crc=0)` is the Castagnoli CRC, from (first that works):
the `google-crc32c` package's C extension where it is installed (not a dependency), TF's own (absl's, hardware)
`ExtendCrc32cInternal` found in TF's framework library and called through ctypes, each verified against a known
value before use; `crc32c_available()` is False where neither is found (callers then use TF's own reader).
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import struct
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = [
    "BUNDLE_VERSION",
    "UnsupportedIndex",
    "crc32c",
    "crc32c_available",
    "unmask_crc",
    "parse_bundle_index",
]

BUNDLE_VERSION = 1  # TF's kTensorBundleVersion: the layout read here

# --- crc32c ----------------------------------------------------------------------------------------------------------

_CRC_SYMBOL = re.compile(
    rb"_ZN4absl(?:\d+lts_\d+)?12crc_internal20ExtendCrc32cInternalENS\d*_8crc32c_tESt17basic_string_viewIcSt11char_"
    rb"traitsIcEE"
)
_CRC_KNOWN = (
    b"_ZN4absl12lts_2025081412crc_internal20ExtendCrc32cInternalENS0_8crc32c_tESt17basic_string_viewIcSt11char_"
    b"traitsIcEE",
)
_CRC_CHECK = (b"123456789", 0xE3069283)  # RFC 3720 B.4's check value
_CRC_MASK_DELTA = 0xA282EAD8
_TABLE_MAGIC = 0xDB4775248B80FB57


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
def _absl_crc32c() -> Any:
    """absl's `crc_internal::ExtendCrc32cInternal` from TF's framework library (ctypes), checked against a known
    value; None where it cannot be found (another platform or TF build)."""
    if sys.platform != "linux":
        return None
    try:
        import tensorflow as tf

        lib_dir = os.path.dirname(tf.__file__)
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
                test, want = _CRC_CHECK
                if fn(0, _StringView(len(test), ctypes.cast(ctypes.c_char_p(test), ctypes.c_void_p))) == want:
                    return fn
    except Exception:  # noqa: BLE001 - no fast crc32c: TF's reader is used
        return None
    return None


def _google_crc32c() -> Callable[[int, np.ndarray], int] | None:
    """`google_crc32c.extend` where the package is installed with its C extension and takes a buffer; else None."""
    try:
        import google_crc32c  # optional, not a dependency
    except Exception:  # noqa: BLE001 - not installed (or broken): the next implementation
        return None
    if getattr(google_crc32c, "implementation", None) != "c":
        return None  # its pure-Python fallback is far slower than TF's
    extend = google_crc32c.extend
    test, want = _CRC_CHECK
    try:
        if extend(0, memoryview(np.frombuffer(test, np.uint8))) != want:
            return None
    except Exception:  # noqa: BLE001 - an API that does not take a buffer
        return None
    return lambda crc, array: int(extend(crc, memoryview(array)))


def _absl_extend(crc: int, array: np.ndarray) -> int:
    return int(_absl_crc32c()(crc, _StringView(array.size, array.ctypes.data)))


@functools.cache
def _crc32c_function() -> Callable[[int, np.ndarray], int] | None:
    """`extend(crc, uint8 array) -> int` of the first implementation that works (see the module docstring)."""
    google = _google_crc32c()
    if google is not None:
        return google
    return _absl_extend if _absl_crc32c() is not None else None


def crc32c_available() -> bool:
    """Whether `crc32c` has an implementation here (else it raises RuntimeError)."""
    return _crc32c_function() is not None


def crc32c(data: Any, crc: int = 0) -> int:
    """The crc32c (Castagnoli) of a bytes-like object, extending `crc` (no copy of `data`).
    Raises RuntimeError where no implementation is available (`crc32c_available()`)."""
    fn = _crc32c_function()
    if fn is None:
        raise RuntimeError("no crc32c implementation found (google-crc32c or TensorFlow's library)")
    array = np.frombuffer(data, np.uint8)  # no copy; read-only buffers too
    if not array.size:
        return crc
    return fn(crc, array)


def unmask_crc(masked: int) -> int:
    """The crc32c stored masked in a bundle / SSTable (TF's `crc32c::Unmask`)."""
    rot = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --- the bundle's .index: an SSTable of BundleEntryProtos ------------------------------------------------------------


class UnsupportedIndex(Exception):
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
    if crc32c(data[offset + size : offset + size + 1], crc32c(contents)) != unmask_crc(stored):
        raise ValueError(f"checksum mismatch in the {what} block of the index")
    if kind != 0:
        raise UnsupportedIndex(f"compressed index block (type {kind})")
    return contents


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
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
    `UnsupportedIndex`. Needs `crc32c_available()`."""
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
