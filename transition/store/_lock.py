"""An exclusive lock on a model (`{model}.lock`), so that two training processes never write one model at once.

`fcntl.flock` on a local lock file: the kernel releases it when the holding process dies (even by SIGKILL), so a
killed job never leaves the model stuck; the pid and host of the holder are written into the file for the error
message. Limits: flock works on local disks; on NFS (Linux >= 2.6.12 maps it to POSIX locks) it works across
hosts only with working NFS locking, and a crashed client's lock lasts until the server's lease expires; on object
stores (gs://, s3://) there is no lock at all - `DirectoryLock` refuses such paths, and the store then runs without
a lock (with a warning): make sure yourself that one job writes a model.
"""

from __future__ import annotations

import json
import os
import socket
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
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        self._fd = fd

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
