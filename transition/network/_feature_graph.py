"""The feature graph of a network, for the copy modes "preserve" / "net2wider" (`_preserve.py`): per layer, how its
output features come from its sources' features, and the role of each axis of its params (`params/_growth.py`).

A node is an input or a layer: "units" (its own units, e.g. linear / Dense / conv / LSTM), "pass" (each input
feature passes on by itself, the sources concatenated: copy, dropout, elementwise activations, batch norm, pooling),
"combine" (elementwise across sources of equal dims: add / sub / mul), "mix" (every output feature depends on all
input features: layer norm, softmax) or "opaque" (a layer the rules do not know: it must keep its input and params).
Net dict layers say it themselves (`NetLayer.growth_kind`, `add_param(roles=...)`, `identity_blocker`); Keras
layers by their class (`_KERAS_PASS` & co. below). The graph of a net dict is made without variables (`dry_net`),
so that the start-up check can use it; `graph_from_snapshot` derives the graph of the network a snapshot came from
(`Network.set_params_by_serialized`, which knows no old network).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import json

import attrs
import keras
import numpy as np

from transition.errors import ConfigError
from transition.internal._graph import postorder
from transition.internal._keras_private import layer_call_inputs, layer_call_outputs, sublayers, tensor_producer
from transition.network._build import DryNet, dry_net, dry_net_of
from transition.network._layers_base import NONNEG_ACTIVATIONS
from transition.params._snapshot import ParamsSnapshot
from transition.params._split import transform_split_info_to_shape

__all__ = ["ParamAxes", "Node", "FeatureGraph", "graph_of_net_dict", "graph_of_network", "graph_from_snapshot",
           "input_node_name"]

_ONE_VALUED = ("scale", "gamma", "variance")  # a per-feature param whose identity value is 1 (else 0)
# options that do not change what a layer computes at inference, or whose change the growth handles (its width)
_NOT_FUNCTION = frozenset({"n_out", "dropout", "momentum", "masked_time", "name", "trainable", "units", "filters",
                           "rate", "seed", "noise_shape", "recurrent_dropout", "output_dim", "input_dim", "dtype"})


@attrs.frozen
class ParamAxes:
    """One param of a node: the `Network` layer that holds it (a Keras cell: "lstm/lstm_cell"), its name, the role
    of each axis (None: unknown), shape and split info; `feature_value`: the identity value of new features."""

    layer: str
    param: str
    roles: tuple[str, ...] | None
    shape: tuple[int, ...]
    split: tuple[tuple[int, ...], ...]
    feature_value: float | None = 0.0


@attrs.frozen
class Node:
    """A layer or input of the feature graph (see the module docs)."""

    name: str
    kind: str  # "input", "units", "pass", "combine", "mix", "opaque"
    cls: str  # for messages: "linear", "Dense", ...
    sources: tuple[str, ...] = ()
    dim: int = 0
    activation: str | None = None  # the elementwise function applied last
    params: tuple[ParamAxes, ...] = ()
    blocker: str | None = None  # why a new one cannot start as the identity (None: it can, given its activation)
    nonneg: bool = False  # its output is >= 0 on every input
    ids: bool = False  # its output is int ids (no features)
    config: tuple[tuple[str, str], ...] = ()  # the options that make what it computes (JSON values), but its width

    def param(self, layer: str, param: str) -> ParamAxes | None:
        return next((p for p in self.params if (p.layer, p.param) == (layer, param)), None)


@attrs.frozen
class FeatureGraph:
    """The nodes in topological order and the output layers (in the network's order)."""

    nodes: Mapping[str, Node]
    outputs: tuple[str, ...]

    def ancestors(self, name: str) -> list[str]:
        """The nodes `name` reads, directly or not, nearest first."""
        out, seen, queue = [], {name}, list(self.nodes[name].sources) if name in self.nodes else []
        while queue:
            src = queue.pop(0)
            if src in seen or src not in self.nodes:
                continue
            seen.add(src)
            out.append(src)
            queue.extend(self.nodes[src].sources)
        return out


def input_node_name(key: str) -> str:
    """The node of extern data `key` in a net dict's graph: "data" or "data:<key>" (as "from" names it)."""
    return "data" if key == "data" else f"data:{key}"


def _feature_value(param: str) -> float:
    return 1.0 if any(word in param.rsplit("/", 1)[-1] for word in _ONE_VALUED) else 0.0


def _function_config(options: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The options of a layer that make what it computes, as (key, JSON) pairs (initializers & co. do not)."""
    out = []
    for key, value in sorted(options.items()):
        if key in _NOT_FUNCTION or key.startswith("#") or key.endswith(("_initializer", "_regularizer",
                                                                          "_constraint")):
            continue
        out.append((key, json.dumps(value, sort_keys=True, default=repr)))
    return tuple(out)


# ------------------------------------------------------------------------------------------------ net dicts


def graph_of_net_dict(net_dict: Mapping[str, Any], extern_data: Mapping[str, Any],
                      behavior_version: int | None = None) -> FeatureGraph:
    """The feature graph of a net dict (checked as `dry_net` checks it; no variables)."""
    return _graph_of_dry(dry_net(net_dict, extern_data, behavior_version))


def _graph_of_dry(dry: DryNet) -> FeatureGraph:
    nodes: dict[str, Node] = {}
    read = {key for sources in dry.sources.values() for kind, key in sources if kind == "data"}
    for key, info in dry.extern.items():
        if key not in read:
            continue
        name = input_node_name(key)
        nodes[name] = Node(name, "input", "extern data", dim=info.dim, ids=info.sparse)
    for name, layer in dry.layers.items():
        sources = tuple(input_node_name(s) if kind == "data" else s for kind, s in dry.sources[name])
        kind = layer.growth_kind
        params = []
        for param, shape in layer.param_shapes.items():
            roles = layer.param_roles.get(param)
            split = tuple(tuple(axis) for axis in layer.split_info[param])
            params.append(ParamAxes(name, param, roles, tuple(shape), split, _feature_value(param)))
            if roles is None:
                kind = "opaque"
        info = layer.out_info
        nodes[name] = Node(name, kind, str(layer.layer_dict.get("class")), sources, dim=int(info.dim),
                           activation=layer.growth_activation(), params=tuple(params),
                           blocker=layer.identity_blocker(),
                           nonneg=bool(layer.growth_nonneg([nodes[s].nonneg for s in sources])), ids=info.sparse,
                           config=_function_config(layer.opts))
    return FeatureGraph(nodes, tuple(dry.outputs))


def graph_of_network(network: Any) -> FeatureGraph:
    """The feature graph of a `Network`: of its net dict, or of its Keras model."""
    if network.net_dict is not None:  # its own layers where it has them (no dry build)
        layers = {name: layer.keras_layer for name, layer in network.layers.items()}
        dry = dry_net_of(network.net_dict, network.extern_data or {}, layers)
        if dry is not None:
            return _graph_of_dry(dry)
        return graph_of_net_dict(network.net_dict, network.extern_data or {}, network.behavior_version)
    return graph_of_keras(network)


# ------------------------------------------------------------------------------------------------ Keras

_KERAS_PASS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
               "GaussianDropout", "AlphaDropout", "Identity", "Masking", "ActivityRegularization")
_KERAS_POOL = ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
               "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
               "AveragePooling1D", "AveragePooling2D", "AveragePooling3D")
_KERAS_COMBINE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
_KERAS_CONV = ("Conv1D", "Conv2D", "Conv3D")
_KERAS_RNN = ("LSTM", "GRU", "SimpleRNN")
_KERAS_CELLS = ("LSTMCell", "GRUCell", "SimpleRNNCell")
_KERAS_FEATURE = {"BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
                  "LayerNormalization": ("gamma", "beta")}


def _cls(layer: Any) -> str:
    return type(layer).__name__


def _is(layer: Any, names: Sequence[str]) -> bool:
    classes = tuple(c for c in (getattr(keras.layers, n, None) for n in names) if isinstance(c, type))
    return isinstance(layer, classes)


def _activation_name(fn: Any) -> str | None:
    name = getattr(fn, "__name__", None) if fn is not None else None
    return None if name in (None, "linear") else str(name)


def _last_axis(layer: Any) -> bool:
    axis = getattr(layer, "axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    return axis == -1


def _keras_roles(layer: Any, param: str, shape: tuple[int, ...]) -> tuple[tuple[str, ...] | None, float | None]:
    """(the roles of a Keras param's axes or None, its feature identity value)."""
    n = len(shape)
    if _is(layer, ("Dense",)) and param in ("kernel", "bias"):
        return (("in", "out") if param == "kernel" else ("out",)) if n == (2 if param == "kernel" else 1) else None, 0.0
    if _is(layer, _KERAS_CONV) and getattr(layer, "groups", 1) == 1 and layer.data_format == "channels_last":
        if param == "kernel" and n >= 3:
            return ("fixed",) * (n - 2) + ("in", "out"), 0.0
        return (("out",) if param == "bias" and n == 1 else None), 0.0
    if _is(layer, _KERAS_CELLS):
        roles = {"kernel": ("in", "out"), "recurrent_kernel": ("rec", "out")}.get(param)
        if param == "bias":
            roles = ("out",) if n == 1 else ("fixed", "out")
        return (roles if roles is not None and len(roles) == n else None), 0.0
    if _is(layer, ("Embedding",)) and param == "embeddings" and n == 2:
        return ("ids", "out"), 0.0
    for cls, names in _KERAS_FEATURE.items():
        if _is(layer, (cls,)) and param in names and n == 1 and _last_axis(layer):
            return ("feature",), _feature_value(param)
    if _is(layer, ("PReLU",)) and param == "alpha" and n >= 1:
        return ("fixed",) * (n - 1) + ("feature",), None
    return None, 0.0


def _keras_kind(layer: Any) -> tuple[str, str | None, str | None]:
    """(kind, activation, why a new one cannot start as the identity) of a Keras layer by its class."""
    if _is(layer, ("Dense",)):
        return "units", _activation_name(layer.activation), None
    if _is(layer, _KERAS_CONV):
        ok = layer.padding == "same" and all(s == 1 for s in layer.strides) and all(k % 2 for k in layer.kernel_size)
        why = None if ok else "a conv passes its input through only with padding 'same', strides 1 and odd kernels"
        return "units", _activation_name(layer.activation), why
    if _is(layer, _KERAS_RNN) and not getattr(layer, "return_state", False):
        return "units", None, f"a {_cls(layer)} does not pass its input through unchanged"
    if _is(layer, ("Embedding",)):
        return "units", None, "an Embedding has no input features to pass through"
    if _is(layer, ("BatchNormalization",)) and _last_axis(layer):
        return "pass", None, "BatchNormalization scales by the statistics of its input"
    if _is(layer, ("LayerNormalization", "UnitNormalization", "Softmax")) and _last_axis(layer):
        return "mix", None, f"{_cls(layer)} normalises over all its input features"
    if _is(layer, _KERAS_PASS):
        return "pass", None, None
    if _is(layer, ("Activation",)):
        act = _activation_name(layer.activation)
        if act in ("softmax", "log_softmax"):
            return "mix", act, f"activation {act!r} normalises over all its input features"
        return "pass", act, None
    if _is(layer, ("ReLU",)):
        plain = layer.max_value is None and not layer.negative_slope and not layer.threshold
        return ("pass", "relu", None) if plain else ("pass", "relu (clipped)", None)
    if _is(layer, ("LeakyReLU", "ELU", "PReLU")):
        return "pass", _cls(layer).lower(), None
    if _is(layer, ("Concatenate",)) and _last_axis(layer):
        return "pass", None, None
    if _is(layer, _KERAS_COMBINE):
        return "combine", None, f"a new {_cls(layer)} does not pass one input through"
    if _is(layer, _KERAS_POOL) and getattr(layer, "data_format", "channels_last") == "channels_last":
        return "pass", None, f"{_cls(layer)} pools over its other axes"
    return "opaque", None, f"the preserve rules do not know Keras layer class {_cls(layer)}"


def _keras_nonneg(layer: Any, kind: str, activation: str | None, sources_nonneg: list[bool]) -> bool:
    if activation in NONNEG_ACTIVATIONS:
        return True
    if kind == "pass" and activation is None and not _is(layer, ("BatchNormalization",)):
        return all(sources_nonneg)
    return kind == "combine" and not _is(layer, ("Subtract",)) and all(sources_nonneg)


def _tensor_source(tensor: Any) -> tuple[str, Any] | None:
    """(the node name, the layer) that made a symbolic tensor (an InputLayer for inputs); None when unknown or not
    the layer's only output."""
    made = tensor_producer(tensor)
    if made is None:
        return None
    op, _, index = made
    if index != 0 or len(layer_call_outputs(op)[0] if layer_call_outputs(op) else ()) > 1:
        return None
    return op.name, op


def _last_dim(tensor: Any) -> int:
    shape = getattr(tensor, "shape", ())
    return int(shape[-1]) if len(shape) and shape[-1] is not None else 0


def graph_of_keras(network: Any) -> FeatureGraph:
    """The feature graph of a wrapped Keras model (functional or Sequential; a nested model is one opaque node)."""
    model = network.keras_model
    owner: dict[int, str] = {}
    for top in model.layers:
        for sub in [top, *sublayers(top, recursive=True)]:
            owner.setdefault(id(sub), top.name)
    params_of: dict[str, list[tuple[str, Any]]] = {}
    for name, layer in network.layers.items():
        if layer.params and id(layer.keras_layer) in owner:
            params_of.setdefault(owner[id(layer.keras_layer)], []).append((name, layer))
    nodes: dict[str, Node] = {}
    found_of: dict[int, list[tuple[str, Any] | None]] = {}  # id(layer) -> its sources (None: not one layer's)

    def sources(layer: Any) -> list[Any]:
        if isinstance(layer, keras.layers.InputLayer):
            return []
        calls = layer_call_inputs(layer)
        found_of[id(layer)] = [_tensor_source(t) for t in calls[0]] if len(calls) == 1 else [None]
        return [src[1] for src in found_of[id(layer)] if src is not None]

    for layer in postorder(model.layers, sources):  # each after its sources, at any depth
        if layer.name in nodes:
            continue
        if isinstance(layer, keras.layers.InputLayer):
            out = layer_call_outputs(layer)
            tensor = out[0][0] if out and out[0] else None
            dtype = str(getattr(tensor, "dtype", "float32"))
            nodes[layer.name] = Node(layer.name, "input", "Input", dim=_last_dim(tensor),
                                     ids=dtype.startswith(("int", "uint")))
        else:
            nodes[layer.name] = _keras_node(layer, found_of[id(layer)], params_of.get(layer.name, []), nodes)
    try:  # in the order of the model's (flattened) call result
        out_tensors = keras.tree.flatten(model.output)
    except (AttributeError, ValueError):  # a Sequential model has `outputs` only
        out_tensors = list(model.outputs)
    outputs = []
    for tensor in out_tensors:
        src = _tensor_source(tensor)
        if src is None:
            raise ConfigError(f"the outputs of Keras model {model.name!r} are not each a layer's only output; "
                              "'preserve' needs one layer per output")
        outputs.append(src[0])
    return FeatureGraph(nodes, tuple(outputs))


def _keras_node(layer: Any, found: list[tuple[str, Any] | None], param_layers: list[tuple[str, Any]],
                nodes: Mapping[str, Node]) -> Node:
    out = layer_call_outputs(layer)
    dim = _last_dim(out[0][0]) if len(out) == 1 and out[0] else 0
    kind, act, blocker = _keras_kind(layer)
    if None in found or len(out) != 1 or isinstance(layer, keras.Model):
        kind, blocker = "opaque", f"{_cls(layer)} {layer.name!r} is shared, nested or has several outputs"
    params = []
    for lname, wrapped in param_layers:
        for param, var in wrapped.params.items():
            shape = tuple(int(d) for d in var.shape)
            roles, value = _keras_roles(wrapped.keras_layer, param, shape)
            if roles is None:
                kind = "opaque"
            split = tuple(tuple(a) for a in wrapped.split_info[param])
            params.append(ParamAxes(lname, param, roles, shape, split, value))
    sources = tuple(src[0] for src in found if src is not None)
    nonneg = _keras_nonneg(layer, kind, act, [nodes[s].nonneg for s in sources if s in nodes])
    try:
        config = _function_config(layer.get_config())
    except (NotImplementedError, TypeError, ValueError):  # a layer without a config
        config = ()
    return Node(layer.name, kind, _cls(layer), sources, dim=dim, activation=act, params=tuple(params),
                blocker=blocker, nonneg=nonneg, config=config)


# ------------------------------------------------------------------------------------------------ snapshots


def graph_from_snapshot(new: FeatureGraph, snapshot: ParamsSnapshot) -> FeatureGraph:
    """The graph of the network that `snapshot` came from, assuming that network grew into `new` by widening layers
    and inserting layers on its paths: a node whose params the snapshot lacks is new (the old graph reads its
    sources instead), the others have the snapshot's shapes (their dims follow from them)."""
    values = snapshot.values_dict
    nodes: dict[str, Node] = {}
    bypass: dict[str, tuple[str, ...]] = {}
    for name, node in new.nodes.items():
        sources = tuple(s for src in node.sources for s in bypass.get(src, (src,)))
        if node.params and not any(p.layer in values for p in node.params):
            bypass[name] = sources
            continue
        params = tuple(_old_param(p, values[p.layer][p.param], snapshot) for p in node.params
                       if p.param in values.get(p.layer, {}))
        nodes[name] = attrs.evolve(node, sources=sources, params=params, dim=_old_dim(node, params, sources, nodes))
    return FeatureGraph(nodes, tuple(o for o in new.outputs if o in nodes))


def _old_param(new: ParamAxes, value: Any, snapshot: ParamsSnapshot) -> ParamAxes:
    shape = tuple(int(d) for d in np.shape(value))
    split = snapshot.split_info.get(new.layer, {}).get(new.param)
    if split is None or len(split) != len(shape):
        split = transform_split_info_to_shape([list(a) for a in new.split], shape, f"{new.layer}/{new.param}") if (
            len(new.split) == len(shape)) else [[d] for d in shape]
    return attrs.evolve(new, shape=shape, split=tuple(tuple(int(p) for p in a) for a in split))


def _old_dim(node: Node, params: Sequence[ParamAxes], sources: Sequence[str], nodes: Mapping[str, Node]) -> int:
    if node.kind == "units":
        for p in params:
            if p.roles and "out" in p.roles:
                axis = p.roles.index("out")
                return p.shape[axis] // max(len(p.split[axis]), 1)
        return node.dim
    if node.kind in ("pass", "mix") and sources and all(s in nodes for s in sources):
        return sum(nodes[s].dim for s in sources)
    if node.kind == "combine" and sources and sources[0] in nodes:
        return nodes[sources[0]].dim
    return node.dim
