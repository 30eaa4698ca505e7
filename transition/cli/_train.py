"""`transition train CONFIG [--key=value ...] [--no-resume]` and `transition plan CONFIG [--key=value ...]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

__all__ = ["register", "run_train", "run_plan", "plan_lines"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a RETURNN-style config (resumes automatically from the model's checkpoints)",
        description="Run the reference training loop on CONFIG, a RETURNN-style Python config file. Resumes from "
        "the newest good checkpoint of the config's `model` when there is one. Options override config keys: "
        "--num_epochs=5 --learning_rate=1e-3. Exit code 75 after a preemption (SIGTERM / SIGUSR1): requeue the job.",
    )
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
    from transition.cli._main import quiet_tensorflow

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


def _hook_name(layer_dict: object) -> str | None:
    if not isinstance(layer_dict, Mapping):
        return None
    hook = layer_dict.get("custom_param_importer")
    if callable(hook):
        return getattr(hook, "__name__", repr(hook))
    return None


def plan_lines(config: str | Mapping[str, Any], overrides: Mapping[str, Any] | Sequence[str] | None = None
               ) -> list[str]:
    """The lines `transition plan` prints (builds the networks, trains nothing, writes nothing)."""
    import keras

    from transition.training._config import load_config
    from transition.errors import ConfigError
    from transition.params._report import ParamStatus
    from transition.training._log import transition_summary
    from transition.training._manager import TransitionManager
    from transition.netdict._netdict import diff_net_dicts
    from transition.network._network import Network
    from transition.network._transition import transition_network

    cfg = load_config(config, overrides)
    cfg.require("extern_data", "num_epochs")
    if not cfg.is_set("network") and not cfg.is_set("get_network"):
        raise ConfigError(f"{cfg.where()}: set 'network' or 'get_network'")
    # a manager only for its schedule (no model directory is touched: epochs() is never called)
    mgr = TransitionManager.from_config(cfg, {"model": cfg["model"] or "plan-only"}, log=lambda s: None)
    keras.utils.set_random_seed(int(cfg["random_seed"]))
    last = mgr.num_epochs
    if mgr.pretrain is not None:
        last = min(last, mgr.pretrain.get_train_num_epochs() + 1)
    lines = []
    net_dict = mgr.net_dict_for_epoch(1)
    network = Network.from_dict(net_dict, dict(mgr.extern_data))
    n_params = sum(int(v.shape.num_elements() or 0) for v in network.param_variables().values())
    lines.append(f"epoch 1: build {len([k for k in net_dict if not k.startswith('#')])} layers, "
                 f"{len(network.param_variables())} params ({n_params} values)")
    for epoch in range(2, last + 1):
        new = mgr.net_dict_for_epoch(epoch)
        diff = diff_net_dicts(network.net_dict, new)
        if diff.is_empty:
            lines.append(f"epoch {epoch}: same network")
            continue
        hook = mgr.init_new_network_callback
        result = transition_network(network, new, extern_data=mgr.extern_data, epoch=epoch,
                                    copy_param_mode=mgr.copy_param_mode_for(epoch), init_new_network_callback=hook)
        network = result.network
        lines.append(f"epoch {epoch}: {transition_summary(result)}")
        lines += ["    " + line for line in str(diff).splitlines()]
        if hook is not None:
            lines.append(f"    init_new_network_callback {getattr(hook, '__name__', hook)!r} runs before the import "
                         "(it may set any param, e.g. those of new layers)")
        for rec in result.report.records:
            if rec.old_shape is None or rec.new_shape is None or rec.old_shape == rec.new_shape:
                shape = f"{rec.new_shape if rec.new_shape is not None else rec.old_shape}"
            else:
                shape = f"{rec.old_shape} -> {rec.new_shape}"
            if rec.status is ParamStatus.COPIED:
                what = "copied"
            elif rec.status is ParamStatus.PARTLY_COPIED:
                what = "grown (old values copied into the new shape)"
            elif rec.status is ParamStatus.CUSTOM:
                what = f"imported by hook {_hook_name(new.get(rec.layer))}"
            elif rec.status is ParamStatus.KEPT_INIT:
                what = "new / reset (fresh init)"
            else:
                what = "ignored"
            reason = f" ({rec.reason})" if rec.reason else ""
            lines.append(f"    {rec.layer}/{rec.param} {shape}: {what}{reason}")
    return lines


def run_plan(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from transition.cli._main import quiet_tensorflow

    quiet_tensorflow()
    out = out if out is not None else sys.stdout
    for line in plan_lines(args.config, _split_overrides(args)):
        print(line, file=out)
    return 0
