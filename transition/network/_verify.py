"""Checking a transition on a batch (`transition_network(..., verify_inputs=batch)`): the old network's outputs
(and every layer's) are recorded before it is released, the new network's after the import; the largest
difference of the outputs goes into the import report, and above the tolerance it is an `OutputChangedError`
naming the first layer (in the new network's order) whose output moved.

A layer's old features are compared where the growth plan put them (`_preserve.GrowthPlan.features`); without a
plan (a mode that keeps no function), its leading features. Differences are relative to the largest old value of
that output or layer (at least 1e-6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import keras
import numpy as np

from transition.errors import ConfigError, OutputChangedError
from transition.params._report import ImportReport, OutputCheck

__all__ = ["Recording", "record_outputs", "compare_outputs", "DEFAULT_TOLERANCE"]

DEFAULT_TOLERANCE = 1e-5
_FLOOR = 1e-6


@attrs.frozen(eq=False)
class Recording:
    """A network's outputs {output layer: array} and layer outputs {layer: array} on one batch."""

    outputs: Mapping[str, np.ndarray]
    layers: Mapping[str, np.ndarray]
    examples: int
    scores: Mapping[str, float] = attrs.field(factory=dict)  # "<layer> loss" / "<layer> error", where computable


def record_outputs(network: Any, inputs: Any, output_names: Sequence[str]) -> Recording:
    """Run `network` (a `Network`) on `inputs` (inference) and keep its outputs and layer outputs as numpy."""
    try:
        ys = keras.tree.flatten(network.call(inputs, training=False))
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"verify_inputs: the network cannot run on the given batch ({type(exc).__name__}: {exc}); "
                          "give a batch as the network takes it, e.g. {'data': array}") from None
    if len(ys) != len(output_names):
        raise ConfigError(f"verify_inputs: the network gave {len(ys)} outputs, expected {list(output_names)}")
    outputs = {name: np.asarray(y) for name, y in zip(output_names, ys)}
    first = next(iter(outputs.values()), np.zeros((0,)))
    return Recording(outputs, network.layer_outputs(inputs), int(first.shape[0]) if first.ndim else 1,
                     _scores(network, inputs))


def _scores(network: Any, inputs: Any) -> dict[str, float]:
    """The losses (and frame errors) of a net dict network on the batch, where it carries their targets."""
    try:
        terms = network.loss_terms(inputs, training=False, errors=True)
    except ConfigError:  # no losses (e.g. a Keras model), or the batch has no targets
        return {}
    out = {}
    for layer, term in terms.items():
        frames = max(float(term.frames), 1.0)
        if term.errors is not None:
            out[f"{layer} error"] = float(term.errors) / frames
        out[f"{layer} loss"] = float(term.value)
    return out


def _diff(new: np.ndarray, old: np.ndarray) -> tuple[float, float]:
    """(largest absolute difference, relative to the largest old value); NaN where the other is not is infinite."""
    if old.size == 0:
        return 0.0, 0.0
    diff = np.abs(new.astype(np.float64) - old.astype(np.float64))
    diff = np.where(np.isnan(diff) & ~(np.isnan(new) & np.isnan(old)), np.inf, np.nan_to_num(diff, nan=0.0))
    biggest = float(np.max(diff))
    scale = float(np.max(np.abs(np.nan_to_num(old.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0))))
    return biggest, biggest / max(scale, _FLOOR)


def compare_outputs(old: Recording, new: Recording, *, tolerance: float, order: Sequence[str],
                    features: Mapping[str, tuple[np.ndarray, np.ndarray]] | None, report: ImportReport,
                    sources: Mapping[str, Sequence[str]] | None = None) -> OutputCheck:
    """The output check of a transition; `OutputChangedError` above `tolerance`, naming the first layer of `order`
    whose output moved (with what the import did to its params, and the new layers it reads: `sources`)."""
    worst: tuple[float, float, str] = (0.0, 0.0, next(iter(old.outputs), "-"))
    for name, old_y in old.outputs.items():
        new_y = new.outputs.get(name)
        if new_y is None or new_y.shape != old_y.shape:
            got = "is no output" if new_y is None else f"has shape {new_y.shape}"
            raise OutputChangedError(f"verify_inputs: output {name!r} {got} after the transition, shape "
                                     f"{old_y.shape} before; the outputs cannot be compared")
        biggest, rel = _diff(new_y, old_y)
        if rel >= worst[1]:
            worst = (biggest, rel, name)
    scores = {k: (v, new.scores[k]) for k, v in old.scores.items() if k in new.scores}
    check = OutputCheck(worst[0], worst[1], float(tolerance), worst[2], old.examples, scores)
    if check.ok:
        return check
    layer, moved = _first_moved(old, new, tolerance, order, features)
    where = (f"the first layer whose output moved is {layer!r} (relative difference {moved:.3g})" if layer else
             f"no single layer's output could be compared; check the output {worst[2]!r}")
    new_sources = [s for s in (sources or {}).get(layer or "", ()) if s in new.layers and s not in old.layers]
    if new_sources:
        where += f", which reads the new layer {new_sources[0]!r}"
    raise OutputChangedError(
        f"the transition changed the network's output on verify_inputs ({old.examples} examples): largest "
        f"difference {worst[0]:.3g} (relative {worst[1]:.3g} > tolerance {tolerance:g}) in output {worst[2]!r}; "
        f"{where}{_what_import_did(report, layer)}. Use copy_param_mode 'preserve' (or fix that layer's "
        "custom_param_importer / init_new_network_callback), or raise verify_tolerance")


def _first_moved(old: Recording, new: Recording, tolerance: float, order: Sequence[str],
                 features: Mapping[str, tuple[np.ndarray, np.ndarray]] | None) -> tuple[str | None, float]:
    for name in order:
        a, b = new.layers.get(name), old.layers.get(name)
        if a is None or b is None or a.shape[:-1] != b.shape[:-1] or not a.ndim:
            continue
        if features is not None:
            if name not in features:
                continue
            new_pos, old_pos = features[name]
            if len(new_pos) and (new_pos.max() >= a.shape[-1] or old_pos.max() >= b.shape[-1]):
                continue
            a, b = a[..., new_pos], b[..., old_pos]
        else:
            n = min(a.shape[-1], b.shape[-1])
            a, b = a[..., :n], b[..., :n]
        rel = _diff(a, b)[1]
        if rel > tolerance:
            return name, rel
    return None, 0.0


def _what_import_did(report: ImportReport, layer: str | None) -> str:
    if layer is None:
        return ""
    recs = [r for r in report.records if r.layer == layer or r.layer.startswith(layer + "/")]
    if not recs:
        return " (it has no params: what it reads moved)"
    return " (its params: " + ", ".join(f"{r.param} {r.status.value}" + (f" [{r.reason}]" if r.reason else "")
                                        for r in recs) + ")"
