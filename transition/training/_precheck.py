"""Errors before training, never mid-run: at the start, every epoch's net dict of the schedule (the pretrain
steps; `get_network(epoch=...)` for every epoch, as a pure function of the epoch; or the one net dict) is checked
once without training and without creating variables (`network._build.dry_build`: layer classes, options, sources,
dims and param shapes), and so is every transition between two consecutive different net dicts (a param whose
shape changes where the transition's copy mode needs equal shapes; under "preserve" / "net2wider" the growth plan
of `network._preserve`, e.g. a new tanh layer on a path). A net dict that several epochs share is checked once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from transition.errors import ShapeMismatchError, TransitionError
from transition.network._build import dry_build
from transition.network._feature_graph import FeatureGraph, graph_of_net_dict
from transition.network._preserve import check_growth
from transition.params._copy_modes import Action, check_copy_param_mode, decide_copy, layer_import, preserves

__all__ = ["check_schedule"]

Shapes = dict[str, dict[str, tuple[int, ...]]]


def _key(value: Any) -> Any:
    """A hashable form of a net dict (functions and other objects by identity)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_key(v) for v in value))
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return ("object", id(value))


def _at_epoch(epoch: int, exc: TransitionError) -> TransitionError:
    """The same error, saying which epoch's net dict it is about and that it was found before training."""
    try:
        return type(exc)(f"the net dict of epoch {epoch} (checked before training): {exc}")
    except TypeError:  # an error class with another constructor
        return exc


def check_schedule(
    net_dict_for_epoch: Callable[[int], Mapping[str, Any]],
    copy_param_mode_for: Callable[[int], str | None],
    epochs: Iterable[int],
    extern_data: Mapping[str, Any],
    behavior_version: int | None = None,
) -> int:
    """Check the net dict of every epoch in `epochs` and each transition between them; raises the error (a
    ConfigError, ShapeMismatchError, ...) naming the epoch. Stops at the first epoch whose network is a Keras model
    (`net_dict_for_epoch` may return one). Returns the number of distinct net dicts checked."""
    checked: dict[Any, Shapes] = {}
    graphs: dict[Any, FeatureGraph] = {}

    def graph(net_dict: Mapping[str, Any]) -> FeatureGraph:
        key = _key(net_dict)
        if key not in graphs:
            graphs[key] = graph_of_net_dict(net_dict, extern_data, behavior_version)
        return graphs[key]

    prev: tuple[int, Mapping[str, Any], Shapes] | None = None
    for epoch in epochs:
        try:
            net_dict = net_dict_for_epoch(epoch)
            if not isinstance(net_dict, Mapping):  # a Keras model: built by the user, checked by Keras
                break
            key = _key(net_dict)
            if key not in checked:
                checked[key] = dry_build(net_dict, extern_data, behavior_version)
            shapes = checked[key]
            if prev is not None and _key(prev[1]) != key:
                mode = copy_param_mode_for(epoch)
                if mode is None:
                    mode = net_dict.get("#copy_param_mode")
                _check_transition(prev[0], prev[2], epoch, net_dict, shapes, mode)
                if preserves(mode):
                    check_growth(graph(prev[1]), net_dict, graph(net_dict), mode)
        except TransitionError as exc:
            raise _at_epoch(epoch, exc) from exc
        prev = (epoch, net_dict, shapes)
    return len(checked)


def _check_transition(old_epoch: int, old: Shapes, epoch: int, new_dict: Mapping[str, Any], new: Shapes,
                      mode: str | None) -> None:
    """The transition into `epoch` imports what fits: a param whose shape changes where the copy mode needs equal
    shapes would fail there; fail now instead."""
    mode = check_copy_param_mode(mode, f"copy_param_mode of the transition into epoch {epoch}")
    for layer, params in new.items():
        if layer not in old:
            continue
        layer_dict = new_dict.get(layer)
        importer = layer_dict.get("custom_param_importer") if isinstance(layer_dict, Mapping) else None
        how = layer_import(importer, mode, layer)
        if how.importer is not None:
            continue  # the user's function decides
        for param, shape in params.items():
            if param not in old[layer]:
                continue
            decision = decide_copy(old[layer][param], shape, how.mode)
            if decision.action is Action.MISMATCH:
                raise ShapeMismatchError(
                    f"the transition from epoch {old_epoch} would fail: layer {layer!r}, param {param!r}: "
                    f"{decision.why} (copy_param_mode={how.mode!r}); {decision.hint}")
