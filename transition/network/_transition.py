"""The epoch transition: snapshot the old network, release it, build the new one, import the old values.

Params that are copied whole are created directly from the snapshot (no random init paid, no extra copy).
Optimizer slots (e.g. Adam moments) travel with the same copy rules (see `_slots.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from transition.netdict._netdict import NetDictDiff, diff_net_dicts, is_layer_key
from transition.network._network import Network
from transition.network._slots import SlotsSnapshot, restore_slots, snapshot_slots
from transition.params._copy_modes import check_copy_param_mode, may_create_from_old
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
    timings: Mapping[str, float] = attrs.field(factory=dict)  # seconds: snapshot, release, build, import, slots


def transition_network(
    old_network: Network,
    new_net_dict: Mapping[str, Any],
    *,
    extern_data: Mapping[str, Any],
    epoch: int,
    copy_param_mode: str | None = None,
    init_new_network_callback: Callable[..., Any] | None = None,
    optimizer: Any = None,
    ignore_wrong_shape: bool = False,
    ignore_non_existing: bool = True,
) -> TransitionResult:
    """Rebuild the network for `epoch` from `new_net_dict` and import the old network's params into it.

    The copy mode is `copy_param_mode`, else the net dict's "#copy_param_mode" entry, else None (equal shapes
    required). Layers of the old network that the new one lacks are recorded as ignored unless
    `ignore_non_existing=False`. `init_new_network_callback(new_epoch=, new_network=, old_network_params=)` runs
    after the build, before the import, and may edit the snapshot (replace or remove arrays: they are read-only
    views; a replaced one is imported, a removed one's param gets its fresh init). The old
    network is not modified; the transition drops its own references (and calls `old_network.release()` where the
    Network has one): drop yours so that its variables can be freed. With `optimizer` (a Keras 3 optimizer, built
    on the old network's trainable variables or not built yet), a new optimizer of the same class with the same
    config and iteration count is built on the new network and its slots are imported (see `_slots.py`). The new
    network has the old one's behavior_version.
    """
    if copy_param_mode is None:
        copy_param_mode = new_net_dict.get("#copy_param_mode")
    mode = check_copy_param_mode(copy_param_mode, "copy_param_mode of the transition")
    timings: dict[str, float] = {}

    t = time.perf_counter()
    behavior_version = getattr(old_network, "behavior_version", None)  # the new net keeps the old one's
    snapshot = old_network.get_params_serialized()
    slots: SlotsSnapshot | None = None
    if optimizer is not None:
        slots = snapshot_slots(optimizer, old_network)
    old_net_dict = old_network.net_dict
    old_layer_dicts = dict(old_net_dict) if old_net_dict is not None else {}
    diff = diff_net_dicts(old_net_dict, new_net_dict) if old_net_dict is not None else None
    timings["snapshot"] = time.perf_counter() - t

    t = time.perf_counter()
    release = getattr(old_network, "release", None)
    if callable(release):
        release()
    del old_network, optimizer, release  # no gc.collect(): it costs ~1 s in a TF process; the snapshot aliases
    # the old variables' memory anyway, so freeing them earlier would not lower the peak
    timings["release"] = time.perf_counter() - t

    t = time.perf_counter()
    # A callback may replace or remove snapshot entries after the build (the arrays themselves are read-only):
    # the import copies a replaced entry as usual and re-initialises a param whose entry was removed.
    initial_values = _initial_values(snapshot, new_net_dict, mode)
    new_network = Network.from_dict(dict(new_net_dict), dict(extern_data), initial_values=initial_values,
                                    behavior_version=behavior_version)
    timings["build"] = time.perf_counter() - t

    t = time.perf_counter()
    if init_new_network_callback is not None:
        init_new_network_callback(new_epoch=epoch, new_network=new_network, old_network_params=snapshot)
    report = _import(new_network, snapshot, mode, ignore_wrong_shape, ignore_non_existing, epoch, old_layer_dicts)
    timings["import"] = time.perf_counter() - t

    new_optimizer, slots_report = None, None
    if slots is not None:
        t = time.perf_counter()
        new_optimizer, slots_report = restore_slots(slots, new_network, report, old_split_info=snapshot.split_info)
        timings["slots"] = time.perf_counter() - t
    return TransitionResult(new_network, report, new_optimizer, slots_report, diff, timings)


def _initial_values(
    snapshot: ParamsSnapshot, new_net_dict: Mapping[str, Any], mode: str | None
) -> dict[str, Mapping[str, np.ndarray]]:
    """The snapshot's layers whose values may be used directly as the new variables' initial values."""
    out = {}
    for layer, values in snapshot.values_dict.items():
        layer_dict = new_net_dict.get(layer) if is_layer_key(layer) else None
        if isinstance(layer_dict, Mapping) and may_create_from_old(layer_dict.get("custom_param_importer"), mode, layer):
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
        source="the old network", target="the new network",
    )
