"""File access for every path the project reads or writes: local paths through `os`, URLs (gs://, ram://, hdfs://,
...) through `tf.io.gfile` (TensorFlow is imported only for those), so local commands need no TensorFlow."""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "is_local",
    "local_path",
    "exists",
    "isfile",
    "isdir",
    "listdir",
    "size",
    "remove",
    "rename",
    "makedirs",
    "read_bytes",
    "read_text",
    "open_binary",
    "readable",
]


def is_local(path: str) -> bool:
    """Whether `path` is on the local file system (plain or file://): fsync and flock work there."""
    return "://" not in path or path.startswith("file://")


def local_path(path: str) -> str:
    """`path` without a file:// scheme."""
    return path[len("file://") :] if path.startswith("file://") else path


def _gfile() -> Any:
    from transition.internal._quiet import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    return tf.io.gfile


def exists(path: str) -> bool:
    return os.path.exists(local_path(path)) if is_local(path) else bool(_gfile().exists(path))


def isfile(path: str) -> bool:
    if is_local(path):
        return os.path.isfile(local_path(path))
    gfile = _gfile()
    return bool(gfile.exists(path)) and not gfile.isdir(path)


def isdir(path: str) -> bool:
    return os.path.isdir(local_path(path)) if is_local(path) else bool(_gfile().isdir(path))


def listdir(directory: str) -> list[str]:
    """The names in `directory` (without a trailing '/'); raises OSError (FileNotFoundError) like os.listdir."""
    if is_local(directory):
        return os.listdir(local_path(directory) or ".")
    gfile = _gfile()
    if not gfile.isdir(directory):
        raise FileNotFoundError(f"no directory {directory}")
    return [name.rstrip("/") for name in gfile.listdir(directory)]


def size(path: str) -> int:
    """The size of the file in bytes; OSError (FileNotFoundError) when it is missing."""
    if is_local(path):
        return os.stat(local_path(path)).st_size
    try:
        return int(_gfile().stat(path).length)
    except Exception as exc:  # noqa: BLE001 - tf.errors.NotFoundError
        raise FileNotFoundError(f"{path}: {exc}") from exc


def remove(path: str) -> bool:
    """Remove a file; False where it was not there (or could not be removed): best effort."""
    try:
        if is_local(path):
            os.remove(local_path(path))
        else:
            _gfile().remove(path)
        return True
    except Exception:  # noqa: BLE001 - FileNotFoundError, tf.errors.NotFoundError, ...
        return False


def rename(src: str, dst: str) -> None:
    """Rename `src` to `dst`, replacing `dst` (atomic on local file systems)."""
    if is_local(src) and is_local(dst):
        os.replace(local_path(src), local_path(dst))
    else:
        _gfile().rename(src, dst, overwrite=True)


def makedirs(directory: str) -> None:
    if is_local(directory):
        os.makedirs(local_path(directory) or ".", exist_ok=True)
    else:
        _gfile().makedirs(directory)


def open_binary(path: str, mode: str = "rb") -> Any:
    """A binary file object ("rb" or "wb"; a URL's writer counts its position for `tell()`, e.g. for zipfile)."""
    if is_local(path):
        return open(local_path(path), mode)  # noqa: SIM115 - the caller closes it
    f = _gfile().GFile(path, mode)
    return _CountingWriter(f) if "w" in mode else f


class _CountingWriter:
    """A GFile writer whose `write` returns the byte count and whose `tell` counts (some file systems, e.g. ram://,
    cannot tell); no `seek`, so zipfile writes it as a stream."""

    def __init__(self, f: Any) -> None:
        self._f, self._pos = f, 0

    def write(self, data: Any) -> int:
        data = bytes(data)
        self._f.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _CountingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def readable(path: str) -> Any:
    """What a library that opens files itself (zipfile, h5py, numpy) is given: the local path, or for a URL an open
    binary, seekable file object (`tf.io.gfile.GFile`; the caller closes it)."""
    return local_path(path) if is_local(path) else _gfile().GFile(path, "rb")


def read_text(path: str) -> str:
    """The whole file as UTF-8 text (a config or a JSON spec; OSError / FileNotFoundError when it is missing)."""
    if is_local(path):
        with open(local_path(path), encoding="utf-8") as f:
            return f.read()
    if not isfile(path):
        raise FileNotFoundError(f"no file {path}")
    with _gfile().GFile(path, "rb") as f:
        return f.read().decode("utf-8")


def read_bytes(path: str, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the file (so that a caller can tell a file larger than `limit`)."""
    with open_binary(path) as f:
        return f.read(limit + 1)
