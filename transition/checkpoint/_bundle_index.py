"""A TF bundle's `.index` file (an SSTable of `BundleEntryProto`s) and the crc32c that checks bundles.

`parse_bundle_index(path)` gives the header and every entry (shard, offset, size, masked crc32c of the bytes);
every block of the index is crc-checked. `crc32c(data, crc=0)` is the Castagnoli CRC of the `google-crc32c`
package (hardware accelerated in its C extension); `fast_crc32c_available()` says whether that extension is there
(the direct reader checks every tensor with it, else TF's own reader, which checks it too, is used).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import google_crc32c
import numpy as np

from transition.internal import _fs

__all__ = [
    "BUNDLE_VERSION",
    "UnsupportedIndex",
    "crc32c",
    "fast_crc32c_available",
    "unmask_crc",
    "parse_bundle_index",
]

BUNDLE_VERSION = 1  # TF's kTensorBundleVersion: the layout read here

_CRC_MASK_DELTA = 0xA282EAD8
_TABLE_MAGIC = 0xDB4775248B80FB57


def fast_crc32c_available() -> bool:
    """Whether `crc32c` runs in google-crc32c's C extension (its pure-Python fallback is far slower than TF)."""
    return google_crc32c.implementation == "c"


def crc32c(data: Any, crc: int = 0) -> int:
    """The crc32c (Castagnoli) of a bytes-like object, extending `crc` (no copy of `data`)."""
    array = np.frombuffer(data, np.uint8)  # no copy; read-only buffers too
    if not array.size:
        return crc
    if array.flags.writeable:  # google-crc32c takes read-only buffers only: a read-only view, still no copy
        array = array.view()
        array.flags.writeable = False
    return int(google_crc32c.extend(crc, array))


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
    `UnsupportedIndex`."""
    from tensorflow.core.protobuf import tensor_bundle_pb2 as pb

    with _fs.open_binary(index_path) as f:
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
