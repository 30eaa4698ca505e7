"""File access for every path the project reads or writes: local paths through `os`, URLs (gs://, ram://, hdfs://,
...) through `tf.io.gfile` (TensorFlow is imported only for those), so local commands need no TensorFlow.

Reading is for untrusted files: `open_random`, `read_bytes`, `regular_size` and `open_binary(path, "rb")` open
only regular files (a FIFO, device, socket or directory named like a checkpoint file is refused before it is opened,
and checked again on the open descriptor, which is opened non-blocking so a FIFO can never block), and with
`within=directory` refuse a path whose symlinks lead out of that directory. Their errors are `NotRegularFile` /
`OutsideDirectory` (both OSError) naming the path.
"""

from __future__ import annotations

import errno
import os
import stat
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
    "NotRegularFile",
    "OutsideDirectory",
    "RandomAccessFile",
    "open_random",
    "regular_size",
    "check_within",
    "readable",
    "read_text",
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


def open_binary(path: str, mode: str = "rb", *, within: str | None = None) -> Any:
    """A binary file object: "rb" a regular file only (see the module docstring); "wb" created or truncated, but
    never through a symlink (O_NOFOLLOW) nor a file that is not regular or has other hard links."""
    if is_local(path):
        return os.fdopen(_open_regular(path, within) if mode == "rb" else _open_for_write(path), mode)
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


def _open_for_write(path: str) -> int:
    """A write descriptor of the local file `path`, truncated only after it was checked to be its own file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(local_path(path), flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutsideDirectory(f"{path} is a symlink: refusing to write through it") from None
        raise
    try:
        st = os.fstat(fd)
        _require_regular(st.st_mode, path)
        if st.st_nlink > 1:
            raise NotRegularFile(f"{path} has {st.st_nlink} hard links: refusing to overwrite it")
        os.set_blocking(fd, True)
        if st.st_size:  # truncating a new, empty file is not free: ext4 then writes it back on close
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: str, limit: int, *, within: str | None = None) -> bytes:
    """At most `limit` + 1 bytes of the (regular) file (so that a caller can tell a file larger than `limit`), read
    in steps: what is allocated follows what the file holds, not the limit."""
    chunks, got = [], 0
    with open_binary(path, within=within) as f:
        while got <= limit and (chunk := f.read(min(1 << 20, limit + 1 - got))):
            chunks.append(chunk)
            got += len(chunk)
    return b"".join(chunks)


class NotRegularFile(OSError):
    """A path that must be a regular file is a FIFO, device, socket or directory."""


class OutsideDirectory(OSError):
    """A path whose symlinks lead out of the directory it must stay in."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _require_regular(mode: int, path: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise NotRegularFile(f"{path} is {kind}, not a regular file: refusing to open it")


def check_within(path: str, directory: str) -> None:
    """Raise OutsideDirectory when `path` (after its symlinks) is not inside `directory` (after its symlinks)."""
    real = os.path.realpath(local_path(path))
    top = os.path.realpath(local_path(directory) or ".")
    if os.path.commonpath([real, top]) != top:
        raise OutsideDirectory(f"{path} is a symlink to {real}, outside {top}: refusing to follow it")


def _open_regular(path: str, within: str | None) -> int:
    """A read-only descriptor of the regular local file `path` (stat before the open, fstat after it)."""
    local = local_path(path)
    if within is not None:
        check_within(local, within)
    _require_regular(os.stat(local).st_mode, path)  # before opening: opening a device may act on it
    fd = os.open(local, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        _require_regular(os.fstat(fd).st_mode, path)  # swapped between the stat and the open
    except BaseException:
        os.close(fd)
        raise
    return fd


def regular_size(path: str, *, within: str | None = None) -> int:
    """The size of a regular file (NotRegularFile for anything else, FileNotFoundError when missing)."""
    if not is_local(path):
        return size(path)
    local = local_path(path)
    if within is not None:
        check_within(local, within)
    st = os.stat(local)
    _require_regular(st.st_mode, path)
    return st.st_size


class RandomAccessFile:
    """Reads at offsets of one regular file (local: pread on a descriptor; URLs: seek + read of a GFile).

    `size` is the file's size when it was opened; `read_into(view, offset)` fills `view` exactly or raises EOFError
    (the file is shorter than it was)."""

    def __init__(self, path: str, *, within: str | None = None):
        self.path = path
        self._fd: int | None = None
        self._gfile: Any = None
        if is_local(path):
            self._fd = _open_regular(path, within)
            self.size = os.fstat(self._fd).st_size
        else:
            self.size = size(path)
            self._gfile = _gfile().GFile(path, "rb")

    def read_into(self, view: Any, offset: int) -> None:
        view = memoryview(view).cast("B")
        done = 0
        while done < len(view):
            if self._fd is not None:
                got = os.preadv(self._fd, [view[done:]], offset + done)
            else:
                self._gfile.seek(offset + done)
                chunk = self._gfile.read(len(view) - done)
                got = len(chunk)
                view[done : done + got] = chunk
            if got <= 0:
                raise EOFError(f"{self.path} ends at byte {offset + done}, before byte {offset + len(view)} "
                               "(truncated?)")
            done += got

    def read(self, offset: int, n: int) -> bytes:
        buf = bytearray(n)
        self.read_into(buf, offset)
        return bytes(buf)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        gfile, self._gfile = self._gfile, None
        if gfile is not None:
            gfile.close()

    def __enter__(self) -> RandomAccessFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_random(path: str, *, within: str | None = None) -> RandomAccessFile:
    """A `RandomAccessFile` of the regular file `path`."""
    return RandomAccessFile(path, within=within)
