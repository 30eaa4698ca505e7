"""The state of a Keras `Model.fit` epoch that a mid-epoch checkpoint must hold: the compiled metrics' running sums.

Keras resets the loss tracker and the compiled metrics at every epoch start; an epoch resumed in its middle would
log the mean over the batches after the restart only (and a learning-rate control or EarlyStopping would see another
score). `KerasMetricsState` saves their variables with each checkpoint (a `Stateful` callback state) and gives them
back after Keras' reset of the resumed epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from transition.errors import ConfigError

__all__ = ["KerasMetricsState"]


class KerasMetricsState:
    """The variables of `model.metrics_variables` (loss tracker and compiled metrics) as a callback state.

    `state_dict` reads them from `model` (none while `model` is None); `load_state_dict` keeps them until `apply`
    assigns them to a model (call it after Keras' reset at the start of the resumed epoch) or `discard` drops them.
    Values are stored exactly (float32 -> JSON number -> float32).
    """

    state_key = "transition.keras_metrics"

    def __init__(self) -> None:
        self.model: Any = None
        self._pending: list[Mapping[str, Any]] | None = None

    def state_dict(self) -> dict[str, Any]:
        variables = list(getattr(self.model, "metrics_variables", None) or ()) if self.model is not None else []
        return {"variables": [{"dtype": np.dtype(v.dtype).name, "shape": [int(d) for d in v.shape],
                               "values": np.asarray(v.numpy()).ravel().tolist()} for v in variables]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        entries = state.get("variables") if isinstance(state, Mapping) else None
        if not isinstance(entries, list) or not all(_is_entry(e) for e in entries):
            raise ConfigError(f"state of {self.state_key!r} must be {{'variables': [{{'dtype', 'shape', 'values'}}, "
                              f"...]}}; got {str(state)[:200]}")
        self._pending = entries

    def discard(self) -> None:
        """Drop a loaded state (the resumed epoch starts at its beginning, where Keras' reset is right)."""
        self._pending = None

    def apply(self, model: Any) -> None:
        """Assign a loaded state to `model`'s metrics variables (once); ConfigError when they do not match."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        variables = list(getattr(model, "metrics_variables", None) or ())
        shapes = [tuple(int(d) for d in v.shape) for v in variables]
        saved = [tuple(e["shape"]) for e in pending]
        if shapes != saved:
            raise ConfigError(f"the checkpoint's Keras metrics have shapes {saved}, the compiled model's {shapes}; "
                              "compile with the same loss and metrics as the interrupted run")
        for var, entry in zip(variables, pending):
            values = np.asarray(entry["values"], dtype=np.dtype(entry["dtype"]))
            var.assign(values.reshape(entry["shape"]).astype(np.dtype(var.dtype)))


def _is_entry(entry: Any) -> bool:
    if not isinstance(entry, Mapping) or set(entry) != {"dtype", "shape", "values"}:
        return False
    shape, values = entry["shape"], entry["values"]
    try:
        if np.dtype(entry["dtype"]).kind not in "biuf":
            return False
    except TypeError:
        return False
    return (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
            and isinstance(values, list) and len(values) == int(np.prod(shape, dtype=np.int64)))
