"""The `transition` command line: a dispatcher over the sub-commands of the `_cli_*` modules.

Each `_cli_*` module exposes `register(subparsers)`, which adds its sub-commands and sets `func` (taking the parsed
arguments, returning the exit code) as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["main", "quiet_tensorflow"]

_COMMAND_MODULES = ("_cli_ckpt", "_cli_status", "_cli_train")


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


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transition",
        description="Epoch transitions, param loading and exact resume for TensorFlow / Keras 3 training jobs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"transition.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"transition.{module_name}":
                continue  # that group of commands is not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from transition._errors import TransitionError

    try:
        return int(args.func(args) or 0)
    except TransitionError as exc:
        print(f"transition {args.command}: error: {exc}", file=sys.stderr)
        return 1
