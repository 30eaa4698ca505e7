"""The epoch transition: snapshot the old network, release it, build (or wrap) the new one, import the old values.

The new network is a net dict or a built Keras model; both go through the same import (`Layer.
set_param_values_by_dict`, the copy modes of `transition.params`). For net dicts, params that are copied whole are
created directly from the snapshot (no random init paid, no extra copy). Under "preserve" / "net2wider" the growth
is planned from both networks' graphs before the old one is released (`_preserve.py`; a refused growth leaves the
old network as it was); `verify_inputs` checks the outputs (`_verify.py`).
Optimizer slots (e.g. Adam moments) travel with the same copy rules (see `_slots.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import keras
import numpy as np

from transition.errors import ConfigError, did_you_mean, listed
from transition.internal._graph import gc_paused
from transition.netdict._netdict import NetDictDiff, diff_net_dicts, is_layer_key
from transition.network._feature_graph import FeatureGraph, graph_of_net_dict, graph_of_network
from transition.network._keras_wrap import diff_architectures, is_keras_model, keras_architecture
from transition.network._network import Network
from transition.network._preserve import GrowthPlan, layer_modes, plan_growth
from transition.network._slots import SlotsSnapshot, restore_slots, snapshot_slots
from transition.network._verify import DEFAULT_TOLERANCE, Recording, compare_outputs, record_outputs
from transition.params._copy_modes import check_copy_param_mode, may_create_from_old, preserves, resets
from transition.params._report import ImportReport
from transition.params._snapshot import ParamsSnapshot

__all__ = ["TransitionResult", "transition_network"]


@attrs.frozen
class TransitionResult:
    """The new network, the import report, the new optimizer (or None), its slots report and the net dict diff."""

    network: Network
    report: ImportReport
    optimizer: Any = None
    slots_report: ImportReport | None = None
    diff: NetDictDiff | None = None
    timings: Mapping[str, float] = attrs.field(factory=dict)  # seconds: snapshot, release, build, import (with
    # the output check of verify_inputs), slots
    plan: GrowthPlan | None = None  # "preserve" / "net2wider": how every param grew


@gc_paused()  # a transition makes many objects; full collections would walk the whole process for each
def transition_network(
    old_network: Network,
    new_network: Mapping[str, Any] | keras.Model,
    *,
    epoch: int,
    extern_data: Mapping[str, Any] | None = None,
    copy_param_mode: str | None = None,
    init_new_network_callback: Callable[..., Any] | None = None,
    optimizer: Any = None,
    ignore_wrong_shape: bool = False,
    ignore_non_existing: bool = True,
    custom_param_importers: Mapping[str, Callable[..., Any] | str] | None = None,
    verify_inputs: Any = None,
    verify_tolerance: float = DEFAULT_TOLERANCE,
    net2wider_noise: float = 0.01,
    seed: Any = None,
) -> TransitionResult:
    """Make the network for `epoch` and import the old network's params into it.

    `new_network` is a net dict (built with `extern_data`) or a built `keras.Model` (wrapped with
    `Network.from_keras`; its own init is the "fresh init" of params that are not copied). The copy mode is
    `copy_param_mode`, else the net dict's "#copy_param_mode" entry, else None (equal shapes required).
    `custom_param_importers` {layer: importer} gives layers of the new network an importer (RETURNN's
    `custom_param_importer`: a function or a copy mode string), e.g. Keras layers, which carry no layer dict; a
    name that is no layer of the new network is a ConfigError. Layers of the old network that the new one lacks
    are recorded as ignored unless `ignore_non_existing=False`; a Keras model sharing no layer name with the old
    network is a ConfigError (Keras numbers unnamed layers per process: name them).
    `init_new_network_callback(new_epoch=, new_network=, old_network_params=)` runs after the build, before the
    import, and may edit the snapshot (replace or remove arrays: they are read-only views; a replaced one is
    imported, a removed one's param gets its fresh init). The old network is not modified; the transition drops
    its own references (and calls `old_network.release()` where the Network has one): drop yours so that its
    variables can be freed. With `optimizer` (a Keras 3 optimizer, built on the old network's trainable variables
    or not built yet), a new optimizer of the same class with the same config and iteration count is built on the
    new network and its slots are imported (see `_slots.py`). A rebuilt net dict has the old network's
    behavior_version.

    "preserve" / "net2wider" keep what the network computes (`_preserve.py`; where they cannot, e.g. a new tanh
    layer on a path, a ConfigError before anything changes); `seed` (default: the epoch) and `net2wider_noise` are
    net2wider's. `verify_inputs` (a batch) runs both networks: the largest output difference goes into
    `report.output_check`, above `verify_tolerance` (relative) an OutputChangedError naming the first moved layer.
    """
    mode = _mode_of(old_network, new_network, extern_data, copy_param_mode)
    importers = dict(custom_param_importers or {})
    timings: dict[str, float] = {}

    t = time.perf_counter()
    behavior_version = getattr(old_network, "behavior_version", None)  # the new net keeps the old one's
    wrapped = Network.from_keras(new_network) if is_keras_model(new_network) else None
    check = _Check.before(old_network, new_network, wrapped, extern_data, behavior_version, mode, importers,
                          verify_inputs, verify_tolerance, epoch if seed is None else seed, net2wider_noise)
    snapshot = old_network.get_params_serialized()
    slots: SlotsSnapshot | None = snapshot_slots(optimizer, old_network) if optimizer is not None else None
    old_layer_dicts = dict(old_network.net_dict) if old_network.net_dict is not None else {}
    diff = _diff(old_network, new_network)
    timings["snapshot"] = time.perf_counter() - t

    t = time.perf_counter()
    if callable(getattr(old_network, "release", None)):
        old_network.release()
    del old_network, optimizer  # no gc.collect() (~1 s in a TF process): the snapshot aliases the memory anyway
    timings["release"] = time.perf_counter() - t

    t = time.perf_counter()
    new = _new_network(new_network, extern_data, snapshot, mode, importers, behavior_version, wrapped)
    timings["build"] = time.perf_counter() - t

    t = time.perf_counter()
    if init_new_network_callback is not None:
        init_new_network_callback(new_epoch=epoch, new_network=new, old_network_params=snapshot)
    growth = check.plan.params if check.plan is not None else None
    report = _import(new, snapshot, mode, ignore_wrong_shape, ignore_non_existing, epoch, old_layer_dicts, growth)
    report = check.after(new, verify_inputs, report)  # the output check, where verify_inputs asks for it
    timings["import"] = time.perf_counter() - t
    new_optimizer, slots_report = None, None
    if slots is not None:
        t = time.perf_counter()
        new_optimizer, slots_report = restore_slots(slots, new, report, old_split_info=snapshot.split_info,
                                                    growth=growth)
        timings["slots"] = time.perf_counter() - t
    return TransitionResult(new, report, new_optimizer, slots_report, diff, timings, check.plan)


def _mode_of(old_network: Any, new_network: Any, extern_data: Mapping[str, Any] | None,
             copy_param_mode: str | None) -> str | None:
    """The transition's copy mode (the option, else a net dict's "#copy_param_mode"), both networks checked."""
    if getattr(old_network, "released", False):
        raise ConfigError("transition_network: the old network was released by an earlier transition (its values "
                          "moved into that transition's result.network); pass that result.network instead")
    if not is_keras_model(new_network):
        if not isinstance(new_network, Mapping):
            raise ConfigError(f"transition_network: the new network must be a net dict or a built keras.Model, got "
                              f"{type(new_network).__name__}")
        if extern_data is None:
            raise ConfigError("transition_network: a net dict needs extern_data (the data keys it reads)")
        if copy_param_mode is None:
            copy_param_mode = new_network.get("#copy_param_mode")
    return check_copy_param_mode(copy_param_mode, "copy_param_mode of the transition")


@attrs.frozen(eq=False)
class _Check:
    """What a transition plans and records before the old network is released: the growth plan ("preserve" /
    "net2wider"), the old network's outputs on `verify_inputs`, the new network's graph."""

    plan: GrowthPlan | None = None
    recording: Recording | None = None
    new_graph: FeatureGraph | None = None
    tolerance: float = DEFAULT_TOLERANCE
    where: GrowthPlan | None = None  # where the old features are in the new network (for the output check)

    @classmethod
    def before(cls, old_network: Network, new_network: Any, wrapped: Network | None,
               extern_data: Mapping[str, Any] | None, behavior_version: int | None, mode: str | None,
               importers: Mapping[str, Any], verify_inputs: Any, tolerance: Any, seed: Any, noise: float) -> _Check:
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise ConfigError(f"verify_tolerance must be a number >= 0 (relative), got {tolerance!r}")
        if not preserves(mode) and verify_inputs is None:
            return cls()
        new_graph = graph_of_network(wrapped) if wrapped is not None else graph_of_net_dict(
            new_network, extern_data or {}, behavior_version)  # a net dict's without building it
        old_graph = graph_of_network(old_network)
        plan = None
        if preserves(mode):
            modes = layer_modes(new_network if wrapped is None else wrapped, importers)  # the layers' own modes
            plan = plan_growth(old_graph, new_graph, mode, modes=modes, seed=seed, noise=noise)
        if verify_inputs is None:
            return cls(plan, None, new_graph, float(tolerance))
        recording = record_outputs(old_network, verify_inputs, old_graph.outputs)
        return cls(plan, recording, new_graph, float(tolerance),
                   plan or plan_growth(old_graph, new_graph, "preserve", strict=False))

    def after(self, new: Network, verify_inputs: Any, report: ImportReport) -> ImportReport:
        """The report with the output check of the new network (OutputChangedError above the tolerance); as it
        is without `verify_inputs`."""
        if self.recording is None or self.new_graph is None:
            return report
        graph = self.new_graph
        check = compare_outputs(self.recording, record_outputs(new, verify_inputs, graph.outputs),
                                tolerance=self.tolerance, order=list(graph.nodes),
                                features=self.where.features if self.where is not None else None, report=report,
                                sources={name: node.sources for name, node in graph.nodes.items()})
        return attrs.evolve(report, output_check=check)



def _diff(old_network: Network, new_network: Any) -> NetDictDiff | None:
    """The layers added, removed and changed: of the Keras architectures, or of the net dicts."""
    if is_keras_model(new_network):
        return diff_architectures(keras_architecture(old_network.keras_model), keras_architecture(new_network))
    return diff_net_dicts(old_network.net_dict, new_network) if old_network.net_dict is not None else None


def _new_network(new_network: Any, extern_data: Mapping[str, Any] | None, snapshot: ParamsSnapshot,
                 mode: str | None, importers: Mapping[str, Any], behavior_version: int | None,
                 wrapped: Network | None) -> Network:
    """The wrapped Keras model, or the net dict built with the old values that the import would copy whole."""
    if wrapped is not None:
        new = wrapped
        _check_names_carry_over(snapshot, new, mode)
    else:
        # A callback may replace or remove snapshot entries after the build (the arrays themselves are read-only):
        # the import copies a replaced entry as usual and re-initialises a param whose entry was removed.
        initial_values = _initial_values(snapshot, new_network, mode, importers)
        new = Network.from_dict(dict(new_network), dict(extern_data or {}), initial_values=initial_values,
                                behavior_version=behavior_version)
    _give_importers(new, importers)
    return new


def _give_importers(network: Network, importers: Mapping[str, Any]) -> None:
    for name, importer in importers.items():
        if name not in network.layers:
            raise ConfigError(f"custom_param_importers names layer {name!r}, which the new network does not have"
                              f"{did_you_mean(name, network.layers)}; its layers: {sorted(network.layers)}")
        network.layers[name].set_custom_param_importer(importer)


def _check_names_carry_over(snapshot: ParamsSnapshot, new: Network, mode: str | None) -> None:
    """A Keras model sharing no param layer name with the old network would silently start from scratch."""
    old_layers = [name for name, values in snapshot.values_dict.items() if values]
    new_layers = [name for name, layer in new.layers.items() if layer.params]
    if old_layers and new_layers and not set(old_layers) & set(new_layers) and not resets(mode):
        raise ConfigError(
            f"the new Keras model shares no layer name with the old network (old: {listed(old_layers, 4)}, new: "
            f"{listed(new_layers, 4)}), so no param would carry over; give the layers fixed names (e.g. "
            "keras.layers.Dense(64, name='hidden')): Keras numbers unnamed layers per process. Use "
            "copy_param_mode='reset' to start all params afresh on purpose")


def _initial_values(
    snapshot: ParamsSnapshot, new_net_dict: Mapping[str, Any], mode: str | None, importers: Mapping[str, Any]
) -> dict[str, Mapping[str, np.ndarray]]:
    """The snapshot's layers whose values may be used directly as the new variables' initial values."""
    out = {}
    for layer, values in snapshot.values_dict.items():
        layer_dict = new_net_dict.get(layer) if is_layer_key(layer) else None
        if not isinstance(layer_dict, Mapping):
            continue
        importer = importers.get(layer, layer_dict.get("custom_param_importer"))
        if may_create_from_old(importer, mode, layer):
            out[layer] = values
    return out


def _import(
    network: Network,
    snapshot: ParamsSnapshot,
    mode: str | None,
    ignore_wrong_shape: bool,
    ignore_non_existing: bool,
    epoch: int,
    old_layer_dicts: Mapping[str, Any],
    growth: Mapping[str, Mapping[str, Any]] | None,
) -> ImportReport:
    """Like `Network.set_params_by_serialized`, but gives each layer's importer its own old layer dict."""

    def layer_kwargs(name: str, layer: Any) -> dict[str, Any]:
        old_dict = old_layer_dicts.get(name)
        return {
            "epoch": epoch,
            "old_layer_dict": dict(old_dict) if isinstance(old_dict, Mapping) else None,
            "new_layer_dict": layer.layer_dict,
        }

    return network.import_snapshot(
        snapshot, mode, ignore_wrong_shape, ignore_non_existing, layer_kwargs,
        source="the old network", target="the new network", growth=growth,
    )
