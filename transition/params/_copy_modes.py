"""The copy modes: the one home of the rules that import old param values into a (re)built layer (pure numpy).

Copy modes follow RETURNN: None (shapes must match), "ifpossible" (copy where the shape matches, keep the fresh
init elsewhere), "subset" (copy the overlap of each split part, keep the init for the rest), "reset" (keep the
fresh init everywhere); and two of our own that keep what the network computes: "preserve" (the old values copied
as with "subset", the new parts set so that the output is unchanged: zero outgoing weights of new units, identity
for new layers on a path) and "net2wider" (new units copy randomly chosen old units, their outgoing weights divided
among the copies). Both need the network's graph, which `network/_preserve.py` reads into a `ParamGrowth` per
param (`params/_growth.py`); without one (e.g. loading a checkpoint) they copy as "subset". A layer's `custom_param_importer` is either a function (it replaces the copy) or a copy mode
string (that layer's mode, overriding the caller's). Loading (`checkpoint`), the network's import, the transition
and the optimizer slots all decide through the functions here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs
import numpy as np

from transition.errors import (
    ConfigError,
    ShapeMismatchError,
    TransitionError,
    did_you_mean,
)
from transition.params._growth import IdentityInit, ParamGrowth, grow_value, identity_value, slot_growth
from transition.params._report import ParamRecord, ParamStatus
from transition.params._snapshot import SplitInfo
from transition.params._split import (
    check_axis_splits,
    copy_with_new_split_axes,
    transform_split_info_to_shape,
    whole_axis_splits,
)

__all__ = [
    "COPY_PARAM_MODES",
    "PRESERVING_MODES",
    "Action",
    "CopyDecision",
    "LayerImport",
    "check_copy_param_mode",
    "decide_copy",
    "layer_import",
    "may_create_from_old",
    "preserves",
    "resets",
    "slot_copy_mode",
    "import_layer_values",
]

COPY_PARAM_MODES = (None, "ifpossible", "subset", "reset", "preserve", "net2wider")
PRESERVING_MODES = ("preserve", "net2wider")  # the output of the network stays what it was
_MODES_TEXT = "None, 'ifpossible', 'subset', 'reset', 'preserve', 'net2wider'"

Shape = tuple[int, ...]


def check_copy_param_mode(copy_param_mode: Any, where: str = "copy_param_mode") -> str | None:
    """Return the mode if it is one of `COPY_PARAM_MODES`; else raise ConfigError."""
    if copy_param_mode in COPY_PARAM_MODES and (copy_param_mode is None or isinstance(copy_param_mode, str)):
        return copy_param_mode
    hint = did_you_mean(copy_param_mode, [m for m in COPY_PARAM_MODES if m]) if isinstance(copy_param_mode, str) else ""
    raise ConfigError(f"unknown {where} {copy_param_mode!r}{hint}; use one of {_MODES_TEXT}")


def preserves(mode: str | None) -> bool:
    """Whether the copy mode keeps the network's output ("preserve", "net2wider")."""
    return check_copy_param_mode(mode) in PRESERVING_MODES


@attrs.frozen
class LayerImport:
    """How one layer imports: through its callable `custom_param_importer` (`importer`), else with copy `mode`."""

    mode: str | None
    importer: Callable[..., Any] | None = None


def layer_import(custom_param_importer: Any, copy_param_mode: str | None, layer_name: str) -> LayerImport:
    """The rule for a layer's `custom_param_importer`: a function replaces the copy; a copy mode string is that
    layer's mode (it wins over the caller's `copy_param_mode`); None leaves the caller's mode."""
    if callable(custom_param_importer):
        return LayerImport(mode=None, importer=custom_param_importer)
    if custom_param_importer is not None:
        return LayerImport(check_copy_param_mode(custom_param_importer, f"custom_param_importer of layer {layer_name!r}"))
    return LayerImport(check_copy_param_mode(copy_param_mode))


def may_create_from_old(custom_param_importer: Any, copy_param_mode: str | None, layer_name: str) -> bool:
    """Whether a rebuilt layer's params may be created directly from the old values of equal shape (the import
    would copy them): not for a callable importer, nor where the layer's mode is "reset"."""
    how = layer_import(custom_param_importer, copy_param_mode, layer_name)
    return how.importer is None and not resets(how.mode)


def resets(mode: str | None) -> bool:
    """Whether the copy mode keeps the fresh init of every param whatever the old values are ("reset")."""
    return check_copy_param_mode(mode) == "reset"


class Action(enum.Enum):
    """What the copy mode does with one param that has an old value."""

    COPY = "copy"  # the old value as it is
    PARTIAL = "partial"  # the overlap of each split part ("subset"; "preserve" / "net2wider" without a growth)
    KEEP_INIT = "keep init"  # the fresh init
    MISMATCH = "mismatch"  # an error: the caller raises ShapeMismatchError with `why` and `hint`


@attrs.frozen
class CopyDecision:
    """The decision for one param: the action, and for KEEP_INIT / MISMATCH why (and for MISMATCH what to do)."""

    action: Action
    why: str = ""
    hint: str = ""


def decide_copy(old_shape: Shape, new_shape: Shape, mode: str | None, *, ignore_wrong_shape: bool = False
                ) -> CopyDecision:
    """The copy-mode rule for one param whose old value has `old_shape` and whose new variable has `new_shape`."""
    old_shape, new_shape = tuple(old_shape), tuple(new_shape)
    if resets(mode):
        return CopyDecision(Action.KEEP_INIT, "copy_param_mode='reset'")
    if old_shape == new_shape:
        return CopyDecision(Action.COPY)
    partial_modes = ("subset", *PRESERVING_MODES)
    if mode in partial_modes and len(old_shape) == len(new_shape):
        return CopyDecision(Action.PARTIAL)
    if mode == "ifpossible":
        return CopyDecision(Action.KEEP_INIT, "shape differs, copy_param_mode='ifpossible'")
    if mode in partial_modes:
        why = f"copy_param_mode={mode!r} needs the same number of dims, got {old_shape} -> {new_shape}"
    else:
        why = f"shape mismatch {old_shape} -> {new_shape}"
    if ignore_wrong_shape:
        return CopyDecision(Action.KEEP_INIT, why + ", ignore_wrong_shape=True")
    hint = ('use copy_param_mode="ifpossible" to keep the fresh init, "subset" to copy the overlapping part, or '
            '"preserve" to copy it and keep what the network computes'
            if mode is None else "reshape the old value or use copy_param_mode='ifpossible' / ignore_wrong_shape=True")
    return CopyDecision(Action.MISMATCH, why, hint)


def slot_copy_mode(param_status: ParamStatus, old_shape: Shape, new_shape: Shape) -> str | None:
    """The copy mode of an optimizer slot: whole where its param was copied whole, "preserve" where its param was
    preserved (with `slot_growths`: the old slot values where the param's old values went, zero for the new parts),
    else "subset" (the slot follows its param's partial copy)."""
    if param_status is ParamStatus.PRESERVED:
        return "preserve"
    return None if param_status is ParamStatus.COPIED and tuple(old_shape) == tuple(new_shape) else "subset"


def slot_growths(growth: Mapping[str, Any] | None) -> dict[str, ParamGrowth]:
    """The growths of a layer's optimizer slots from its params' growths (see `slot_growth`); a new layer's
    identity init has none (its slots start fresh)."""
    return {p: slot_growth(g) for p, g in (growth or {}).items() if isinstance(g, ParamGrowth)}


def import_layer_values(
    layer_name: str,
    values: Mapping[str, np.ndarray],
    *,
    new_shapes: Mapping[str, tuple[int, ...]],
    get_new_value: Callable[[str], np.ndarray],
    copy_param_mode: str | None = None,
    ignore_wrong_shape: bool = False,
    old_split_info: SplitInfo | None = None,
    new_split_info: SplitInfo | None = None,
    already_initialized: Collection[str] = frozenset(),
    ignore_unknown: bool = False,
    growth: Mapping[str, ParamGrowth | IdentityInit] | None = None,
) -> tuple[dict[str, np.ndarray], list[ParamRecord]]:
    """Decide, for one layer, which arrays to assign to its params.

    `values`: the old values {param: array}; `new_shapes`: the new params' shapes; `get_new_value(param)`: the
    fresh init (called only when needed); `already_initialized`: params whose variable was created from the old
    value (not assigned again). Old params unknown to the layer are an error naming them, unless
    `ignore_unknown` (then recorded as ignored). New params without an old value keep their init. Under
    "preserve" / "net2wider", `growth` {param: ParamGrowth or IdentityInit} (from the network's graph) says how a
    param keeps the network's function; a param without one is copied as with "subset".
    Returns ({param: array to assign}, records in the order of `new_shapes`, then the ignored ones).
    """
    mode = check_copy_param_mode(copy_param_mode)
    new_shapes = {p: tuple(int(d) for d in s) for p, s in new_shapes.items()}
    ignored = _unknown_params(layer_name, values, new_shapes, ignore_unknown)
    to_assign: dict[str, np.ndarray] = {}
    records: list[ParamRecord] = []
    growth = growth if mode in PRESERVING_MODES and growth else {}
    for param, new_shape in new_shapes.items():
        grow = growth.get(param)
        what = f"layer {layer_name!r}, param {param!r}"
        if param not in values:
            if isinstance(grow, IdentityInit):
                to_assign[param], how = identity_value(grow, get_new_value(param), what)
                records.append(ParamRecord(layer_name, param, ParamStatus.PRESERVED, None, new_shape, how))
            else:
                records.append(ParamRecord(layer_name, param, ParamStatus.KEPT_INIT, None, new_shape,
                                           "new param (no old value)"))
            continue
        old = values[param]
        old_shape = tuple(int(d) for d in np.shape(old))
        if isinstance(grow, ParamGrowth) and not grow.is_trivial(old_shape):
            if grow.shape != new_shape:
                raise TransitionError(f"{what}: the growth makes shape {grow.shape} but the param has {new_shape}; "
                                      "this is a bug in the caller")
            to_assign[param], how = grow_value(grow, np.asarray(old), get_new_value(param), what)
            records.append(ParamRecord(layer_name, param, ParamStatus.PRESERVED, old_shape, new_shape, how))
            continue
        if param in already_initialized:
            status, reason, value = _created_from_old(layer_name, param, old_shape, new_shape, mode, get_new_value)
        else:
            status, reason, value = _import_one(
                layer_name, param, old, old_shape, new_shape, mode, ignore_wrong_shape, get_new_value,
                (old_split_info or {}).get(param), (new_split_info or {}).get(param))
        if value is not None:
            to_assign[param] = value
        records.append(ParamRecord(layer_name, param, status, old_shape, new_shape, reason))
    return to_assign, records + ignored


def _unknown_params(layer_name: str, values: Mapping[str, np.ndarray], new_shapes: Mapping[str, Shape],
                    ignore_unknown: bool) -> list[ParamRecord]:
    """The IGNORED records of old params the new layer lacks; an error naming them unless `ignore_unknown`."""
    ignored = []
    for param, old in values.items():
        if param in new_shapes:
            continue
        if not ignore_unknown:
            raise ConfigError(
                f"layer {layer_name!r}: the old values have param {param!r}, which the new layer does not have "
                f"(its params: {sorted(new_shapes)}){did_you_mean(param, new_shapes)}; remove it from the values "
                "or pass ignore_non_existing=True"
            )
        ignored.append(ParamRecord(layer_name, param, ParamStatus.IGNORED, tuple(np.shape(old)), None,
                                   "not a param of the new layer"))
    return ignored


def _created_from_old(layer_name, param, old_shape, new_shape, mode, get_new_value):
    """(status, reason, value to assign or None) of a param whose variable was created from its old value."""
    if old_shape != new_shape:
        raise TransitionError(
            f"layer {layer_name!r}, param {param!r}: listed as created from the old value, but the old shape "
            f"{old_shape} differs from the new shape {new_shape}; this is a bug in the caller"
        )
    if mode == "reset":
        return ParamStatus.KEPT_INIT, "copy_param_mode='reset' (re-initialised)", get_new_value(param)
    return ParamStatus.COPIED, "created from the old value", None


def _import_one(layer_name, param, old, old_shape, new_shape, mode, ignore_wrong_shape, get_new_value,
                old_info, new_info):
    """(status, reason, value to assign or None) of one param with an old value, per `decide_copy`."""
    decision = decide_copy(old_shape, new_shape, mode, ignore_wrong_shape=ignore_wrong_shape)
    if decision.action is Action.COPY:
        return ParamStatus.COPIED, "", np.asarray(old)
    if decision.action is Action.KEEP_INIT:
        return ParamStatus.KEPT_INIT, decision.why, None
    if decision.action is Action.MISMATCH:
        raise ShapeMismatchError(
            f"layer {layer_name!r}, param {param!r}: old shape {old_shape} != new shape {new_shape}"
            f" (copy_param_mode={mode!r}); {decision.hint}"
        )
    old_splits, new_splits, how = _pair_splits(layer_name, param, old_shape, new_shape, old_info, new_info)
    fresh = np.array(get_new_value(param), copy=True)
    if tuple(fresh.shape) != new_shape:
        raise ShapeMismatchError(
            f"layer {layer_name!r}, param {param!r}: the fresh init has shape {tuple(fresh.shape)} but the param has "
            f"shape {new_shape}"
        )
    if mode in PRESERVING_MODES:
        how += f" ({mode}: no growth rule for this param, copied as with 'subset')"
    return ParamStatus.PARTLY_COPIED, f"subset {how}", copy_with_new_split_axes(old_splits, new_splits,
                                                                                np.asarray(old), fresh)


def _pair_splits(layer_name, param, old_shape, new_shape, old_info, new_info):
    """Return (old splits, new splits, description) with the same number of parts on every axis.

    Without old split info, the old parts are inferred from the new ones as RETURNN does (the new split info
    transformed to the old shape). An axis whose split info is missing on one side, or whose number of parts
    differs, is treated as one part.
    """
    what = f"layer {layer_name!r}, param {param!r}"
    if new_info is not None:
        check_axis_splits(new_info, new_shape, what + " (new split info)")
    inferred = old_info is None and new_info is not None
    if inferred:
        old_info = transform_split_info_to_shape(new_info, old_shape, what)
    if old_info is not None:
        check_axis_splits(old_info, old_shape, what + " (old split info)")
    old_info = old_info if old_info is not None else whole_axis_splits(old_shape)
    new_info = new_info if new_info is not None else whole_axis_splits(new_shape)
    old_splits, new_splits, merged = [], [], []
    for axis, (o, n) in enumerate(zip(old_info, new_info)):
        if len(o) == len(n):
            old_splits.append([int(p) for p in o])
            new_splits.append([int(p) for p in n])
        else:
            old_splits.append([old_shape[axis]])
            new_splits.append([new_shape[axis]])
            merged.append(axis)
    how = f"parts {old_splits} -> {new_splits}" + (" (old parts inferred from the new ones)" if inferred else "")
    if merged:
        how += f" (axes {merged}: part counts differ, copied as a whole)"
    return old_splits, new_splits, how
