"""The `transition` command line: a dispatcher over the sub-commands of the other modules of `cli`.

Each of them exposes `register(subparsers)`, which adds its sub-commands and sets `func` (taking the parsed
arguments, returning the exit code) as the parser default.
"""

from __future__ import annotations

import argparse
import os
import sys

from transition.cli._ckpt import register as _register_ckpt
from transition.cli._status import register as _register_status
from transition.cli._train import register as _register_train

__all__ = ["main"]

_REGISTER = (_register_ckpt, _register_status, _register_train)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transition",
        description="Epoch transitions, param loading and exact resume for TensorFlow / Keras 3 training jobs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _REGISTER:
        register(sub)
    return parser


def _exit_on_preemption_during_start_up() -> None:
    """Until training installs its own handler, SIGTERM / SIGUSR1 exit at once with the preemption exit code
    (nothing is trained yet, so nothing is lost), so a job script that requeues on that code never loses the job
    to a signal that arrives while TensorFlow and the config load."""
    import signal

    from transition.training._preempt import PREEMPTED_EXIT_CODE

    def exit_preempted(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        print(f"preempted ({name}) while starting, before any training: nothing to save; "
              f"exiting with code {PREEMPTED_EXIT_CODE}", file=sys.stderr)
        raise SystemExit(PREEMPTED_EXIT_CODE)

    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, exit_preempted)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from transition.errors import TransitionError

    if args.command == "train":
        _exit_on_preemption_during_start_up()
    try:
        return int(args.func(args) or 0)
    except TransitionError as exc:
        print(f"transition {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # stdout piped into e.g. `head`, which stopped reading: no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail too
        return 1
    except OSError as exc:  # a file system failure outside the checked paths (read-only, disk full): one line
        print(f"transition {args.command}: error: {exc}", file=sys.stderr)
        return 1
