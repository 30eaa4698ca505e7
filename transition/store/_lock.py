"""An exclusive lock on a model (`{model}.lock`), so that two training processes never write one model at once.

`fcntl.flock` on a local lock file: the kernel releases it when the holding process dies (even by SIGKILL), so a
killed job never leaves the model stuck; the pid and host of the holder are written into the file for the error
message. Limits: flock works on local disks; on NFS (Linux >= 2.6.12 maps it to POSIX locks) it works across
hosts only with working NFS locking, and a crashed client's lock lasts until the server's lease expires; on object
stores (gs://, s3://) there is no lock at all - `DirectoryLock` refuses such paths, and the store then runs without
a lock (with a warning): make sure yourself that one job writes a model.

The lock file is opened with O_NOFOLLOW (a symlink named like it is refused, never followed) and must be a regular
file without other hard links: only then is it truncated, so locking never truncates anything but the lock itself.
A directory that cannot be written (read-only, full disk) is one CheckpointError naming the path.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import time

from transition.checkpoint._naming import LOCK_SUFFIX
from transition.errors import CheckpointError
from transition.internal import _fs

__all__ = ["DirectoryLock", "is_lockable"]


def is_lockable(model: str) -> bool:
    """Whether `model` is on a local file system (where `DirectoryLock` works)."""
    return _fs.is_local(model)


class DirectoryLock:
    """`with DirectoryLock(model):` holds `{model}.lock`; a second holder gets a CheckpointError naming the first."""

    def __init__(self, model: str):
        if not is_lockable(model):
            raise CheckpointError(f"cannot lock {model}: locks need a local file system (flock); see transition.store._lock")
        self.path = _fs.local_path(model) + LOCK_SUFFIX
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        import fcntl

        if self._fd is not None:
            return
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise CheckpointError(
                f"model {self.path[: -len(LOCK_SUFFIX)]} is in use by another process ({holder}; lock file "
                f"{self.path}): stop that job first, or use another model path"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise CheckpointError(f"cannot lock {self.path}: {exc} (does this file system support flock?)") from exc
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode()
        try:
            os.ftruncate(fd, 0)
            done = 0
            while done < len(info):  # a short write (disk nearly full) is retried: the next one says why
                done += os.pwrite(fd, info[done:], done)
        except OSError as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise CheckpointError(f"cannot write the lock file {self.path}: {exc.strerror or exc} (is the disk "
                                  "full?)") from None
        self._fd = fd

    def _open(self) -> int:
        """The lock file's descriptor: created if missing, never through a symlink, only a regular file."""
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
            try:  # a device is refused before it is opened (opening one may act on it)
                mode = os.lstat(self.path).st_mode
            except FileNotFoundError:
                mode = stat.S_IFREG
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                raise CheckpointError(f"the lock file {self.path} is not a regular file; refusing to open it: remove "
                                      "it (the lock is created anew)")
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except CheckpointError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                why = "it is a symlink, which the lock never follows; remove it"
            elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                why = f"{exc.strerror}: the model's directory {directory} cannot be written (read-only?)"
            else:
                why = exc.strerror or str(exc)
            raise CheckpointError(f"cannot create or open the lock file {self.path}: {why}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = "is not a regular file" if not stat.S_ISREG(st.st_mode) else f"has {st.st_nlink} hard links"
            raise CheckpointError(f"the lock file {self.path} {what}; refusing to use it: remove it (the lock is "
                                  "created anew)")
        return fd

    def release(self) -> None:
        """Release the lock (the file stays: removing it would race with a process that is opening it)."""
        import fcntl

        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        data = os.pread(fd, 4096, 0)
        info = json.loads(data.decode())
        return f"pid {int(info['pid'])} on host {str(info['host'])[:100]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"
