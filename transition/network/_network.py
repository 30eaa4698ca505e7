"""`Network`: a built Keras 3 model as named layers with named params; built from a RETURNN-style net dict or
wrapped around any Keras model. Param names are "layer/param"; imports follow the copy modes of `transition.params`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from transition.errors import ConfigError, did_you_mean
from transition.network._build import build_from_dict, seq_len_key
from transition.network._fast_init import alias_numpy
from transition.network._keras_wrap import (
    keras_input_keys,
    keras_inputs_are_dict,
    keras_layers,
    layer_outputs_model,
)
from transition.network._layer import Layer
from transition.network._layers_base import NetLayer
from transition.network._losses import LossTerm, frame_mask, loss_term
from transition.network._feature_graph import graph_from_snapshot, graph_of_network
from transition.network._preserve import layer_modes, plan_growth
from transition.params._copy_modes import check_copy_param_mode, preserves
from transition.params._report import ImportReport, ParamRecord, ParamStatus
from transition.params._snapshot import ParamsSnapshot

__all__ = ["Network", "Layer"]



# ---------------------------------------------------------------------------------------------------------------
# Network


class Network:
    """A Keras 3 model presented as named layers with named params ("layer/param")."""

    def __init__(
        self,
        *,
        layers: Mapping[str, Layer],
        keras_model: keras.Model,
        net_dict: Mapping[str, Any] | None = None,
        extern_data: Mapping[str, Any] | None = None,
        input_keys: Sequence[str] = ("data",),
        loss_model: keras.Model | None = None,
        losses: Mapping[str, tuple[str, str, float, bool]] | None = None,
        outputs: Sequence[str] = (),
        lengths_model: keras.Model | None = None,
        time_keys: Sequence[str] = (),
        extern_time_keys: Sequence[str] = (),
        behavior_version: int | None = None,
    ):
        self.layers: dict[str, Layer] = dict(layers)
        self.keras_model = keras_model
        self.net_dict = dict(net_dict) if net_dict is not None else None
        self.extern_data = dict(extern_data) if extern_data is not None else None
        self.input_keys = tuple(input_keys)
        self.global_train_step = 0
        self._loss_model = loss_model
        self._losses = dict(losses or {})  # layer -> (loss, target, scale, output is logits)
        self.output_layers: tuple[str, ...] = tuple(outputs)
        self._lengths_model = lengths_model
        self.time_keys: tuple[str, ...] = tuple(time_keys)  # inputs with a time axis ("<key>:seq_len" applies)
        self._extern_time_keys = tuple(extern_time_keys) or self.time_keys
        self.behavior_version = behavior_version
        self._layer_outputs_model: Any = None
        self.released = False  # True after release() (a transition moved its values into a new network)
        self.initialized_from_values: tuple[tuple[str, str], ...] = tuple(
            (name, p)
            for name, layer in self.layers.items()
            for p in (layer.keras_layer.initialized_from_values if isinstance(layer.keras_layer, NetLayer) else ())
        )

    def __repr__(self) -> str:
        return f"<Network {len(self.layers)} layers, {len(self.param_variables())} params>"

    # -- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls,
        net_dict: Mapping[str, Any],
        extern_data: Mapping[str, Any],
        *,
        initial_values: Mapping[str, Mapping[str, Any]] | None = None,
        behavior_version: int | None = None,
    ) -> Network:
        """Build from a RETURNN-style net dict (see the module docs of `_layers`).

        `initial_values` {layer: {param: array}}: a param whose shape equals the array's is created directly from
        it (no random init); `initialized_from_values` lists those. Entries that match no param are left to the
        import to report. `behavior_version`: RETURNN's config option (None: not set, which RETURNN treats as 0;
        e.g. conv layers have a bias by default only from 10 on).
        """
        if behavior_version is not None and (isinstance(behavior_version, bool) or not isinstance(
                behavior_version, int) or behavior_version < 0):
            raise ConfigError(f"behavior_version must be an int >= 0 (RETURNN's), got {behavior_version!r}")
        built = build_from_dict(net_dict, extern_data, initial_values or {}, behavior_version)
        return cls(layers=built.layers, keras_model=built.keras_model, net_dict=net_dict, extern_data=extern_data,
                   input_keys=built.input_keys, loss_model=built.loss_model, losses=built.losses,
                   outputs=built.outputs, lengths_model=built.lengths_model, time_keys=built.time_keys,
                   extern_time_keys=built.extern_time_keys, behavior_version=behavior_version)

    @classmethod
    def from_keras(cls, model: keras.Model) -> Network:
        """Wrap a built Keras 3 model: layers by `layer.name` ("outer/inner" when nested), params by the variable
        path relative to the layer (e.g. "kernel"), split info from the Keras graph (see `_keras_wrap`). A model
        whose variables cannot be named (two layers with one name, ...) is a ConfigError."""
        if not isinstance(model, keras.Model):
            raise ConfigError(f"Network.from_keras needs a keras.Model, got {type(model).__name__}")
        if not model.built:
            raise ConfigError(f"Network.from_keras: model {model.name!r} is not built; call it once or build it first")
        return cls(layers=keras_layers(model), keras_model=model, input_keys=keras_input_keys(model))

    def release(self) -> None:
        """Drop this network's references to its Keras models and variables (so that they can be freed once the
        caller drops its own); the network is empty afterwards (`released`)."""
        self.released = True
        for layer in self.layers.values():
            layer.params.clear()
            layer.keras_layer = None
        self.layers = {}
        self.keras_model = None  # type: ignore[assignment]
        self._loss_model = None
        self._lengths_model = None
        self._layer_outputs_model = None

    # -- params ------------------------------------------------------------------------------------------------

    def param_variables(self) -> dict[str, keras.Variable]:
        """{"layer/param": variable}."""
        return {f"{name}/{p}": v for name, layer in self.layers.items() for p, v in layer.params.items()}

    def get_param_split_info(self) -> dict[str, dict[str, list[list[int]]]]:
        """{layer: {param: parts of each axis}} of the layers that have params."""
        return {
            name: {p: [list(a) for a in s] for p, s in layer.split_info.items()}
            for name, layer in self.layers.items()
            if layer.params
        }

    def get_params_serialized(self, *, copy: bool = False) -> ParamsSnapshot:
        """All params as numpy, with split info and the global train step.

        By default the arrays are read-only views sharing memory with TF (no copy; TF never writes into them,
        and a network built from them with `initial_values` reuses that memory until its first update).
        `copy=True` gives independent writable arrays.
        """
        values = {
            name: {p: (np.array(v.numpy()) if copy else alias_numpy(v)) for p, v in layer.params.items()}
            for name, layer in self.layers.items()
            if layer.params
        }
        return ParamsSnapshot(
            values_dict=values, split_info=self.get_param_split_info(), global_train_step=int(self.global_train_step)
        )

    def set_params_by_serialized(
        self,
        snapshot: ParamsSnapshot,
        copy_param_mode: str | None = None,
        ignore_wrong_shape: bool = False,
        ignore_non_existing: bool = False,
        *,
        net2wider_noise: float = 0.01,
        seed: Any = None,
        **importer_kwargs: Any,
    ) -> ImportReport:
        """Import a snapshot layer by layer (see `Layer.set_param_values_by_dict`) and take its global train step.

        A layer of the snapshot that this network lacks is an error unless `ignore_non_existing` (then its params
        are reported as ignored). Layers with params that the snapshot lacks keep their init and are reported.
        Under "preserve" / "net2wider" (see `transition_network`) the network the snapshot came from is taken to be
        this one with its layers at the snapshot's widths and without the layers whose params the snapshot lacks
        (inserted on a path: they start as the identity); `seed` and `net2wider_noise` are net2wider's.
        """
        if not isinstance(snapshot, ParamsSnapshot):
            raise ConfigError(
                f"set_params_by_serialized needs a ParamsSnapshot, got {type(snapshot).__name__}; wrap a dict with "
                "ParamsSnapshot(values_dict=...)"
            )
        mode = check_copy_param_mode(copy_param_mode)
        growth = None
        if preserves(mode):
            graph = graph_of_network(self)
            growth = plan_growth(graph_from_snapshot(graph, snapshot), graph, mode, modes=layer_modes(self),
                                 seed=seed, noise=net2wider_noise).params
        return self.import_snapshot(
            snapshot,
            mode,
            ignore_wrong_shape,
            ignore_non_existing,
            lambda name, layer: importer_kwargs,
            growth=growth,
        )

    def import_snapshot(
        self,
        snapshot: ParamsSnapshot,
        copy_param_mode: str | None,
        ignore_wrong_shape: bool,
        ignore_non_existing: bool,
        layer_kwargs: Callable[[str, Layer], Mapping[str, Any]],
        *,
        source: str = "the snapshot",
        target: str = "the network",
        growth: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ImportReport:
        """`set_params_by_serialized` with the importer keywords given per layer (`layer_kwargs(name, layer)`);
        `source` / `target` name the two sides in errors and records; `growth` {layer: {param: growth}} as planned
        by `network._preserve`."""
        growth = growth or {}
        missing = [name for name in snapshot.values_dict if name not in self.layers]
        if missing and not ignore_non_existing:
            name = missing[0]
            raise ConfigError(
                f"{source} has layer {name!r}, which {target} does not have{did_you_mean(name, self.layers)}; "
                "pass ignore_non_existing=True to skip its params"
            )
        records: list[ParamRecord] = []
        report = ImportReport()
        for name, layer in self.layers.items():
            if name in snapshot.values_dict:
                report += layer.set_param_values_by_dict(
                    snapshot.values_dict[name],
                    copy_param_mode=copy_param_mode,
                    ignore_wrong_shape=ignore_wrong_shape,
                    split_info=snapshot.split_info.get(name),
                    ignore_unknown=ignore_non_existing,
                    growth=growth.get(name),
                    **layer_kwargs(name, layer),
                )
            elif name in growth:  # a new layer that starts as the identity
                layer.reset_uncopied_initial_values()
                report += layer.set_param_values_by_dict({}, copy_param_mode=copy_param_mode, growth=growth[name],
                                                         **layer_kwargs(name, layer))
            else:
                layer.reset_uncopied_initial_values()  # e.g. a transition callback removed the layer's entry
                records += [
                    ParamRecord(name, p, ParamStatus.KEPT_INIT, None, tuple(int(d) for d in v.shape), "new layer")
                    for p, v in layer.params.items()
                ]
        for name in missing:
            records += [
                ParamRecord(name, p, ParamStatus.IGNORED, tuple(np.shape(v)), None, f"layer not in {target}")
                for p, v in snapshot.values_dict[name].items()
            ]
        self.global_train_step = int(snapshot.global_train_step)
        return report + ImportReport(tuple(records))

    # -- training side -----------------------------------------------------------------------------------------

    @property
    def trainable_variables(self) -> list[keras.Variable]:
        """The trainable variables that reach the output or a loss."""
        out, seen = [], set()
        for model in (self.keras_model, self._loss_model, self._lengths_model):
            for v in model.trainable_variables if model is not None else ():
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def _feed(self, inputs: Any) -> Any:
        if not isinstance(inputs, Mapping):
            if len(self.input_keys) == 1:
                return inputs
            raise ConfigError(f"the network reads {list(self.input_keys)}; pass a dict with those keys")
        for key in self.input_keys:
            if key not in inputs:
                raise ConfigError(
                    f"the inputs lack {key!r}{did_you_mean(key, [str(k) for k in inputs])}, which the network reads; "
                    f"give all of {list(self.input_keys)}"
                )
        if len(self.input_keys) == 1 and not keras_inputs_are_dict(self.keras_model):
            return inputs[self.input_keys[0]]
        return {k: inputs[k] for k in self.input_keys}

    def _has_lengths(self, inputs: Any) -> bool:
        """Whether `inputs` give sequence lengths ("<key>:seq_len") of an input with a time axis."""
        if not isinstance(inputs, Mapping):
            return False
        for key in inputs:
            base = key[: -len(":seq_len")] if isinstance(key, str) and key.endswith(":seq_len") else None
            if base is not None and base not in self._extern_time_keys:
                raise ConfigError(
                    f"the inputs have {key!r}, but extern_data has no key {base!r} with a time axis; sequence lengths "
                    f"apply to {[seq_len_key(k) for k in self._extern_time_keys] or 'no key here'}"
                )
        return self._lengths_model is not None and any(seq_len_key(k) in inputs for k in self.time_keys)

    def _run_lengths_model(self, inputs: Mapping[str, Any], training: bool) -> dict[str, Any]:
        """The lengths model on the inputs; a time-axis input without its lengths is taken as full length."""
        self._feed(inputs)  # checks that the inputs are there
        feed = {key: tf.convert_to_tensor(inputs[key]) for key in self.input_keys}
        for key in self.time_keys:
            lengths = inputs.get(seq_len_key(key))
            if lengths is None:
                lengths = tf.fill(tf.shape(feed[key])[:1], tf.shape(feed[key])[1])
            feed[seq_len_key(key)] = tf.cast(lengths, "int32")
        return self._lengths_model(feed, training=training)

    def call(self, inputs: Mapping[str, Any], training: bool = False) -> Any:
        """The outputs (the Keras model's: one tensor, or a list with "output" first). With sequence lengths in the
        inputs ("data:seq_len"), the layers honour them (e.g. a backward LSTM starts at each sequence's end)."""
        if self._has_lengths(inputs):
            outs = self._run_lengths_model(inputs, training)
            ys = [outs[f"out/{name}"] for name in self.output_layers]
            return ys[0] if len(ys) == 1 else ys
        return self.keras_model(self._feed(inputs), training=training)

    def __call__(self, inputs: Mapping[str, Any], training: bool = False) -> Any:
        return self.call(inputs, training=training)

    def layer_outputs(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """{layer: its output} on `inputs` (inference; every frame counts), for the top-level layers of the Keras
        model that have one output; {} for a model without a graph. E.g. to find where two networks differ."""
        if self._layer_outputs_model is None:
            self._layer_outputs_model = layer_outputs_model(self.keras_model) or False
        if self._layer_outputs_model is False:
            return {}
        outs = self._layer_outputs_model(self._feed(inputs), training=False)
        return {name: np.asarray(value) for name, value in outs.items()}

    def output_lengths(self, inputs: Mapping[str, Any]) -> dict[str, tf.Tensor | None]:
        """{output layer: its sequence lengths [batch] (None without a time axis)} for these inputs."""
        if self._lengths_model is None:
            return {name: None for name in self.output_layers}
        outs = self._run_lengths_model(inputs, False)
        return {name: outs.get(f"len/{name}") for name in self.output_layers}

    def loss_terms(self, inputs: Mapping[str, Any], training: bool = True, errors: bool = False
                   ) -> dict[str, LossTerm]:
        """{layer: LossTerm} of every layer with a loss, over the real frames (per "<key>:seq_len" in the inputs;
        all frames without them). `errors`: also count the wrong argmax frames of "ce" losses on sparse targets."""
        if not self._losses:
            raise ConfigError("compute_loss: no layer of this network carries a 'loss' (e.g. 'loss': 'ce')")
        if not isinstance(inputs, Mapping):
            raise ConfigError("compute_loss needs a dict of inputs including the targets")
        for layer, (_, target, _, _) in self._losses.items():
            if target not in inputs:
                raise ConfigError(f"compute_loss: the inputs lack the target {target!r} of layer {layer!r}")
        if self._has_lengths(inputs):
            outs = self._run_lengths_model(inputs, training)
            ys = {layer: outs[f"loss/{layer}"] for layer in self._losses}
            lengths = {layer: outs.get(f"len/{layer}") for layer in self._losses}
        else:
            ys = self._loss_model(self._feed(inputs), training=training)
            lengths = {}
        terms = {}
        for layer, (loss, target, scale, is_logits) in self._losses.items():
            mask = frame_mask(ys[layer], lengths.get(layer), self._has_time(layer))
            terms[layer] = loss_term(loss, ys[layer], inputs[target], is_logits, mask, scale=scale, errors=errors)
        return terms

    def _has_time(self, layer: str) -> bool:
        keras_layer = self.layers[layer].keras_layer
        return bool(getattr(getattr(keras_layer, "out_info", None), "time", False))

    def compute_loss(self, inputs: Mapping[str, Any], training: bool = True) -> tf.Tensor:
        """The sum over the layers that carry a "loss" of loss_scale * their loss per real frame ("ce": cross
        entropy against sparse ids or a dense distribution; "mse"), a scalar. Frames past a sequence's length
        ("<key>:seq_len" in the inputs) do not count."""
        total = tf.constant(0.0)
        for term in self.loss_terms(inputs, training=training).values():
            total += term.scale * term.value
        return total
