"""RETURNN-style layer classes as Keras 3 layers: params named and shaped as in RETURNN's TF layers.

linear / softmax (`W` [n_in, n_out], `b` [n_out]; on a sparse input `W` [vocab, n_out] is an embedding),
copy, activation, dropout, combine, layer_norm (`scale`, `bias`), batch_norm (`batch_norm/v2_mean`,
`batch_norm/v2_variance`, `batch_norm/v2_gamma`, `batch_norm/v2_beta`), conv (1-D over time, `W`
[filter_size, n_in, n_out], `bias` [n_out] by default from behavior_version 10 on, as RETURNN); pool and reduce
(no params) are in `_layers_time.py`, rec with unit lstm in `_layers_rec.py`.

Sequence lengths: linear, activation, combine and layer_norm work frame by frame (padded frames are computed like
the others, as in RETURNN); batch_norm with masked_time leaves padded frames out of its batch statistics; conv
gives RETURNN's output lengths (and masks padded input frames with `use_time_mask`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from transition.network._layers_base import (
    NONNEG_ACTIVATIONS,
    REQUIRED,
    DataInfo,
    NetLayer,
    get_activation,
    register_layer_class,
)
from transition.network._layers_time import one_int, out_time_len

NON_ELEMENTWISE = ("softmax", "log_softmax")  # activations over all features, not one by one

__all__ = [
    "NON_ELEMENTWISE",
    "LinearLayer",
    "SoftmaxLayer",
    "CopyLayer",
    "ActivationLayer",
    "DropoutLayer",
    "CombineLayer",
    "LayerNormLayer",
    "BatchNormLayer",
    "ConvLayer",
]


class _DropoutMixin(NetLayer):
    """Dropout (option "dropout", a rate in [0, 1)) on the layer input, in training only."""

    def _init_dropout(self) -> None:
        rate = self.opts.get("dropout", 0.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise self.option_error("dropout", rate, "give a rate in [0, 1)")
        object.__setattr__(self, "_rate", float(rate))
        if rate:
            self.seed_generator = keras.random.SeedGenerator()

    def _dropout(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        if training and self._rate and x.dtype.is_floating:
            return keras.random.dropout(x, self._rate, seed=self.seed_generator)
        return x


class LinearLayer(_DropoutMixin):
    """`activation(x W + b)`; on a sparse source (int ids) `W` [vocab, n_out] is looked up (an embedding)."""

    layer_options = {"n_out": None, "activation": None, "with_bias": True, "dropout": 0.0}
    accepts_sparse = True
    growth_kind = "units"

    def output_info(self) -> DataInfo:
        n_out = self.opts["n_out"]
        if n_out is None:
            if self.target_info is None:
                raise self.option_error("n_out", None, "give n_out, or a 'target' whose dim gives it")
            self.opts["n_out"] = n_out = self.target_info.dim
        n_out = self.check_int("n_out")
        self._activation_fn = get_activation(self.name, self._activation_name())
        self.check_bool("with_bias")
        self._init_dropout()
        return DataInfo(dim=n_out, time=self.time())

    def _activation_name(self):
        return self.opts["activation"]

    @property
    def provides_logits(self) -> bool:  # type: ignore[override]
        return self._activation_name() == "softmax"

    def create_params(self) -> None:
        n_out = self.opts["n_out"]
        self.add_param("W", (self.in_dim(), n_out), "glorot_uniform", split_info=[self.source_dims(), [n_out]],
                       roles=("ids" if self.sources[0].sparse else "in", "out"))
        if self.opts["with_bias"]:
            self.add_param("b", (n_out,), "zeros", roles=("out",))

    def growth_activation(self) -> str | None:
        return self._activation_name()

    def identity_blocker(self) -> str | None:
        if self.sources[0].sparse:
            return "an embedding (a linear layer on ids) has no input features to pass through"
        return None

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False) -> tf.Tensor:
        w = self.params["W"]
        if self.sources[0].sparse:
            x = tf.gather(w, tf.cast(inputs[0], "int32"))
        else:
            x = self._dropout(self.concat(inputs), training)
            x = tf.tensordot(x, w, [[x.shape.rank - 1], [0]]) if x.shape.rank != 2 else tf.matmul(x, w)
        if self.opts["with_bias"]:
            x = x + self.params["b"]
        if logits:
            return x
        return self._activation_fn(x)


class SoftmaxLayer(LinearLayer):
    """A linear layer with softmax activation; carries the "ce" loss against its target."""

    layer_options = {"n_out": None, "with_bias": True, "dropout": 0.0}

    def _activation_name(self):
        return "softmax"


class CopyLayer(_DropoutMixin):
    """The sources, concatenated on the feature axis (a single sparse source passes through)."""

    layer_options = {"dropout": 0.0}
    accepts_sparse = True
    growth_kind = "pass"

    def output_info(self) -> DataInfo:
        self._init_dropout()
        src = self.sources[0]
        if src.sparse:
            return src
        parts = tuple(self.source_dims())  # consumers see the sources' parts (RETURNN's split info rule)
        return DataInfo(dim=self.in_dim(), time=self.time(), parts=parts if len(parts) > 1 else None)

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False) -> tf.Tensor:
        return self._dropout(self.concat(inputs), training)


class DropoutLayer(CopyLayer):
    """Dropout on the (concatenated) sources in training; the identity otherwise."""

    layer_options = {"dropout": 0.0}
    accepts_sparse = False


class ActivationLayer(NetLayer):
    """`activation(x)` of the concatenated sources."""

    layer_options = {"activation": REQUIRED}

    @property
    def growth_kind(self) -> str:  # type: ignore[override]
        return "mix" if self.opts["activation"] in NON_ELEMENTWISE else "pass"

    def output_info(self) -> DataInfo:
        self._activation_fn = get_activation(self.name, self.opts["activation"])
        return DataInfo(dim=self.in_dim(), time=self.time())

    def growth_activation(self) -> str | None:
        return self.opts["activation"]

    def identity_blocker(self) -> str | None:
        if self.opts["activation"] in NON_ELEMENTWISE:
            return f"activation {self.opts['activation']!r} normalises over all its input features"
        return None

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False) -> tf.Tensor:
        return self._activation_fn(self.concat(inputs))


class CombineLayer(NetLayer):
    """Elementwise "add" / "sub" / "mul" of sources with equal dims, then an optional activation."""

    layer_options = {"kind": REQUIRED, "activation": None}
    kinds = ("add", "sub", "mul")
    growth_kind = "combine"

    def growth_activation(self) -> str | None:
        return self.opts["activation"]

    def growth_nonneg(self, sources_nonneg: Any) -> bool:
        act = self.opts["activation"]
        if act in NONNEG_ACTIVATIONS:
            return True
        return act in (None, "linear", "identity") and self.opts["kind"] != "sub" and all(sources_nonneg)

    def output_info(self) -> DataInfo:
        kind = self.opts["kind"]
        if kind not in self.kinds:
            raise self.option_error("kind", kind, f"use one of {list(self.kinds)}")
        if kind == "sub" and len(self.sources) != 2:
            raise self.option_error("kind", kind, f"'sub' needs exactly 2 sources, 'from' names {len(self.sources)}")
        dims = self.source_dims()
        if len(set(dims)) != 1:
            raise self.option_error(
                "from", self.layer_dict.get("from"), f"combine needs sources of equal dims, got {dims}"
            )
        self._activation_fn = get_activation(self.name, self.opts["activation"])
        return DataInfo(dim=dims[0], time=self.time())

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False) -> tf.Tensor:
        kind = self.opts["kind"]
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x if kind == "add" else out - x if kind == "sub" else out * x
        return self._activation_fn(out)


class LayerNormLayer(NetLayer):
    """Normalise the feature axis to zero mean / unit variance, then `* scale + bias` (RETURNN's layer_norm)."""

    layer_options = {"epsilon": 1e-6}
    growth_kind = "mix"  # mean and variance over all features

    def create_params(self) -> None:
        dims = self.source_dims()
        self.add_param("scale", (self.in_dim(),), "ones", split_info=[dims], roles=("feature",))
        self.add_param("bias", (self.in_dim(),), "zeros", split_info=[dims], roles=("feature",))

    def identity_blocker(self) -> str | None:
        return "layer_norm normalises over all its input features"

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False) -> tf.Tensor:
        x = self.concat(inputs)
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        var = tf.reduce_mean(tf.square(x - mean), axis=-1, keepdims=True)
        y = (x - mean) * tf.math.rsqrt(var + float(self.opts["epsilon"]))
        return y * self.params["scale"] + self.params["bias"]


class BatchNormLayer(NetLayer):
    """Batch norm over all axes but the features: batch statistics in training (updating the running ones with
    `momentum`), running statistics otherwise. Params as RETURNN's (param_version 2)."""

    layer_options = {"momentum": 0.1, "epsilon": 1e-3, "masked_time": None}
    growth_kind = "pass"  # per feature

    def output_info(self) -> DataInfo:
        # masked_time (RETURNN; default True): padded frames are left out of the batch statistics.
        if self.opts["masked_time"] not in (None, True, False):
            raise self.option_error("masked_time", self.opts["masked_time"], "give True or False")
        for key in ("momentum", "epsilon"):
            v = self.opts[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise self.option_error(key, v, "give a number in [0, 1]")
        return super().output_info()

    def create_params(self) -> None:
        dims, n = [self.source_dims()], self.in_dim()
        feature = ("feature",)
        self.add_param("batch_norm/v2_mean", (n,), "zeros", split_info=dims, trainable=False, roles=feature)
        self.add_param("batch_norm/v2_variance", (n,), "ones", split_info=dims, trainable=False, roles=feature)
        self.add_param("batch_norm/v2_gamma", (n,), "ones", split_info=dims, roles=feature)
        self.add_param("batch_norm/v2_beta", (n,), "zeros", split_info=dims, roles=feature)

    def identity_blocker(self) -> str | None:
        return "batch_norm scales by the statistics of its input, so it does not start as the identity"

    def growth_nonneg(self, sources_nonneg: Any) -> bool:
        return False

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False, seq_len: Any = None
                ) -> tf.Tensor:
        x = self.concat(inputs)
        p = self.params
        mean_v, var_v = p["batch_norm/v2_mean"], p["batch_norm/v2_variance"]
        if training:
            mask = self.time_mask(seq_len, x) if self.opts["masked_time"] is not False and self.time() else None
            if mask is None:
                mean, var = tf.nn.moments(x, axes=list(range(x.shape.rank - 1)))
            else:
                frames = tf.maximum(tf.reduce_sum(mask), 1.0)
                mean = tf.reduce_sum(x * mask, axis=[0, 1]) / frames
                var = tf.reduce_sum(tf.square(x - mean) * mask, axis=[0, 1]) / frames
            m = float(self.opts["momentum"])
            mean_v.assign(mean_v * (1.0 - m) + mean * m)
            var_v.assign(var_v * (1.0 - m) + var * m)
        else:
            mean, var = mean_v, var_v
        y = (x - mean) * tf.math.rsqrt(var + float(self.opts["epsilon"]))
        return y * p["batch_norm/v2_gamma"] + p["batch_norm/v2_beta"]


class ConvLayer(NetLayer):
    """1-D convolution over time: `W` [filter_size, n_in, n_out], `bias` [n_out], then the activation.

    `with_bias` defaults, as in RETURNN, to True from behavior_version 10 on and to False below. `use_time_mask`
    zeroes the padded input frames first (RETURNN's option; off by default, as there)."""

    layer_options = {
        "n_out": REQUIRED,
        "filter_size": REQUIRED,
        "padding": "same",
        "strides": 1,
        "dilation_rate": 1,
        "activation": None,
        "with_bias": None,
        "use_time_mask": False,
    }
    keeps_time_length = False  # strides / "valid" padding change it
    growth_kind = "units"

    def output_info(self) -> DataInfo:
        self.require_time()
        self._filter = one_int(self, "filter_size", "conv")
        self._strides = one_int(self, "strides", "conv")
        self._dilation = one_int(self, "dilation_rate", "conv")
        if isinstance(self.opts["padding"], str):
            self.opts["padding"] = self.opts["padding"].lower()
        if self.opts["padding"] not in ("same", "valid"):
            raise self.option_error("padding", self.opts["padding"], "use 'same' or 'valid'")
        if self.opts["with_bias"] is None:  # RETURNN: NotSpecified
            self.opts["with_bias"] = self.behavior_version >= 10
        self.check_bool("with_bias")
        self.check_bool("use_time_mask")
        self._activation_fn = get_activation(self.name, self.opts["activation"])
        return DataInfo(dim=self.check_int("n_out"), time=True)

    def create_params(self) -> None:
        n_out = self.opts["n_out"]
        self.add_param(
            "W", (self._filter, self.in_dim(), n_out), "glorot_uniform",
            split_info=[[self._filter], self.source_dims(), [n_out]], roles=("fixed", "in", "out"),
        )
        if self.opts["with_bias"]:
            self.add_param("bias", (n_out,), "zeros", roles=("out",))

    def growth_activation(self) -> str | None:
        return self.opts["activation"]

    def identity_blocker(self) -> str | None:
        if self.opts["padding"] != "same" or self._strides != 1 or self._filter % 2 == 0:
            return (f"a conv passes its input through only with padding 'same', strides 1 and an odd filter_size "
                    f"(this one: padding {self.opts['padding']!r}, strides {self._strides}, filter_size "
                    f"{self._filter})")
        return None

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False, seq_len: Any = None
                ) -> tf.Tensor:
        x = self.concat(inputs)
        mask = self.time_mask(seq_len, x) if self.opts["use_time_mask"] else None
        if mask is not None:
            x = x * mask
        y = tf.nn.conv1d(
            x, self.params["W"], stride=self._strides, padding=self.opts["padding"].upper(),
            dilations=self._dilation,
        )
        if self.opts["with_bias"]:
            y = y + self.params["bias"]
        return self._activation_fn(y)

    def out_seq_len(self, seq_len: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
        return out_time_len(seq_len, self._filter, self._strides, self.opts["padding"], self._dilation)


for _name, _cls in [
    ("linear", LinearLayer),
    ("softmax", SoftmaxLayer),
    ("copy", CopyLayer),
    ("activation", ActivationLayer),
    ("dropout", DropoutLayer),
    ("combine", CombineLayer),
    ("layer_norm", LayerNormLayer),
    ("batch_norm", BatchNormLayer),
    ("conv", ConvLayer),
]:
    register_layer_class(_name, _cls)

from transition.network import _layers_rec  # noqa: E402,F401  (registers "rec")
