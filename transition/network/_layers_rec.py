"""The rec layer with unit "lstm": params as RETURNN's native LSTM (NativeLstm2).

`W` [n_in, 4n], `W_re` [n, 4n], `b` [4n]; the 4n axis holds, in this order, the cell input (tanh), the input
gate, the forget gate and the output gate (sigmoids): c_t = f * c_{t-1} + i * tanh(z), h_t = o * tanh(c_t).
Split info: `W` [[n_in parts], [n, n, n, n]], `W_re` [[n], [n, n, n, n]], `b` [[n, n, n, n]].
"""

from __future__ import annotations

import tensorflow as tf

from transition.network._layers_base import (
    REQUIRED,
    DataInfo,
    NetLayer,
    register_layer_class,
)

__all__ = ["RecLayer", "LSTM_UNITS"]

LSTM_UNITS = ("lstm", "nativelstm2", "nativelstm")


class RecLayer(NetLayer):
    """A unidirectional LSTM over the time axis (unit "lstm"), forward (direction 1) or backward (-1)."""

    layer_options = {"unit": REQUIRED, "n_out": REQUIRED, "direction": 1}

    def output_info(self) -> DataInfo:
        unit = self.opts["unit"]
        if not isinstance(unit, str) or unit.lower() not in LSTM_UNITS:
            raise self.option_error("unit", unit, f"supported units: {list(LSTM_UNITS)}")
        if self.opts["direction"] not in (1, -1):
            raise self.option_error("direction", self.opts["direction"], "use 1 (forward) or -1 (backward)")
        self.require_time()
        return DataInfo(dim=self.check_int("n_out"), time=True)

    def create_params(self) -> None:
        n = self.opts["n_out"]
        gates = [n, n, n, n]
        self.add_param("W", (self.in_dim(), 4 * n), "glorot_uniform", split_info=[self.source_dims(), gates])
        self.add_param("W_re", (n, 4 * n), "glorot_uniform", split_info=[[n], gates])
        self.add_param("b", (4 * n,), "zeros", split_info=[gates])

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False) -> tf.Tensor:
        n = self.opts["n_out"]
        x = self.concat(inputs)  # [B, T, n_in]
        z = tf.tensordot(x, self.params["W"], [[2], [0]]) + self.params["b"]  # [B, T, 4n]
        z = tf.transpose(z, [1, 0, 2])  # time major
        w_re = self.params["W_re"]
        batch = tf.shape(z)[1]
        zeros = tf.zeros(tf.stack([batch, n]), dtype=z.dtype)

        def step(state, z_t):
            c_prev, h_prev = state
            g = z_t + tf.matmul(h_prev, w_re)
            cell_in, in_gate, fgt_gate, out_gate = tf.split(g, 4, axis=-1)
            c = tf.sigmoid(fgt_gate) * c_prev + tf.sigmoid(in_gate) * tf.tanh(cell_in)
            h = tf.sigmoid(out_gate) * tf.tanh(c)
            return c, h

        reverse = self.opts["direction"] == -1
        _, hs = tf.scan(step, z, initializer=(zeros, zeros), reverse=reverse)
        return tf.transpose(hs, [1, 0, 2])


register_layer_class("rec", RecLayer)
