"""Global batches under a tf.distribute strategy: split across the replicas (of all workers), and the loss of a
replica as its share of the global batch's mean.

A `tf.data.Dataset` is batched by the global batch size and distributed with `experimental_distribute_dataset`;
its auto-shard policy is set to DATA unless the dataset sets one: every worker reads the same pipeline and keeps its
replicas' rows of each global batch, so the sequence of global batches (and a resume's `skip`) is the one of a
single-worker run (set `options.experimental_distribute.auto_shard_policy = FILE` yourself to read files per worker
instead). Other data (numpy dict batches, any iterable of nested arrays) yields global batches: replica r of R gets
rows [r * n / R, (r + 1) * n / R) (`np.array_split`'s split), so the per-epoch order is the single-worker one and
each worker feeds its replicas only their rows.

The loss: replica r's mean loss over its n_r examples counts n_r / N (N: the examples of the global batch, summed
over the replicas in the step), i.e. `tf.nn.compute_average_loss` over the global batch; the gradients are summed
across replicas (the optimizer's all-reduce), so a step is the single-device step on the global batch. (Exact for
losses that are means over examples of equal weight; a loss normalised by frames weighs each replica by examples.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from transition.training._data import is_tf_dataset

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["distribute", "split_batch", "shard_by_data", "global_batch_share"]


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with the DATA auto-shard policy unless it sets a policy itself (see the module docstring)."""
    import tensorflow as tf

    policy = tf.data.experimental.AutoShardPolicy
    if dataset.options().experimental_distribute.auto_shard_policy != policy.AUTO:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.DATA
    return dataset.with_options(options)


def _bounds(n: int, replicas: int, r: int) -> tuple[int, int]:
    """Rows [lo, hi) of replica `r` among `replicas` in a batch of `n` rows (np.array_split's split)."""
    base, extra = divmod(n, replicas)
    lo = r * base + min(r, extra)
    return lo, lo + base + (1 if r < extra else 0)


def split_batch(strategy: tf.distribute.Strategy, batch: Any) -> Any:
    """A global batch (nested arrays with the examples on axis 0) as distributed values: each replica its rows."""
    import tensorflow as tf

    leaves = tf.nest.flatten(batch)
    n = int(np.shape(leaves[0])[0]) if leaves else 0
    replicas = strategy.num_replicas_in_sync

    def rows(ctx: Any) -> Any:
        lo, hi = _bounds(n, replicas, ctx.replica_id_in_sync_group)
        return tf.nest.map_structure(lambda a: tf.convert_to_tensor(a[lo:hi]), batch)

    return strategy.experimental_distribute_values_from_function(rows)


def distribute(strategy: tf.distribute.Strategy, data: Iterable[Any]) -> Iterator[Any]:
    """The batches of `data` (a Dataset of global batches, or an iterable of them), each split across the
    replicas (see the module docstring)."""
    if is_tf_dataset(data):
        yield from strategy.experimental_distribute_dataset(shard_by_data(data))  # type: ignore[arg-type]
        return
    for batch in data:
        yield split_batch(strategy, batch)


def global_batch_share(loss: tf.Tensor, batch: Any) -> tf.Tensor:
    """In a replica: its mean `loss` over its rows of `batch` as its share of the global batch's mean loss (summed
    over the replicas, the shares are that mean; an empty replica's share is 0)."""
    import tensorflow as tf

    n = tf.shape(tf.nest.flatten(batch)[0])[0]
    total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(n, tf.float32))
    per_example = tf.fill([n], tf.cast(loss, tf.float32))
    return tf.nn.compute_average_loss(per_example, global_batch_size=tf.cast(total, tf.int64))
