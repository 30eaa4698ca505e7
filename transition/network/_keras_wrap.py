"""Presenting any built Keras 3 model as named layers with named params (for `Network.from_keras`).

Names: layers by `layer.name` ("outer/inner" when nested), params by the variable path relative to the layer (e.g.
"kernel"); each layer object and each variable is named once (a layer reached again, e.g. through a tied-weights
wrapper, keeps its first name). A model whose variables cannot be named is an error before anything is read: two
layers with one name, two variables of one layer with one name, or a `tf.Variable` Keras does not track.

Split info (the parts of each param axis, so that "subset" growth copies every part to its own new offset) is
inferred from the Keras graph of functional and Sequential models (nested ones included):

- The feature (last) axis of a tensor made by `Concatenate` on that axis has one part per source (nested
  concatenations are flattened); shape-preserving layers (Dropout & co., activations, Batch / Layer / Unit
  normalisation on the last axis, Masking, Identity) pass their input's parts on; a `Bidirectional` RNN with
  merge_mode "concat" has its forward and backward parts.
- The input axis of a Dense kernel, an EinsumDense kernel (where the equation contracts the input's last axis with
  exactly one kernel axis), a Conv1D/2D/3D or DepthwiseConv kernel (channels_last, groups=1; transposed convs: their
  last kernel axis), an RNN cell's kernel (LSTM, GRU, SimpleRNN; also inside Bidirectional / TimeDistributed), and
  the [C] params of BatchNormalization / LayerNormalization / PReLU get the parts of the layer's input.
- LSTM / GRU kernels, recurrent kernels and biases are split by gate on their last axis, in Keras' gate order
  (LSTM: i, f, c, o; GRU: z, r, h; a GRU bias with reset_after has shape [2, 3 units]).
- Everything else (e.g. Embedding's [vocab, dim], conv biases, Dense outputs) is one part per axis. Subclassed
  models have no graph: their params get whole axes, except the gate parts, which come from the layer type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from transition.errors import ConfigError
from transition.internal._graph import recursion_room
from transition.internal._keras_private import layer_call_inputs, layer_call_outputs, sublayers, tensor_producer
from transition.netdict._netdict import NetDictDiff
from transition.network._layer import Layer
from transition.params._split import whole_axis_splits

__all__ = ["keras_layers", "keras_input_keys", "keras_inputs_are_dict", "keras_architecture", "diff_architectures",
           "is_keras_model", "layer_outputs_model"]

Parts = list[int]

_PASS_THROUGH_NAMES = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                       "GaussianDropout", "AlphaDropout", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
                       "PReLU", "UnitNormalization", "Identity", "Masking", "ActivityRegularization",
                       "BatchNormalization", "LayerNormalization")
_FEATURE_PARAM_LAYERS = ("BatchNormalization", "LayerNormalization", "PReLU")  # [C] params over the input features
_CONV_NAMES = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D")
_CONV_TRANSPOSE_NAMES = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
_WRAPPERS = ("RNN", "Bidirectional", "TimeDistributed")  # their inner layers read the wrapper's input features
_GATES = {"LSTMCell": 4, "LSTM": 4, "GRUCell": 3, "GRU": 3}
_CELL_KERNELS = ("kernel", "recurrent_kernel", "bias")


def _classes(names: tuple[str, ...]) -> tuple[type, ...]:
    return tuple(cls for cls in (getattr(keras.layers, n, None) for n in names) if isinstance(cls, type))


def is_keras_model(obj: Any) -> bool:
    """Whether `obj` is a `keras.Model`."""
    return isinstance(obj, keras.Model)


def _is(layer: Any, names: tuple[str, ...]) -> bool:
    return isinstance(layer, _classes(names))


def _last_axis(axis: Any, rank: int | None) -> bool:
    """Whether a layer's `axis` option (an int or a list of one) is the last axis of a tensor of `rank`."""
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return False
        axis = axis[0]
    return isinstance(axis, int) and (axis == -1 or (rank is not None and axis == rank - 1))


def _last_dim(tensor: Any) -> int | None:
    shape = getattr(tensor, "shape", None)
    if shape is None or len(shape) == 0 or shape[-1] is None:
        return None
    return int(shape[-1])


class _Graph:
    """The feature parts of the tensors of a model's Keras graph (see the module docs)."""

    def __init__(self, model: keras.Model):
        self._memo: dict[int, Parts | None] = {}
        self._alias: dict[int, Any] = {}  # a nested model's input tensor -> the outer tensor it was called on
        for sub in [model, *sublayers(model, recursive=True)]:
            inner = getattr(sub, "inputs", None)
            calls = layer_call_inputs(sub) if isinstance(sub, keras.Model) else []
            if isinstance(inner, (list, tuple)) and len(calls) == 1 and len(calls[0]) == len(inner):
                for inner_t, outer_t in zip(inner, calls[0]):
                    self._alias[id(inner_t)] = outer_t

    def parts(self, tensor: Any) -> Parts | None:
        """The parts of the tensor's last axis (None: its dim is unknown)."""
        key = id(tensor)
        if key not in self._memo:
            self._memo[key] = None  # a cycle guard; graphs are acyclic
            self._memo[key] = self._compute(tensor)
        return self._memo[key]

    def _compute(self, tensor: Any) -> Parts | None:
        dim = _last_dim(tensor)
        if dim is None:
            return None
        if id(tensor) in self._alias:
            return self._checked(self.parts(self._alias[id(tensor)]), dim)
        made = tensor_producer(tensor)
        if made is None:
            return [dim]
        op, inputs, index = made
        rank = len(tensor.shape)
        if isinstance(op, keras.layers.Concatenate) and _last_axis(op.axis, rank):
            parts: Parts = []
            for x in inputs:
                p = self.parts(x)
                if p is None:
                    return [dim]
                parts += p
            return self._checked(parts, dim)
        if _is(op, _PASS_THROUGH_NAMES) and len(inputs) == 1 and _last_dim(inputs[0]) == dim:
            if not _is(op, ("BatchNormalization", "LayerNormalization")) or _last_axis(op.axis, rank):
                return self._checked(self.parts(inputs[0]), dim)
        if isinstance(op, keras.layers.Bidirectional) and op.merge_mode == "concat":
            units = [getattr(op.forward_layer, "units", None), getattr(op.backward_layer, "units", None)]
            if all(isinstance(u, int) for u in units):
                return self._checked(units, dim)
        outputs = getattr(op, "outputs", None)  # a nested model: the parts of its own output
        if isinstance(op, keras.Model) and isinstance(outputs, (list, tuple)) and 0 <= index < len(outputs):
            return self._checked(self.parts(outputs[index]), dim)
        return [dim]

    @staticmethod
    def _checked(parts: Parts | None, dim: int) -> Parts:
        return parts if parts is not None and sum(parts) == dim and all(p > 0 for p in parts) else [dim]

    def input_parts(self, layer: Any) -> Parts | None:
        """The parts of the feature axis of the layer's (first) input, when every call of the layer agrees."""
        found = [self.parts(call[0]) for call in layer_call_inputs(layer) if call]
        if not found or any(p != found[0] for p in found):
            return None
        return found[0]


def keras_layers(model: keras.Model) -> dict[str, Layer]:
    """{name: Layer} of a built model (see the module docs for the names and the split info)."""
    graph = _Graph(model)
    found: list[tuple[str, keras.layers.Layer, Parts | None]] = []
    _collect(model, "", found, graph, inherited=None, seen=set(), top=True)
    names: dict[str, keras.layers.Layer] = {}
    for key, layer, _ in found:
        if key in names:
            raise ConfigError(f"Network.from_keras: two layers are named {key!r} ({type(names[key]).__name__} and "
                              f"{type(layer).__name__}); give the Keras layers unique names (name=...)")
        names[key] = layer
    owner = _variable_owners(found)
    out: dict[str, Layer] = {}
    for key, layer, in_parts in found:
        params = _params(key, layer, [v for v in layer.weights if owner.get(id(v)) == key])
        out[key] = Layer(key, params=params, split_info=_split_info(layer, params, in_parts), keras_layer=layer)
    return out


def _collect(layer: keras.layers.Layer, prefix: str, out: list, graph: _Graph, *, inherited: Parts | None,
             seen: set[int], top: bool = False) -> None:
    """Every layer once, depth first, with the parts of its input features."""
    if id(layer) in seen or (not top and isinstance(layer, keras.layers.InputLayer)):
        return
    seen.add(id(layer))
    _check_untracked(layer, prefix or layer.name)
    name = prefix if top else (f"{prefix}/{layer.name}" if prefix else layer.name)
    in_parts = graph.input_parts(layer) if layer_call_inputs(layer) else inherited
    if not top or _direct_weights(layer):
        out.append((name or layer.name, layer, in_parts))
    inner_inherited = in_parts if _is(layer, _WRAPPERS) else None
    for sub in sublayers(layer, recursive=False):
        _collect(sub, name, out, graph, inherited=inner_inherited, seen=seen)


def _direct_weights(layer: keras.layers.Layer) -> list[keras.Variable]:
    sub_ids = {id(v) for sub in sublayers(layer, recursive=True) for v in sub.weights}
    return [v for v in layer.weights if id(v) not in sub_ids]


def _variable_owners(found: list[tuple[str, keras.layers.Layer, Any]]) -> dict[int, str]:
    """{id(variable): the layer name it is named under}: the layer whose path holds the variable's path (the one
    that created it), else the first layer listing it among its own weights."""
    owner: dict[int, str] = {}
    for key, layer, _ in found:
        for v in _direct_weights(layer):
            path = getattr(layer, "path", None)
            created_here = isinstance(path, str) and str(getattr(v, "path", "")).startswith(path + "/")
            if id(v) not in owner or created_here:
                owner[id(v)] = key
    return owner


def _params(key: str, layer: keras.layers.Layer, variables: list[keras.Variable]) -> dict[str, keras.Variable]:
    params: dict[str, keras.Variable] = {}
    for v in variables:
        pname = _relative_path(v, layer.name)
        if pname in params:
            raise ConfigError(
                f"Network.from_keras: layer {key!r} has two variables named {pname!r} (paths "
                f"{params[pname].path!r} and {v.path!r}); they cannot be named apart in a checkpoint: give them "
                "distinct names (add_weight(name=...))")
        params[pname] = v
    return params


def _check_untracked(layer: keras.layers.Layer, where: str) -> None:
    """A `tf.Variable` held by a layer is invisible to Keras (neither trained nor saved): it cannot be named."""
    for attr, value in vars(layer).items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for v in items:
            if isinstance(v, tf.Variable):
                raise ConfigError(
                    f"Network.from_keras: layer {where!r} holds a tf.Variable in attribute {attr!r} ({v.name!r}), "
                    "which Keras does not track (it is neither trained nor saved, so it cannot be named); create it "
                    "with self.add_weight(...) or keras.Variable(...)")


def _relative_path(v: keras.Variable, layer_name: str) -> str:
    parts = v.path.split("/")
    if layer_name in parts[:-1]:
        idx = len(parts) - 1 - parts[::-1].index(layer_name)
        return "/".join(parts[idx + 1 :])
    return v.name


# ----------------------------------------------------------------------------------------------- split info


def _split_info(layer: keras.layers.Layer, params: Mapping[str, keras.Variable],
                in_parts: Parts | None) -> dict[str, list[list[int]]]:
    info = {}
    for p, v in params.items():
        shape = [int(d) for d in v.shape]
        info[p] = _param_split(layer, p.split("/")[-1], shape, in_parts)
    return info


def _with_parts(splits: list[list[int]], axis: int, parts: Parts | None, shape: list[int]) -> list[list[int]]:
    if parts is not None and -len(shape) <= axis < len(shape) and sum(parts) == shape[axis]:
        splits[axis] = list(parts)
    return splits


def _param_split(layer: Any, param: str, shape: list[int], in_parts: Parts | None) -> list[list[int]]:
    splits = whole_axis_splits(shape)
    if not shape:
        return splits
    gates = next((n for cls_name, n in _GATES.items() if _is(layer, (cls_name,))), 0)
    if gates and param in _CELL_KERNELS and shape[-1] % gates == 0:
        splits[-1] = [shape[-1] // gates] * gates
    if param == "kernel" and (gates or _is(layer, ("SimpleRNNCell", "SimpleRNN", "Dense"))) and len(shape) == 2:
        return _with_parts(splits, 0, in_parts, shape)
    if param == "kernel" and isinstance(layer, keras.layers.EinsumDense):
        return _with_parts(splits, _einsum_input_axis(layer.equation), in_parts, shape)
    conv = _is(layer, _CONV_NAMES + _CONV_TRANSPOSE_NAMES)
    if conv and param in ("kernel", "depthwise_kernel") and getattr(layer, "data_format", None) == "channels_last" \
            and getattr(layer, "groups", 1) == 1 and len(shape) >= 3:
        return _with_parts(splits, -1 if _is(layer, _CONV_TRANSPOSE_NAMES) else -2, in_parts, shape)
    if _is(layer, _FEATURE_PARAM_LAYERS) and len(shape) == 1 and in_parts is not None:
        return _with_parts(splits, 0, in_parts, shape)
    return splits


def _einsum_input_axis(equation: str) -> int:
    """The kernel axis an EinsumDense contracts with its input's last axis; an invalid index when unclear."""
    try:
        lhs, out = equation.replace(" ", "").split("->")
        inp, kernel = lhs.split(",")
    except ValueError:
        return 1 << 30
    letter = inp[-1:]
    if not letter.isalpha() or kernel.count(letter) != 1 or letter in out:
        return 1 << 30
    return kernel.index(letter)


# ----------------------------------------------------------------------------------------------- architecture


def keras_architecture(model: keras.Model) -> dict[str, dict[str, Any]]:
    """What makes two models the same network: per layer its class, config (without the name), param shapes and
    the layers it reads. Two model objects built by the same code have equal architectures."""
    out = {}
    for name, layer in keras_layers(model).items():
        k = layer.keras_layer
        try:  # through JSON: plain values that compare equal when built by the same code
            config = json.loads(json.dumps({key: v for key, v in k.get_config().items() if key != "name"},
                                           sort_keys=True, default=repr))
        except (NotImplementedError, TypeError, ValueError, ConfigError):  # a layer without a (JSON) config
            config = {}
        sources = set()
        for call in layer_call_inputs(k):
            for t in call:
                made = tensor_producer(t)
                if made is not None:
                    sources.add(made[0].name)
        out[name] = {"class": f"{type(k).__module__}.{type(k).__qualname__}", "config": config,
                     "params": {p: tuple(int(d) for d in v.shape) for p, v in layer.params.items()},
                     "from": sorted(sources)}
    return out


def diff_architectures(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> NetDictDiff:
    """The layers added, removed and changed ({aspect: (old, new)}) between two `keras_architecture`s."""
    changed = {}
    for name in old:
        if name in new and old[name] != new[name]:
            a, b = old[name], new[name]
            aspects = {k: (a.get(k), b.get(k)) for k in ("class", "params", "from") if a.get(k) != b.get(k)}
            ca, cb = a.get("config") or {}, b.get("config") or {}
            aspects.update({f"config.{k}": (ca.get(k), cb.get(k)) for k in sorted({*ca, *cb}) if ca.get(k) != cb.get(k)})
            changed[name] = aspects
    return NetDictDiff(added=tuple(n for n in new if n not in old), removed=tuple(n for n in old if n not in new),
                       changed=changed)


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


def layer_outputs_model(model: keras.Model) -> keras.Model | None:
    """A model with the inputs of `model` that gives {layer name: its output} for each of its (top-level) layers
    with one output (its first call); None for a model without a graph (subclassed)."""
    outputs = {}
    for layer in getattr(model, "layers", ()):
        calls = layer_call_outputs(layer)
        if not isinstance(layer, keras.layers.InputLayer) and calls and len(calls[0]) == 1:
            outputs[layer.name] = calls[0][0]
    inputs = _input_struct(model)
    if inputs is None and getattr(model, "inputs", None):  # a Sequential model has `inputs` only
        inputs = model.inputs[0] if len(model.inputs) == 1 else list(model.inputs)
    if inputs is None or not outputs:
        return None
    try:
        with recursion_room(len(model.layers)):  # Keras maps the graph recursively
            return keras.Model(inputs, outputs, name=f"{model.name}_layer_outputs")
    except (ValueError, TypeError, AttributeError, KeyError):  # e.g. a layer whose first call is in another graph
        return None
