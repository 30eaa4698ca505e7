"""The structure of an HDF5 (Keras) weights file, read by h5py in a child process (`_h5.scan_h5` starts it).

HDF5's C library parses the file's metadata; a damaged file can crash it or make it allocate without bound, so
this runs in its own process, with a memory limit (RLIMIT_AS), no HDF5 plugins, and only h5py and numpy imported.
It reads no values (except compact datasets, at most 64 KiB each, which live in the metadata) and follows no link
that could leave the file: external links, soft links, external storage and virtual datasets are refused, and an
object reachable under two names (a hard link) too. It prints one JSON object: `{"ok": true, "legacy": bool,
"datasets": [...]}` (per numeric dataset: its name, path, shape, dtype and where its bytes are: contiguous offset,
chunks with their filters, or compact data) or `{"ok": false, "error": "..."}`. `_h5` checks those places against
the file's size and reads the bytes itself.

Usage: `python -c '<bootstrap>' PATH START LENGTH` (the HDF5 image is bytes START..START+LENGTH of PATH, e.g. a
member stored in a `.keras` zip), or `PATH - -` to read the image from stdin.
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import sys
from typing import Any

__all__ = ["main"]

MAX_OBJECTS = 200_000
MAX_DEPTH = 64
MAX_CHUNKS = 500_000  # a Keras file has none; each costs ~200 bytes of description here and in the parent
COMPACT_MAX = 1 << 16
MEMORY_HEADROOM = 1 << 30


class Refused(Exception):
    """The file has something this reader refuses (the message says what)."""


class _Window(io.RawIOBase):
    """Bytes `start`..`start + length` of an open file, as a read-only file object."""

    def __init__(self, fd: int, start: int, length: int):
        self._fd, self._start, self._length, self._pos = fd, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = {0: pos, 1: self._pos + pos, 2: self._length + pos}[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf: Any) -> int:
        n = max(0, min(len(buf), self._length - self._pos))
        got = os.preadv(self._fd, [memoryview(buf)[:n]], self._start + self._pos) if n else 0
        self._pos += got
        return got


def _limit_memory() -> None:
    """Allow this process `MEMORY_HEADROOM` more address space than it has now (Linux; elsewhere no limit)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
    except OSError:
        return
    limit = pages * os.sysconf("SC_PAGE_SIZE") + MEMORY_HEADROOM
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def _as_str(x: Any) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


class _Scan:
    def __init__(self, h5py: Any, np: Any):
        self.h5py, self.np = h5py, np
        self.seen: dict[Any, str] = {}  # object address -> path
        self.datasets: dict[str, Any] = {}  # path -> dataset
        self.groups: dict[str, Any] = {"": None}  # path -> group
        self.chunks = 0

    def walk(self, group: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise Refused(f"groups nested deeper than {MAX_DEPTH} at {path}")
        for key in group:
            child = f"{path}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, self.h5py.ExternalLink):
                raise Refused(f"{child} is an external link to {link.filename}:{link.path} (outside this file)")
            if isinstance(link, self.h5py.SoftLink):
                raise Refused(f"{child} is a soft link to {link.path}")
            obj = group[key]
            addr = self.h5py.h5o.get_info(obj.id).addr
            if addr in self.seen:
                raise Refused(f"{child} and {self.seen[addr]} are the same object (a hard link)")
            self.seen[addr] = child
            if len(self.seen) > MAX_OBJECTS:
                raise Refused(f"more than {MAX_OBJECTS} objects")
            if isinstance(obj, self.h5py.Dataset):
                self.datasets[child] = obj
            elif isinstance(obj, self.h5py.Group):
                self.groups[child] = obj
                self.walk(obj, child, depth + 1)

    def describe(self, name: str, path: str, ds: Any) -> dict[str, Any] | None:
        """Where the bytes of a dataset are; None for a dataset that holds no numbers (strings, references)."""
        h5d = self.h5py.h5d
        if ds.is_virtual:
            raise Refused(f"{path} is a virtual dataset (its values come from other files)")
        dcpl = ds.id.get_create_plist()
        if dcpl.get_external_count():
            raise Refused(f"{path} keeps its values in external files ({dcpl.get_external(0)[0]!r})")
        dtype = ds.dtype
        if dtype.kind not in "biufc" or dtype.fields is not None and dtype.kind != "c":
            return None
        if not ds.id.get_type().equal(self.h5py.h5t.py_create(dtype)):
            raise Refused(f"{path} has an HDF5 type that is not numpy's {dtype}")
        fill = self.np.zeros(1, dtype)
        dcpl.get_fill_value(fill)
        out: dict[str, Any] = {"name": name, "path": path, "shape": [int(d) for d in ds.shape], "dtype": dtype.str,
                               "fill": base64.b64encode(fill.tobytes()).decode()}
        layout = dcpl.get_layout()
        if layout == h5d.CONTIGUOUS:
            offset = ds.id.get_offset()
            out.update(layout="contiguous", offset=offset, size=int(ds.id.get_storage_size()))
        elif layout == h5d.COMPACT:
            nbytes = int(self.np.prod(ds.shape, dtype=self.np.int64)) * dtype.itemsize
            if nbytes > COMPACT_MAX:
                raise Refused(f"{path} is a compact dataset of {nbytes} bytes")
            data = self.np.empty(ds.shape, dtype)
            if data.size:
                ds.id.read(self.h5py.h5s.ALL, self.h5py.h5s.ALL, data)
            out.update(layout="compact", data=base64.b64encode(data.tobytes()).decode())
        elif layout == h5d.CHUNKED:
            out.update(layout="chunked", chunk_shape=list(dcpl.get_chunk()), chunks=self._chunks(path, ds),
                       filters=[[int(code), [int(v) for v in values]]
                                for code, _, values, _ in (dcpl.get_filter(i) for i in range(dcpl.get_nfilters()))])
        else:
            raise Refused(f"{path} has an unknown storage layout {layout}")
        return out

    def _chunks(self, path: str, ds: Any) -> list[list[Any]]:
        chunks: list[list[Any]] = []

        def add(info: Any) -> None:
            self.chunks += 1
            if self.chunks > MAX_CHUNKS:
                raise Refused(f"more than {MAX_CHUNKS} chunks")
            chunks.append([list(info.chunk_offset), int(info.filter_mask), int(info.byte_offset), int(info.size)])

        ds.id.chunk_iter(add)
        return chunks

    def resolve(self, path: str) -> Any:
        if path not in self.datasets:
            raise Refused(f"{path}, listed in the file's weight_names, is not a dataset of the file")
        return self.datasets[path]


def scan(root_file: Any, h5py: Any, np: Any) -> dict[str, Any]:
    """The JSON-able description of the datasets of an open Keras weights file (see the module docstring)."""
    s = _Scan(h5py, np)
    s.walk(root_file, "", 0)
    root, root_path = root_file, ""
    if "layer_names" not in root.attrs and "/model_weights" in s.groups:
        root, root_path = s.groups["/model_weights"], "/model_weights"  # a legacy full-model .h5
    legacy = "layer_names" in root.attrs
    pairs = []
    if legacy:
        for layer in list(root.attrs["layer_names"])[:MAX_OBJECTS]:
            group_path = f"{root_path}/{_as_str(layer)}"
            group = s.groups.get(group_path)
            if group is None:
                raise Refused(f"layer {_as_str(layer)!r} in layer_names is not a group of the file")
            for weight in list(group.attrs.get("weight_names", []))[:MAX_OBJECTS]:
                weight = _as_str(weight)
                name = weight[:-2] if weight.endswith(":0") else weight
                pairs.append((name, f"{group_path}/{weight}"))
    else:
        pairs = [("/".join(p for p in path.strip("/").split("/") if p != "layers"), path) for path in s.datasets]
    datasets = []
    for name, path in pairs:
        described = s.describe(name, path, s.resolve(path))
        if described is not None:
            datasets.append(described)
    for path, ds in s.datasets.items():  # the others, never read, must not point outside the file either
        if ds.is_virtual or ds.id.get_create_plist().get_external_count():
            raise Refused(f"{path} keeps its values outside this file")
    return {"ok": True, "legacy": legacy, "datasets": datasets}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        path, start, length = args
        import h5py
        import numpy as np

        if start == "-":
            image: Any = io.BytesIO(sys.stdin.buffer.read())
        else:
            image = _Window(os.open(path, os.O_RDONLY | os.O_NONBLOCK), int(start), int(length))
        _limit_memory()
        with h5py.File(image, "r") as f:
            result = scan(f, h5py, np)
    except Refused as exc:
        result = {"ok": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - h5py's errors for damaged files (OSError, KeyError, ...), MemoryError
        text = str(exc).strip().splitlines()
        result = {"ok": False, "error": f"{type(exc).__name__}: {text[0] if text else ''}", "damaged": True}
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
