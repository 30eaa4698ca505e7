"""Build a `Network` from a RETURNN-style net dict: resolve "from", order the layers, create the Keras graphs.

The outputs are, as in RETURNN, the layer "output" and every layer with a loss or `"is_output_layer": True`
("output" first, then in the net dict's order). Three Keras models share the layers: `keras_model` (the outputs;
every frame counts), `loss_model` (what the losses read) and, when the net reads data with a time axis,
`lengths_model`, which also takes the sequence lengths `"<key>:seq_len"` of that data and gives each output's
lengths (`"len/<layer>"`) beside the outputs (`"out/<layer>"`) and the losses' inputs (`"loss/<layer>"`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import keras

from transition.errors import ConfigError, did_you_mean
from transition.internal._graph import Cycle, gc_paused, postorder, recursion_room
from transition.netdict._netdict import is_layer_key, normalize_layer_dict
from transition.network import _layers  # noqa: F401  (registers the built-in layer classes)
from transition.network._extern_data import parse_extern_data
from transition.network._layer import Layer
from transition.network._layers_base import DataInfo, NetLayer, SeqLenOf, dry_params, get_layer_class
from transition.network._losses import LOSSES

__all__ = ["BuiltNet", "DryNet", "build_from_dict", "dry_build", "dry_net", "dry_net_of", "output_layer_names",
           "seq_len_key"]


def seq_len_key(key: str) -> str:
    """The name of the sequence lengths of extern data `key`: "<key>:seq_len"."""
    return f"{key}:seq_len"


def _check_layer_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"net dict: layer names must be non-empty strings, got {name!r}")
    if "/" in name or name == "data" or name.startswith("data:"):
        raise ConfigError(
            f"net dict: layer name {name!r} is not allowed ('data' and 'data:...' name extern data, '/' separates "
            "layer and param); rename the layer"
        )


def _resolve_sources(
    name: str, layer_dict: Mapping[str, Any], layers: Mapping[str, Any], extern: Mapping[str, DataInfo]
) -> list[tuple[str, str]]:
    """[("data", key) | ("layer", name)] for the layer's "from"."""
    out = []
    for src in normalize_layer_dict(name, {"from": layer_dict.get("from", "data")})["from"]:
        if not isinstance(src, str):
            raise ConfigError(f"layer {name!r}: 'from' entries must be layer names, got {src!r}")
        if src == "data" or src.startswith("data:"):
            key = "data" if src == "data" else src[len("data:") :]
            if key not in extern:
                raise ConfigError(
                    f"layer {name!r}: source {src!r} names extern data {key!r}, which extern_data lacks"
                    f"{did_you_mean(key, extern)}; extern_data has {list(extern)}"
                )
            out.append(("data", key))
        elif src in layers:
            out.append(("layer", src))
        else:
            candidates = list(layers) + ["data"] + [f"data:{k}" for k in extern]
            raise ConfigError(
                f"layer {name!r}: unknown source {src!r} in 'from'{did_you_mean(src, candidates)}; use a layer of the "
                "net dict, 'data' or 'data:<extern key>'"
            )
    return out


def _topo_order(sources: Mapping[str, list[tuple[str, str]]]) -> list[str]:
    """The layers, each after its sources (any depth); a ConfigError naming a cycle in 'from'."""
    try:
        return postorder(sources, lambda name: [src for kind, src in sources[name] if kind == "layer"])
    except Cycle as cycle:
        raise ConfigError(f"layer {cycle.path[0]!r} is part of a cycle in 'from': {' -> '.join(cycle.path)}; break "
                          "the cycle") from None


def _loss_spec(name: str, d: Mapping[str, Any], extern: Mapping[str, DataInfo]):
    target = d.get("target")
    if target is not None and (not isinstance(target, str) or target not in extern):
        hint = did_you_mean(target, extern) if isinstance(target, str) else ""
        raise ConfigError(
            f"layer {name!r}: target {target!r} is not in extern_data{hint}; extern_data has {list(extern)}"
        )
    loss = d.get("loss")
    if loss is None:
        return None, target
    if loss not in LOSSES:
        hint = did_you_mean(loss, LOSSES) if isinstance(loss, str) else ""
        raise ConfigError(f"layer {name!r}: unknown loss {loss!r}{hint}; supported: {list(LOSSES)}")
    if target is None:
        raise ConfigError(f"layer {name!r}: loss {loss!r} needs a 'target' (an extern_data key)")
    scale = d.get("loss_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ConfigError(f"layer {name!r}: option 'loss_scale' must be a number, got {scale!r}")
    return (loss, target, float(scale)), target


@attrs.frozen
class BuiltNet:
    """What `build_from_dict` makes of a net dict: the layers, the Keras models and the losses."""

    layers: Mapping[str, Layer]
    keras_model: keras.Model
    loss_model: keras.Model | None
    losses: Mapping[str, tuple[str, str, float, bool]]  # layer -> (loss, target, scale, output is logits)
    input_keys: tuple[str, ...]
    outputs: tuple[str, ...] = ()
    lengths_model: keras.Model | None = None
    time_keys: tuple[str, ...] = ()  # the inputs with a time axis (their lengths feed lengths_model)
    extern_time_keys: tuple[str, ...] = ()  # every extern_data key with a time axis (inputs and targets)


def _layer_dicts(net_dict: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The layers of a net dict (keys starting with "#" are options), each checked to be a dict with a class."""
    if not isinstance(net_dict, Mapping):
        raise ConfigError(f"a net dict must be a dict of layer name -> layer dict, got {type(net_dict).__name__}")
    layer_dicts: dict[str, Mapping[str, Any]] = {}
    for name, d in net_dict.items():
        if isinstance(name, str) and not is_layer_key(name):
            continue
        _check_layer_name(name)
        if not isinstance(d, Mapping):
            raise ConfigError(f"layer {name!r}: expected a dict of options, got {type(d).__name__}")
        if "class" not in d:
            raise ConfigError(f"layer {name!r}: missing option 'class' (e.g. 'class': 'linear')")
        layer_dicts[name] = d
    return layer_dicts


def output_layer_names(layer_dicts: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    """The outputs of a net dict as RETURNN has them: "output" (if there is one) first, then every layer with a
    loss or `"is_output_layer": True`; a ConfigError when there is none."""
    for name, d in layer_dicts.items():
        flag = d.get("is_output_layer", False)
        if not isinstance(flag, bool):
            raise ConfigError(f"layer {name!r}: option 'is_output_layer' must be True or False, got {flag!r}")
    names = [n for n in layer_dicts if n == "output"]
    names += [n for n, d in layer_dicts.items()
              if n != "output" and (d.get("loss") is not None or d.get("is_output_layer", False))]
    if not names:
        raise ConfigError(
            f"the net dict has no output: no layer 'output'{did_you_mean('output', layer_dicts)} and no layer with a "
            "'loss' or 'is_output_layer': True; name the output layer 'output' or mark the outputs"
        )
    return tuple(names)


@attrs.frozen
class _Plan:
    """A checked net dict: extern data, layer dicts, outputs, classes, resolved sources and the build order."""

    extern: Mapping[str, DataInfo]
    layer_dicts: Mapping[str, Mapping[str, Any]]
    outputs: tuple[str, ...]
    classes: Mapping[str, type[NetLayer]]
    sources: Mapping[str, list[tuple[str, str]]]
    order: list[str]

    @classmethod
    def of(cls, net_dict: Mapping[str, Any], extern_data: Mapping[str, Any]) -> _Plan:
        extern = parse_extern_data(extern_data)
        layer_dicts = _layer_dicts(net_dict)
        outputs = output_layer_names(layer_dicts)
        classes = {name: get_layer_class(name, d["class"]) for name, d in layer_dicts.items()}
        sources = {name: _resolve_sources(name, d, layer_dicts, extern) for name, d in layer_dicts.items()}
        return cls(extern, layer_dicts, outputs, classes, sources, _topo_order(sources))

    def layers(self, initial_values: Mapping[str, Mapping[str, Any]], behavior_version: int | None):
        """Construct the layers in build order: (name, layer, (loss, target, scale) or None)."""
        infos: dict[str, DataInfo] = {}
        for name in self.order:
            d = self.layer_dicts[name]
            loss, target = _loss_spec(name, d, self.extern)
            src_infos = [self.extern[s] if kind == "data" else infos[s] for kind, s in self.sources[name]]
            layer = self.classes[name](name, layer_dict=d, sources=src_infos,
                                       target_info=self.extern[target] if target is not None else None,
                                       initial_values=initial_values.get(name), behavior_version=behavior_version)
            infos[name] = layer.out_info
            yield name, layer, loss


@attrs.frozen
class DryNet:
    """A net dict checked without variables: its layers in build order (each with `out_info`, `opts`,
    `param_shapes`, `split_info`, `param_roles`), their resolved sources, the outputs and the extern data."""

    layers: Mapping[str, NetLayer]
    sources: Mapping[str, list[tuple[str, str]]]  # layer -> [("data", key) | ("layer", name)]
    outputs: tuple[str, ...]
    extern: Mapping[str, DataInfo]


def dry_net(net_dict: Mapping[str, Any], extern_data: Mapping[str, Any], behavior_version: int | None = None
            ) -> DryNet:
    """Check a net dict as `build_from_dict` does (extern data, layer classes, options, sources, losses, outputs,
    every layer's dims and params) without a Keras graph or variables."""
    plan = _Plan.of(net_dict, extern_data)
    layers: dict[str, NetLayer] = {}
    with dry_params(), gc_paused():
        for name, layer, _ in plan.layers({}, behavior_version):
            layer.create_params()
            layers[name] = layer
    return DryNet(layers, plan.sources, plan.outputs, plan.extern)


def dry_net_of(net_dict: Mapping[str, Any], extern_data: Mapping[str, Any], layers: Mapping[str, Any]
               ) -> DryNet | None:
    """The `DryNet` of layers already built from this net dict (a `Network`'s keras layers): none made again;
    None where one is missing or not a net dict layer (e.g. a released network)."""
    plan = _Plan.of(net_dict, extern_data)
    if any(not isinstance(layers.get(name), NetLayer) for name in plan.order):
        return None
    return DryNet({name: layers[name] for name in plan.order}, plan.sources, plan.outputs, plan.extern)


def dry_build(net_dict: Mapping[str, Any], extern_data: Mapping[str, Any], behavior_version: int | None = None
              ) -> dict[str, dict[str, tuple[int, ...]]]:
    """`dry_net`'s params: {layer: {param: shape}}."""
    return {name: dict(layer.param_shapes) for name, layer in dry_net(net_dict, extern_data, behavior_version
                                                                      ).layers.items()}


@gc_paused()
def build_from_dict(
    net_dict: Mapping[str, Any],
    extern_data: Mapping[str, Any],
    initial_values: Mapping[str, Mapping[str, Any]],
    behavior_version: int | None = None,
) -> BuiltNet:
    """Check the net dict, build every layer in dependency order and the Keras models (any depth: Keras maps a
    model's graph recursively, so the recursion limit gets room for it)."""
    plan = _Plan.of(net_dict, extern_data)
    extern, sources, outputs = plan.extern, plan.sources, plan.outputs
    read_keys = [k for k in extern if any(("data", k) in s for s in sources.values())]
    inputs = {
        k: keras.Input(shape=extern[k].shape, dtype=extern[k].dtype,
                       name=k if k not in plan.layer_dicts else f"data_{k}")
        for k in read_keys
    }
    tensors: dict[str, Any] = {}
    built: dict[str, NetLayer] = {}
    losses: dict[str, tuple[str, str, float, bool]] = {}
    loss_outputs: dict[str, Any] = {}
    for name, layer, loss in plan.layers(initial_values, behavior_version):
        x = [inputs[s] if kind == "data" else tensors[s] for kind, s in sources[name]]
        tensors[name], built[name] = layer(x), layer
        if loss is not None:
            is_logits = bool(layer.provides_logits) and loss[0] == "ce"
            loss_outputs[name] = layer(x, logits=True) if is_logits else tensors[name]
            losses[name] = (*loss, is_logits)
    model_inputs = inputs["data"] if read_keys == ["data"] else inputs
    out_tensors = tensors[outputs[0]] if len(outputs) == 1 else [tensors[n] for n in outputs]
    time_keys = tuple(k for k in read_keys if extern[k].time)
    with recursion_room(len(plan.order)):
        keras_model = keras.Model(inputs=model_inputs, outputs=out_tensors, name="network")
        loss_model = keras.Model(inputs=model_inputs, outputs=loss_outputs, name="network_losses") if losses else None
        lengths_model = None
        if time_keys:
            lengths_model = _lengths_model(_Pass(plan.order, sources, built, inputs, tensors, loss_outputs), time_keys,
                                           outputs, losses)
    layers = {
        name: Layer(name, params=built[name].params, split_info=built[name].split_info, layer_dict=d,
                    keras_layer=built[name])
        for name, d in plan.layer_dicts.items()
    }
    return BuiltNet(layers, keras_model, loss_model, losses, tuple(read_keys), outputs, lengths_model, time_keys,
                    tuple(k for k, info in extern.items() if info.time))


@attrs.frozen
class _Pass:
    """The first pass over the layers: their build order, sources, layers, the inputs and the symbolic outputs
    (and losses' inputs) it made."""

    order: list[str]
    sources: Mapping[str, list[tuple[str, str]]]
    built: Mapping[str, NetLayer]
    inputs: Mapping[str, Any]
    tensors: Mapping[str, Any]
    loss_outputs: Mapping[str, Any]


def _lengths_model(first: _Pass, time_keys: tuple[str, ...], outputs: tuple[str, ...],
                   losses: Mapping[str, tuple[str, str, float, bool]]) -> keras.Model:
    """The layers called once more, with the sequence lengths of the time-axis inputs flowing beside the data.

    A layer whose `forward` takes no lengths and whose sources are those of the first pass would compute the same:
    its first-pass output is reused (no second call; a chain of linear layers is called once)."""
    len_inputs = {k: keras.Input(shape=(), dtype="int32", name=seq_len_key(k)) for k in time_keys}
    inputs, sources = first.inputs, first.sources
    tensors: dict[str, Any] = {}
    lengths: dict[str, Any] = {}
    outs: dict[str, Any] = {}
    for name in first.order:
        layer = first.built[name]
        x = [inputs[s] if kind == "data" else tensors[s] for kind, s in sources[name]]
        src_lens = [len_inputs.get(s) if kind == "data" else lengths.get(s) for kind, s in sources[name]]
        seq_len = next((length for length in src_lens if length is not None), None)
        reuse = not layer.takes_seq_len() and all(
            kind == "data" or tensors[s] is first.tensors[s] for kind, s in sources[name])
        kwargs = {"seq_len": seq_len} if seq_len is not None and layer.takes_seq_len() else {}
        tensors[name] = first.tensors[name] if reuse else layer(x, **kwargs)
        if seq_len is not None and layer.out_info.time:
            same = type(layer).keeps_time_length and type(layer).out_seq_len is NetLayer.out_seq_len
            lengths[name] = seq_len if same else SeqLenOf(layer)(tensors[name], seq_len)
        if name in losses:
            if reuse:
                outs[f"loss/{name}"] = first.loss_outputs[name]
            else:
                outs[f"loss/{name}"] = layer(x, logits=True, **kwargs) if losses[name][3] else tensors[name]
    for name in dict.fromkeys(outputs + tuple(losses)):
        outs[f"out/{name}"] = tensors[name]
        if name in lengths:
            outs[f"len/{name}"] = lengths[name]
    return keras.Model(inputs={**inputs, **{seq_len_key(k): v for k, v in len_inputs.items()}}, outputs=outs,
                       name="network_lengths")
