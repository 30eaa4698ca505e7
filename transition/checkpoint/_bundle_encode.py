"""Encoding a TF bundle's `.index` file (the inverse of `_bundle_table.decode_index`) and combining crc32c values.

The index is an SSTable (LevelDB's table format, as TF's `table::TableBuilder` writes it: uncompressed blocks of
prefix-compressed entries with a restart point every 16 entries, each block followed by its type byte and masked
crc32c, an index block with one entry per data block, an empty metaindex block and the 48-byte footer) holding a
`BundleHeaderProto` under the empty key and one `BundleEntryProto` per tensor under its name, in key order.
`crc32c_combine(a, b, len_b)` is the crc32c of two byte strings joined, from the crc32c of each (zlib's method).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from transition.checkpoint._bundle_table import crc32c, mask_crc

__all__ = ["BUNDLE_PRODUCER", "encode_header", "encode_entry", "encode_table", "crc32c_combine"]

BUNDLE_PRODUCER = 1  # TF's kTensorBundleVersion
_TABLE_MAGIC = 0xDB4775248B80FB57
_BLOCK_SIZE = 262144  # TF's table::Options default
_RESTART_INTERVAL = 16


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64 as protobuf writes it (ten bytes)
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _submessage(field: int, body: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(body)) + body


def encode_header(num_shards: int = 1) -> bytes:
    """A `BundleHeaderProto`: `num_shards` data shards, little-endian, version {producer: 1}."""
    return _tag(1, 0) + _varint(num_shards) + _submessage(3, _tag(1, 0) + _varint(BUNDLE_PRODUCER))


def encode_entry(dtype: int, shape: tuple[int, ...], offset: int, size: int, crc: int, shard_id: int = 0) -> bytes:
    """A `BundleEntryProto` (proto3: fields at their default are left out; the shape is always written)."""
    shape_body = b"".join(_submessage(2, _tag(1, 0) + _varint(d) if d else b"") for d in shape)
    out = bytearray()
    if dtype:
        out += _tag(1, 0) + _varint(dtype)
    out += _submessage(2, shape_body)
    for field, value in ((3, shard_id), (4, offset), (5, size)):
        if value:
            out += _tag(field, 0) + _varint(value)
    masked = mask_crc(crc)
    if masked:
        out += _tag(6, 5) + struct.pack("<I", masked)
    return bytes(out)


def _block(entries: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    out = bytearray()
    restarts = []
    last = b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            limit = min(len(last), len(key))
            while shared < limit and last[shared] == key[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        last = key
    restarts = restarts or [0]
    out += struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def _with_trailer(contents: bytes, out: bytearray) -> tuple[int, int]:
    """Append a block (type 0: uncompressed) to `out`; its handle (offset, size)."""
    handle = (len(out), len(contents))
    out += contents + b"\x00" + struct.pack("<I", mask_crc(crc32c(b"\x00", crc32c(contents))))
    return handle


def encode_table(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The SSTable of (key, value) `entries`, given in strictly increasing key order."""
    out = bytearray()
    index: list[tuple[bytes, bytes]] = []
    block: list[tuple[bytes, bytes]] = []
    block_bytes = 0
    last: bytes | None = None
    for key, value in entries:
        if last is not None and key <= last:
            raise ValueError(f"index keys out of order: {key[:80]!r} after {last[:80]!r}")
        block.append((key, value))
        block_bytes += len(key) + len(value) + 8
        last = key
        if block_bytes >= _BLOCK_SIZE:
            offset, size = _with_trailer(_block(block, _RESTART_INTERVAL), out)
            index.append((key, _varint(offset) + _varint(size)))  # the block's last key separates it from the next
            block, block_bytes = [], 0
    if block:
        offset, size = _with_trailer(_block(block, _RESTART_INTERVAL), out)
        index.append((block[-1][0], _varint(offset) + _varint(size)))
    meta_offset, meta_size = _with_trailer(_block([], 1), out)
    index_offset, index_size = _with_trailer(_block(index, 1), out)
    handles = _varint(meta_offset) + _varint(meta_size) + _varint(index_offset) + _varint(index_size)
    out += handles + b"\x00" * (40 - len(handles)) + struct.pack("<Q", _TABLE_MAGIC)
    return bytes(out)


# --- crc32c of joined byte strings (zlib's crc32_combine with the Castagnoli polynomial) --------------------------

_POLY = 0x82F63B78  # crc32c, reflected


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the polynomial (bit-reflected: x^0 is the top bit)."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _x2n_table() -> list[int]:
    table, p = [1 << 30], 1 << 30  # x^1
    for _ in range(31):
        p = _multmodp(p, p)
        table.append(p)
    return table


_X2N = _x2n_table()


def crc32c_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """crc32c(A + B) from crc32c(A), crc32c(B) and len(B)."""
    p, k, n = 1 << 31, 3, len_b  # x^(8 * len_b)
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return _multmodp(p, crc_a) ^ crc_b
