"""How a `TransitionManager` starts: building networks and optimizers (in the strategy's scope), a fresh start with
RETURNN's loading rules, or a restore from the store's checkpoint that the resume decision picked."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from transition.checkpoint._epochs import list_epoch_models
from transition.checkpoint._load_options import (
    LoadDecision,
    decide_and_load,
    decide_loading,
)
from transition.checkpoint._naming import STATE_SUFFIX
from transition.errors import CheckpointError, ConfigError
from transition.network._network import Network
from transition.training._distribute import Cluster, check_in_scope, follow_chief
from transition.training._keras_net import network_of
from transition.store._info import CheckpointInfo
from transition.store._state import TrainingState
from transition.store._store import CheckpointStore
from transition.training._manager_state import params_by_layer
from transition.training._optimizer_state import (
    OptimizerFactory,
    assign_checkpoint_params,
    restore_optimizer,
)

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

__all__ = ["Builder", "Position", "StartPoint", "fresh_start", "restore_start", "resume_point"]


@attrs.define
class Position:
    """Where the manager is: the current (or last) epoch, the next one, steps within it and in all."""

    epoch: int = 0
    next_epoch: int = 1
    step_in_epoch: int = 0
    global_step: int = 0
    resumed_into_epoch: bool = False  # the current epoch was resumed mid-way (no transition at its start)


@attrs.frozen
class Builder:
    """Builds networks and optimizers, in the strategy's scope when there is one."""

    extern_data: Mapping[str, Any] | None
    optimizer_factory: OptimizerFactory
    strategy: tf.distribute.Strategy | None = None
    behavior_version: int | None = None

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def network(self, spec: Mapping[str, Any] | keras.Model, epoch: int,
                initial_values: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> Network:
        """The Network of a net dict or a Keras model (`spec`, the network of `epoch`)."""
        with self.scope():
            network = network_of(spec, self.extern_data, where=f"the network of epoch {epoch}",
                                 initial_values=initial_values, behavior_version=self.behavior_version)
        self.check(network, epoch)
        return network

    def check(self, network: Network, epoch: int) -> None:
        """ConfigError where the network's variables are not the strategy's (a Keras model built outside its scope)."""
        check_in_scope(self.strategy, list(network.param_variables().values()), f"the Keras model of epoch {epoch}")

    def optimizer(self, network: Network) -> keras.optimizers.Optimizer:
        with self.scope():
            opt = self.optimizer_factory()
            opt.build(list(network.trainable_variables))
        return opt


@attrs.frozen
class StartPoint:
    """What a start gives: the network and optimizer, the position, and the loading decision (fresh start) or the
    checkpoint and its training state (restore)."""

    network: Network
    optimizer: keras.optimizers.Optimizer
    position: Position
    decision: LoadDecision | None = None
    restored_from: CheckpointInfo | None = None
    state: TrainingState | None = None

    @property
    def log_line(self) -> str:
        if self.decision is not None:
            return f"loading: {self.decision.log_line}"
        assert self.restored_from is not None and self.state is not None
        pos = self.position
        where = (f"after epoch {pos.epoch}" if self.state.epoch_finished
                 else f"in epoch {pos.epoch} after step {pos.step_in_epoch}")
        return f"resuming from {self.restored_from.prefix} ({where}, global step {pos.global_step})"


def fresh_start(model: str, load_options: Mapping[str, Any], build: Builder,
                network_for_epoch: Callable[[int], Any]) -> StartPoint:
    """No checkpoint of our own: RETURNN's loading rules decide what is loaded and where training starts."""
    existing = list_epoch_models(model)
    plan = decide_loading(load_options, "train", existing)
    net_epoch = plan.start_epoch or 1
    if plan.model_file and not plan.new_training and plan.model_epoch:
        net_epoch = plan.model_epoch  # load into the net the checkpoint was trained with; transition after
    network = build.network(network_for_epoch(net_epoch), net_epoch)
    decision = decide_and_load(load_options, task="train", network=network, existing_epochs=existing)
    next_epoch = int(decision.start_epoch or 1)
    position = Position(epoch=next_epoch - 1, next_epoch=next_epoch, global_step=int(decision.global_train_step or 0))
    return StartPoint(network, build.optimizer(network), position, decision=decision)


def resume_point(store: CheckpointStore, cluster: Cluster, *, resume: bool, log: Callable[[str], None]
                 ) -> CheckpointInfo | None:
    """The checkpoint to resume from (None: a fresh start): the resume decision (store._resume) of the chief, which
    every worker of a multi-worker job follows (`_distribute.follow_chief`)."""
    choice, refused = None, None
    if cluster.is_chief:
        try:
            scan = store.scan_for_resume()
            for info in scan.skipped:
                log(f"skipping damaged checkpoint {info.prefix}: {info.damaged}")
            if scan.resume_error is not None:
                raise scan.resume_error
            if scan.resume_from is not None and not resume:
                raise ConfigError(
                    f"model {store.model} already has checkpoints (newest good: {scan.resume_from.prefix}) and "
                    "resuming is off; resume, or use another model path, or move those files away")
            choice = scan.resume_from
        except Exception as exc:  # noqa: BLE001 - sent to the other workers (they stop too), raised here
            refused = exc
    return follow_chief(cluster, choice, refused, store.model)


def restore_start(store: CheckpointStore, info: CheckpointInfo, build: Builder,
                  network_for_epoch: Callable[[int], Any], *, follower: str | None = None) -> StartPoint:
    """Restore the network of the checkpoint's epoch, its params and the optimizer's variables. `follower`: this
    worker (e.g. "worker 1 of 2") reads the checkpoint that the chief chose."""
    try:
        restored = store.restore(info)
    except CheckpointError as exc:
        if follower is None:
            raise
        raise CheckpointError(f"{exc} ({follower}: every worker reads the checkpoint that the chief resumes from, so "
                              "the model directory must be shared by all workers, e.g. on NFS or gs://)") from exc
    state = TrainingState.from_json_and_arrays(restored.state_json, restored.state_arrays,
                                               source=info.prefix + STATE_SUFFIX)
    epoch = state.epoch
    if epoch < 1:
        raise CheckpointError(f"{info.prefix}: the training state has epoch {epoch}; expected >= 1")
    network = build.network(network_for_epoch(epoch), epoch, initial_values=params_by_layer(restored.params))
    assign_checkpoint_params(network, restored.params, info.prefix)
    optimizer = build.optimizer(network)
    restore_optimizer(optimizer, network, restored.optimizer, info.prefix)
    if state.epoch_finished:
        position = Position(epoch, epoch + 1, 0, state.global_step)
    else:
        position = Position(epoch, epoch, state.step_in_epoch, state.global_step, resumed_into_epoch=True)
    return StartPoint(network, optimizer, position, restored_from=info, state=state)
