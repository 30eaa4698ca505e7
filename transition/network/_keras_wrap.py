"""Presenting any built Keras 3 model as named layers with named params (for `Network.from_keras`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from transition.errors import ConfigError
from transition.internal._keras_private import sublayers
from transition.network._layer import Layer
from transition.params._split import whole_axis_splits

__all__ = ["keras_layers", "keras_input_keys", "keras_inputs_are_dict"]


def keras_layers(model: keras.Model) -> dict[str, Layer]:
    """{name: Layer} of a built model: layers by `layer.name` ("outer/inner" when nested), params by the variable
    path relative to the layer (e.g. "kernel")."""
    out: dict[str, Layer] = {}
    _collect(model, "", out, top=True)
    return out


def _input_struct(model: keras.Model) -> Any:
    """The structure of a functional model's inputs (`model.input`), or None where the model has none."""
    try:
        return model.input
    except (AttributeError, ValueError):  # a subclassed model that has no symbolic inputs
        return None


def keras_inputs_are_dict(model: keras.Model) -> bool:
    """Whether the model takes a dict of named inputs."""
    return isinstance(_input_struct(model), Mapping)


def keras_input_keys(model: keras.Model) -> tuple[str, ...]:
    """The names of a model's dict inputs, else ("data",)."""
    inputs = _input_struct(model)
    return tuple(inputs.keys()) if isinstance(inputs, Mapping) else ("data",)


def _own_weights(layer: keras.layers.Layer) -> list[keras.Variable]:
    sub_ids = {id(v) for sub in sublayers(layer, recursive=True) for v in sub.weights}
    seen, out = set(), []
    for v in layer.weights:
        if id(v) not in sub_ids and id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _collect(layer: keras.layers.Layer, prefix: str, out: dict[str, Layer], top: bool = False) -> None:
    name = prefix
    if not top:
        name = f"{prefix}/{layer.name}" if prefix else layer.name
        if isinstance(layer, keras.layers.InputLayer):
            return
    own = _own_weights(layer)
    if own or not top:
        key = name or layer.name
        if key in out:
            raise ConfigError(f"Network.from_keras: two layers are named {key!r}; give the Keras layers unique names")
        params: dict[str, keras.Variable] = {}
        for v in own:
            pname = _relative_path(v, layer.name)
            base, i = pname, 1
            while pname in params:
                pname, i = f"{base}_{i}", i + 1
            params[pname] = v
        out[key] = Layer(key, params=params, split_info=_split_info(layer, params), keras_layer=layer)
    for sub in sublayers(layer, recursive=False):
        _collect(sub, name, out)


def _relative_path(v: keras.Variable, layer_name: str) -> str:
    parts = v.path.split("/")
    if layer_name in parts[:-1]:
        idx = len(parts) - 1 - parts[::-1].index(layer_name)
        return "/".join(parts[idx + 1 :])
    return v.name


def _split_info(layer: keras.layers.Layer, params: Mapping[str, keras.Variable]) -> dict[str, list[list[int]]]:
    """Gate parts for Keras LSTM (4 gates) and GRU (3); one part per axis otherwise."""
    lstm, gru = (keras.layers.LSTM, keras.layers.LSTMCell), (keras.layers.GRU, keras.layers.GRUCell)
    gates = 4 if isinstance(layer, lstm) else 3 if isinstance(layer, gru) else 0
    info = {}
    for p, v in params.items():
        shape = [int(d) for d in v.shape]
        if gates and shape and shape[-1] % gates == 0 and p.split("/")[-1] in ("kernel", "recurrent_kernel", "bias"):
            info[p] = [[d] for d in shape[:-1]] + [[shape[-1] // gates] * gates]
        else:
            info[p] = whole_axis_splits(shape)
    return info
