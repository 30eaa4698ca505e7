"""The `transition` command line: a dispatcher over the sub-commands of the other modules of `cli`.

Each of them exposes `register(subparsers)`, which adds its sub-commands and sets `func` (taking the parsed
arguments, returning the exit code) as the parser default; a sub-command that takes arguments argparse does not
know (`train`'s `--key=value` overrides) sets `extras` too: it gets them (and its parser, for usage errors) and
returns the checked list. Usage errors exit 2 (argparse's code) before anything heavy is imported; TensorFlow is
imported only by the sub-commands that need it.
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
_INTERRUPTED_EXIT_CODE = 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transition",
        description="Epoch transitions, param loading and exact resume for TensorFlow / Keras 3 training jobs.",
        epilog="Exit codes: 0 done, 1 an error, 2 bad usage, 75 preempted (requeue), 130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _REGISTER:
        register(sub)
    for sub_parser in sub.choices.values():  # for usage errors found after parsing
        sub_parser.set_defaults(parser=sub_parser)
    parser.set_defaults(commands=list(sub.choices))
    return parser


def _exit_now(line: str, code: int) -> None:
    """Flush what was printed, write `line` to the real stderr, end the process (no exception: see below)."""
    from transition.internal._quiet import write_stderr_line

    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - also "reentrant call" (this handler interrupted a write to stdout)
        pass
    write_stderr_line(line)
    os._exit(code)


def _die_as_by_default(signum: int) -> None:
    """The signal's default action (after training gave the signals back, or where it runs without a handler)."""
    import signal

    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _exit_on_signals_during_start_up() -> dict[int, object]:
    """Until training takes over the signals, SIGTERM / SIGUSR1 exit at once with the preemption exit code and Ctrl-C
    with 130 (nothing is trained yet, so nothing is lost), so a job script that requeues on that code never loses the
    job to a signal that arrives while TensorFlow and the config load. The exit is `os._exit` after the line: an
    exception raised in a signal handler during an import can turn into an ImportError that TensorFlow's import
    catches and goes on. The line reaches the real stderr also while TensorFlow's import has fd 2 silenced. In a
    multi-worker job (TF_CONFIG) SIGTERM / SIGUSR1 are held for the manager instead, so that all workers agree on
    them at the first step (`_preempt.hold_until_installed`); a second one exits at once."""
    import signal

    from transition.internal._quiet import write_stderr_line
    from transition.training._distribute import workers_in_tf_config
    from transition.training._preempt import PREEMPTED_EXIT_CODE, SIGNALS, hold_until_installed, training_started

    def exit_preempted(signum: int, frame: object) -> None:
        if training_started():  # the manager gave the signals back (training ended) or runs without a handler
            _die_as_by_default(signum)
            return
        _exit_now(f"transition train: preempted ({signal.Signals(signum).name}) while starting, before any "
                  f"training: nothing to save; exiting with code {PREEMPTED_EXIT_CODE} (run the same command again)",
                  PREEMPTED_EXIT_CODE)

    def interrupted(signum: int, frame: object) -> None:
        if training_started():  # Ctrl-C in training: KeyboardInterrupt, which the loop turns into its line
            signal.default_int_handler(signum, frame)
        _exit_now("transition train: interrupted while starting, before any training", _INTERRUPTED_EXIT_CODE)

    def held(signum: int, count: int) -> None:
        name = signal.Signals(signum).name
        if training_started():
            _die_as_by_default(signum)
        elif count > 1:  # e.g. a worker stuck waiting for a lost peer: the scheduler's second signal ends it
            _exit_now(f"transition train: a second signal ({name}) while a multi-worker job starts: exiting now "
                      f"with code {PREEMPTED_EXIT_CODE}; the other workers stop with an error", PREEMPTED_EXIT_CODE)
        else:
            write_stderr_line(f"transition train: preempted ({name}) while a multi-worker job starts: every worker "
                              f"saves after the first step and exits with code {PREEMPTED_EXIT_CODE}")

    previous = {sig: signal.getsignal(sig) for sig in (*SIGNALS, signal.SIGINT)}
    if workers_in_tf_config() > 1:  # the others would wait for this worker in a collective: agree at the first step
        hold_until_installed(held)
    else:
        for sig in SIGNALS:
            signal.signal(sig, exit_preempted)
    if previous[signal.SIGINT] is signal.default_int_handler:  # not where a caller chose its own
        signal.signal(signal.SIGINT, interrupted)
    return previous


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse; arguments argparse does not know go to the sub-command's `extras` check, else are a usage error."""
    args, extras = parser.parse_known_args(argv)
    check = getattr(args, "extras", None)
    if check is not None:
        check(args, extras, argv)
    elif extras:
        sub = getattr(args, "parser", parser)
        sub.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = _exit_on_signals_during_start_up() if argv[:1] == ["train"] else {}
    try:
        return _run(argv)
    except KeyboardInterrupt:  # Ctrl-C while starting (e.g. while TensorFlow imports): one line, no traceback
        command = f" {argv[0]}" if argv and not argv[0].startswith("-") else ""
        print(f"\ntransition{command}: interrupted", file=sys.stderr)
        return _INTERRUPTED_EXIT_CODE
    finally:  # main() called in a process that goes on (tests, scripts): its handlers back, no held signal kept
        import signal

        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if previous:
            from transition.training._preempt import end_start_up

            end_start_up()


def _run(argv: list[str]) -> int:
    parser = _build_parser()
    try:  # argparse exits (2 on bad usage, 0 after --help): returned as the exit code
        args = _parse(parser, argv)
        if not getattr(args, "func", None):
            parser.error(f"give a COMMAND, one of: {', '.join(args.commands)} (`transition COMMAND --help` for "
                         "its options)")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    from transition.errors import TransitionError

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
