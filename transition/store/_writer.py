"""A background writer: runs one write job at a time on a thread; its error surfaces at the next submit, wait or close.

The thread is not a daemon, so the interpreter waits for a running write at exit; an error that nobody collected
(no `wait()` / `close()`) is logged at exit, never dropped silently.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from transition.errors import CheckpointError

__all__ = ["BackgroundWriter"]

log = logging.getLogger("transition")


class BackgroundWriter:
    """One job at a time. `submit` waits for the previous job and raises its error before starting the next."""

    def __init__(self, name: str = "transition-checkpoint-writer"):
        self._name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._what = ""
        self._closed = False
        atexit.register(_report_at_exit, weakref.ref(self))

    def submit(self, job: Callable[[], Any], what: str) -> None:
        """Run `job()` on the writer thread; `what` names it in error messages (e.g. the checkpoint prefix)."""
        if self._closed:
            raise CheckpointError(f"cannot save {what}: the checkpoint writer is closed")
        self.wait()
        self._what = what
        self._thread = threading.Thread(target=self._run, args=(job,), name=self._name, daemon=False)
        self._thread.start()

    def _run(self, job: Callable[[], Any]) -> None:
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller at wait()
            self._error = exc

    def wait(self) -> None:
        """Wait for the running job; raise its error (as CheckpointError naming the job) if it failed."""
        thread = self._thread
        if thread is not None:
            thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            if isinstance(error, CheckpointError):
                raise CheckpointError(f"background save of {self._what} failed: {error}") from error
            raise CheckpointError(f"background save of {self._what} failed: {type(error).__name__}: {error}") from error

    def close(self) -> None:
        """Wait for the running job (raising its error) and refuse further jobs."""
        self._closed = True
        self.wait()


def _report_at_exit(ref: weakref.ref) -> None:
    writer = ref()
    if writer is None:
        return
    try:
        writer.wait()
    except CheckpointError as exc:
        log.error("%s (the error was never collected: call CheckpointStore.wait() or close())", exc)
        import sys

        print(f"transition: error: {exc}", file=sys.stderr)
