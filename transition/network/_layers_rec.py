"""The rec layer with an LSTM unit ("lstm", "nativelstm2", "nativelstm"): params as RETURNN's native LSTMs.

`rec/W` [n_in, 4n], `rec/W_re` [n, 4n], `rec/b` [4n] (RETURNN's names for these units); the 4n axis holds, in this
order, the cell input (tanh), the input gate, the forget gate and the output gate (sigmoids):
c_t = f * c_{t-1} + i * tanh(z), h_t = o * tanh(c_t). Split info: `rec/W` [[n_in parts], [n, n, n, n]], `rec/W_re`
[[n], [n, n, n, n]], `rec/b` [[n, n, n, n]].

Sequence lengths as NativeLstm2: past a sequence's end the state is kept and the output is 0; direction -1 runs
over the reversed padded time axis, so each sequence starts at its own last frame.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from transition.network._layers_base import (
    REQUIRED,
    DataInfo,
    NetLayer,
    register_layer_class,
)

__all__ = ["RecLayer", "LSTM_UNITS", "REC_PARAMS"]

LSTM_UNITS = ("lstm", "nativelstm2", "nativelstm")
REC_PARAMS = ("rec/W", "rec/W_re", "rec/b")


class RecLayer(NetLayer):
    """A unidirectional LSTM over the time axis (unit "lstm"), forward (direction 1) or backward (-1)."""

    layer_options = {"unit": REQUIRED, "n_out": REQUIRED, "direction": 1}
    growth_kind = "units"

    def output_info(self) -> DataInfo:
        unit = self.opts["unit"]
        if not isinstance(unit, str) or unit.lower() not in LSTM_UNITS:
            raise self.option_error("unit", unit, f"supported units: {list(LSTM_UNITS)}")
        if self.opts["direction"] not in (1, -1, None):
            raise self.option_error("direction", self.opts["direction"], "use 1 (forward) or -1 (backward)")
        self.require_time()
        return DataInfo(dim=self.check_int("n_out"), time=True)

    def create_params(self) -> None:
        n = self.opts["n_out"]
        gates = [n, n, n, n]
        w, w_re, b = REC_PARAMS
        self.add_param(w, (self.in_dim(), 4 * n), "glorot_uniform", split_info=[self.source_dims(), gates],
                       roles=("in", "out"))
        self.add_param(w_re, (n, 4 * n), "glorot_uniform", split_info=[[n], gates], roles=("rec", "out"))
        self.add_param(b, (4 * n,), "zeros", split_info=[gates], roles=("out",))

    def identity_blocker(self) -> str | None:
        return "an LSTM does not pass its input through unchanged"

    def forward(self, inputs: list[tf.Tensor], training: bool, logits: bool = False, seq_len: Any = None
                ) -> tf.Tensor:
        n = self.opts["n_out"]
        w, w_re, b = (self.params[p] for p in REC_PARAMS)
        x = self.concat(inputs)  # [B, T, n_in]
        z = tf.transpose(tf.tensordot(x, w, [[2], [0]]) + b, [1, 0, 2])  # time major [T, B, 4n]
        zeros = tf.zeros(tf.stack([tf.shape(z)[1], n]), dtype=z.dtype)
        reverse = self.opts["direction"] == -1

        def cell(c_prev, h_prev, z_t):
            cell_in, in_gate, fgt_gate, out_gate = tf.split(z_t + tf.matmul(h_prev, w_re), 4, axis=-1)
            c = tf.sigmoid(fgt_gate) * c_prev + tf.sigmoid(in_gate) * tf.tanh(cell_in)
            return c, tf.sigmoid(out_gate) * tf.tanh(c)

        if seq_len is None:
            def step(state, z_t):
                return cell(*state, z_t)

            _, hs = tf.scan(step, z, initializer=(zeros, zeros), reverse=reverse)
            return tf.transpose(hs, [1, 0, 2])

        mask = tf.transpose(tf.sequence_mask(seq_len, tf.shape(z)[0], dtype=z.dtype))[:, :, None]  # [T, B, 1]
        if reverse:  # as RETURNN: the whole padded axis reversed, padded frames first (they keep the zero state)
            z, mask = tf.reverse(z, [0]), tf.reverse(mask, [0])

        def masked_step(state, elems):
            c_prev, h_prev, _ = state
            z_t, m = elems
            c, h = cell(c_prev, h_prev, z_t)
            return m * c + (1.0 - m) * c_prev, m * h + (1.0 - m) * h_prev, m * h

        _, _, ys = tf.scan(masked_step, (z, mask), initializer=(zeros, zeros, zeros))
        if reverse:
            ys = tf.reverse(ys, [0])
        return tf.transpose(ys, [1, 0, 2])


register_layer_class("rec", RecLayer)
