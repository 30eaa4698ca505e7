"""User `custom_param_importer` functions, called as RETURNN calls them (pure Python)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from transition.errors import ConfigError
from transition.params._report import ParamRecord, ParamStatus

__all__ = ["call_custom_importer", "custom_import_records"]


def custom_import_records(
    layer_name: str, values: Mapping[str, np.ndarray], new_shapes: Mapping[str, tuple[int, ...]]
) -> list[ParamRecord]:
    """Records for a layer whose custom importer ran: every new param is CUSTOM."""
    return [
        ParamRecord(
            layer_name,
            param,
            ParamStatus.CUSTOM,
            tuple(np.shape(values[param])) if param in values else None,
            tuple(int(d) for d in shape),
            "custom_param_importer",
        )
        for param, shape in new_shapes.items()
    ]


def call_custom_importer(
    importer: Callable[..., Any],
    *,
    layer: Any,
    values_dict: Mapping[str, np.ndarray],
    split_info: Any = None,
    epoch: int | None = None,
    old_layer_dict: Mapping[str, Any] | None = None,
    new_layer_dict: Mapping[str, Any] | None = None,
) -> Any:
    """Call a user `custom_param_importer` as RETURNN does: `importer(layer=, values_dict=, session=None)`.

    `split_info`, `epoch`, `old_layer_dict` and `new_layer_dict` are passed only where the importer's signature
    accepts them (by name or via **kwargs), so importers written for RETURNN keep working. `session` is passed
    unless the signature is known not to accept it. Returns what the importer returns.
    """
    if not callable(importer):
        raise ConfigError(f"custom_param_importer {importer!r} is not callable; give a function or a copy mode string")
    kwargs: dict[str, Any] = {"layer": layer, "values_dict": values_dict}
    optional = {
        "session": None,
        "split_info": split_info,
        "epoch": epoch,
        "old_layer_dict": old_layer_dict,
        "new_layer_dict": new_layer_dict,
    }
    try:
        sig = inspect.signature(importer)
    except (TypeError, ValueError):  # e.g. some builtins: pass what RETURNN passes
        kwargs["session"] = None
        return importer(**kwargs)
    params = sig.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, value in optional.items():
        p = params.get(key)
        by_name = p is not None and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if var_kw or by_name:
            kwargs[key] = value
    return importer(**kwargs)
