"""The losses a net dict layer may carry ("ce", "mse"), as TF ops."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["LOSSES", "layer_loss"]

LOSSES = ("ce", "mse")


def layer_loss(loss: str, y: tf.Tensor, target: tf.Tensor, is_logits: bool) -> tf.Tensor:
    """The mean loss over batch and time frames: "ce" (cross entropy against sparse ids or a dense distribution;
    `y` are logits when `is_logits`) or "mse"."""
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
