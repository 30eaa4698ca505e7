"""Loading params from a checkpoint (or a dict) into a `Network`: RETURNN's CustomCheckpointLoader semantics, strict.

Network names are ``layer/param``. `_load_plan.plan_load` only looks at names, shapes and dtypes and raises every
error before anything is assigned; `execute_plan` then reads only the values it assigns.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np

from transition.checkpoint._load_plan import (
    CheckpointSource,
    DictSource,
    LoadOptions,
    ParamLoadPlan,
    network_param_specs,
    plan_load,
)
from transition.checkpoint._load_report import LoadReport
from transition.checkpoint._reader import open_checkpoint
from transition.errors import ConfigError, MissingParamsError
from transition.internal._signature import with_options_signature

__all__ = [
    "LoadReport",
    "load_checkpoint",
    "restore_from_dict",
    "chain_restore",
    "execute_plan",
]


def execute_plan(network: Any, plan: ParamLoadPlan) -> LoadReport:
    """Read the planned values (only those) and assign them to the network's variables."""

    def value_of(net_name: str, value: Any) -> Any:
        return np.asarray(value).astype(plan.cast[net_name]) if net_name in plan.cast else value

    read_direct = getattr(plan.source, "read_for_assign", plan.source.read)  # a TF bundle: tensors, no numpy copy

    def read(ckpt_name: str) -> Any:
        return plan.read(ckpt_name) if ckpt_name in plan.conversions else read_direct(ckpt_name)

    for net_name, ckpt_name in plan.assign.items():
        layer, param = _split(network, net_name)
        network.layers[layer].params[param].assign(value_of(net_name, read(ckpt_name)))
    for net_name, value in plan.supplied.items():
        layer, param = _split(network, net_name)
        network.layers[layer].params[param].assign(value_of(net_name, value))
    partial: dict[str, dict[str, np.ndarray]] = {}
    for net_name, ckpt_name in plan.partial.items():
        layer, param = _split(network, net_name)
        partial.setdefault(layer, {})[param] = value_of(net_name, plan.read(ckpt_name))
    for layer_name, values_dict in partial.items():  # the layer's copy mode ("subset") copies what fits
        network.layers[layer_name].set_param_values_by_dict(values_dict)
    for layer_name, names in plan.custom.items():
        layer = network.layers[layer_name]
        keep = {p: np.array(layer.params[p].numpy()) for p in plan.custom_skipped.get(layer_name, ())}
        values_dict = {rel: plan.source.read(ckpt_name) for rel, ckpt_name in names.items()}
        layer.set_param_values_by_dict(values_dict)
        for p, value in keep.items():  # params set by an earlier load win
            layer.params[p].assign(value)
    return plan.report


def _split(network: Any, net_name: str) -> tuple[str, str]:
    """Split "layer/param" where the layer name itself may contain '/' (longest layer name that matches)."""
    best = None
    for layer in network.layers:
        if net_name.startswith(layer + "/") and (best is None or len(layer) > len(best)):
            best = layer
    if best is None:
        raise ConfigError(f"{net_name!r} is not 'layer/param' of this network")
    return best, net_name[len(best) + 1:]


def _load_from_source(network: Any, source: CheckpointSource, path: str, options: LoadOptions) -> LoadReport:
    specs, custom, copy_modes = network_param_specs(network)
    return execute_plan(network, plan_load(specs, custom, source, path=path, copy_modes=copy_modes, options=options))


@with_options_signature(LoadOptions, head=2)
def load_checkpoint(network: Any, filename: str | os.PathLike, **options: Any) -> LoadReport:
    """Load params from a checkpoint into `network` (RETURNN's CustomCheckpointLoader, strict); the options are
    those of `LoadOptions`.

    Param W of layer l1 is ``l1/W``. Layers with a callable custom_param_importer get every checkpoint value under
    their name (relative to the layer) via `set_param_values_by_dict`, and the importer assigns; a copy-mode
    importer ("reset", "ifpossible", "subset") decides for its layer's params what a differing shape means (see
    `plan_load`). Every error is raised before anything is assigned.
    """
    opts = LoadOptions.make("load_checkpoint", **options)
    path = os.fspath(filename)
    with open_checkpoint(path) as source:
        return _load_from_source(network, source, path, opts)


@with_options_signature(LoadOptions, head=2)
def restore_from_dict(network: Any, values: Mapping[str, Any], **options: Any) -> LoadReport:
    """Tensorpack's DictRestore: load from {name: array} (``:0`` suffixes removed), with the options of
    `load_checkpoint`."""
    return _load_from_source(network, DictSource(values), "<dict>", LoadOptions.make("restore_from_dict", **options))


def chain_restore(
    network: Any,
    sources: Iterable[Any],
    *,
    ignore_missing: bool = False,
) -> LoadReport:
    """Tensorpack's ChainInit: load several sources in order, a later one overriding an earlier one.

    Each source is a checkpoint path, a dict {name: array}, or a pair (source, options) with the options of
    `load_checkpoint` except `ignore_missing`. A param is missing only if no source has it (an error unless
    `ignore_missing`); a source that loads nothing at all is an error. Everything is checked before anything is
    assigned.
    """
    with contextlib.ExitStack() as opened:
        return _chain(network, sources, opened, ignore_missing)


def _chain(network: Any, sources: Iterable[Any], opened: contextlib.ExitStack, ignore_missing: bool) -> LoadReport:
    specs, custom, copy_modes = network_param_specs(network)
    plans: list[ParamLoadPlan] = []
    for i, entry in enumerate(sources):
        src, given = (entry if isinstance(entry, tuple) else (entry, {}))
        options = LoadOptions.make(f"chain_restore source {i}", **given)
        if "ignore_missing" in given:
            raise ConfigError(f"chain_restore source {i}: 'ignore_missing' is not a per-source option (a param is "
                              f"missing only if no source has it); pass chain_restore(..., ignore_missing=True)")
        options = options.evolve(ignore_missing=True)
        if isinstance(src, Mapping):
            source, path = DictSource(src, path=f"<dict {i}>"), f"<dict {i}>"
        else:
            path = os.fspath(src)
            source = opened.enter_context(open_checkpoint(path))
        plans.append(plan_load(specs, custom, source, path=path, copy_modes=copy_modes, options=options))
    if not plans:
        raise ConfigError("chain_restore needs at least one source")
    # A later source overrides an earlier one: drop what later plans set from earlier plans (read nothing twice).
    later: set[str] = set()
    later_layers: set[str] = set()
    final: list[ParamLoadPlan] = []
    for plan in reversed(plans):
        assign = {n: c for n, c in plan.assign.items() if n not in later}
        supplied = {n: v for n, v in plan.supplied.items() if n not in later}
        partial = {n: c for n, c in plan.partial.items() if n not in later}
        custom_plan = {layer: v for layer, v in plan.custom.items() if layer not in later_layers}
        final.append(attrs.evolve(plan, assign=assign, supplied=supplied, partial=partial, custom=custom_plan))
        later |= set(plan.assign) | set(plan.supplied) | set(plan.partial)
        later_layers |= set(plan.custom)
    report = LoadReport.combine([p.report for p in plans])
    if report.missing and not ignore_missing:
        raise MissingParamsError(f"{len(report.missing)} params are in none of the sources {report.path}: "
                                 f"{list(report.missing)}; add a source or pass ignore_missing=True")
    for plan in reversed(final):
        execute_plan(network, plan)
    return report
