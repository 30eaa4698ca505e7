"""`Layer`: one named layer of a `Network` (its params by name, split info) and its import entry point,
`set_param_values_by_dict`, which decides with the copy-mode rules of `transition.params`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from transition.errors import ConfigError
from transition.network._fast_init import as_tensor
from transition.network._layers_base import NetLayer
from transition.params._copy_modes import (
    check_copy_param_mode,
    import_layer_values,
    layer_import,
)
from transition.params._custom import call_custom_importer, custom_import_records
from transition.params._report import ImportReport
from transition.params._split import whole_axis_splits

__all__ = ["Layer", "IMPORTER_KWARGS"]

IMPORTER_KWARGS = ("epoch", "old_layer_dict", "new_layer_dict")  # passed on to a callable custom_param_importer


class Layer:
    """One named layer of a `Network`: its params (name -> variable), split info and import entry point."""

    def __init__(
        self,
        name: str,
        *,
        params: Mapping[str, keras.Variable],
        split_info: Mapping[str, list[list[int]]] | None = None,
        layer_dict: Mapping[str, Any] | None = None,
        keras_layer: keras.layers.Layer | None = None,
    ):
        self.name = name
        self.layer_dict = dict(layer_dict) if layer_dict is not None else None
        self.keras_layer = keras_layer
        self._importer: Callable[..., Any] | str | None = None
        self.params: dict[str, keras.Variable] = dict(params)
        self.split_info: dict[str, list[list[int]]] = {
            p: [list(a) for a in (split_info or {}).get(p, whole_axis_splits(v.shape))] for p, v in self.params.items()
        }

    def __repr__(self) -> str:
        cls = self.layer_dict.get("class") if self.layer_dict else type(self.keras_layer).__name__
        return f"<Layer {self.name!r} {cls} params={ {p: tuple(v.shape) for p, v in self.params.items()} }>"

    @property
    def custom_param_importer(self) -> Callable[..., Any] | str | None:
        """The layer's importer: a function, a copy mode string, or None; the layer dict option
        "custom_param_importer", or the one given with `set_custom_param_importer` (e.g. for a Keras layer)."""
        if self._importer is not None:
            return self._importer
        return self.layer_dict.get("custom_param_importer") if self.layer_dict else None

    def set_custom_param_importer(self, importer: Callable[..., Any] | str | None) -> None:
        """Give this layer an importer (RETURNN's `custom_param_importer`: a function or a copy mode string); a
        layer whose net dict already sets one is a ConfigError (one importer per layer)."""
        if importer is not None and self.layer_dict and self.layer_dict.get("custom_param_importer") is not None:
            raise ConfigError(f"layer {self.name!r}: custom_param_importers gives an importer for it, but its layer "
                              "dict sets 'custom_param_importer' too; keep one of them")
        self._importer = importer

    def get_param_values_dict(self) -> dict[str, np.ndarray]:
        """{param: a copy of its current value}."""
        return {p: np.asarray(v.numpy()) for p, v in self.params.items()}

    def _pending_initial(self) -> dict[str, Any]:
        if not isinstance(self.keras_layer, NetLayer):
            return {}
        return getattr(self.keras_layer, "initialized_from_values", {})

    def _new_value(self, param: str) -> np.ndarray:
        """The fresh init: drawn anew if the variable was created from an old value, else its current value."""
        if param in self._pending_initial():
            return self.keras_layer.fresh_value(param)
        return np.asarray(self.params[param].numpy())

    def set_param_values_by_dict(
        self,
        values_dict: Mapping[str, np.ndarray],
        copy_param_mode: str | None = None,
        ignore_wrong_shape: bool = False,
        split_info: Mapping[str, list[list[int]]] | None = None,
        *,
        ignore_unknown: bool = False,
        growth: Mapping[str, Any] | None = None,
        **importer_kwargs: Any,
    ) -> ImportReport:
        """Import old values into this layer with RETURNN's rules and return the report.

        A callable `custom_param_importer` is called instead (with `split_info` and `importer_kwargs` — epoch,
        old_layer_dict, new_layer_dict — where it accepts them); a string importer is the copy mode for this layer.
        `growth` {param: growth} (from `network._preserve`) applies under "preserve" / "net2wider".
        """
        unknown_kwargs = set(importer_kwargs) - set(IMPORTER_KWARGS)
        if unknown_kwargs:
            raise ConfigError(
                f"layer {self.name!r}: set_param_values_by_dict got unknown keyword(s) {sorted(unknown_kwargs)}; "
                f"accepted: {', '.join(IMPORTER_KWARGS)}"
            )
        how = layer_import(self.custom_param_importer, check_copy_param_mode(copy_param_mode), self.name)
        new_shapes = {p: tuple(int(d) for d in v.shape) for p, v in self.params.items()}
        pending = self._pending_initial()
        if how.importer is not None:
            importer_kwargs.setdefault("new_layer_dict", self.layer_dict)
            call_custom_importer(how.importer, layer=self, values_dict=values_dict, split_info=split_info,
                                 **importer_kwargs)
            pending.clear()
            return ImportReport(tuple(custom_import_records(self.name, values_dict, new_shapes)))
        already = frozenset(
            p for p, ref in pending.items() if ref is not None and p in values_dict and ref() is values_dict[p]
        )
        to_assign, records = import_layer_values(
            self.name,
            values_dict,
            new_shapes=new_shapes,
            get_new_value=self._new_value,
            copy_param_mode=how.mode,
            ignore_wrong_shape=ignore_wrong_shape,
            old_split_info=split_info,
            new_split_info=self.split_info,
            already_initialized=already,
            ignore_unknown=ignore_unknown,
            growth=growth,
        )
        for param, value in to_assign.items():
            var = self.params[param]
            var.assign(as_tensor(value, var.dtype))
        # created from an initial value that is not (or no longer) the snapshot's entry: give it its fresh init
        self.reset_uncopied_initial_values(skip=already | set(to_assign))
        return ImportReport(tuple(records))

    def reset_uncopied_initial_values(self, skip: frozenset[str] | set[str] = frozenset()) -> None:
        """Re-initialise the params created from an initial value (see `Network.from_dict`), except `skip`.

        For an import that did not copy them after all (e.g. a callback replaced or removed the snapshot entry):
        such a param then holds its fresh init, as if it had never been created from that value.
        """
        pending = self._pending_initial()
        for param in [p for p in pending if p not in skip]:
            var = self.params[param]
            var.assign(as_tensor(self._new_value(param), var.dtype))
        pending.clear()
