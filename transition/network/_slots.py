"""Carry a Keras 3 optimizer's slot variables (e.g. Adam momentums / velocities) through an epoch transition.

A Keras 3 optimizer keeps, after `build(trainable_variables)`, one list per slot kind (e.g. `_momentums`,
`_velocities`) whose i-th entry belongs to the i-th trainable variable. We map each entry to the param
"layer/param" of the network, snapshot it to numpy, and after the rebuild create a new optimizer (same config and
iteration count), build it on the new network's trainable variables and import the slots with the outcome of the
params' import: copied where the param was copied, subset-copied where the param was partly copied, fresh
(as the optimizer creates them, usually zeros) where the param is new, reset or custom-imported.

No copies: the snapshot holds read-only views of the slots (`alias_numpy`), a slot copied whole shares that memory
(TF copies on the first write), and the new optimizer's zero slots are lazily zeroed memory (`zeros_tensor`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from transition.errors import TransitionError
from transition.internal._keras_private import (
    build_optimizer_with_initializer,
    optimizer_iterations_variable,
    optimizer_slot_lists,
    optimizer_trainable_variables,
)
from transition.network._fast_init import alias_numpy, as_tensor, zeros_tensor
from transition.params._copy_modes import import_layer_values, slot_copy_mode, slot_growths
from transition.params._report import ImportReport, ParamRecord, ParamStatus

__all__ = ["SlotsSnapshot", "named_slot_variables", "snapshot_slots", "restore_slots"]


@attrs.frozen
class SlotsSnapshot:
    """An optimizer's config, iteration count and slots {slot: {layer: {param: array}}} as numpy."""

    optimizer_class: type
    config: Mapping[str, Any]
    iterations: int
    slots: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]

    @property
    def nbytes(self) -> int:
        """The size of all slot arrays in bytes."""
        return sum(int(a.nbytes) for s in self.slots.values() for layer in s.values() for a in layer.values())


def named_slot_variables(optimizer: Any, network: Any, *, strict: bool = False) -> list[tuple[str, str, str, Any]]:
    """[(slot, layer, param, slot variable)] of a built optimizer, for the `network` params it was built on (e.g.
    ("momentums", "l1", "W", var)). A variable of the optimizer that is no param of the network is skipped, or with
    `strict` an error naming it."""
    names = {id(var): (layer_name, param)
             for layer_name, layer in network.layers.items() for param, var in layer.params.items()}
    trainable = optimizer_trainable_variables(optimizer)
    out = []
    for slot, items in optimizer_slot_lists(optimizer).items():
        for var, slot_var in zip(trainable, items):
            if slot_var is None:
                continue
            if id(var) not in names:
                if not strict:
                    continue
                raise TransitionError(
                    f"the optimizer was built on variable {getattr(var, 'path', var.name)!r}, which is not a param of "
                    "the old network; build the optimizer on network.trainable_variables"
                )
            out.append((slot, *names[id(var)], slot_var))
    return out


def snapshot_slots(optimizer: Any, network: Any) -> SlotsSnapshot:
    """Snapshot `optimizer`'s slots as numpy, keyed by the `network` param each belongs to."""
    slots: dict[str, dict[str, dict[str, np.ndarray]]] = {s: {} for s in optimizer_slot_lists(optimizer)}
    for slot, layer, param, slot_var in named_slot_variables(optimizer, network, strict=True):
        slots[slot].setdefault(layer, {})[param] = alias_numpy(slot_var)  # read-only view, no copy
    iterations = int(optimizer_iterations_variable(optimizer).numpy())
    return SlotsSnapshot(type(optimizer), dict(optimizer.get_config()), iterations, slots)


def restore_slots(
    snapshot: SlotsSnapshot,
    network: Any,
    param_report: ImportReport,
    *,
    old_split_info: Mapping[str, Mapping[str, list[list[int]]]] | None = None,
    growth: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Any, ImportReport]:
    """Create the optimizer anew on `network.trainable_variables` and import the slots per `param_report`
    (`growth`: the params' growths of a "preserve" / "net2wider" transition, which their slots follow).

    Returns the new optimizer and a report with one record per slot variable, named "param [slot]".
    """
    optimizer = snapshot.optimizer_class.from_config(dict(snapshot.config))
    trainable = list(network.trainable_variables)
    # the zero slots as lazily zeroed memory: most of them are replaced by the old slots at once
    build_optimizer_with_initializer(optimizer, trainable, zeros_tensor)
    optimizer_iterations_variable(optimizer).assign(snapshot.iterations)
    status = {(r.layer, r.param): r for r in param_report.records}
    new_split_info = network.get_param_split_info()
    old_split_info = old_split_info or {}
    records: list[ParamRecord] = []
    for slot, layer, param, slot_var in named_slot_variables(optimizer, network):
        old = snapshot.slots.get(slot, {}).get(layer, {}).get(param)
        records += _restore_slot(slot, layer, param, slot_var, old, status.get((layer, param)),
                                 old_split_info.get(layer), new_split_info.get(layer), (growth or {}).get(layer))
    return optimizer, ImportReport(tuple(records))


def _restore_slot(slot: str, layer: str, param: str, slot_var: Any, old: np.ndarray | None, rec: ParamRecord | None,
                  old_split_info: Any, new_split_info: Any, growth: Any) -> list[ParamRecord]:
    """Import one old slot value as its param was imported; the records are named "param [slot]"."""
    label = f"{param} [{slot}]"
    shape = tuple(int(d) for d in slot_var.shape)
    copied = (ParamStatus.COPIED, ParamStatus.PARTLY_COPIED, ParamStatus.PRESERVED)
    if rec is None or old is None or rec.status not in copied:
        why = "no old slot" if old is None else f"param {rec.status.value if rec else 'not imported'}"
        return [ParamRecord(layer, label, ParamStatus.KEPT_INIT, None if old is None else old.shape, shape, why)]
    to_assign, recs = import_layer_values(
        layer,
        {param: old},
        new_shapes={param: shape},
        get_new_value=lambda _p: np.array(slot_var.numpy()),
        copy_param_mode=slot_copy_mode(rec.status, old.shape, shape),
        ignore_wrong_shape=True,
        old_split_info=old_split_info,
        new_split_info=new_split_info,
        growth=slot_growths({param: growth[param]} if growth and param in growth else None),
    )
    if param in to_assign:  # a whole old slot: its tensor is shared, not copied
        slot_var.assign(as_tensor(to_assign[param], slot_var.dtype))
    return [attrs.evolve(r, param=label) for r in recs]
