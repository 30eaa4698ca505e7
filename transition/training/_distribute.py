"""The workers of a distributed job (tf.distribute): the strategy of the `distribution` option, who is the chief,
collectives across workers, and what a lost worker means.

Under `MultiWorkerMirroredStrategy` every worker runs the same program (the cluster from `TF_CONFIG`, as TF reads
it). The chief (TF's rule: the "chief" task, else worker 0; `strategy.extended.should_checkpoint`) is the only one
that writes into the model directory; it makes the resume decision (`store._resume`) and the others follow it
(`follow_chief`); at every save the others wait until the chief has committed (`Cluster.barrier`); the scores of an
epoch are the chief's (`Cluster.chief_floats`), so that learning-rate control and callbacks decide the same
everywhere; a preemption signal on any worker is agreed at the next step boundary (`Cluster.any`), so all save at
that step.

The collectives are all-reduces over the strategy (`strategy.reduce` of one value per worker), issued by every
worker in the same order (they all run the same loop). Why not `tf.distribute.experimental.PreemptionCheckpointHandler`:
it agrees on the step through keys of the coordination service that live as long as the process (a second manager
in one process would never see a peer's notice), handles SIGTERM only, wants a `tf.train.Checkpoint` whose
directory the other workers write temporaries into, and assumes that the workers are at most one step apart; one
all-reduce of a flag per step (about 2 ms on one machine) has none of these limits.

A worker that dies (SIGKILL, a lost machine): TF's coordination service (on by default with
MultiWorkerMirroredStrategy) misses its heartbeats within about 10 s and aborts the collectives of the others, or
their connection to it breaks at once; `worker_failure` turns that TF error into a `ClusterError` that says what
to do (relaunch every worker: the job resumes from the last committed checkpoint).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from transition.checkpoint._naming import checkpoint_prefix
from transition.errors import ClusterError, ConfigError, TransitionError
from transition.store._info import CheckpointInfo

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["DISTRIBUTIONS", "Cluster", "make_strategy", "follow_chief", "worker_failure", "check_in_scope",
           "cluster_size", "workers_in_tf_config"]

DISTRIBUTIONS = ("mirrored", "multi_worker_mirrored")

_RESUME_NONE, _RESUME_FROM, _RESUME_REFUSED = 0, 1, 2


_STRATEGIES: dict[str, Any] = {}  # one strategy per kind and process (collective keys would clash; TF configures
# the cluster of a MultiWorkerMirroredStrategy once per process)


def make_strategy(distribution: str) -> tf.distribute.Strategy:
    """The strategy of the `distribution` option: "mirrored" (all local GPUs, else the local CPU devices) or
    "multi_worker_mirrored" (the cluster from TF_CONFIG; without it, this machine alone). Made once per process."""
    if distribution not in _STRATEGIES:
        _STRATEGIES[distribution] = _new_strategy(distribution)
    return _STRATEGIES[distribution]


def _new_strategy(distribution: str) -> tf.distribute.Strategy:
    import tensorflow as tf

    if distribution == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        return tf.distribute.MirroredStrategy(devices or [d.name for d in tf.config.list_logical_devices("CPU")])
    if distribution != "multi_worker_mirrored":
        raise ConfigError(f"distribution must be one of {', '.join(map(repr, DISTRIBUTIONS))}, got {distribution!r}")
    raw = os.environ.get("TF_CONFIG")
    if raw:
        try:
            json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"the environment variable TF_CONFIG is not JSON ({exc}); it must be like "
                              '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
                              '"index": 0}}') from None
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"distribution 'multi_worker_mirrored': cannot join the cluster of TF_CONFIG={raw!r}: {exc}. The strategy "
            "must be created before TensorFlow runs anything else in the process (the manager creates it first); "
            "check TF_CONFIG (the same cluster on every worker, each its own task index)"
        ) from exc


def cluster_size(spec: Mapping[str, Any]) -> int:
    """The worker processes of a cluster spec ({"chief": [...], "worker": [...]}; TF's rule: "ps" and "evaluator"
    tasks do not train)."""
    return len(spec.get("chief", ())) + len(spec.get("worker", ()))


def workers_in_tf_config() -> int:
    """The worker processes of the environment's TF_CONFIG, read without TensorFlow (1 without one, or where it is
    not a cluster: `make_strategy` reports a bad TF_CONFIG)."""
    try:
        spec = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster") or {}
        return max(cluster_size(spec), 1) if isinstance(spec, Mapping) else 1
    except (ValueError, AttributeError, TypeError):
        return 1


class Cluster:
    """The workers of `strategy` (None: one process, no strategy): this worker's index (the chief is 0), how many,
    and all-reduces across them. With one worker every collective is the identity and costs nothing."""

    def __init__(self, strategy: tf.distribute.Strategy | None = None) -> None:
        self.strategy = strategy
        self.num_workers, self.worker, self.is_chief = 1, 0, True
        if type(strategy).__name__.startswith("ParameterServerStrategy"):
            raise ConfigError("ParameterServerStrategy is not supported: use MirroredStrategy or "
                              "MultiWorkerMirroredStrategy (synchronous training, which resumes exactly)")
        resolver = getattr(strategy, "cluster_resolver", None)
        spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
        chiefs = len(spec.get("chief", []))
        if cluster_size(spec) > 1:
            self.num_workers = cluster_size(spec)
            self.worker = int(resolver.task_id) + (0 if resolver.task_type == "chief" else chiefs)
            self.is_chief = bool(strategy.extended.should_checkpoint)
        self.last_checkpoint: str | None = None  # the newest one saved or resumed from (for messages)
        self._reduce: Any = None

    @property
    def multi_worker(self) -> bool:
        """Whether the job has more than one worker process."""
        return self.num_workers > 1

    @property
    def where(self) -> str:
        """E.g. "worker 1 of 2" (for messages)."""
        return f"worker {self.worker} of {self.num_workers}"

    def all_sum(self, values: Sequence[float], dtype: str = "int64") -> np.ndarray:
        """The element-wise sum over the workers of each one's `values` (the same length on every worker)."""
        local = np.asarray(values, dtype=dtype).reshape(-1)
        if not self.multi_worker or local.size == 0:  # (TF's collective of an empty tensor crashes the process)
            return local
        try:
            return np.asarray(self._reduce_fn()(local))
        except Exception as exc:  # noqa: BLE001 - TF's errors of a collective whose peer is gone
            raise worker_failure(exc, self) or exc

    def _reduce_fn(self) -> Any:
        if self._reduce is None:
            import tensorflow as tf

            strategy = self.strategy

            @tf.function(reduce_retracing=True)
            def reduce(x: tf.Tensor) -> tf.Tensor:
                first = []  # this worker's value once, zeros from its other local replicas

                def value(ctx: Any) -> tf.Tensor:
                    first.append(ctx.replica_id_in_sync_group)
                    return tf.identity(x) if len(first) == 1 else tf.zeros_like(x)

                per_replica = strategy.experimental_distribute_values_from_function(value)
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            self._reduce = lambda a: reduce(tf.constant(a))
        return self._reduce

    def read(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The values of `variables` as tensors, read on every worker in the same order: reading a sync-on-read
        variable (a Keras metric's) in cross-replica context is a collective, so a save reads on all of them."""
        import tensorflow as tf

        try:
            return {name: tf.convert_to_tensor(var) for name, var in variables.items()}
        except Exception as exc:  # noqa: BLE001 - a peer gone during the read
            raise worker_failure(exc, self) or exc

    def any(self, flag: bool) -> bool:
        """Whether `flag` is set on any worker (every worker gets the same answer)."""
        return bool(self.all_sum([int(flag)])[0] > 0)

    def barrier(self, ok: bool = True) -> bool:
        """Wait for every worker; whether all of them passed `ok=True`."""
        return bool(self.all_sum([0 if ok else 1])[0] == 0)

    def chief_ints(self, values: Sequence[int]) -> list[int]:
        """The chief's `values` on every worker (the others pass the same number of values, ignored)."""
        return [int(v) for v in self.all_sum([int(v) if self.is_chief else 0 for v in values])]

    def chief_floats(self, values: Sequence[float]) -> list[float]:
        """The chief's floats on every worker, bit for bit (x + 0.0 == x)."""
        mine = [float(v) if self.is_chief else 0.0 for v in values]
        return [float(v) for v in self.all_sum(mine, "float64")]

    def chief_scores(self, scores: dict[str, float]) -> dict[str, float]:
        """The chief's scores of an epoch on every worker (the same names everywhere: the same loop computes
        them); a TransitionError where the names differ."""
        names = sorted(scores)
        count = self.chief_ints([len(names)])[0]
        if count != len(names):
            raise TransitionError(f"{self.where} has the scores {names}, the chief has {count} scores; every worker "
                                  "must compute the same scores (the same dev data)")
        return dict(zip(names, self.chief_floats([scores[n] for n in names])))


def follow_chief(cluster: Cluster, choice: CheckpointInfo | None, refused: BaseException | None,
                 model: str) -> CheckpointInfo | None:
    """The checkpoint every worker resumes from: the chief's `choice` (its resume decision, or None: start anew)
    or its refusal to start (`refused`, raised on the chief; the others raise a TransitionError naming it).

    The other workers get the chief's decision as (epoch, step, finished) and read that checkpoint's commit file and
    checksums themselves: a worker never resumes from a checkpoint the chief did not commit."""
    if not cluster.multi_worker:
        if refused is not None:
            raise refused
        return choice
    code = _RESUME_REFUSED if refused is not None else _RESUME_FROM if choice is not None else _RESUME_NONE
    mine = [code, choice.epoch, choice.step, int(choice.epoch_finished)] if choice is not None else [code, 0, 0, 0]
    code, epoch, step, finished = cluster.chief_ints(mine)
    if refused is not None:
        raise refused
    if code == _RESUME_REFUSED:
        raise TransitionError(f"{cluster.where}: the chief (worker 0) did not start training (its log says why); this "
                              "worker stops too")
    if code == _RESUME_NONE:
        return None
    if cluster.is_chief:
        return choice
    prefix = checkpoint_prefix(model, epoch, step, epoch_finished=bool(finished))
    return CheckpointInfo(prefix=prefix, epoch=epoch, step=step, epoch_finished=bool(finished), committed=True)


def worker_failure(exc: BaseException, cluster: Cluster) -> ClusterError | None:
    """A ClusterError for a TF error that says a peer of the cluster is gone (unavailable, aborted or timed-out
    collectives); None for any other error, and with a single worker."""
    if not cluster.multi_worker or isinstance(exc, TransitionError):
        return None
    import tensorflow as tf

    peer_errors = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
                   tf.errors.CancelledError)
    if not isinstance(exc, peer_errors):
        return None
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    at = next((i for i, line in enumerate(lines) if any(w in line.lower() for w in ("abort", "unhealthy", "closed"))), 0)
    detail = " ".join(lines[at : at + 2] if lines and lines[at].endswith(":") else lines[at : at + 1])
    resume = f" ({cluster.last_checkpoint})" if cluster.last_checkpoint else ""
    return ClusterError(
        f"{cluster.where}: another worker of the cluster stopped or cannot be reached ({type(exc).__name__}: "
        f"{detail[:300]}); this worker stops too. Relaunch all {cluster.num_workers} workers with the same command: "
        f"the job resumes from the last committed checkpoint{resume}"
    )


def check_in_scope(strategy: tf.distribute.Strategy | None, variables: Sequence[Any], where: str) -> None:
    """ConfigError when the variables of a network were not created in `strategy.scope()` (a Keras model built
    outside it trains on one device only)."""
    if strategy is None:
        return
    outside = [v for v in variables if not strategy.extended.variable_created_in_scope(getattr(v, "value", v))]
    if outside:
        raise ConfigError(
            f"{where} was built outside the strategy's scope (e.g. {getattr(outside[0], 'path', outside[0].name)}); "
            "build the Keras model inside `with strategy.scope():` (or pass get_network=, which the manager calls "
            "in the scope)"
        )
