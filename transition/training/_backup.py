"""`BackupAndRestore`: a drop-in for `keras.callbacks.BackupAndRestore` whose resume is exact.

Keras' own callback saves the weights and the epoch number. This one saves, in every backup, everything the rest of
the training depends on: the params (`Network.from_keras` names), all optimizer variables (slots by param name,
iteration count, learning rate), the RNG states (Keras SeedGenerators of Dropout & co., Keras' global one, TF's
global generator, numpy, Python), the states of the given callbacks (EarlyStopping's wait / best / stopped_epoch,
ModelCheckpoint's best, ReduceLROnPlateau's wait / cooldown / best, any `state_dict` / `load_state_dict` object)
and, mid-epoch, the compiled metrics' running sums. Each backup is a checkpoint of the project's store (atomic,
checksummed, `{backup_dir}/backup.NNN`); a damaged newest backup falls back to the previous good one with a warning.

When: a backup is taken at the next callback event after the one that makes it due (the next epoch's
`on_epoch_begin` for an epoch end, the next `on_train_batch_begin` for `save_freq=N` batches), so that it holds the
other callbacks' states after they handled that epoch or batch. The restore gives the state back at the same event
of the resumed `fit` (weights and optimizer at once in `on_train_begin`). With `save_freq=N`, epoch ends are backed
up too (an epoch's start state).

A mid-epoch resume is exact where the data allows it: the batches the interrupted run trained in that epoch are
drawn from the data again and skipped without training (the other callbacks see those steps with empty logs, then
get their saved states), which reproduces the epoch when `fit` re-creates its data iterator at every epoch (no
`steps_per_epoch`; numpy arrays, a `tf.data.Dataset` or a `PyDataset` that give each epoch's batches independently
of the epochs before). Where a run showed one data iterator running across epochs (`steps_per_epoch` over a
repeated dataset), or the data has fewer batches than the backup's step, the epoch restarts from its start state
(the backup of the epoch's start; the model as built for epoch 1): a batch is never trained twice on weights that
already saw it. For bit-identical results the data must give the same batches in a rerun (Keras shuffles numpy
arrays from the TF seed: call `keras.utils.set_random_seed` first; give `Dataset.shuffle` a seed and
`reshuffle_each_iteration=False`) and op determinism must be on (`tf.config.experimental.enable_op_determinism()`).
"""

from __future__ import annotations

import logging
import os
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import keras

from transition.checkpoint._naming import STATE_SUFFIX
from transition.errors import CheckpointError, ConfigError
from transition.internal._keras_private import build_compiled_metrics, replace_train_function, set_initial_epoch
from transition.network._network import Network
from transition.store._callback_state import adapt_callback, collect_callback_states
from transition.store._info import CheckpointInfo, RestoredCheckpoint
from transition.store._keep import KeepPolicy
from transition.store._rng import capture_rng_state, restore_rng_state
from transition.store._state import TrainingState
from transition.store._store import CheckpointStore
from transition.training._distribute import Cluster
from transition.training._keras_state import KerasMetricsState
from transition.training._manager_state import STOPPED_KEY, restore_callbacks
from transition.training._optimizer_state import assign_checkpoint_params, optimizer_arrays, restore_optimizer

__all__ = ["BackupAndRestore"]

log = logging.getLogger("transition")

FRESH_DATA_KEY = "transition.fresh_data_each_epoch"  # TrainingState.extra: fit re-created its data per epoch

# backup prefix -> the callback whose store holds its lock: a fit that raised never reached on_train_end, and a new
# callback on the same directory in this process (a re-run notebook cell) takes the lock over
_OPEN: weakref.WeakValueDictionary[str, BackupAndRestore] = weakref.WeakValueDictionary()


@attrs.define
class _Restore:
    """A restore under way: the state to give back at its event, the Keras epoch and the batches to skip."""

    state: TrainingState
    epoch: int
    skip: int
    first_batch: Any = None  # the first skipped batch, to build the compiled metrics before they get their sums


class BackupAndRestore(keras.callbacks.Callback):
    """Back up the whole training state during `model.fit` and resume exactly after an interruption.

    The arguments of `keras.callbacks.BackupAndRestore`: `backup_dir` (used by this callback alone), `save_freq`
    ("epoch", or an int: every N batches, and at epoch ends), `delete_checkpoint` (delete the backups when `fit`
    ends; the directory keeps an empty lock file), plus `callbacks`: the other callbacks of the same `fit` call
    whose state is saved and restored (Keras' EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, or any object
    with `state_dict` / `load_state_dict`). See the module docs for what is saved and when a resume is exact.
    `resumed_from` names the backup the last `fit` resumed from (None: a fresh start).
    """

    def __init__(self, backup_dir: str | os.PathLike, save_freq: str | int = "epoch", delete_checkpoint: bool = True,
                 callbacks: Sequence[object] = ()):
        super().__init__()
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise ConfigError(f"BackupAndRestore: backup_dir must be a directory path, got {backup_dir!r}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ConfigError(f"BackupAndRestore: save_freq must be 'epoch' or an int >= 1 (batches), got "
                              f"{save_freq!r}")
        if not isinstance(delete_checkpoint, bool):
            raise ConfigError(f"BackupAndRestore: delete_checkpoint must be True or False, got {delete_checkpoint!r}")
        if not isinstance(callbacks, (list, tuple)):
            raise ConfigError(f"BackupAndRestore: callbacks must be a list, got {type(callbacks).__name__}")
        for cb in callbacks:
            if adapt_callback(cb) is None:
                raise ConfigError(f"BackupAndRestore: callback {cb!r} has no state_dict() / load_state_dict() and is "
                                  "no Keras callback whose state transition knows (EarlyStopping, ModelCheckpoint, "
                                  "ReduceLROnPlateau); give it those two methods or leave it out of callbacks=")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = delete_checkpoint
        self.callbacks = tuple(callbacks)
        self.resumed_from: str | None = None
        self._prefix = os.path.join(os.path.abspath(self.backup_dir), "backup")
        self._metrics = KerasMetricsState()
        self._store: CheckpointStore | None = None
        self._network: Network | None = None
        self._restore: _Restore | None = None
        self._reset_position()

    def _reset_position(self) -> None:
        self._epoch = self._step = self._global_step = 0
        self._due: str | None = None  # "epoch" / "step": a backup to take at the next event
        self._skipped_step = False  # the current Keras step only drew its batch (a resumed epoch's start)
        self._fresh_data: bool | None = None  # None: not seen yet whether fit re-creates its data per epoch
        self._last_iterator: Any = None
        self._first_epoch = True

    # ------------------------------------------------------------------------------------------ Keras events
    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        model = self.model
        if not model.built:
            raise ConfigError(f"BackupAndRestore: model {model.name!r} is not built; build it (call it on a batch or "
                              "model.build(input_shape)) before fit")
        if model.optimizer is None:
            raise ConfigError("BackupAndRestore: the model has no optimizer; compile it before fit")
        if Cluster(model.distribute_strategy).multi_worker:
            raise ConfigError(
                "BackupAndRestore: the model trains under a MultiWorkerMirroredStrategy of "
                f"{Cluster(model.distribute_strategy).num_workers} workers; every worker would write the backups. Use "
                "TransitionManager(model_path, get_network=..., distribution='multi_worker_mirrored').fit(...) "
                "instead: its chief writes, the others follow (MirroredStrategy on one machine works here)")
        self._close_store()
        earlier = _OPEN.get(self._prefix)
        if earlier is not None and earlier is not self:
            earlier._close_store()
        self._reset_position()
        self._restore, self.resumed_from = None, None
        self._network = Network.from_keras(model)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self._metrics.model = model
        self._store = CheckpointStore(self._prefix, keep=KeepPolicy(keep_last=2))
        _OPEN[self._prefix] = self
        scan = self._store.scan_for_resume()
        for info in scan.skipped:
            warnings.warn(f"BackupAndRestore: backup {info.prefix} is damaged ({info.damaged}); falling back to "
                          "the previous one", stacklevel=2)
        if scan.resume_error is not None:
            raise scan.resume_error
        if scan.resume_from is not None:
            self._start_restore(scan.resume_from)

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._first_epoch:
            self._first_epoch = False
            set_initial_epoch(self.model, None)  # read by fit already; a later fit call starts where it says
        self._take_due_backup()
        self._epoch, self._step = epoch, 0
        restore = self._restore
        if restore is not None and restore.skip == 0:
            self._finish_restore()
        replace_train_function(self.model, self._step_hook)

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        restore = self._restore
        if restore is not None and restore.skip and batch >= restore.skip:
            self._step = restore.skip
            self._finish_restore()
        if not self._skipping():
            self._take_due_backup()

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._skipped_step:
            self._skipped_step = False
            return
        done = batch + 1 - self._step
        self._step = batch + 1
        before, self._global_step = self._global_step, self._global_step + max(done, 0)
        if self.save_freq != "epoch" and self._global_step // self.save_freq > before // self.save_freq:
            self._due = "step"

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._due = "epoch"

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        try:
            if self._store is not None:
                if self.delete_checkpoint:
                    self._store.delete_all()
                else:
                    self._take_due_backup()
        finally:
            set_initial_epoch(self.model, None)
            self._close_store()

    def close(self) -> None:
        """Wait for a backup under way and release the backup directory's lock. `fit` does it when it ends; call
        it after a `fit` that raised, to use the directory from elsewhere in this process (a new
        BackupAndRestore on the same directory takes it over by itself)."""
        self._close_store()

    # ------------------------------------------------------------------------------------------ backups
    def _take_due_backup(self) -> None:
        due, self._due = self._due, None
        if due is None or self._store is None or self._network is None:
            return
        finished = due == "epoch"
        epoch = self._epoch + 1  # 1-based: the finished epoch, or the one in progress
        step = 0 if finished else self._step
        state = TrainingState(
            epoch=epoch, epoch_finished=finished, global_step=self._global_step, step_in_epoch=step,
            rng=capture_rng_state(self.model), callbacks=collect_callback_states([*self.callbacks, self._metrics]),
            extra={STOPPED_KEY: bool(getattr(self.model, "stop_training", False)), FRESH_DATA_KEY: self._fresh_data})
        self._store.save_async(epoch, step, self._network.param_variables(),
                               optimizer_arrays(self.model.optimizer, self._network, all_variables=True),
                               epoch_finished=finished, global_step=self._global_step, state=state, overwrite=True)

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    # ------------------------------------------------------------------------------------------ restore
    def _start_restore(self, info: CheckpointInfo) -> None:
        """Restore the weights and the optimizer now and make fit start at the backup's epoch; the rest follows
        at the backup's event (`_finish_restore`)."""
        assert self._store is not None and self._network is not None
        restored, state = self._read(info)
        if not state.epoch_finished and not self._can_skip_to(state):
            info, restored, state = self._epoch_start_of(info, state)
            if info is None:
                return  # epoch 1 restarts from the model as built
        assign_checkpoint_params(self._network, restored.params, info.prefix)
        restore_optimizer(self.model.optimizer, self._network, restored.optimizer, info.prefix, all_variables=True)
        epoch = state.epoch if state.epoch_finished else state.epoch - 1  # the Keras (0-based) epoch to run next
        if state.extra.get(STOPPED_KEY):
            epoch = int(self.params.get("epochs") or epoch)  # a callback had stopped the training: nothing to do
        set_initial_epoch(self.model, epoch)
        self._global_step = state.global_step
        fresh = state.extra.get(FRESH_DATA_KEY)
        self._fresh_data = fresh if isinstance(fresh, bool) else None
        self._restore = _Restore(state, epoch, 0 if state.epoch_finished else state.step_in_epoch)
        self.resumed_from = info.prefix
        where = "after epoch" if state.epoch_finished else f"in epoch {state.epoch} after batch {state.step_in_epoch} of"
        log.info("BackupAndRestore: resuming from %s (%s %s)", info.prefix, where,
                 state.epoch if state.epoch_finished else "it")

    def _read(self, info: CheckpointInfo) -> tuple[RestoredCheckpoint, TrainingState]:
        assert self._store is not None
        restored = self._store.restore(info)
        state = TrainingState.from_json_and_arrays(restored.state_json, restored.state_arrays,
                                                   source=info.prefix + STATE_SUFFIX)
        if state.epoch < 1:
            raise CheckpointError(f"{info.prefix}: the backup has epoch {state.epoch}; expected >= 1")
        return restored, state

    def _can_skip_to(self, state: TrainingState) -> bool:
        """Whether the batches of a mid-epoch backup can be drawn again in this fit (see the module docs)."""
        steps = self.params.get("steps") if isinstance(self.params, Mapping) else None
        if isinstance(steps, int) and steps <= state.step_in_epoch:
            return False
        return state.extra.get(FRESH_DATA_KEY) is not False

    def _epoch_start_of(self, info: CheckpointInfo, state: TrainingState
                        ) -> tuple[CheckpointInfo | None, RestoredCheckpoint | None, TrainingState | None]:
        """The backup of the start of `state`'s epoch (None for epoch 1: the model as built)."""
        assert self._store is not None
        start = state.epoch - 1
        warnings.warn(f"BackupAndRestore: backup {info.prefix} is in the middle of epoch {state.epoch}, and this "
                      "fit cannot draw the same batches again (its data iterator runs across epochs, or the data "
                      f"has fewer batches); epoch {state.epoch} restarts from its start state", stacklevel=3)
        if start == 0:
            return None, None, None
        for candidate in reversed(self._store.list()):
            if candidate.epoch == start and candidate.epoch_finished and candidate.good:
                restored, start_state = self._read(candidate)
                return candidate, restored, start_state
        raise CheckpointError(f"BackupAndRestore: no good backup of the end of epoch {start} under {self._prefix}, "
                              f"which a restart of epoch {state.epoch} needs; move the backups away to start anew")

    def _finish_restore(self) -> None:
        """Give back what the backup holds besides weights and optimizer, at the event where it was taken."""
        restore, self._restore = self._restore, None
        assert restore is not None
        state = restore.state
        restore_callbacks([*self.callbacks, self._metrics], state.callbacks, self.resumed_from or self._prefix,
                          log.info, within_fit=True)
        if restore.skip and restore.first_batch is not None:
            build_compiled_metrics(self.model, restore.first_batch)  # Keras would build them in the next step
            self._metrics.apply(self.model)
        else:
            self._metrics.discard()
        if state.rng is not None:  # last: nothing else draws random numbers after it
            restore_rng_state(state.rng, self.model, strict=False)

    # ------------------------------------------------------------------------------------------ data
    def _skipping(self) -> bool:
        restore = self._restore
        return restore is not None and restore.skip > 0 and restore.epoch == self._epoch

    def _step_hook(self, train_function: Any) -> Any:
        """The function fit calls for the next step: it notes whether the epoch's data iterator is a new one and,
        while a resumed epoch skips its trained batches, draws a batch without training; then it hands over to
        Keras' own train function."""
        model = self.model

        def step(iterator: Any) -> Any:
            self._note_iterator(iterator)
            restore = self._restore
            if restore is not None and restore.skip and restore.epoch == self._epoch and self._step < restore.skip:
                per_step = int(getattr(model, "steps_per_execution", 1) or 1)
                for _ in range(per_step):
                    batch = self._draw(iterator, restore)
                    if restore.first_batch is None:
                        restore.first_batch = batch
                self._step += per_step
                self._skipped_step = True
                return {}
            model.train_function = train_function
            return train_function(iterator)

        return step

    def _draw(self, iterator: Any, restore: _Restore) -> Any:
        import tensorflow as tf

        try:
            return next(iterator)
        except (StopIteration, tf.errors.OutOfRangeError):
            raise ConfigError(
                f"BackupAndRestore: the data of epoch {restore.state.epoch} ended after {self._step} batches, but "
                f"backup {self.resumed_from} was taken after {restore.skip} batches of it: this fit's data differs "
                "from the interrupted one's; give the same data") from None

    def _note_iterator(self, iterator: Any) -> None:
        if self._last_iterator is not None and self._step == 0:
            previous = self._last_iterator() if isinstance(self._last_iterator, weakref.ref) else None
            fresh = previous is not iterator
            self._fresh_data = fresh if self._fresh_data is None else (self._fresh_data and fresh)
        if self._step == 0:
            try:
                self._last_iterator = weakref.ref(iterator)
            except TypeError:
                self._last_iterator = None
