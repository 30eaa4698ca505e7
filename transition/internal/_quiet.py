"""Import TensorFlow without its start-up log noise; imported first by the package."""

from __future__ import annotations

import os
import sys

__all__ = ["quiet_tensorflow"]


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up log noise (C++ logs, CUDA probes, absl warnings)."""
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
        os.dup2(devnull, 2)
        import tensorflow as tf  # noqa: F401

        tf.get_logger().setLevel("ERROR")
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
