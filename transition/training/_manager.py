"""`TransitionManager`: drives the epochs of any training loop, with transitions, loading, checkpoints and resume.

```python
mgr = TransitionManager("runs/exp/network", net_dict, pretrain="default", extern_data=...,
                        optimizer=lambda: keras.optimizers.Adam(1e-3), num_epochs=20)
with mgr:
    for epoch in mgr.epochs():           # on restart: the right epoch, the right network, all state restored
        for batch in mgr.batches(data):  # in a resumed epoch it skips what was trained; honours preemption
            ...                          # a step on mgr.network / mgr.optimizer
        mgr.end_epoch(scores={"dev_score": ...})
```
The checkpoint at an epoch end (and mid-epoch ones) holds the params, the optimizer's slots and iteration count,
and a TrainingState with the learning-rate history, the RNG states, the callbacks' states and the position. Unlike
RETURNN, the optimizer is neither reset at a rebuild nor at a resume. The network of an epoch is a net dict or a
built Keras model (`network=model`, or `get_network(epoch)` returning either; see `_keras_net`). The options are
declared in `_options.ManagerOptions`; how a run starts is in `_manager_start`, what a checkpoint's state holds in
`_manager_state`, which checkpoint a resume uses in `store._resume`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from transition.checkpoint._epochs import list_epoch_models
from transition.checkpoint._load_options import check_load_files, decide_loading
from transition.checkpoint._naming import checkpoint_prefix
from transition.errors import ConfigError, TransitionError
from transition.internal._signature import with_options_signature
from transition.netdict._pretrain import Pretrain, pretrain_from_config
from transition.network._transition import transition_network
from transition.store._keep import KeepPolicy
from transition.store._listing import has_checkpoint_files
from transition.store._rng import restore_rng_state
from transition.store._store import CheckpointStore
from transition.training._cadence import SaveCadence
from transition.training._config import Config, load_config, manager_options
from transition.training._data import epoch_seed, is_tf_dataset
from transition.training._dist_data import distribute as distribute_batches
from transition.training._distribute import Cluster, make_strategy, worker_failure
from transition.training._fit import KerasFit, is_keras_callback, keras_logs
from transition.training._keras_net import (
    check_importer_names,
    check_network_spec,
    importers_for,
    layer_names,
    needs_transition,
)
from transition.training._keras_state import KerasMetricsState
from transition.training._log import transition_summary
from transition.training._lr_control import LearningRateControl
from transition.training._manager_start import (
    Builder,
    Position,
    StartPoint,
    fresh_start,
    restore_start,
    resume_point,
)
from transition.training._manager_state import (
    STOPPED_KEY,
    restore_callbacks,
    training_state,
)
from transition.training._optimizer_state import (
    learning_rate_of,
    optimizer_arrays,
    optimizer_factory,
    set_learning_rate,
)
from transition.training._options import ManagerOptions, growth_options
from transition.training._precheck import check_schedule
from transition.training._preempt import PREEMPTED_EXIT_CODE, PreemptionHandler, mark_training_started

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from transition.checkpoint._load_options import LoadDecision
    from transition.network._network import Network
    from transition.network._transition import TransitionResult

__all__ = ["TransitionManager"]

T = TypeVar("T")
_LR_CALLBACKS = ("ReduceLROnPlateau", "LearningRateScheduler")


class TransitionManager:
    """Drives the epochs of a training job: rebuilds, loading, learning rate, callbacks' state and checkpoints.

    `network`: the net dict (the final one with `pretrain`) or a built keras.Model; `get_network(epoch)` instead
    gives one per epoch (a net dict or a Keras model; a model with another architecture than the current one
    starts its epoch with a transition). `extern_data` is needed for net dicts only; `copy_param_mode` is the copy
    mode of the transitions that the schedule (or net dict) leaves open; `custom_param_importers` {layer:
    importer} gives layers (e.g. Keras ones) RETURNN's `custom_param_importer`.
    `pretrain`: a `Pretrain`, or a config value ("default", a dict of options). `optimizer`: a function returning a
    Keras optimizer (or a dict {"class": "adam", ...}). `callbacks`: objects with state_dict / load_state_dict
    (Keras EarlyStopping / ModelCheckpoint / ReduceLROnPlateau are adapted); Keras callbacks are also driven
    (set_model, on_epoch_end with the scores; `model.stop_training` ends the run). Loading options as RETURNN's
    (load, load_epoch, import_model_train_epoch1, preload_from_files, ...) apply when the model has no checkpoint
    of its own yet; otherwise the run resumes from the newest good one (`resume=False` refuses instead).
    Every option is a field of `ManagerOptions`.
    """

    @with_options_signature(ManagerOptions, head=3)  # help() lists every option
    def __init__(self, model: str, network: Mapping[str, Any] | keras.Model | None = None, **options: Any) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model must be a checkpoint path prefix like 'runs/exp/network', got {model!r}")
        self.options = opts = ManagerOptions.make(model=model, network=network, **options)
        # the strategy first: MultiWorkerMirroredStrategy must be created before TF runs anything in the process
        self._strategy = opts.strategy if opts.distribution is None else make_strategy(opts.distribution)
        self._cluster = Cluster(self._strategy)
        self.pretrain: Pretrain | None = _pretrain_of(opts)
        factory = optimizer_factory(opts.optimizer)
        self.lr_control: LearningRateControl = _lr_control_of(opts, factory, self.pretrain)
        self.keep: KeepPolicy = opts.keep if opts.keep is not None else KeepPolicy()
        self.cadence = SaveCadence(opts.save_every_n_steps)
        self.load_options = {key: getattr(opts, key) for key in (
            "model", "load", "load_epoch", "import_model_train_epoch1", "allow_random_model_init",
            "load_ignore_missing_vars", "preload_from_files")}
        decide_loading(self.load_options, "train", {})  # check the options now (pure)
        self._build = Builder(opts.extern_data, factory, self._strategy, opts.behavior_version)
        self._log = opts.log if opts.log is not None else (lambda s: print(s, flush=True))
        self._callbacks: list[object] = []
        self._metrics_state = KerasMetricsState()  # the running epoch sums of a Keras fit (saved mid-epoch)
        for cb in opts.callbacks:
            self._add_callback(cb)
        self.config: Config | None = None
        self._network: Network | None = None
        self._optimizer: keras.optimizers.Optimizer | None = None
        self._store: CheckpointStore | None = None
        self._preempt: PreemptionHandler | None = None
        self._keras_callbacks: keras.callbacks.CallbackList | None = None  # None: the caller drives them (fit)
        self._pos = Position()
        self._started = self._closed = self._epoch_open = self._stopped = False
        self._epochs_done_here = 0
        self.last_transition: TransitionResult | None = None
        self.load_decision: LoadDecision | None = None
        self.resumed_from: str | None = None

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_config(
        cls,
        source: str | Mapping[str, Any] | Config,
        overrides: Mapping[str, Any] | Sequence[str] | None = None,
        *,
        callbacks: Sequence[object] = (),
        resume: bool = True,
        strategy: tf.distribute.Strategy | None = None,
        log: Callable[[str], None] | None = None,
    ) -> TransitionManager:
        """Build from a RETURNN-style config file (or dict) plus `overrides` (`--key=value` strings or a dict); see
        `transition.training._config.KNOWN_KEYS`. `callbacks` are added to the config's."""
        cfg = load_config(source, overrides)
        opts = manager_options(cfg, callbacks=callbacks, resume=resume, strategy=strategy, log=log)
        mgr = cls(**attrs.asdict(opts, recurse=False))
        mgr.config = cfg
        return mgr

    def register_callback(self, callback: object) -> None:
        """Add a callback (its state is saved with the checkpoints); before `epochs()` starts."""
        if self._started:
            raise TransitionError("register callbacks before iterating mgr.epochs()")
        self._add_callback(callback)

    def _add_callback(self, callback: object) -> None:
        inner = getattr(callback, "callback", callback)  # a KerasCallbackState adapter: the Keras callback in it
        kind = type(inner).__name__
        if is_keras_callback(inner) and kind in _LR_CALLBACKS:
            raise ConfigError(
                f"callback {kind} would fight the learning-rate control, which sets the rate at every epoch start "
                "(and saves it in the checkpoints); remove the callback and use the config option "
                "learning_rate_control = 'newbob' (with newbob_learning_rate_decay, newbob_relative_error_threshold, "
                "learning_rate_control_error_measure) or learning_rates = {epoch: rate}"
            )
        self._callbacks.append(callback)

    # ------------------------------------------------------------------------------------------ properties
    model = property(lambda self: self.options.model, doc="The model's checkpoint path prefix.")
    extern_data = property(lambda self: dict(self.options.extern_data or {}), doc="The extern_data of the net "
                           "dicts ({} when not given).")
    num_epochs = property(lambda self: self.options.num_epochs, doc="The epochs to train in all.")
    seed = property(lambda self: self.options.seed, doc="The job's seed (Python, numpy, TF, data shuffle).")
    strategy = property(lambda self: self._strategy, doc="The tf.distribute.Strategy (given, or made for the option "
                        "`distribution`), or None.")
    is_chief = property(lambda self: self._cluster.is_chief, doc="Whether this process writes the checkpoints (the "
                        "chief of a multi-worker job; True without one).")
    init_new_network_callback = property(lambda self: self.options.init_new_network_callback,
                                         doc="The callback run after each rebuild, before the import.")

    @property
    def callbacks(self) -> tuple[object, ...]:
        """The callbacks whose state is saved with the checkpoints (the config's, the constructor's, registered)."""
        return tuple(self._callbacks)

    @property
    def network(self) -> Network:
        """The Network of the current epoch (rebuilt at transitions: fetch it again each epoch)."""
        if self._network is None:
            raise TransitionError("mgr.network is there once mgr.epochs() has started (it builds or restores it)")
        return self._network

    @property
    def optimizer(self) -> keras.optimizers.Optimizer:
        """The optimizer of the current network (recreated, slots carried, at transitions)."""
        if self._optimizer is None:
            raise TransitionError("mgr.optimizer is there once mgr.epochs() has started (it builds or restores it)")
        return self._optimizer

    @property
    def epoch(self) -> int:
        """The current (or last) epoch, 1-based; 0 before the first."""
        return self._pos.epoch

    @property
    def global_step(self) -> int:
        """Training steps done in all epochs (restored on resume; also `network.global_train_step`)."""
        return self._pos.global_step

    @property
    def step_in_epoch(self) -> int:
        """Steps done in the current epoch (after a mid-epoch resume: including those before the restart)."""
        return self._pos.step_in_epoch

    @property
    def learning_rate(self) -> float:
        """The learning rate of the current epoch (before the first epoch: the one it will use)."""
        epoch = max(self._pos.epoch, 1)
        if epoch in self.lr_control.history:
            return self.lr_control.history[epoch].learning_rate
        return self.lr_control.peek_learning_rate(epoch)

    @property
    def epochs_trained(self) -> int:
        """Epochs finished (end_epoch) by this manager, i.e. in this run."""
        return self._epochs_done_here

    @property
    def stopped(self) -> bool:
        """True when a callback stopped the training (Keras' model.stop_training)."""
        return self._stopped

    @property
    def transition_summary(self) -> str | None:
        """What the transition at the start of the current epoch did, in one line (None: no transition)."""
        return transition_summary(self.last_transition) if self.last_transition is not None else None

    def shuffle_seed(self, epoch: int | None = None) -> int:
        """The data-shuffle seed of `epoch` (default: the current one), derived from the job's seed."""
        return epoch_seed(self.seed, self._pos.epoch if epoch is None else epoch)

    def network_for_epoch(self, epoch: int) -> dict[str, Any] | keras.Model:
        """The network of `epoch`: the pretrain schedule's net dict, `get_network(epoch)`'s net dict or Keras model,
        or `network`."""
        if self.pretrain is not None:
            return self.pretrain.get_network_json_for_epoch(epoch)
        if self.options.get_network is not None:
            return check_network_spec(self.options.get_network(epoch=epoch), f"get_network(epoch={epoch})")
        return check_network_spec(self.options.network, "option 'network'")

    def net_dict_for_epoch(self, epoch: int) -> dict[str, Any]:
        """The net dict of `epoch` (see `network_for_epoch`); a TransitionError where it is a Keras model."""
        net = self.network_for_epoch(epoch)
        if not isinstance(net, Mapping):
            raise TransitionError(f"the network of epoch {epoch} is a Keras model ({net.name!r}), not a net dict")
        return net

    def copy_param_mode_for(self, epoch: int, network: Any = None) -> str | None:
        """The copy_param_mode of the transition into `epoch`: the pretrain schedule's, else the net dict's
        "#copy_param_mode", else the option `copy_param_mode`. `network`: the network of `epoch` if known."""
        if self.pretrain is not None:
            mode = self.pretrain.get_copy_param_mode_for_epoch(epoch)
            if mode is not None:
                return mode
        net = self.network_for_epoch(epoch) if network is None else network
        if isinstance(net, Mapping) and net.get("#copy_param_mode") is not None:
            return net["#copy_param_mode"]
        return self.options.copy_param_mode

    # ------------------------------------------------------------------------------------------ the loop
    def epochs(self, *, drive_keras_callbacks: bool = True) -> Iterator[int]:
        """Yield the epochs to train, starting where the model's checkpoints (or the loading options) say.

        The manager drives the Keras callbacks among its callbacks (set_model, on_train_begin, on_epoch_begin /
        end with the scores, on_train_end) unless `drive_keras_callbacks=False` (the caller's `model.fit` does it).
        """
        if self._started:
            raise TransitionError("mgr.epochs() can be iterated once; create a new TransitionManager to run again")
        self._start(drive_keras_callbacks)
        try:
            pos = self._pos
            if pos.next_epoch > self.num_epochs and not self._stopped:
                self._log(f"nothing to train: the model is at epoch {pos.epoch} and num_epochs is {self.num_epochs}; "
                          "raise num_epochs to train on")
            while pos.next_epoch <= self.num_epochs and not self._stopped:
                epoch = pos.next_epoch
                self._begin_epoch(epoch)
                yield epoch
                if self._epoch_open:
                    raise TransitionError(f"epoch {epoch} ended without mgr.end_epoch(scores=...); call it at the end "
                                          "of every epoch")
            if self._stopped:
                self._log(f"training stopped by a callback after epoch {pos.epoch}")
            if self._keras_callbacks is not None:
                self._keras_callbacks.on_train_end()
        finally:
            self.close()

    def batches(self, data: Iterable[T], *, distribute: bool = True) -> Iterator[T]:
        """Iterate `data` within the current epoch, counting steps: a step is done when the next batch is asked for.

        In a resumed epoch the batches trained before the restart are skipped (tf.data: `skip`). After each step:
        a preemption signal (on any worker) saves a checkpoint and exits with PREEMPTED_EXIT_CODE;
        `save_every_n_steps` saves. With a strategy (and `distribute`), `data` holds global batches and each is
        split across the replicas (distributed values for `strategy.run`; see `_dist_data`).
        """
        if not self._epoch_open:
            raise TransitionError("mgr.batches() is for use inside an epoch of mgr.epochs() (before end_epoch)")
        skip = self._pos.step_in_epoch
        if is_tf_dataset(data):
            source: Iterable[T] = data.skip(skip) if skip else data  # type: ignore[attr-defined]
        else:
            source = iterator = iter(data)
            for _ in range(skip):
                try:
                    next(iterator)
                except StopIteration:
                    raise TransitionError(
                        f"epoch {self._pos.epoch}: the data has fewer batches than the {skip} trained before the "
                        "restart; the data must be the same (deterministic per epoch) when resuming"
                    ) from None
        if self._strategy is not None and distribute:
            source = distribute_batches(self._strategy, source)
        for batch in source:
            yield batch
            self.step_done()

    def step_done(self) -> None:
        """Count one training step (`batches()` does it for you); saves / exits as `batches()` describes."""
        if not self._epoch_open:
            raise TransitionError("step_done() outside an epoch of mgr.epochs()")
        pos = self._pos
        pos.step_in_epoch += 1
        pos.global_step += 1
        self.network.global_train_step = pos.global_step
        preempted = self._preempt is not None and self._preempt.requested
        if self._cluster.multi_worker:  # agreed over the cluster: every worker saves after this same step
            preempted = self._cluster.any(preempted)
        if preempted:
            prefix = self._save(epoch_finished=False, wait=True)
            signal = self._preempt.signal_name if self._preempt is not None else None
            self._log(f"preempted ({signal or 'a signal to another worker'}): saved {prefix} at epoch {pos.epoch} "
                      f"step {pos.step_in_epoch}; exiting with code {PREEMPTED_EXIT_CODE}")
            self.close()
            raise SystemExit(PREEMPTED_EXIT_CODE)
        if self.cadence.due(pos.global_step):
            self._save(epoch_finished=False)

    def end_epoch(self, scores: Mapping[str, float] | None = None) -> None:
        """Finish the epoch: record the scores (learning-rate control), run Keras callbacks, save the checkpoint."""
        if not self._epoch_open:
            raise TransitionError("end_epoch() without an open epoch: call it once per epoch of mgr.epochs()")
        pos = self._pos
        scores = {k: float(v) for k, v in (scores or {}).items()}
        if self._cluster.multi_worker:  # the chief's: learning-rate control and callbacks decide alike everywhere
            scores = self._cluster.chief_scores(scores)
        self.lr_control.set_epoch_scores(pos.epoch, scores)
        if self._keras_callbacks is not None:
            self._keras_callbacks.on_epoch_end(pos.epoch - 1, logs=keras_logs(scores))
        if getattr(self.network.keras_model, "stop_training", False):
            self._stopped = True
        self._save(epoch_finished=True, scores=scores)
        self._epoch_open = False
        pos.resumed_into_epoch = False
        pos.step_in_epoch = 0
        pos.next_epoch = pos.epoch + 1
        self._epochs_done_here += 1

    def fit(self, train: Any, *, loss: Any, validation_data: Any = None, metrics: Any = None,
            callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int | str = 0,
            **fit_kwargs: Any) -> list[dict[str, float]]:
        """Train with Keras' `Model.fit`, one fit call per epoch (`initial_epoch` set), through `mgr.epochs()`.

        `train`: a tf.data.Dataset of (x, y), or a function (called with `epoch` / `seed` where it accepts them)
        returning one per epoch; in a resumed epoch the batches already trained are skipped. `callbacks` (Keras) are
        passed to every fit call and their state (EarlyStopping's wait / best, ...) is saved with the checkpoints;
        so are the manager's own callbacks. The network's Keras model is compiled with the manager's optimizer and
        `loss` after every rebuild. Returns the scores of each epoch trained (our names: train_score, dev_score).
        """
        for cb in callbacks:
            self.register_callback(cb)
        run = KerasFit(self.step_done, [cb for cb in self._callbacks if is_keras_callback(cb)], self._metrics_state,
                       strategy=self._strategy)
        history: list[dict[str, float]] = []
        try:
            for epoch in self.epochs(drive_keras_callbacks=False):  # Keras' fit drives the callbacks itself
                if self.last_transition is not None:
                    self._log(f"epoch {epoch}: {self.transition_summary}")
                scores = run.epoch(self.network.keras_model, self.optimizer, train, epoch=epoch,
                                   seed=self.shuffle_seed(epoch), skip=self.step_in_epoch, loss=loss, metrics=metrics,
                                   validation_data=validation_data, verbose=verbose, **fit_kwargs)
                history.append(scores)
                self.end_epoch(scores)  # sees model.stop_training (EarlyStopping)
        except Exception as exc:  # noqa: BLE001 - a lost worker: a ClusterError saying what to do
            raise worker_failure(exc, self._cluster) or exc
        return history

    def close(self) -> None:
        """Wait for a background save (raising its error), release the model's lock and the signal handlers."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._store is not None:
                self._store.close()
        finally:
            if self._preempt is not None:
                with contextlib.suppress(Exception):
                    self._preempt.uninstall()

    def __enter__(self) -> TransitionManager:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close()
        failure = worker_failure(exc, self._cluster) if exc is not None else None
        if failure is not None:  # a TF error of the train step whose peer is gone: say what to do
            raise failure from exc

    # ------------------------------------------------------------------------------------------ internals
    def _set_network(self, network: Network, optimizer: keras.optimizers.Optimizer) -> None:
        self._network, self._optimizer = network, optimizer
        network.global_train_step = self._pos.global_step
        if self._keras_callbacks is not None:
            self._keras_callbacks.set_model(network.keras_model)

    def _start(self, drive_keras_callbacks: bool) -> None:
        import keras
        import tensorflow as tf

        self._started = True
        if self.options.get_network is None or self.options.extern_data is not None:  # net dicts: errors now
            # (a get_network without extern_data makes Keras models: calling it more often would renumber their
            # unnamed layers)
            check_schedule(self.network_for_epoch, self.copy_param_mode_for, range(1, self.num_epochs + 1),
                           self.options.extern_data, self.options.behavior_version)
        if drive_keras_callbacks:
            self._keras_callbacks = keras.callbacks.CallbackList(
                [cb for cb in self._callbacks if is_keras_callback(cb)], add_history=False, add_progbar=False)
        # a seeded TF global generator (required under op determinism before it is read; resume overwrites it)
        tf.random.set_global_generator(tf.random.Generator.from_seed(self.seed))
        # the seeds of Python, numpy and TF, on a resume too: TF's global seed is no state a checkpoint can hold,
        # and ops seeded by it (e.g. Dataset.shuffle(seed=...)) must give the order of the uninterrupted run
        keras.utils.set_random_seed(self.seed)
        chief = self._cluster.is_chief  # the other workers write nothing into the model directory (no lock either)
        if not has_checkpoint_files(self.model) and not list_epoch_models(self.model):
            # a fresh start: a file named by the options that is not there is an error before anything (the model's
            # directory, its lock) is created
            check_load_files(decide_loading(self.load_options, "train", {}))
        self._store = CheckpointStore(self.model, keep=self.keep, lock=None if chief else False, cleanup=chief)
        try:
            resume_from = resume_point(self._store, self._cluster, resume=self.options.resume, log=self._log)
            with self._build.scope():  # get_network(epoch) builds its Keras model in the strategy's scope
                if resume_from is not None:
                    start = restore_start(self._store, resume_from, self._build, self.network_for_epoch,
                                          follower=None if chief else self._cluster.where)
                else:
                    start = fresh_start(self.model, self.load_options, self._build, self.network_for_epoch)
            self._apply_start(start)
            self._check_importer_names()
            self._cluster.barrier()  # every worker has read its start before the chief writes (or deletes) again
            self._install_preemption_handler()
        except BaseException:
            self.close()
            raise

    def _apply_start(self, start: StartPoint) -> None:
        self._pos = start.position
        self.load_decision = start.decision
        self._set_network(start.network, start.optimizer)
        if self._keras_callbacks is not None:
            self._keras_callbacks.on_train_begin()  # Keras resets EarlyStopping & co. here: restore after it
        state = start.state
        if state is not None:
            self.lr_control.history = dict(state.learning_rate_history)
            restore_callbacks([*self._callbacks, self._metrics_state], state.callbacks, start.restored_from.prefix,
                              self._log)
            self._stopped = bool(state.extra.get(STOPPED_KEY, False))
            if state.rng is not None:  # last: building the network above draws random numbers
                restore_rng_state(state.rng, start.network.keras_model, strict=False)
            self.resumed_from = self._cluster.last_checkpoint = start.restored_from.prefix
        self._log(start.log_line)

    def _install_preemption_handler(self) -> None:
        mark_training_started()
        if not self.options.handle_preemption:
            return
        self._preempt = PreemptionHandler()
        try:
            self._preempt.install()
        except RuntimeError:  # not the main thread: no signal handlers
            self._preempt = None

    def _begin_epoch(self, epoch: int) -> None:
        self._pos.epoch = epoch
        self.last_transition = None
        if not self._pos.resumed_into_epoch:
            self._rebuild_for(epoch)
        set_learning_rate(self._optimizer, self.lr_control.learning_rate_for_epoch(epoch))
        if self._keras_callbacks is not None:
            self._keras_callbacks.on_epoch_begin(epoch - 1)
        self._epoch_open = True

    def _check_importer_names(self) -> None:
        """Every `custom_param_importers` name is a layer of the start network, of epoch 1's or (net dicts) of the
        final net dict: a typo fails before training starts."""
        importers = self.options.custom_param_importers
        if not importers:
            return
        networks = [list(self.network.layers), layer_names(self.network_for_epoch(1))]
        if isinstance(self.options.network, Mapping):
            networks.append(layer_names(self.options.network))
        check_importer_names(importers, networks, f"the network of epoch 1 or epoch {max(self._pos.epoch, 1)}")

    def _rebuild_for(self, epoch: int) -> None:
        """The transition into `epoch` when its network differs from the current one."""
        with self._build.scope():  # a Keras model of get_network(epoch) is built in the strategy's scope too
            new = self.network_for_epoch(epoch)
            if not needs_transition(self.network, new):
                return
            result = transition_network(
                self.network, new, extern_data=self.options.extern_data, epoch=epoch,
                copy_param_mode=self.copy_param_mode_for(epoch, new),
                init_new_network_callback=self.init_new_network_callback, optimizer=self._optimizer,
                custom_param_importers=importers_for(self.options.custom_param_importers, new),
                **growth_options(self.options, epoch),
            )
        self._build.check(result.network, epoch)
        optimizer = result.optimizer if result.optimizer is not None else self._build.optimizer(result.network)
        self._network = self._optimizer = None
        self._set_network(result.network, optimizer)
        self.last_transition = result

    def _save(self, *, epoch_finished: bool, scores: Mapping[str, float] | None = None, wait: bool = False) -> str:
        """Save a checkpoint: the values are copied to host memory now and written by the store's background
        writer (its error surfaces at the next save or at close); `wait` writes it before returning. In a
        multi-worker job every worker reads the values (a sync-on-read variable, e.g. a Keras metric's, is read by
        a collective), the chief writes them at once, and the others wait until it is committed."""
        assert self._store is not None
        pos, cluster = self._pos, self._cluster
        state = training_state(
            pos.epoch, epoch_finished, pos.global_step, pos.step_in_epoch, network=self.network,
            pretrain=self.pretrain, lr_history=self.lr_control.history,
            callbacks=[*self._callbacks, self._metrics_state],
            shuffle_seed=self.shuffle_seed(pos.epoch), stopped=self._stopped)
        params, slots = self.network.param_variables(), optimizer_arrays(self._optimizer, self.network)
        prefix = checkpoint_prefix(self.model, pos.epoch, state.step_in_epoch, epoch_finished=epoch_finished)
        args = (pos.epoch, state.step_in_epoch)
        kwargs = dict(epoch_finished=epoch_finished, scores=scores if epoch_finished else None,
                      global_step=pos.global_step, state=state, overwrite=True)
        if not cluster.multi_worker:
            (self._store.save if wait else self._store.save_async)(*args, params, slots, **kwargs)
            return prefix
        params, slots, error = cluster.read(params), cluster.read(slots), None
        if cluster.is_chief:
            try:
                self._store.save(*args, params, slots, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the other workers learn of it at the barrier
                error = exc
        if not cluster.barrier(error is None):
            if error is not None:
                raise error
            raise TransitionError(f"{cluster.where}: the chief (worker 0) failed to save checkpoint {prefix} (its "
                                  "log says why); this worker stops too")
        cluster.last_checkpoint = prefix
        return prefix


def _pretrain_of(opts: ManagerOptions) -> Pretrain | None:
    if opts.pretrain is None or isinstance(opts.pretrain, Pretrain):
        return opts.pretrain
    return pretrain_from_config(opts.pretrain, opts.network)


def _lr_control_of(opts: ManagerOptions, factory: Callable[[], Any], pretrain: Pretrain | None) -> LearningRateControl:
    """The given learning-rate control (knowing the pretrain epochs), else a constant one at the optimizer's rate."""
    num_pretrain = pretrain.get_train_num_epochs() if pretrain is not None else 0
    control = opts.learning_rate_control
    if control is None:
        return LearningRateControl(learning_rate_of(factory()), num_pretrain_epochs=num_pretrain)
    if num_pretrain and not control.num_pretrain_epochs:
        control.num_pretrain_epochs = num_pretrain
    return control
