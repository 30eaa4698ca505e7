"""`Network`: a built Keras 3 model as named layers with named params; built from a RETURNN-style net dict or
wrapped around any Keras model. Param names are "layer/param"; snapshots and imports follow `_importing`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from transition.errors import ConfigError, did_you_mean
from transition.network._fast_init import alias_numpy, as_tensor
from transition.params._importing import (
    ImportReport,
    ParamRecord,
    ParamsSnapshot,
    ParamStatus,
    call_custom_importer,
    check_copy_param_mode,
    custom_import_records,
    import_layer_values,
)
from transition.network._layers import LinearLayer  # noqa: F401  (registers the built-in layer classes)
from transition.network._layers_base import NetLayer
from transition.network._build import build_from_dict, parse_extern_data
from transition.params._split import whole_axis_splits

__all__ = ["Network", "Layer", "parse_extern_data"]



# ---------------------------------------------------------------------------------------------------------------
# Layer


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
        self.params: dict[str, keras.Variable] = dict(params)
        self.split_info: dict[str, list[list[int]]] = {
            p: [list(a) for a in (split_info or {}).get(p, whole_axis_splits(v.shape))] for p, v in self.params.items()
        }

    def __repr__(self) -> str:
        cls = self.layer_dict.get("class") if self.layer_dict else type(self.keras_layer).__name__
        return f"<Layer {self.name!r} {cls} params={ {p: tuple(v.shape) for p, v in self.params.items()} }>"

    @property
    def custom_param_importer(self) -> Callable[..., Any] | str | None:
        """The layer dict option "custom_param_importer": a function, a copy mode string, or None."""
        return self.layer_dict.get("custom_param_importer") if self.layer_dict else None

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
        **importer_kwargs: Any,
    ) -> ImportReport:
        """Import old values into this layer with RETURNN's rules and return the report.

        A callable `custom_param_importer` is called instead (with `split_info` and `importer_kwargs` — epoch,
        old_layer_dict, new_layer_dict — where it accepts them); a string importer is the copy mode for this layer.
        """
        unknown_kwargs = set(importer_kwargs) - {"epoch", "old_layer_dict", "new_layer_dict"}
        if unknown_kwargs:
            raise ConfigError(
                f"layer {self.name!r}: set_param_values_by_dict got unknown keyword(s) {sorted(unknown_kwargs)}; "
                "accepted: epoch, old_layer_dict, new_layer_dict"
            )
        copy_param_mode = check_copy_param_mode(copy_param_mode)
        importer = self.custom_param_importer
        new_shapes = {p: tuple(int(d) for d in v.shape) for p, v in self.params.items()}
        pending = self._pending_initial()
        if callable(importer):
            importer_kwargs.setdefault("new_layer_dict", self.layer_dict)
            call_custom_importer(
                importer, layer=self, values_dict=values_dict, split_info=split_info, **importer_kwargs
            )
            pending.clear()
            return ImportReport(tuple(custom_import_records(self.name, values_dict, new_shapes)))
        if importer is not None:
            copy_param_mode = check_copy_param_mode(importer, f"custom_param_importer of layer {self.name!r}")
        already = frozenset(
            p for p, ref in pending.items() if ref is not None and p in values_dict and ref() is values_dict[p]
        )
        to_assign, records = import_layer_values(
            self.name,
            values_dict,
            new_shapes=new_shapes,
            get_new_value=self._new_value,
            copy_param_mode=copy_param_mode,
            ignore_wrong_shape=ignore_wrong_shape,
            old_split_info=split_info,
            new_split_info=self.split_info,
            already_initialized=already,
            ignore_unknown=ignore_unknown,
        )
        for param, value in to_assign.items():
            var = self.params[param]
            var.assign(as_tensor(value, var.dtype))
        # created from an initial value that is not (or no longer) the snapshot's entry: give it its fresh init
        self._reset_uncopied_initial_values(skip=already | set(to_assign))
        return ImportReport(tuple(records))

    def _reset_uncopied_initial_values(self, skip: frozenset[str] | set[str] = frozenset()) -> None:
        """Re-initialise the params created from an initial value (see `Network.from_dict`), except `skip`.

        For an import that did not copy them after all (e.g. a callback replaced or removed the snapshot entry):
        such a param then holds its fresh init, as if it had never been created from that value.
        """
        pending = self._pending_initial()
        for param in [p for p in pending if p not in skip]:
            var = self.params[param]
            var.assign(as_tensor(self._new_value(param), var.dtype))
        pending.clear()


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
    ):
        self.layers: dict[str, Layer] = dict(layers)
        self.keras_model = keras_model
        self.net_dict = dict(net_dict) if net_dict is not None else None
        self.extern_data = dict(extern_data) if extern_data is not None else None
        self.input_keys = tuple(input_keys)
        self.global_train_step = 0
        self._loss_model = loss_model
        self._losses = dict(losses or {})  # layer -> (loss, target, scale, output is logits)
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
    ) -> Network:
        """Build from a RETURNN-style net dict (see the module docs of `_layers`).

        `initial_values` {layer: {param: array}}: a param whose shape equals the array's is created directly from
        it (no random init); `initialized_from_values` lists those. Entries that match no param are left to the
        import to report.
        """
        return build_from_dict(cls, net_dict, extern_data, initial_values or {})

    @classmethod
    def from_keras(cls, model: keras.Model) -> Network:
        """Wrap any Keras 3 model: layers by `layer.name` ("outer/inner" when nested), params by the variable
        path relative to the layer (e.g. "kernel")."""
        if not isinstance(model, keras.Model):
            raise ConfigError(f"Network.from_keras needs a keras.Model, got {type(model).__name__}")
        if not model.built:
            raise ConfigError(f"Network.from_keras: model {model.name!r} is not built; call it once or build it first")
        layers: dict[str, Layer] = {}
        _collect_keras_layers(model, "", layers, top=True)
        inputs = getattr(model, "_inputs_struct", None)
        keys = tuple(inputs.keys()) if isinstance(inputs, Mapping) else ("data",)
        return cls(layers=layers, keras_model=model, input_keys=keys)

    def release(self) -> None:
        """Drop this network's references to its Keras models and variables (so that they can be freed once the
        caller drops its own); the network is empty afterwards."""
        for layer in self.layers.values():
            layer.params.clear()
            layer.keras_layer = None
        self.layers = {}
        self.keras_model = None  # type: ignore[assignment]
        self._loss_model = None

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
        **importer_kwargs: Any,
    ) -> ImportReport:
        """Import a snapshot layer by layer (see `Layer.set_param_values_by_dict`) and take its global train step.

        A layer of the snapshot that this network lacks is an error unless `ignore_non_existing` (then its params
        are reported as ignored). Layers with params that the snapshot lacks keep their init and are reported.
        """
        if not isinstance(snapshot, ParamsSnapshot):
            raise ConfigError(
                f"set_params_by_serialized needs a ParamsSnapshot, got {type(snapshot).__name__}; wrap a dict with "
                "ParamsSnapshot(values_dict=...)"
            )
        return self._import_snapshot(
            snapshot,
            check_copy_param_mode(copy_param_mode),
            ignore_wrong_shape,
            ignore_non_existing,
            lambda name, layer: importer_kwargs,
        )

    def _import_snapshot(
        self,
        snapshot: ParamsSnapshot,
        copy_param_mode: str | None,
        ignore_wrong_shape: bool,
        ignore_non_existing: bool,
        layer_kwargs: Callable[[str, Layer], Mapping[str, Any]],
        *,
        source: str = "the snapshot",
        target: str = "the network",
    ) -> ImportReport:
        """`set_params_by_serialized` with the importer keywords given per layer (`layer_kwargs(name, layer)`);
        `source` / `target` name the two sides in errors and records."""
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
                    **layer_kwargs(name, layer),
                )
            else:
                layer._reset_uncopied_initial_values()  # e.g. a transition callback removed the layer's entry
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
        for model in (self.keras_model, self._loss_model):
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
        if len(self.input_keys) == 1 and not isinstance(getattr(self.keras_model, "_inputs_struct", None), Mapping):
            return inputs[self.input_keys[0]]
        return {k: inputs[k] for k in self.input_keys}

    def call(self, inputs: Mapping[str, Any], training: bool = False) -> tf.Tensor:
        """The output of the "output" layer (the Keras model's output)."""
        return self.keras_model(self._feed(inputs), training=training)

    def __call__(self, inputs: Mapping[str, Any], training: bool = False) -> tf.Tensor:
        return self.call(inputs, training=training)

    def compute_loss(self, inputs: Mapping[str, Any], training: bool = True) -> tf.Tensor:
        """The sum over the layers that carry a "loss" of loss_scale * their mean loss over batch and time
        frames ("ce": cross entropy against sparse ids or a dense distribution; "mse"), a scalar."""
        if not self._losses:
            raise ConfigError("compute_loss: no layer of this network carries a 'loss' (e.g. 'loss': 'ce')")
        if not isinstance(inputs, Mapping):
            raise ConfigError("compute_loss needs a dict of inputs including the targets")
        for layer, (_, target, _, _) in self._losses.items():
            if target not in inputs:
                raise ConfigError(f"compute_loss: the inputs lack the target {target!r} of layer {layer!r}")
        outs = self._loss_model(self._feed(inputs), training=training)
        total = tf.constant(0.0)
        for layer, (loss, target, scale, is_logits) in self._losses.items():
            y = tf.cast(outs[layer], "float32")
            t = tf.convert_to_tensor(inputs[target])
            total += scale * _layer_loss(loss, y, t, is_logits)
        return total


def _layer_loss(loss: str, y: tf.Tensor, target: tf.Tensor, is_logits: bool) -> tf.Tensor:
    if loss == "mse":
        t = tf.one_hot(target, tf.shape(y)[-1]) if target.dtype.is_integer else tf.cast(target, y.dtype)
        return tf.reduce_mean(tf.reduce_sum(tf.square(y - t), axis=-1))
    if target.dtype.is_integer:
        if is_logits:
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(target, "int32"), logits=y)
        else:
            picked = tf.gather(y, tf.cast(target, "int32"), batch_dims=y.shape.rank - 1)
            ce = -tf.math.log(tf.clip_by_value(picked, 1e-20, 1.0))
        return tf.reduce_mean(ce)
    t = tf.cast(target, y.dtype)
    if is_logits:
        return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=t, logits=y))
    return tf.reduce_mean(-tf.reduce_sum(t * tf.math.log(tf.clip_by_value(y, 1e-20, 1.0)), axis=-1))


# ---------------------------------------------------------------------------------------------------------------
# from_keras


def _own_weights(layer: keras.layers.Layer) -> list[keras.Variable]:
    sub_ids = {id(v) for sub in layer._flatten_layers(include_self=False, recursive=True) for v in sub.weights}
    seen, out = set(), []
    for v in layer.weights:
        if id(v) not in sub_ids and id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _collect_keras_layers(layer: keras.layers.Layer, prefix: str, out: dict[str, Layer], top: bool = False) -> None:
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
        out[key] = Layer(key, params=params, split_info=_keras_split_info(layer, params), keras_layer=layer)
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        _collect_keras_layers(sub, name, out)


def _relative_path(v: keras.Variable, layer_name: str) -> str:
    parts = v.path.split("/")
    if layer_name in parts[:-1]:
        idx = len(parts) - 1 - parts[::-1].index(layer_name)
        return "/".join(parts[idx + 1 :])
    return v.name


def _keras_split_info(layer: keras.layers.Layer, params: Mapping[str, keras.Variable]) -> dict[str, list[list[int]]]:
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



