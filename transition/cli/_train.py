"""`transition train CONFIG [--key=value ...] [--no-resume]` and `transition plan CONFIG [--key=value ...]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO

__all__ = ["register", "run_train", "run_plan"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a RETURNN-style config (resumes automatically from the model's checkpoints)",
        description="Run the reference training loop on CONFIG, a RETURNN-style Python config file. Resumes from "
        "the newest good checkpoint of the config's `model` when there is one. Options override config keys: "
        "--num_epochs=5 --learning_rate=1e-3. Exit code 75 after a preemption (SIGTERM / SIGUSR1): requeue the job.",
    )
    p.epilog = _config_keys_help()
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--no-resume", action="store_true",
                   help="refuse to start when the model already has checkpoints (instead of resuming)")
    _add_config_arguments(p, run_train)

    q = subparsers.add_parser(
        "plan",
        help="show per pretrain epoch the net dict diff and what happens to every param, without training",
        description="For every epoch whose net dict differs from the previous one (pretraining, get_network), "
        "build the networks and run the transition as training would (no training step) and print, per param, "
        "whether it is copied, grown, reset / new, or imported by which custom_param_importer.",
    )
    _add_config_arguments(q, run_plan)


def _config_keys_help() -> str:
    """The config keys and what they do (from `ManagerOptions` and the config's own keys)."""
    from transition.training._config import KNOWN_KEYS

    width = max(len(k) for k in KNOWN_KEYS)
    return "config keys (also as --key=value):\n" + "\n".join(
        f"  {key:<{width}}  {spec.help}" for key, spec in sorted(KNOWN_KEYS.items()))


def _add_config_arguments(parser: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int]) -> None:
    parser.add_argument("config", metavar="CONFIG", help="the config file (Python, RETURNN-style)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="--key=value",
                        help="override a config option (value as a Python literal, else a string)")
    parser.set_defaults(func=func)


def _split_overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    for arg in getattr(args, "overrides", None) or []:
        if arg == "--no-resume":
            args.no_resume = True
        else:
            overrides.append(arg)
    return overrides


def run_train(args: argparse.Namespace) -> int:
    from transition.internal._quiet import quiet_tensorflow

    quiet_tensorflow()
    from transition.training._loop import train_from_config

    overrides = _split_overrides(args)
    try:
        mgr = train_from_config(args.config, overrides, resume=not args.no_resume)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume from the newest checkpoint", file=sys.stderr)
        return 130
    where = mgr.model
    if mgr.stopped:
        print(f"stopped early after epoch {mgr.epoch}; checkpoints under {where}")
    elif not mgr.epochs_trained:
        print(f"nothing trained (num_epochs={mgr.num_epochs}); checkpoints under {where}")
    else:
        print(f"done: epoch {mgr.epoch}/{mgr.num_epochs} finished ({mgr.epochs_trained} in this run); "
              f"checkpoints under {where}")
    return 0


def run_plan(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from transition.internal._quiet import quiet_tensorflow

    quiet_tensorflow()
    from transition.training._plan import plan_lines

    out = out if out is not None else sys.stdout
    for line in plan_lines(args.config, _split_overrides(args)):
        print(line, file=out)
    return 0
