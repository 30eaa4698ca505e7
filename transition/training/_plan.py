"""`transition plan`: per epoch of the schedule, the net dict diff and what the transition does to every param
(the networks are built and the transitions run as training would; nothing is trained or written)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transition.errors import ConfigError
from transition.netdict._netdict import diff_net_dicts
from transition.network._network import Network
from transition.network._transition import transition_network
from transition.params._report import ParamStatus
from transition.training._config import load_config
from transition.training._log import transition_summary
from transition.training._manager import TransitionManager
from transition.training._options import growth_options

__all__ = ["plan_lines"]


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
    network = Network.from_dict(net_dict, dict(mgr.extern_data), behavior_version=mgr.options.behavior_version)
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
                                    copy_param_mode=mgr.copy_param_mode_for(epoch), init_new_network_callback=hook,
                                    **growth_options(mgr.options, epoch))
        network = result.network
        lines.append(f"epoch {epoch}: {transition_summary(result)}")
        lines += ["    " + line for line in str(diff).splitlines()]
        if result.report.output_check is not None:
            lines.append(f"    {result.report.output_check}")
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
            elif rec.status is ParamStatus.PRESERVED:
                what = "preserved (grown, the output kept)"
            elif rec.status is ParamStatus.CUSTOM:
                what = f"imported by hook {_hook_name(new.get(rec.layer))}"
            elif rec.status is ParamStatus.KEPT_INIT:
                what = "new / reset (fresh init)"
            else:
                what = "ignored"
            reason = f" ({rec.reason})" if rec.reason else ""
            lines.append(f"    {rec.layer}/{rec.param} {shape}: {what}{reason}")
    return lines
