"""The losses a net dict layer may carry ("ce", "mse"), as TF ops, over the real frames only.

As RETURNN normalises them: a layer's loss is its sum over the real frames (per the output's sequence lengths;
every frame when there are none) divided by the number of those frames.
"""

from __future__ import annotations

import attrs
import tensorflow as tf

__all__ = ["LOSSES", "LossTerm", "loss_term", "frame_mask"]

LOSSES = ("ce", "mse")


@attrs.frozen
class LossTerm:
    """One layer's loss on a batch: the sum over its real frames, their number, the loss scale, and (for a "ce"
    loss against sparse ids, when asked) the number of frames whose argmax is wrong."""

    loss_sum: tf.Tensor
    frames: tf.Tensor
    scale: float = 1.0
    errors: tf.Tensor | None = None

    @property
    def value(self) -> tf.Tensor:
        """The normalised loss: sum / frames."""
        return self.loss_sum / tf.maximum(self.frames, 1.0)


def frame_mask(y: tf.Tensor, seq_len: tf.Tensor | None, has_time: bool) -> tf.Tensor:
    """[batch] or [batch, time] float32 weights of the real frames of output `y`."""
    frames_shape = tf.shape(y)[:2] if has_time else tf.shape(y)[:1]
    if seq_len is None or not has_time:
        return tf.ones(frames_shape, "float32")
    return tf.sequence_mask(seq_len, frames_shape[1], dtype="float32")


def _per_frame(loss: str, y: tf.Tensor, target: tf.Tensor, is_logits: bool) -> tf.Tensor:
    if loss == "mse":
        t = tf.one_hot(target, tf.shape(y)[-1]) if target.dtype.is_integer else tf.cast(target, y.dtype)
        return tf.reduce_sum(tf.square(y - t), axis=-1)
    if target.dtype.is_integer:
        if is_logits:
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(target, "int32"), logits=y)
        picked = tf.gather(y, tf.cast(target, "int32"), batch_dims=y.shape.rank - 1)
        return -tf.math.log(tf.clip_by_value(picked, 1e-20, 1.0))
    t = tf.cast(target, y.dtype)
    if is_logits:
        return tf.nn.softmax_cross_entropy_with_logits(labels=t, logits=y)
    return -tf.reduce_sum(t * tf.math.log(tf.clip_by_value(y, 1e-20, 1.0)), axis=-1)


def loss_term(loss: str, y: tf.Tensor, target: tf.Tensor, is_logits: bool, mask: tf.Tensor, *, scale: float = 1.0,
              errors: bool = False) -> LossTerm:
    """The loss of one layer: "ce" (cross entropy against sparse ids or a dense distribution; `y` are logits when
    `is_logits`) or "mse", summed over the frames where `mask` is 1."""
    y = tf.cast(y, "float32")
    target = tf.convert_to_tensor(target)
    per_frame = _per_frame(loss, y, target, is_logits)
    n_errors = None
    if errors and loss == "ce" and target.dtype.is_integer:
        wrong = tf.not_equal(tf.argmax(y, axis=-1, output_type=tf.int32), tf.cast(target, tf.int32))
        n_errors = tf.reduce_sum(tf.cast(wrong, "float32") * mask)
    return LossTerm(tf.reduce_sum(per_frame * mask), tf.reduce_sum(mask), scale, n_errors)
