"""The bytes of a TF bundle's `.index` file, decoded without TensorFlow: the SSTable (LevelDB's table format: blocks
of prefix-compressed key/value entries, each with a masked crc32c, an index block pointing at the data blocks, a
48-byte footer) and its values, `BundleHeaderProto` (under the empty key) and `BundleEntryProto` (one per tensor,
and one per slice of a TF1 partitioned variable under a binary key: `slice_key`), decoded by their protobuf wire
format. `decode_index` checks the table's structure: every block's crc32c, keys strictly increasing (the header
first), restart points at entries, index keys that separate the blocks, every message well-formed (no dims < 0,
at most `MAX_DIMS`, no negative offsets or sizes). What the entries mean is checked by `_bundle_index`.

`crc32c(data, crc=0)` is the Castagnoli CRC of the `google-crc32c` package (hardware accelerated in its C
extension); `fast_crc32c_available()` says whether that extension is there.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

import attrs
import google_crc32c
import numpy as np

__all__ = [
    "MAX_DIMS",
    "MAX_SLICES",
    "BadIndex",
    "BundleEntry",
    "BundleHeader",
    "crc32c",
    "fast_crc32c_available",
    "unmask_crc",
    "mask_crc",
    "decode_index",
    "table_entries",
    "slice_key",
]

MAX_DIMS = 32  # more dims than any real tensor has (TF's own limit, 254, is not checked before it CHECK-fails)
MAX_SLICES = 1024  # slices of one TF1 partitioned variable
MAX_KEY_BYTES = 1 << 16  # one key of the index

_CRC_MASK_DELTA = 0xA282EAD8
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_BLOCK_TRAILER = 5  # type byte + masked crc32c


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


def mask_crc(crc: int) -> int:
    """TF's `crc32c::Mask` (the inverse of `unmask_crc`)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


# --- the protobuf wire format ---------------------------------------------------------------------------------------


class BadIndex(ValueError):
    """The index is damaged or not a TF bundle index (the message says what is wrong)."""


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise BadIndex("a varint runs past the end of its record")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result >> 64:
                raise BadIndex("a varint is longer than 64 bits")
            return result, pos
        shift += 7
        if shift >= 70:
            raise BadIndex("a varint is longer than 10 bytes")


def _int64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _fields(buf: Any, pos: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message: an int for varint / fixed fields, (start, end) for
    length-delimited ones. Groups (wire types 3, 4) and field number 0 are damage."""
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise BadIndex("a protobuf field has number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1 or wire == 5:
            width = 8 if wire == 1 else 4
            if pos + width > end:
                raise BadIndex("a fixed-size protobuf field runs past the end of its record")
            value = int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise BadIndex("a protobuf field runs past the end of its record")
            value, pos = (pos, pos + length), pos + length
        else:
            raise BadIndex(f"protobuf wire type {wire} (groups are not used by TF bundles)")
        yield field, wire, value


def _expect(wire: int, want: int, what: str) -> None:
    if wire != want:
        raise BadIndex(f"field {what} has protobuf wire type {wire}, expected {want}")


def _int32(value: int, what: str) -> int:
    value = _int64(value)
    if not 0 <= value < 1 << 31:
        raise BadIndex(f"{what} is {value}, out of range")
    return value


def _non_negative(value: int, what: str) -> int:
    value = _int64(value)
    if value < 0:
        raise BadIndex(f"{what} is {value}")
    return value


def _repeated_ints(buf: Any, wire: int, value: Any) -> list[int]:
    if wire == 0:
        return [value]
    if wire != 2:
        raise BadIndex("a repeated int field has a bad wire type")
    out, pos = [], value[0]
    while pos < value[1]:
        item, pos = _varint(buf, pos, value[1])
        out.append(item)
    return out


class _Once:
    """Refuses a singular sub-message that appears twice (protobuf would merge them; TF never writes that)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, what: str) -> None:
        if what in self.seen:
            raise BadIndex(f"field {what} appears twice")
        self.seen.add(what)


@attrs.frozen
class BundleHeader:
    """A `BundleHeaderProto`: the number of data shards, endianness (0 little, 1 big) and the format version."""

    num_shards: int = 0
    endianness: int = 0
    producer: int = 0
    min_consumer: int = 0
    bad_consumers: tuple[int, ...] = ()


class BundleEntry(NamedTuple):
    """A `BundleEntryProto`: the tensor's TF dtype enum and shape, where its bytes are (shard, offset, size), their
    masked crc32c, and for a TF1 partitioned variable its slices (per slice, per dim: (start, length), length -1 for
    the whole dim)."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    slices: tuple[tuple[tuple[int, int], ...], ...] = ()


def _decode_header(buf: Any, start: int, end: int) -> BundleHeader:
    values: dict[str, Any] = {"bad_consumers": []}
    once = _Once()
    for field, wire, value in _fields(buf, start, end):
        if field == 1:
            _expect(wire, 0, "num_shards")
            values["num_shards"] = _int32(value, "num_shards")
        elif field == 2:
            _expect(wire, 0, "endianness")
            values["endianness"] = _int64(value)
        elif field == 3:
            _expect(wire, 2, "version")
            once("version")
            for vfield, vwire, vvalue in _fields(buf, *value):
                if vfield in (1, 2):
                    _expect(vwire, 0, "version")
                    values["producer" if vfield == 1 else "min_consumer"] = _int64(vvalue)
                elif vfield == 3:
                    values["bad_consumers"] += [_int64(v) for v in _repeated_ints(buf, vwire, vvalue)]
    values["bad_consumers"] = tuple(values["bad_consumers"])
    return BundleHeader(**values)


def _decode_shape(buf: Any, start: int, end: int) -> tuple[int, ...]:
    dims = []
    for field, wire, value in _fields(buf, start, end):
        if field == 2:
            _expect(wire, 2, "shape.dim")
            size = 0
            for dfield, dwire, dvalue in _fields(buf, *value):
                if dfield == 1:
                    _expect(dwire, 0, "shape.dim.size")
                    size = _int64(dvalue)
            if size < 0:
                raise BadIndex(f"a dim of size {size}")
            dims.append(size)
            if len(dims) > MAX_DIMS:
                raise BadIndex(f"more than {MAX_DIMS} dims")
        elif field == 3:
            _expect(wire, 0, "shape.unknown_rank")
            if value:
                raise BadIndex("a shape of unknown rank")
    return tuple(dims)


def _decode_slice(buf: Any, start: int, end: int) -> tuple[tuple[int, int], ...]:
    extents = []
    for field, wire, value in _fields(buf, start, end):
        if field != 1:
            continue
        _expect(wire, 2, "slices.extent")
        begin, length = 0, -1
        for efield, ewire, evalue in _fields(buf, *value):
            if efield in (1, 2):
                _expect(ewire, 0, "slices.extent")
                if efield == 1:
                    begin = _int64(evalue)
                else:
                    length = _int64(evalue)
                    if length < 0:
                        raise BadIndex(f"a slice of length {length}")
        if begin < 0 or (length == -1 and begin != 0):
            raise BadIndex(f"a slice starting at {begin}")
        extents.append((begin, length))
        if len(extents) > MAX_DIMS:
            raise BadIndex(f"a slice of more than {MAX_DIMS} dims")
    return tuple(extents)


def _decode_entry(buf: Any, start: int, end: int) -> BundleEntry:
    dtype = shard = offset = size = crc = 0
    shape: tuple[int, ...] = ()
    slices = []
    once = _Once()
    for field, wire, value in _fields(buf, start, end):
        if field == 1:
            _expect(wire, 0, "dtype")
            dtype = _int64(value)
        elif field == 2:
            _expect(wire, 2, "shape")
            once("shape")
            shape = _decode_shape(buf, *value)
        elif field == 3:
            _expect(wire, 0, "shard_id")
            shard = _int32(value, "shard_id")
        elif field == 4:
            _expect(wire, 0, "offset")
            offset = _non_negative(value, "offset")
        elif field == 5:
            _expect(wire, 0, "size")
            size = _non_negative(value, "size")
        elif field == 6:
            _expect(wire, 5, "crc32c")
            crc = value
        elif field == 7:
            _expect(wire, 2, "slices")
            slices.append(_decode_slice(buf, *value))
            if len(slices) > MAX_SLICES:
                raise BadIndex(f"more than {MAX_SLICES} slices")
    return BundleEntry(dtype, shape, shard, offset, size, crc, tuple(slices))


# --- the SSTable ------------------------------------------------------------------------------------------------------


def _block(data: memoryview, handle: tuple[int, int], limit: int, what: str) -> memoryview:
    offset, size = handle
    if offset + size + _BLOCK_TRAILER > limit:
        raise BadIndex(f"the {what} block (bytes {offset}..{offset + size}) lies beyond the end of the file "
                       "(truncated?)")
    contents = data[offset : offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if crc32c(data[offset + size : offset + size + 1], crc32c(contents)) != unmask_crc(stored):
        raise BadIndex(f"checksum mismatch in the {what} block")
    if kind != 0:
        raise BadIndex(f"the {what} block is compressed (type {kind}); TF's bundle writer never compresses")
    return contents


def _handle(buf: Any, start: int, end: int) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, start, end)
    size, pos = _varint(buf, pos, end)
    return (offset, size), pos


def _block_entries(block: memoryview, what: str) -> Iterator[tuple[bytes, int, int]]:
    """(key, value start, value end) of a block's entries; the restart points (where TF's lookups start their
    binary search) must be increasing and at entries that share nothing with the key before."""
    if len(block) < 4:
        raise BadIndex(f"the {what} block is too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise BadIndex(f"bad restart count {restarts} in the {what} block")
    points = struct.unpack_from(f"<{restarts}I", block, end)
    if any(a >= b for a, b in zip(points, points[1:])):
        raise BadIndex(f"the restart points of the {what} block are not increasing")
    pos, key = 0, b""
    fresh = set()  # entries that share nothing with the key before
    while pos < end:
        start = pos
        shared, pos = _varint(block, pos, end)
        own, pos = _varint(block, pos, end)
        size, pos = _varint(block, pos, end)
        if shared > len(key) or pos + own + size > end:
            raise BadIndex(f"a bad entry in the {what} block")
        if not shared:
            fresh.add(start)
        key = key[:shared] + bytes(block[pos : pos + own])
        if len(key) > MAX_KEY_BYTES:
            raise BadIndex(f"a key of more than {MAX_KEY_BYTES} bytes in the {what} block")
        pos += own
        yield key, pos, pos + size
        pos += size
    if fresh and (not points or points[0] != 0 or not set(points) <= fresh):
        raise BadIndex(f"the restart points of the {what} block are not at its entries")
    if not fresh and points not in ((), (0,)):
        raise BadIndex(f"the empty {what} block has restart points")


def table_entries(data: bytes | memoryview) -> Iterator[tuple[bytes, memoryview]]:
    """(key, value) of every entry of an SSTable, in order, its structure checked: footer, every block's crc32c,
    keys strictly increasing, restart points, index keys that separate the data blocks. BadIndex when damaged."""
    view = memoryview(data).cast("B")
    if len(view) < _FOOTER or struct.unpack_from("<Q", view, len(view) - 8)[0] != _TABLE_MAGIC:
        raise BadIndex("not an SSTable (bad footer)")
    footer_at = len(view) - _FOOTER
    _, pos = _handle(view, footer_at, footer_at + 40)  # the metaindex: not used by TF
    index_handle, _ = _handle(view, pos, footer_at + 40)
    index_block = _block(view, index_handle, footer_at, "top-level index")
    last: bytes | None = None
    separator_before: bytes | None = None
    key_bytes, key_budget = 0, 8 * len(view) + (1 << 20)
    for separator, start, end in _block_entries(index_block, "top-level index"):
        if separator_before is not None and separator <= separator_before:
            raise BadIndex("the keys of the top-level index are not increasing")
        block = _block(view, _handle(index_block, start, end)[0], footer_at, "data")
        for key, vstart, vend in _block_entries(block, "data"):
            if last is not None and key <= last:
                raise BadIndex(f"duplicate key {key[:80]!r}" if key == last else
                               f"keys out of order: {key[:80]!r} after {last[:80]!r}")
            if separator_before is not None and key <= separator_before:
                raise BadIndex("a top-level index key does not separate two data blocks")
            last = key
            key_bytes += len(key)
            if key_bytes > key_budget:
                raise BadIndex("its keys are far longer than the file could hold")
            yield key, block[vstart:vend]
        if last is not None and separator < last:
            raise BadIndex("a top-level index key is smaller than the last key of its data block")
        separator_before = separator


def decode_index(data: bytes | memoryview) -> tuple[BundleHeader, dict[bytes, BundleEntry]]:
    """(header, {key: entry}) of the bytes of an `.index` file: the table (`table_entries`) and every message
    decoded (shapes, dtypes and sizes are checked by `_bundle_index.read_bundle_index`). BadIndex when damaged."""
    header = None
    entries: dict[bytes, BundleEntry] = {}
    for key, value in table_entries(data):
        if key == b"":
            header = _decode_header(value, 0, len(value))
        else:
            entries[key] = _decode_entry(value, 0, len(value))
    if header is None:
        raise BadIndex("no bundle header (the entry with the empty key)")
    return header, entries


# --- TF1 partitioned variables: the keys of their slices (TF's EncodeTensorNameSlice, OrderedCode) ----------------

_HEADER_BITS = ((0, 0), (0x80, 0), (0xC0, 0), (0xE0, 0), (0xF0, 0), (0xF8, 0), (0xFC, 0), (0xFE, 0), (0xFF, 0),
                (0xFF, 0x80), (0xFF, 0xC0))


def _ordered_unsigned(value: int) -> bytes:
    raw = value.to_bytes(8, "big").lstrip(b"\x00")
    return bytes([len(raw)]) + raw


def _ordered_signed(value: int) -> bytes:
    x = ~value if value < 0 else value
    length = (x.bit_length() + 1 + 6) // 7 if x >= 64 else 1
    raw = bytearray((value & ((1 << 80) - 1)).to_bytes(10, "big")[-length:])
    raw[0] ^= _HEADER_BITS[length][0]
    if length > 1:
        raw[1] ^= _HEADER_BITS[length][1]
    return bytes(raw)


def slice_key(name: bytes, extents: tuple[tuple[int, int], ...]) -> bytes:
    """The index key under which the slice `extents` of tensor `name` is stored."""
    escaped = re.sub(rb"[\x00\xff]", lambda m: b"\x00\xff" if m.group() == b"\x00" else b"\xff\x00", name)
    parts = [_ordered_unsigned(0), escaped, b"\x00\x01", _ordered_unsigned(len(extents))]
    for start, length in extents:
        parts += [_ordered_signed(start), _ordered_signed(length)]
    return b"".join(parts)


