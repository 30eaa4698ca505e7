"""Writing TF bundle indexes by hand for tests: protobuf messages and SSTables with valid block crcs, so that a
test can put any field it likes (hostile dims, dtypes, offsets) behind a structurally valid file."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from transition.checkpoint._bundle_table import crc32c, mask_crc

MAGIC = 0xDB4775248B80FB57


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers: 10-byte two's complement, as protobuf writes int64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: int | bytes, *, fixed32: bool = False) -> bytes:
    if fixed32:
        return varint(number << 3 | 5) + struct.pack("<I", value & 0xFFFFFFFF)
    if isinstance(value, (bytes, bytearray)):
        return varint(number << 3 | 2) + varint(len(value)) + bytes(value)
    return varint(number << 3) + varint(value)


def shape_proto(dims: Sequence[int], unknown_rank: bool = False) -> bytes:
    out = b"".join(field(2, field(1, d)) for d in dims)
    return out + (field(3, 1) if unknown_rank else b"")


def slice_proto(extents: Sequence[tuple[int, int]]) -> bytes:
    return b"".join(field(1, field(1, start) + (field(2, length) if length != -1 else b""))
                    for start, length in extents)


def entry_proto(dtype: int, dims: Sequence[int], *, shard: int = 0, offset: int = 0, size: int = 0, crc: int = 0,
                slices: Sequence[Sequence[tuple[int, int]]] = (), unknown_rank: bool = False,
                extra: bytes = b"") -> bytes:
    out = field(1, dtype) + field(2, shape_proto(dims, unknown_rank))
    out += (field(3, shard) if shard else b"") + (field(4, offset) if offset else b"") + field(5, size)
    out += field(6, crc, fixed32=True) + b"".join(field(7, slice_proto(s)) for s in slices)
    return out + extra


def header_proto(num_shards: int = 1, *, endianness: int = 0, producer: int = 1, min_consumer: int = 0,
                 bad_consumers: Iterable[int] = ()) -> bytes:
    version = field(1, producer) + (field(2, min_consumer) if min_consumer else b"")
    version += b"".join(field(3, b) for b in bad_consumers)
    return field(1, num_shards) + (field(2, endianness) if endianness else b"") + field(3, version)


def _block(items: Sequence[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        shared = 0
        if i % restart_interval:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        last = key
    restarts = restarts or [0]
    return bytes(out) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))


def _with_trailer(contents: bytes, kind: int = 0) -> bytes:
    return contents + bytes([kind]) + struct.pack("<I", mask_crc(crc32c(bytes([kind]), crc32c(contents))))


def sstable(items: Sequence[tuple[bytes, bytes]], *, block_items: int = 64) -> bytes:
    """An SSTable of (key, value) items (keys as given: sorting them is the caller's business), valid crcs."""
    data, index = bytearray(), []
    for start in range(0, max(len(items), 1), block_items):
        chunk = list(items[start : start + block_items])
        offset = len(data)
        block = _block(chunk)
        data += _with_trailer(block)
        index.append((chunk[-1][0] if chunk else b"", varint(offset) + varint(len(block))))
    meta_at = len(data)
    meta = _block([])
    data += _with_trailer(meta)
    index_at = len(data)
    index_block = _block(index, restart_interval=1)
    data += _with_trailer(index_block)
    handles = varint(meta_at) + varint(len(meta)) + varint(index_at) + varint(len(index_block))
    return bytes(data) + handles + b"\0" * (40 - len(handles)) + struct.pack("<Q", MAGIC)


def bundle_index(entries: Sequence[tuple[bytes, bytes]], header: bytes | None = None, *,
                 with_header: bool = True) -> bytes:
    """An index: the header under the empty key (unless not `with_header`), then the entries (sorted by key)."""
    items = [(b"", header_proto() if header is None else header)] if with_header else []
    return sstable(items + sorted(entries))
