"""The checked index of a TF bundle: `read_bundle_index(prefix)`, without TensorFlow.

The `.index` file is decoded by `_bundle_table.decode_index` (its structure and every block's crc32c); then, before
anything else (TF's own reader included) sees the files, every entry is checked: its dtype known (`numpy_dtype`), at
most `MAX_DIMS` dims each >= 0, the byte size consistent with shape and dtype, the bytes inside an existing data
shard of the header's count and overlapping no other tensor's; every slice of a TF1 partitioned variable present,
matching its slice and the slices tiling the tensor; no slice entry that belongs to no tensor; keys UTF-8. Any
problem is a CheckpointError naming the checkpoint and what is wrong. The crc32c helpers are re-exported from
`_bundle_table`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from transition.checkpoint._bundle_table import (
    MAX_DIMS,
    BadIndex,
    BundleEntry,
    BundleHeader,
    crc32c,
    decode_index,
    fast_crc32c_available,
    mask_crc,
    slice_key,
    unmask_crc,
)
from transition.checkpoint._naming import INDEX_SUFFIX, data_suffix
from transition.errors import CheckpointError
from transition.internal import _fs

__all__ = [
    "BUNDLE_VERSION",
    "MAX_DIMS",
    "BadIndex",
    "BundleEntry",
    "BundleHeader",
    "BundleIndex",
    "crc32c",
    "fast_crc32c_available",
    "unmask_crc",
    "mask_crc",
    "decode_index",
    "parse_bundle_index",
    "read_bundle_index",
    "numpy_dtype",
    "slice_key",
]

BUNDLE_VERSION = 1  # TF's kTensorBundleVersion: the layout read here
MAX_INDEX_BYTES = 1 << 30  # an index of a million tensors is ~100 MiB
_MAX_ELEMENTS = 1 << 62

# TF's DataType enum -> numpy dtype (as TF's `get_tensor` gives it); None: not a value (strings, resources,
# variants), listed by nothing. A name: an ml_dtypes type. Everything else is not a TF dtype.
_NOT_A_VALUE = {7: "string", 20: "resource", 21: "variant"}
_DTYPES: dict[int, Any] = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 8: np.complex64,
    9: np.int64, 10: np.bool_, 11: np.int8, 12: np.uint8, 13: np.int32,  # 11-16: quantized, read as TF's
    14: "bfloat16", 15: np.int16, 16: np.uint16, 17: np.uint16, 18: np.complex128,  # get_tensor gives them
    19: np.float16, 22: np.uint32, 23: np.uint64, 24: "float8_e5m2", 25: "float8_e4m3fn", 26: "float8_e4m3fnuz",
    27: "float8_e4m3b11fnuz", 28: "float8_e5m2fnuz", 29: "int4", 30: "uint4", 31: "int2", 32: "uint2",
    33: "float4_e2m1fn",
}


def numpy_dtype(enum: int) -> np.dtype | None:
    """The numpy dtype of TF's DataType `enum` (None for strings, resources and variants); ValueError for a number
    that is no TF dtype."""
    if enum in _NOT_A_VALUE:
        return None
    spec = _DTYPES.get(enum)
    if spec is None:
        raise ValueError(f"unknown dtype enum {enum}")
    if isinstance(spec, str):
        try:
            import ml_dtypes
        except ImportError as exc:  # pragma: no cover - ml_dtypes comes with TensorFlow
            raise ValueError(f"dtype {spec} needs the ml_dtypes package (pip install ml_dtypes)") from exc
        return np.dtype(getattr(ml_dtypes, spec))
    return np.dtype(spec)


# --- the checked index of a bundle --------------------------------------------------------------------------------


@attrs.frozen
class BundleIndex:
    """The checked index of the bundle at `prefix`: its header, every tensor's entry by stored key (slices and the
    header excluded), the slices of partitioned variables, and the data shards (paths and sizes)."""

    prefix: str
    header: BundleHeader
    entries: Mapping[str, BundleEntry]
    slices: Mapping[str, tuple[BundleEntry, ...]]  # stored key -> the entries of its slices, in the entry's order
    shard_paths: tuple[str, ...]
    shard_sizes: tuple[int, ...]


def parse_bundle_index(index_path: str) -> tuple[BundleHeader, dict[str, BundleEntry]]:
    """(header, {stored key: entry}) of an `.index` file (structure and crcs checked; BadIndex when damaged)."""
    header, entries = decode_index(_fs.read_bytes(index_path, MAX_INDEX_BYTES))
    return header, {k.decode("utf-8", "surrogateescape"): v for k, v in entries.items()}


def _damaged(prefix: str, what: str) -> CheckpointError:
    return CheckpointError(
        f"TF checkpoint {prefix} is damaged: {what}; restore it from a backup or use an earlier checkpoint"
    )


def _check_header(header: BundleHeader) -> None:
    if not 1 <= header.num_shards <= 99999:
        raise BadIndex(f"the header says {header.num_shards} data shards")
    if header.endianness not in (0, 1):
        raise BadIndex(f"unknown endianness {header.endianness}")
    if header.endianness == 1:
        raise BadIndex("the bundle is big-endian (TF reads only bundles of its own byte order)")
    if header.producer < 0 or header.min_consumer > BUNDLE_VERSION or BUNDLE_VERSION in header.bad_consumers:
        raise BadIndex(f"format version (producer {header.producer}, min_consumer {header.min_consumer}) is not "
                       f"readable by TF bundle version {BUNDLE_VERSION}")


def _check_entry(name: str, entry: BundleEntry, shard_sizes: tuple[int, ...], *, sliced: bool) -> None:
    try:
        dtype = numpy_dtype(entry.dtype)
    except ValueError as exc:
        raise BadIndex(f"tensor {name!r}: {exc}") from None
    elements = 1
    for dim in entry.shape:
        elements *= dim
        if elements > _MAX_ELEMENTS:
            raise BadIndex(f"tensor {name!r}: shape {list(entry.shape)} has too many elements")
    if entry.shard_id >= len(shard_sizes):
        raise BadIndex(f"tensor {name!r} is in shard {entry.shard_id}, the bundle has {len(shard_sizes)}")
    if entry.offset + entry.size > shard_sizes[entry.shard_id]:
        raise BadIndex(f"tensor {name!r} (bytes {entry.offset}..{entry.offset + entry.size} of data shard "
                       f"{entry.shard_id}) lies beyond the end of that file ({shard_sizes[entry.shard_id]} bytes): it "
                       "is truncated, or the index is not its")
    if sliced:
        if entry.size:
            raise BadIndex(f"partitioned tensor {name!r} has {entry.size} bytes of its own")
    elif dtype is not None and entry.size != elements * dtype.itemsize:
        raise BadIndex(f"tensor {name!r} is {dtype}{list(entry.shape)} ({elements * dtype.itemsize} bytes) but its "
                       f"entry says {entry.size} bytes")


def _slice_shape(name: str, full: tuple[int, ...], extents: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    if len(extents) != len(full):
        raise BadIndex(f"a slice of {name!r} has {len(extents)} dims, the tensor {len(full)}")
    shape = []
    for (start, length), dim in zip(extents, full):
        length = dim if length == -1 else length
        if start + length > dim:
            raise BadIndex(f"a slice of {name!r} reaches beyond its shape {list(full)}")
        shape.append(length)
    return tuple(shape)


def _overlap(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...], full: tuple[int, ...]) -> bool:
    for (sa, la), (sb, lb), dim in zip(a, b, full):
        la, lb = dim if la == -1 else la, dim if lb == -1 else lb
        if sa + la <= sb or sb + lb <= sa:
            return False
    return True


def _check_slices(name: str, entry: BundleEntry, raw: dict[bytes, BundleEntry], used: set[bytes],
                  shard_sizes: tuple[int, ...]) -> tuple[BundleEntry, ...]:
    out = []
    covered = 0
    for i, extents in enumerate(entry.slices):
        shape = _slice_shape(name, entry.shape, extents)
        if any(_overlap(extents, other, entry.shape) for other in entry.slices[:i]):
            raise BadIndex(f"two slices of {name!r} overlap")
        covered += math.prod(shape)
        key = slice_key(name.encode("utf-8"), extents)
        part = raw.get(key)
        if part is None:
            raise BadIndex(f"a slice of partitioned tensor {name!r} is missing")
        if part.dtype != entry.dtype or part.shape != shape or part.slices:
            raise BadIndex(f"a slice entry of {name!r} does not match the slice it stands for")
        _check_entry(f"{name} (slice {i})", part, shard_sizes, sliced=False)
        used.add(key)
        out.append(part)
    if covered != math.prod(entry.shape):
        raise BadIndex(f"the slices of partitioned tensor {name!r} do not cover it")
    return tuple(out)


def _check_no_overlap(entries: list[BundleEntry]) -> None:
    ranges = sorted((e.shard_id, e.offset, e.offset + e.size) for e in entries if e.size)
    for (shard, _, end), (next_shard, start, _) in zip(ranges, ranges[1:]):
        if shard == next_shard and start < end:
            raise BadIndex(f"two tensors share bytes {start}..{end} of data shard {shard}")


def _shards(prefix: str, num_shards: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    paths = tuple(prefix + data_suffix(i, num_shards) for i in range(num_shards))
    sizes = []
    for path in paths:
        try:
            sizes.append(_fs.regular_size(path))
        except FileNotFoundError:
            raise CheckpointError(
                f"TF checkpoint {prefix} is incomplete: its data file {path} is missing; copy the data files next "
                f"to {prefix}{INDEX_SUFFIX} or use another checkpoint"
            ) from None
        except OSError as exc:
            raise CheckpointError(f"TF checkpoint {prefix}: cannot read its data file {path}: {exc}") from None
    return paths, tuple(sizes)


def read_bundle_index(prefix: str) -> BundleIndex:
    """The index of the bundle at `prefix`, every entry checked against the data files (see the module docstring);
    CheckpointError naming the index and what is wrong."""
    path = prefix + INDEX_SUFFIX
    try:
        data = _fs.read_bytes(path, MAX_INDEX_BYTES)
    except OSError as exc:
        raise CheckpointError(f"TF checkpoint {prefix}: cannot read {path}: {exc}") from None
    try:
        if len(data) > MAX_INDEX_BYTES:
            raise BadIndex(f"larger than {MAX_INDEX_BYTES} bytes")
        header, raw = decode_index(data)
        _check_header(header)
    except BadIndex as exc:
        raise _damaged(prefix, f"its index {path} is not a readable TF bundle index ({exc})") from None
    del data
    shard_paths, shard_sizes = _shards(prefix, header.num_shards)
    try:
        entries: dict[str, BundleEntry] = {}
        slices: dict[str, tuple[BundleEntry, ...]] = {}
        used: set[bytes] = set()
        for key, entry in raw.items():
            if key[:1] == b"\x00":
                continue  # a slice: checked with its tensor
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise BadIndex(f"key {key[:80]!r} is not UTF-8") from None
            _check_entry(name, entry, shard_sizes, sliced=bool(entry.slices))
            if entry.slices:
                slices[name] = _check_slices(name, entry, raw, used, shard_sizes)
            entries[name] = entry
        unused = [k for k in raw if k[:1] == b"\x00" and k not in used]
        if unused:
            raise BadIndex(f"{len(unused)} slice entries belong to no tensor")
        _check_no_overlap(list(raw.values()))
    except BadIndex as exc:
        raise _damaged(prefix, str(exc)) from None
    return BundleIndex(prefix, header, entries, slices, shard_paths, shard_sizes)
