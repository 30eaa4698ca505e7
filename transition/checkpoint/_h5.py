"""Keras HDF5 weights (`.weights.h5`, legacy `.h5`, the `model.weights.h5` inside a `.keras`), read with bounds.

`scan_h5(image)` has `_h5_scan` (h5py, in a child process: a crash or runaway allocation inside HDF5 cannot take
this process with it) describe the file, then checks the description against the image's real size before anything
is allocated: dims and dtypes sane; contiguous data, compact data and every chunk inside the image, of the size its
shape and filters allow; no two datasets or chunks sharing bytes; only the deflate, shuffle and fletcher32 filters;
what compression or never-written (fill value) storage needs beyond the stored bytes counted against the inflate
allowance (`_limits`). `read_h5_dataset` then reads the bytes itself (no HDF5 in this process): contiguous data
straight into the array, chunks inflated in bounded steps (zlib) and unshuffled. HDF5 files carry no checksums
of their values (fletcher32 chunk checksums are skipped, not checked): damage in the values cannot be seen.
"""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
import zlib
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from transition.checkpoint._limits import InflateBudget
from transition.errors import CheckpointError
from transition.internal import _fs
from transition.internal._aligned import aligned_empty

__all__ = ["H5Image", "H5Dataset", "scan_h5", "read_h5_dataset", "SCAN_TIMEOUT"]

SCAN_TIMEOUT = 300.0  # seconds for the child to describe a file
_MAX_DIMS = 32
_MAX_ELEMENTS = 1 << 62
_DEFLATE, _SHUFFLE, _FLETCHER32 = 1, 2, 3
_MAX_OUTPUT = 256 << 20  # bytes of JSON from the child (its limits on objects and chunks keep it far below)


class H5Image:
    """Where the bytes of an HDF5 file are: `length` bytes from `start` of an open file (`source`), or `data`
    (an inflated zip member). `path` names it in messages."""

    def __init__(self, path: str, *, source: _fs.RandomAccessFile | None = None, start: int = 0,
                 length: int | None = None, data: Any = None):
        self.path, self._source, self.start, self._data = path, source, start, data
        self.length = len(data) if data is not None else (length if length is not None else source.size)

    def read_into(self, view: Any, offset: int) -> None:
        view = memoryview(view).cast("B")
        if offset < 0 or offset + len(view) > self.length:
            raise ValueError(f"bytes {offset}..{offset + len(view)} lie beyond the end of the file ({self.length})")
        if self._data is not None:
            view[:] = memoryview(self._data)[offset : offset + len(view)]
        else:
            self._source.read_into(view, self.start + offset)

    def read(self, offset: int, n: int) -> bytes:
        buf = bytearray(n)
        self.read_into(buf, offset)
        return bytes(buf)


@attrs.frozen
class H5Dataset:
    """A numeric dataset: its name (Keras naming), HDF5 path, shape, dtype (the file's byte order) and storage."""

    name: str
    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    layout: str  # "contiguous" (offset None: never written), "chunked" or "compact"
    fill: bytes
    offset: int | None = None
    data: bytes | None = None
    chunk_shape: tuple[int, ...] = ()
    chunks: tuple[tuple[tuple[int, ...], int, int, int], ...] = ()  # (chunk offset, filter mask, at, size)
    filters: tuple[int, ...] = ()

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def chunk_nbytes(self) -> int:
        return math.prod(self.chunk_shape) * self.dtype.itemsize


def _bootstrap() -> list[str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = f"import sys; sys.path.insert(0, {root!r}); from transition.checkpoint._h5_scan import main; main()"
    return [sys.executable, "-c", code]


def _run_scan(image: H5Image) -> dict[str, Any]:
    if image._data is not None or not _fs.is_local(image._source.path):  # the child reads the bytes from stdin
        args, stdin = ["-", "-", "-"], bytes(image._data) if image._data is not None else image.read(0, image.length)
    else:
        args, stdin = [_fs.local_path(image._source.path), str(image.start), str(image.length)], None
    env = dict(os.environ, HDF5_PLUGIN_PRELOAD="::", MALLOC_ARENA_MAX="2")
    proc = subprocess.Popen(_bootstrap() + args, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        out, _ = proc.communicate(stdin, timeout=SCAN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise CheckpointError(f"{image.path}: HDF5 took more than {SCAN_TIMEOUT:.0f} s to read the file's structure "
                              "(damaged, or a loop in it); restore it or re-save it with model.save_weights") from None
    if proc.returncode != 0 or len(out) > _MAX_OUTPUT:
        raise CheckpointError(f"{image.path}: HDF5 failed reading the file's structure (exit status "
                              f"{proc.returncode}): the file is damaged; restore it or re-save it with "
                              "model.save_weights")
    try:
        result = json.loads(out)
    except ValueError:
        raise CheckpointError(f"{image.path}: the HDF5 reader gave no result; the file is damaged") from None
    if not result.get("ok"):
        what = "damaged" if result.get("damaged") else "refused"
        raise CheckpointError(f"cannot read {image.path} as a Keras HDF5 weights file ({what}): {result.get('error')}. "
                              "Re-save it with model.save_weights (plain datasets inside the file)")
    return result


class _Bad(ValueError):
    pass


def _ints(value: Any, what: str, n: int | None = None) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                              for v in value) or (n is not None and len(value) != n):
        raise _Bad(f"bad {what}")
    return tuple(value)


def _dataset(raw: dict[str, Any]) -> H5Dataset:
    shape = _ints(raw.get("shape"), "shape")
    if len(shape) > _MAX_DIMS or math.prod(shape) > _MAX_ELEMENTS:
        raise _Bad(f"shape {list(shape)}")
    dtype = np.dtype(raw["dtype"])
    if dtype.kind not in "biufc" or dtype.hasobject:
        raise _Bad(f"dtype {dtype}")
    fill = base64.b64decode(raw["fill"])
    common = dict(name=str(raw["name"]), path=str(raw["path"]), shape=shape, dtype=dtype, fill=fill)
    layout = raw.get("layout")
    if layout == "contiguous":
        offset = raw.get("offset")
        ds = H5Dataset(layout=layout, offset=None if offset is None else _ints([offset], "offset")[0], **common)
        if offset is not None and raw.get("size") != ds.nbytes:
            raise _Bad(f"its storage holds {raw.get('size')} bytes, its shape needs {ds.nbytes}")
        return ds
    if layout == "compact":
        return H5Dataset(layout=layout, data=base64.b64decode(raw["data"]), **common)
    if layout == "chunked":
        chunk_shape = _ints(raw.get("chunk_shape"), "chunk shape", len(shape))
        if not all(chunk_shape) or math.prod(chunk_shape) > _MAX_ELEMENTS:
            raise _Bad(f"chunk shape {list(chunk_shape)}")
        filters = []
        for code, _values in raw.get("filters", []):
            if code not in (_DEFLATE, _SHUFFLE, _FLETCHER32):
                raise _Bad(f"HDF5 filter {code} (only deflate, shuffle and fletcher32 are read)")
            filters.append(code)
        chunks = tuple((_ints(c[0], "chunk offset", len(shape)), _ints([c[1]], "mask")[0],
                        *_ints(c[2:4], "chunk place", 2)) for c in raw.get("chunks", []))
        return H5Dataset(layout=layout, chunk_shape=chunk_shape, chunks=chunks, filters=tuple(filters), **common)
    raise _Bad(f"layout {layout!r}")


def _check(ds: H5Dataset, image: H5Image, budget: InflateBudget, ranges: list[tuple[int, int, str]]) -> None:
    if len(ds.fill) != ds.dtype.itemsize:
        raise _Bad("a bad fill value")
    if ds.layout == "compact":
        if len(ds.data) != ds.nbytes:
            raise _Bad(f"its compact data holds {len(ds.data)} bytes, its shape needs {ds.nbytes}")
    elif ds.layout == "contiguous":
        if ds.offset is None:
            budget.add(f"dataset {ds.path} (never written: its fill value)", ds.nbytes, 0)
        else:
            ranges.append((ds.offset, ds.offset + ds.nbytes, ds.path))
    else:
        _check_chunks(ds, budget, ranges)
    for start, end, _ in ranges:
        if end > image.length:
            raise _Bad(f"its bytes {start}..{end} lie beyond the end of the file ({image.length} bytes; truncated?)")


def _check_chunks(ds: H5Dataset, budget: InflateBudget, ranges: list[tuple[int, int, str]]) -> None:
    seen = set()
    stored = 0
    for offset, mask, at, size in ds.chunks:
        if offset in seen or any(o % c or o >= d for o, c, d in zip(offset, ds.chunk_shape, ds.shape)):
            raise _Bad(f"a chunk at {list(offset)} that does not fit its shape and chunk shape")
        seen.add(offset)
        active = [f for i, f in enumerate(ds.filters) if not mask & (1 << i)]
        expected = ds.chunk_nbytes + (4 if _FLETCHER32 in active else 0)
        if _DEFLATE not in active and size != expected:
            raise _Bad(f"a chunk of {size} bytes, expected {expected}")
        if _DEFLATE in active:
            budget.add(f"a chunk of dataset {ds.path}", ds.chunk_nbytes, size)
        stored += size
        ranges.append((at, at + size, ds.path))
    budget.add(f"dataset {ds.path}", ds.nbytes, stored)


def scan_h5(image: H5Image, budget: InflateBudget) -> tuple[bool, list[H5Dataset]]:
    """(legacy Keras 2 layout?, the numeric datasets) of an HDF5 image, checked (see the module docstring)."""
    result = _run_scan(image)
    datasets, ranges = [], []
    for raw in result.get("datasets", []):
        where = raw.get("path") if isinstance(raw, dict) else None
        try:
            ds = _dataset(raw)
            _check(ds, image, budget, ranges)
        except (_Bad, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"cannot read {image.path} as a Keras HDF5 weights file: dataset {where}: {exc}; "
                                  "the file is damaged, restore it or re-save it with model.save_weights") from None
        datasets.append(ds)
    ranges.sort()
    for (_, end, path), (start, _, other) in zip(ranges, ranges[1:]):
        if start < end:
            raise CheckpointError(f"{image.path} is damaged: datasets {path} and {other} share bytes {start}..{end}")
    return bool(result.get("legacy")), datasets


def _unfilter(raw: bytes, filters: Sequence[int], mask: int, nbytes: int, itemsize: int) -> bytes:
    data = raw
    for i in reversed(range(len(filters))):
        if mask & (1 << i):
            continue
        if filters[i] == _FLETCHER32:
            if len(data) < 4:
                raise ValueError("a chunk too short for its fletcher32 checksum")
            data = data[:-4]
        elif filters[i] == _DEFLATE:
            inflater = zlib.decompressobj()
            data = inflater.decompress(data, nbytes + 1)
            if len(data) > nbytes or inflater.unconsumed_tail:
                raise ValueError(f"a chunk inflates to more than its {nbytes} bytes")
        elif filters[i] == _SHUFFLE and itemsize > 1:
            whole = len(data) // itemsize * itemsize
            planes = np.frombuffer(data, np.uint8, whole).reshape(itemsize, -1)
            data = planes.T.tobytes() + data[whole:]
    if len(data) != nbytes:
        raise ValueError(f"a chunk holds {len(data)} bytes, its shape needs {nbytes}")
    return data


def _read_chunks(image: H5Image, ds: H5Dataset) -> np.ndarray:
    out = np.empty(ds.shape, ds.dtype)
    if len(ds.chunks) < math.prod(-(-d // c) for d, c in zip(ds.shape, ds.chunk_shape)):
        out[...] = np.frombuffer(ds.fill, ds.dtype)[0]  # chunks never written hold the fill value
    for offset, mask, at, size in ds.chunks:
        data = _unfilter(image.read(at, size), ds.filters, mask, ds.chunk_nbytes, ds.dtype.itemsize)
        chunk = np.frombuffer(data, ds.dtype).reshape(ds.chunk_shape)
        place = tuple(slice(o, min(o + c, d)) for o, c, d in zip(offset, ds.chunk_shape, ds.shape))
        out[place] = chunk[tuple(slice(0, p.stop - p.start) for p in place)]
    return out


def read_h5_dataset(image: H5Image, ds: H5Dataset) -> np.ndarray:
    """The values of a checked dataset, in native byte order (bools as 0 / 1)."""
    if ds.layout == "compact":
        out = np.frombuffer(ds.data, ds.dtype).reshape(ds.shape).copy()
    elif ds.layout == "chunked":
        out = _read_chunks(image, ds)
    elif ds.offset is None:
        out = np.full(ds.shape, np.frombuffer(ds.fill, ds.dtype)[0])
    else:
        buf = aligned_empty(ds.nbytes)
        image.read_into(buf, ds.offset)
        out = buf.view(ds.dtype).reshape(ds.shape)
    if ds.dtype.kind == "b":
        return out.view(np.uint8) != 0
    return out if ds.dtype.isnative else out.astype(ds.dtype.newbyteorder("="))
