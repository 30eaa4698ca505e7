"""Layer classes over the time axis without params, as RETURNN's: pool (max / avg pooling over time) and reduce
(over the time axis, masked by the sequence lengths); and the output-length rule of conv and pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from transition.network._layers_base import (
    REQUIRED,
    DataInfo,
    NetLayer,
    register_layer_class,
)

__all__ = ["PoolLayer", "ReduceLayer", "one_int", "out_time_len"]


def one_int(layer: NetLayer, option: str, what: str) -> int:
    """The option as one int (a 1-element list allowed: the layer is 1-D over time)."""
    value = layer.opts[option]
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 1:
            raise layer.option_error(option, value, f"{what} is 1-D over time: give one int or a 1-element list")
        value = value[0]
    layer.opts[option] = value
    return layer.check_int(option)


def out_time_len(seq_len: tf.Tensor, filter_size: int, stride: int, padding: str, dilation: int) -> tf.Tensor:
    """RETURNN's output length of a conv / pool over time: "same" ceil(T / stride), "valid"
    ceil((T - (filter_size - 1) * dilation) / stride), at least 0."""
    if padding == "same":
        return -(-seq_len // stride)
    return tf.maximum(-(-(seq_len - (filter_size - 1) * dilation) // stride), 0)


class PoolLayer(NetLayer):
    """Max or average pooling over time (RETURNN's "pool"): `mode` "max" / "avg", `pool_size`, `padding` "valid"
    (default) / "same", `strides` (default: pool_size), `dilation_rate`; `use_time_mask` (off by default, as in
    RETURNN) sets padded frames to -inf (max) / 0 (avg) first. Output lengths as RETURNN computes them."""

    layer_options = {
        "mode": REQUIRED,
        "pool_size": REQUIRED,
        "padding": "valid",
        "strides": None,
        "dilation_rate": 1,
        "use_time_mask": False,
    }
    keeps_time_length = False
    growth_kind = "pass"  # per feature

    def identity_blocker(self) -> str | None:
        return "pool changes the time axis"

    def output_info(self) -> DataInfo:
        self.require_time()
        mode = self.opts["mode"]
        if not isinstance(mode, str) or mode.lower() not in ("max", "avg"):
            raise self.option_error("mode", mode, "use 'max' or 'avg'")
        self._mode = mode.lower()
        self._size = one_int(self, "pool_size", "pool")
        if self.opts["strides"] is None:
            self.opts["strides"] = self._size
        self._strides = one_int(self, "strides", "pool")
        self._dilation = one_int(self, "dilation_rate", "pool")
        if self._strides > 1 and self._dilation > 1:
            raise self.option_error("dilation_rate", self._dilation, "TF pools with strides > 1 or dilation_rate > 1, "
                                    "not both")
        padding = self.opts["padding"]
        self.opts["padding"] = padding.lower() if isinstance(padding, str) else padding
        if self.opts["padding"] not in ("same", "valid"):
            raise self.option_error("padding", padding, "use 'valid' or 'same'")
        self.check_bool("use_time_mask")
        return DataInfo(dim=self.in_dim(), time=True)

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False, seq_len: Any = None
                ) -> tf.Tensor:
        x = self.concat(inputs)
        if self._size == 1 and self._strides == 1:
            return x  # RETURNN: the identity
        mask = self.time_mask(seq_len, x) if self.opts["use_time_mask"] else None
        if mask is not None:
            x = tf.where(mask > 0, x, float("-inf") if self._mode == "max" else 0.0)
        return tf.nn.pool(x, window_shape=[self._size], pooling_type=self._mode.upper(),
                          padding=self.opts["padding"].upper(), strides=[self._strides],
                          dilations=[self._dilation])

    def out_seq_len(self, seq_len: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
        if self._size == 1 and self._strides == 1:
            return seq_len
        return out_time_len(seq_len, self._size, self._strides, self.opts["padding"], self._dilation)


_REDUCE_MODES = ("sum", "max", "min", "mean", "avg", "logsumexp")
_TIME_AXES = ("t", "time", "stag:time")


class ReduceLayer(NetLayer):
    """Reduce over the time axis (RETURNN's "reduce" with axis "T"): `mode` sum / max / min / mean (avg) /
    logsumexp, over the real frames only (as RETURNN's use_time_mask, on by default for the time axis);
    `keep_dims` keeps a time axis of length 1. The output has no time axis (or that one frame)."""

    layer_options = {"mode": REQUIRED, "axes": None, "axis": None, "keep_dims": False, "use_time_mask": None}
    keeps_time_length = False
    growth_kind = "pass"  # per feature, over time

    def identity_blocker(self) -> str | None:
        return "reduce removes the time axis"

    def output_info(self) -> DataInfo:
        self.require_time()
        mode = self.opts["mode"]
        if not isinstance(mode, str) or mode.lower() not in _REDUCE_MODES:
            raise self.option_error("mode", mode, f"use one of {list(_REDUCE_MODES)}")
        self._mode = "mean" if mode.lower() == "avg" else mode.lower()
        axes, axis = self.opts["axes"], self.opts["axis"]
        if axes is not None and axis is not None:
            raise self.option_error("axis", axis, "give either 'axes' or 'axis', not both")
        value = axes if axes is not None else axis
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)) or len(names) != 1 or not isinstance(names[0], str) or (
                names[0].lower() not in _TIME_AXES):
            raise self.option_error("axes" if axes is not None else "axis", value,
                                    "reduce works over the time axis here: give axis='T'")
        self.check_bool("keep_dims")
        if self.opts["use_time_mask"] is None:
            self.opts["use_time_mask"] = True
        self.check_bool("use_time_mask")
        return DataInfo(dim=self.in_dim(), time=self.opts["keep_dims"])

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False, seq_len: Any = None
                ) -> tf.Tensor:
        x = self.concat(inputs)
        mask = self.time_mask(seq_len, x) if self.opts["use_time_mask"] else None
        keep = self.opts["keep_dims"]
        mode = self._mode
        if mask is not None:
            fill = {"max": x.dtype.min, "logsumexp": x.dtype.min, "min": x.dtype.max}.get(mode, 0.0)
            x = tf.where(mask > 0, x, tf.cast(fill, x.dtype))
        if mode == "mean" and mask is not None:
            frames = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=keep), 1.0)
            return tf.reduce_sum(x, axis=1, keepdims=keep) / frames
        func = {"sum": tf.reduce_sum, "max": tf.reduce_max, "min": tf.reduce_min, "mean": tf.reduce_mean,
                "logsumexp": tf.reduce_logsumexp}[mode]
        return func(x, axis=1, keepdims=keep)

    def out_seq_len(self, seq_len: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
        return tf.ones_like(seq_len)  # keep_dims: one frame


register_layer_class("pool", PoolLayer)
register_layer_class("reduce", ReduceLayer)
