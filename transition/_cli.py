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

from transition._quiet import quiet_tensorflow

_COMMAND_MODULES = ("_cli_ckpt", "_cli_status", "_cli_train")


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
    except BrokenPipeError:  # stdout piped into e.g. `head`, which stopped reading: no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail too
        return 1
