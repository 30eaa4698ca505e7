"""Import TensorFlow without its start-up log noise (`quiet_tensorflow`), and reach the real stderr meanwhile.

While TensorFlow imports, fd 2 points at /dev/null (its C++ start-up logs bypass Python); `real_stderr_fd()` is
the descriptor of the real stderr then, so that a line that must be seen (e.g. a signal handler's) still is.
"""

from __future__ import annotations

import os
import sys

__all__ = ["quiet_tensorflow", "real_stderr_fd", "write_stderr_line"]

_saved_stderr: int | None = None  # the real stderr while fd 2 is silenced


def real_stderr_fd() -> int:
    """The descriptor of the real stderr: 2, or its saved copy while `quiet_tensorflow` silences fd 2."""
    return _saved_stderr if _saved_stderr is not None else 2


def write_stderr_line(line: str) -> None:
    """Write one line to the real stderr (also while TensorFlow's import silences fd 2); never raises."""
    try:
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - also "reentrant call" (a signal handler interrupting a write to stderr)
        pass
    data = (line.rstrip("\n") + "\n").encode("utf-8", "replace")
    try:
        while data:
            data = data[os.write(real_stderr_fd(), data):]
    except OSError:
        pass


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up log noise (C++ logs, CUDA probes, absl warnings)."""
    global _saved_stderr
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        import tensorflow  # noqa: F401
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        _saved_stderr = saved
        os.dup2(devnull, 2)
        import tensorflow as tf  # noqa: F401

        tf.get_logger().setLevel("ERROR")
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        _saved_stderr = None
        os.close(saved)
        os.close(devnull)
