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

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import keras
import numpy as np

from transition.errors import TransitionError
from transition.network._fast_init import alias_numpy, as_tensor, zeros_tensor
from transition.params._importing import ImportReport, ParamRecord, ParamStatus, import_layer_values

__all__ = ["SlotsSnapshot", "optimizer_slot_lists", "snapshot_slots", "restore_slots"]

_NOT_SLOTS = frozenset({"_variables", "_trainable_variables"})


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


def optimizer_slot_lists(optimizer: Any) -> dict[str, list[Any]]:
    """The built optimizer's per-variable slot lists, by slot name (attribute without leading "_").

    A slot list is an attribute that is a sequence with one entry (a variable of the same shape, or None) per
    trainable variable the optimizer was built on.
    """
    trainable = list(getattr(optimizer, "_trainable_variables", []) or [])
    if not trainable:
        return {}
    shapes = [tuple(v.shape) for v in trainable]
    out: dict[str, list[Any]] = {}
    for attr, value in vars(optimizer).items():
        if attr in _NOT_SLOTS or isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            continue
        items = list(value)
        if len(items) != len(trainable) or all(x is None for x in items):
            continue
        if all(x is None or (hasattr(x, "assign") and tuple(x.shape) == s) for x, s in zip(items, shapes)):
            out[attr.lstrip("_")] = items
    return out


def _var_names(network: Any) -> dict[int, tuple[str, str]]:
    names = {}
    for full, var in network.param_variables().items():
        layer, _, param = full.partition("/")
        names[id(var)] = (layer, param)
    return names


def snapshot_slots(optimizer: Any, network: Any) -> SlotsSnapshot:
    """Snapshot `optimizer`'s slots as numpy, keyed by the `network` param each belongs to."""
    names = _var_names(network)
    trainable = list(getattr(optimizer, "_trainable_variables", []) or [])
    slots: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for slot, items in optimizer_slot_lists(optimizer).items():
        per_layer: dict[str, dict[str, np.ndarray]] = {}
        for var, slot_var in zip(trainable, items):
            if slot_var is None:
                continue
            if id(var) not in names:
                raise TransitionError(
                    f"the optimizer was built on variable {getattr(var, 'path', var.name)!r}, which is not a param of "
                    "the old network; build the optimizer on network.trainable_variables"
                )
            layer, param = names[id(var)]
            per_layer.setdefault(layer, {})[param] = alias_numpy(slot_var)  # read-only view, no copy
        slots[slot] = per_layer
    iterations_var = getattr(optimizer, "_iterations", None)
    iterations = int(iterations_var.numpy()) if iterations_var is not None else int(optimizer.iterations.numpy())
    return SlotsSnapshot(type(optimizer), dict(optimizer.get_config()), iterations, slots)


def restore_slots(
    snapshot: SlotsSnapshot,
    network: Any,
    param_report: ImportReport,
    *,
    old_split_info: Mapping[str, Mapping[str, list[list[int]]]] | None = None,
) -> tuple[Any, ImportReport]:
    """Create the optimizer anew on `network.trainable_variables` and import the slots per `param_report`.

    Returns the new optimizer and a report with one record per slot variable, named "param [slot]".
    """
    optimizer = snapshot.optimizer_class.from_config(dict(snapshot.config))
    trainable = list(network.trainable_variables)
    _build_with_lazy_zeros(optimizer, trainable)
    iterations_var = getattr(optimizer, "_iterations", None)
    if iterations_var is None:
        iterations_var = optimizer.iterations
    iterations_var.assign(snapshot.iterations)
    status = {(r.layer, r.param): r for r in param_report.records}
    names = _var_names(network)
    new_split_info = network.get_param_split_info()
    old_split_info = old_split_info or {}
    records: list[ParamRecord] = []
    for slot, items in optimizer_slot_lists(optimizer).items():
        old_slot = snapshot.slots.get(slot, {})
        for var, slot_var in zip(trainable, items):
            if slot_var is None or id(var) not in names:
                continue
            layer, param = names[id(var)]
            label = f"{param} [{slot}]"
            shape = tuple(int(d) for d in slot_var.shape)
            rec = status.get((layer, param))
            old = old_slot.get(layer, {}).get(param)
            if rec is None or old is None or rec.status not in (ParamStatus.COPIED, ParamStatus.PARTLY_COPIED):
                why = "no old slot" if old is None else f"param {rec.status.value if rec else 'not imported'}"
                records.append(ParamRecord(layer, label, ParamStatus.KEPT_INIT,
                                           None if old is None else old.shape, shape, why))
                continue
            mode = None if rec.status is ParamStatus.COPIED and old.shape == shape else "subset"
            to_assign, recs = import_layer_values(
                layer,
                {param: old},
                new_shapes={param: shape},
                get_new_value=lambda _p, v=slot_var: np.array(v.numpy()),
                copy_param_mode=mode,
                ignore_wrong_shape=True,
                old_split_info=old_split_info.get(layer),
                new_split_info=new_split_info.get(layer),
            )
            if param in to_assign:  # a whole old slot: its tensor is shared, not copied
                slot_var.assign(as_tensor(to_assign[param], slot_var.dtype))
            records.extend(attrs.evolve(r, param=label) for r in recs)
    return optimizer, ImportReport(tuple(records))


def _is_zeros(initializer: Any) -> bool:
    return (isinstance(initializer, str) and initializer == "zeros") or type(initializer) is keras.initializers.Zeros


def _build_with_lazy_zeros(optimizer: Any, trainable: Sequence[Any]) -> None:
    """`optimizer.build(trainable)`, its zero-initialised variables created as lazily zeroed memory (`tf.zeros` of
    the slots costs about as much as the whole transition; most of them are replaced by the old slots anyway)."""
    add_variable = optimizer.add_variable

    def add_variable_lazy_zeros(shape, initializer="zeros", dtype=None, *args, **kwargs):
        if _is_zeros(initializer):
            initializer = lambda shape, dtype=None: zeros_tensor(shape, dtype or "float32")  # noqa: E731
        return add_variable(shape, initializer, dtype, *args, **kwargs)

    object.__setattr__(optimizer, "add_variable", add_variable_lazy_zeros)
    try:
        optimizer.build(list(trainable))
    finally:
        object.__delattr__(optimizer, "add_variable")
