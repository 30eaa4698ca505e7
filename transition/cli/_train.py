"""`transition train CONFIG [--key=value ...] [--no-resume]` and `transition plan CONFIG [--key=value ...]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO

__all__ = ["register", "run_train", "run_plan"]


class _HelpWithConfigKeys(argparse._HelpAction):
    """`-h`: the help, ending with the config keys (computed only then: listing them imports the training layer)."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.epilog = _config_keys_help()
        super().__call__(parser, namespace, values, option_string)


def _add_parser(subparsers: argparse._SubParsersAction, name: str, **kwargs) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, add_help=False, allow_abbrev=False,
                              formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    p.add_argument("-h", "--help", action=_HelpWithConfigKeys, help="show this help (and the config keys) and exit")
    return p


def register(subparsers: argparse._SubParsersAction) -> None:
    p = _add_parser(
        subparsers, "train",
        help="train a RETURNN-style config (resumes automatically from the model's checkpoints)",
        description="Run the reference training loop on CONFIG, a RETURNN-style Python config file. Resumes from "
        "the newest good checkpoint of the config's `model` when there is one. Options override config keys, "
        "written --key=value: --num_epochs=5 --learning_rate=1e-3. Exit code 75 after a preemption (SIGTERM / "
        "SIGUSR1): requeue the job.",
    )
    p.add_argument("--no-resume", action="store_true",
                   help="refuse to start when the model already has checkpoints (instead of resuming)")
    _add_config_arguments(p, run_train)

    q = _add_parser(
        subparsers, "plan",
        help="show per pretrain epoch the net dict diff and what happens to every param, without training",
        description="For every epoch whose net dict differs from the previous one (pretraining, get_network), "
        "build the networks and run the transition as training would (no training step) and print, per param, "
        "whether it is copied, grown, reset / new, or imported by which custom_param_importer. Options override "
        "config keys, written --key=value.",
    )
    _add_config_arguments(q, run_plan)


def _config_keys_help() -> str:
    """The config keys and what they do (from `ManagerOptions` and the config's own keys)."""
    from transition.training._config import KNOWN_KEYS

    width = max(len(k) for k in KNOWN_KEYS)
    return "config keys (also as --key=value):\n" + "\n".join(
        f"  {key:<{width}}  {spec.help}" for key, spec in sorted(KNOWN_KEYS.items()))


def _add_config_arguments(parser: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int]) -> None:
    parser.usage = f"%(prog)s [-h]{' [--no-resume]' if func is run_train else ''} CONFIG [--key=value ...]"
    parser.add_argument("config", metavar="CONFIG", help="the config file (Python, RETURNN-style)")
    parser.set_defaults(func=func, extras=_check_overrides, overrides=[])


def _check_overrides(args: argparse.Namespace, extras: list[str], argv: list[str]) -> None:
    """The arguments after CONFIG that argparse does not know must be `--key=value` overrides of known config keys
    with values of the right type: anything else is a usage error (exit 2), found before TensorFlow is imported."""
    parser: argparse.ArgumentParser = args.parser
    for arg in extras:
        if not arg.startswith("--") or arg == "--":
            parser.error(f"unexpected argument {arg!r}: give one CONFIG, and config overrides as --key=value")
        if "=" not in arg:
            at = argv.index(arg) if arg in argv else -1
            value = argv[at + 1] if 0 <= at < len(argv) - 1 and not argv[at + 1].startswith("-") else None
            example = f"{arg}={value}" if value is not None else f"{arg}=VALUE"
            parser.error(f"config override {arg} needs its value after '=': write {example}")
    from transition.errors import ConfigError
    from transition.training._config import check_overrides

    try:
        check_overrides(extras)
    except ConfigError as exc:
        parser.error(str(exc))
    args.overrides = list(extras)


def _check_config_file(path: str) -> None:
    from transition.training._config import check_config_file

    check_config_file(path)  # a missing file or a directory: said before TensorFlow is imported


def run_train(args: argparse.Namespace) -> int:
    _check_config_file(args.config)
    from transition.internal._quiet import quiet_tensorflow

    quiet_tensorflow()
    from transition.training._loop import train_from_config

    try:
        mgr = train_from_config(args.config, args.overrides, resume=not args.no_resume)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume from the newest checkpoint", file=sys.stderr)
        return 130
    where = mgr.model
    if mgr.stopped:
        print(f"stopped early after epoch {mgr.epoch}; checkpoints under {where}")
    elif not mgr.epochs_trained:
        print(f"to train on, pass --num_epochs={mgr.epoch + 1} or more; checkpoints under {where}")
    else:
        print(f"done: epoch {mgr.epoch}/{mgr.num_epochs} finished ({mgr.epochs_trained} in this run); "
              f"checkpoints under {where}")
    return 0


def run_plan(args: argparse.Namespace, out: TextIO | None = None) -> int:
    _check_config_file(args.config)
    from transition.internal._quiet import quiet_tensorflow

    quiet_tensorflow()
    from transition.training._plan import plan_lines

    out = out if out is not None else sys.stdout
    for line in plan_lines(args.config, args.overrides):
        print(line, file=out)
    return 0
