"""`TransitionManager`: drives the epochs of any training loop, with transitions, loading, checkpoints and resume.

```python
mgr = TransitionManager(model="runs/exp/network", network=net_dict, pretrain="default", extern_data=...,
                        optimizer=lambda: keras.optimizers.Adam(1e-3), num_epochs=20)
with mgr:
    for epoch in mgr.epochs():           # on restart: the right epoch, the right network, all state restored
        for batch in mgr.batches(data):  # in a resumed epoch it skips what was trained; honours preemption
            ...                          # a step on mgr.network / mgr.optimizer
        mgr.end_epoch(scores={"dev_score": ...})
```
The checkpoint at an epoch end (and mid-epoch ones) holds the params, the optimizer's slots and iteration count,
and a TrainingState with the learning-rate history, the RNG states, the callbacks' states and the position. Unlike
RETURNN, the optimizer is neither reset at a rebuild nor at a resume.
Helpers: `_manager_config` (config -> arguments), `_optimizer_state` (optimizer and param arrays), `_manager_state`
(TrainingState parts), `_fit` (Keras Model.fit), `_epoch_log` (log lines).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from transition.store._callback_state import collect_callback_states
from transition.training._config import Config, load_config
from transition.training._log import transition_summary
from transition.errors import CheckpointError, ConfigError, TransitionError
from transition.training._fit import fit_epochs, is_keras_callback, is_tf_dataset, keras_logs
from transition.store._keep import KeepPolicy
from transition.checkpoint._load_options import LoadDecision, decide_and_load, decide_loading
from transition.training._lr_control import LearningRateControl
from transition.training._manager_config import manager_kwargs_from_config
from transition.training._manager_state import jsonable_net_dict, params_by_layer, pretrain_step, restore_callbacks
from transition.netdict._netdict import diff_net_dicts
from transition.training._optimizer_state import (
    OptimizerFactory,
    assign_checkpoint_params,
    learning_rate_of,
    optimizer_arrays,
    optimizer_factory,
    restore_optimizer,
    set_learning_rate,
)
from transition.training._preempt import PREEMPTED_EXIT_CODE, PreemptionHandler
from transition.netdict._pretrain import Pretrain, pretrain_from_config
from transition.store._rng import capture_rng_state, restore_rng_state
from transition.store._state import TrainingState
from transition.store._info import CheckpointInfo
from transition.store._store import CheckpointStore

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

    from transition.network._network import Network
    from transition.network._transition import TransitionResult

__all__ = ["TransitionManager", "optimizer_factory", "transition_summary"]  # the latter two: re-exported

_EXTRA_STOPPED = "transition.stopped"
T = TypeVar("T")


class TransitionManager:
    """Drives the epochs of a training job: rebuilds, loading, learning rate, callbacks' state and checkpoints.

    `network`: the net dict (the final one with `pretrain`); `get_network(epoch)` instead gives one per epoch.
    `pretrain`: a `Pretrain`, or a config value ("default", a dict of options). `optimizer`: a function returning a
    Keras optimizer (or a dict {"class": "adam", ...}). `callbacks`: objects with state_dict / load_state_dict
    (Keras EarlyStopping / ModelCheckpoint / ReduceLROnPlateau are adapted); Keras callbacks are also driven
    (set_model, on_epoch_end with the scores; `model.stop_training` ends the run). Loading options as RETURNN's
    (load, load_epoch, import_model_train_epoch1, preload_from_files, ...) apply when the model has no checkpoint
    of its own yet; otherwise the run resumes from the newest good one (`resume=False` refuses instead).
    """

    def __init__(
        self,
        model: str,
        network: Mapping[str, Any] | None = None,
        *,
        extern_data: Mapping[str, Any],
        optimizer: OptimizerFactory | Mapping[str, Any],
        num_epochs: int,
        pretrain: Pretrain | str | Mapping[str, Any] | None = None,
        get_network: Callable[..., Mapping[str, Any]] | None = None,
        callbacks: Sequence[object] = (),
        learning_rate_control: LearningRateControl | None = None,
        load: str | None = None,
        load_epoch: int | None = None,
        import_model_train_epoch1: str | None = None,
        allow_random_model_init: bool = False,
        load_ignore_missing_vars: bool = False,
        preload_from_files: Mapping[str, Any] | None = None,
        keep: KeepPolicy | None = None,
        save_every_n_steps: int | None = None,
        seed: int = 42,
        init_new_network_callback: Callable[..., Any] | None = None,
        strategy: tf.distribute.Strategy | None = None,
        resume: bool = True,
        handle_preemption: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model must be a checkpoint path prefix like 'runs/exp/network', got {model!r}")
        if (network is None) == (get_network is None):
            raise ConfigError("give exactly one of network (a net dict) and get_network (a function of the epoch)")
        if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1:
            raise ConfigError(f"num_epochs must be an int >= 1, got {num_epochs!r}")
        if pretrain is not None and not isinstance(pretrain, Pretrain):
            if network is None:
                raise ConfigError("pretrain needs 'network' (the final net dict), not get_network")
            pretrain = pretrain_from_config(pretrain, network)
        if pretrain is not None and get_network is not None:
            raise ConfigError("give either pretrain or get_network, not both")
        self.model = model
        self.extern_data = dict(extern_data)
        self.num_epochs = num_epochs
        self.pretrain: Pretrain | None = pretrain
        self._net_dict = network
        self._get_network = get_network
        self._optimizer_factory = optimizer_factory(optimizer)
        self._callbacks: list[object] = []
        for cb in callbacks:
            self._add_callback(cb)
        num_pretrain = pretrain.get_train_num_epochs() if pretrain is not None else 0
        if learning_rate_control is None:
            learning_rate_control = LearningRateControl(
                learning_rate_of(self._optimizer_factory()), num_pretrain_epochs=num_pretrain
            )
        elif num_pretrain and not learning_rate_control.num_pretrain_epochs:
            learning_rate_control.num_pretrain_epochs = num_pretrain
        self.lr_control = learning_rate_control
        self.load_options = {
            "model": model,
            "load": load,
            "load_epoch": load_epoch,
            "import_model_train_epoch1": import_model_train_epoch1,
            "allow_random_model_init": allow_random_model_init,
            "load_ignore_missing_vars": load_ignore_missing_vars,
            "preload_from_files": preload_from_files,
        }
        decide_loading(self.load_options, "train", {})  # check the options now (pure)
        self.keep = keep if keep is not None else KeepPolicy()
        if save_every_n_steps is not None and (isinstance(save_every_n_steps, bool) or save_every_n_steps < 1):
            raise ConfigError(f"save_every_n_steps must be an int >= 1 or None, got {save_every_n_steps!r}")
        self.save_every_n_steps = save_every_n_steps
        self.seed = int(seed)
        self.init_new_network_callback = init_new_network_callback
        self.strategy = strategy
        self.resume = resume
        self.handle_preemption = handle_preemption
        self._log = log if log is not None else (lambda s: print(s, flush=True))
        self.config: Config | None = None

        self._network: Network | None = None
        self._optimizer: keras.optimizers.Optimizer | None = None
        self._store: CheckpointStore | None = None
        self._preempt: PreemptionHandler | None = None
        self._started = False
        self._closed = False
        self._epoch = 0
        self._next_epoch = 1
        self._epoch_open = False
        self._global_step = 0
        self._step_in_epoch = 0
        self._resumed_into_epoch = False
        self._stopped = False
        self._fit_mode = False
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
        kwargs = manager_kwargs_from_config(cfg)
        kwargs["callbacks"] += list(callbacks)
        mgr = cls(**kwargs, strategy=strategy, resume=resume, log=log)
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
        if is_keras_callback(inner) and kind in ("ReduceLROnPlateau", "LearningRateScheduler"):
            raise ConfigError(
                f"callback {kind} would fight the learning-rate control, which sets the rate at every epoch start "
                "(and saves it in the checkpoints); remove the callback and use the config option "
                "learning_rate_control = 'newbob' (with newbob_learning_rate_decay, newbob_relative_error_threshold, "
                "learning_rate_control_error_measure) or learning_rates = {epoch: rate}"
            )
        self._callbacks.append(callback)

    # ------------------------------------------------------------------------------------------ properties
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
        return self._epoch

    @property
    def global_step(self) -> int:
        """Training steps done in all epochs (restored on resume; also `network.global_train_step`)."""
        return self._global_step

    @property
    def step_in_epoch(self) -> int:
        """Steps done in the current epoch (after a mid-epoch resume: including those before the restart)."""
        return self._step_in_epoch

    @property
    def learning_rate(self) -> float:
        """The learning rate of the current epoch (before the first epoch: the one it will use)."""
        epoch = max(self._epoch, 1)
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
        from transition.training._loop import epoch_seed

        return epoch_seed(self.seed, self._epoch if epoch is None else epoch)

    def net_dict_for_epoch(self, epoch: int) -> dict[str, Any]:
        """The net dict of `epoch`: the pretrain schedule's, `get_network(epoch)`'s, or `network`."""
        if self.pretrain is not None:
            return self.pretrain.get_network_json_for_epoch(epoch)
        if self._get_network is not None:
            net = self._get_network(epoch=epoch)
            if not isinstance(net, Mapping):
                raise ConfigError(f"get_network(epoch={epoch}) returned a {type(net).__name__}, not a net dict")
            return dict(net)
        return dict(self._net_dict)  # type: ignore[arg-type]

    def copy_param_mode_for(self, epoch: int) -> str | None:
        """The copy_param_mode of the transition into `epoch` (the pretrain schedule's; else the net dict's own)."""
        if self.pretrain is not None:
            return self.pretrain.get_copy_param_mode_for_epoch(epoch)
        return None

    # ------------------------------------------------------------------------------------------ the loop
    def epochs(self) -> Iterator[int]:
        """Yield the epochs to train, starting where the model's checkpoints (or the loading options) say."""
        if self._started:
            raise TransitionError("mgr.epochs() can be iterated once; create a new TransitionManager to run again")
        self._start()
        try:
            if self._next_epoch > self.num_epochs and not self._stopped:
                self._log(f"nothing to train: the model is at epoch {self._epoch} and num_epochs is {self.num_epochs}; "
                          "raise num_epochs (e.g. --num_epochs=N) to train on")
            while self._next_epoch <= self.num_epochs and not self._stopped:
                epoch = self._next_epoch
                self._begin_epoch(epoch)
                yield epoch
                if self._epoch_open:
                    raise TransitionError(f"epoch {epoch} ended without mgr.end_epoch(scores=...); call it at the end "
                                          "of every epoch")
            if self._stopped:
                self._log(f"training stopped by a callback after epoch {self._epoch}")
            for cb in self._driven_callbacks():
                cb.on_train_end()
        finally:
            self.close()

    def batches(self, data: Iterable[T]) -> Iterator[T]:
        """Iterate `data` within the current epoch, counting steps: a step is done when the next batch is asked for.

        In a resumed epoch the batches trained before the restart are skipped (tf.data: `skip`). After each step:
        a preemption signal saves a checkpoint and exits with PREEMPTED_EXIT_CODE; `save_every_n_steps` saves.
        """
        if not self._epoch_open:
            raise TransitionError("mgr.batches() is for use inside an epoch of mgr.epochs() (before end_epoch)")
        skip = self._step_in_epoch
        iterator: Iterator[T]
        if skip and is_tf_dataset(data):
            iterator = iter(data.skip(skip))  # type: ignore[attr-defined]
        else:
            iterator = iter(data)
            for _ in range(skip):
                try:
                    next(iterator)
                except StopIteration:
                    raise TransitionError(
                        f"epoch {self._epoch}: the data has fewer batches than the {skip} trained before the restart; "
                        "the data must be the same (deterministic per epoch) when resuming"
                    ) from None
        for batch in iterator:
            yield batch
            self.step_done()

    def step_done(self) -> None:
        """Count one training step (`batches()` does it for you); saves / exits as `batches()` describes."""
        if not self._epoch_open:
            raise TransitionError("step_done() outside an epoch of mgr.epochs()")
        self._step_in_epoch += 1
        self._global_step += 1
        if self._network is not None and hasattr(self._network, "global_train_step"):
            self._network.global_train_step = self._global_step
        if self._preempt is not None and self._preempt.requested:
            prefix = self._save(epoch_finished=False, wait=True)
            self._log(f"preempted ({self._preempt.signal_name}): saved {prefix} at epoch {self._epoch} step "
                      f"{self._step_in_epoch}; exiting with code {PREEMPTED_EXIT_CODE}")
            self.close()
            raise SystemExit(PREEMPTED_EXIT_CODE)
        if self.save_every_n_steps and self._global_step % self.save_every_n_steps == 0:
            self._save(epoch_finished=False)

    def end_epoch(self, scores: Mapping[str, float] | None = None) -> None:
        """Finish the epoch: record the scores (learning-rate control), run Keras callbacks, save the checkpoint."""
        if not self._epoch_open:
            raise TransitionError("end_epoch() without an open epoch: call it once per epoch of mgr.epochs()")
        epoch = self._epoch
        scores = {k: float(v) for k, v in (scores or {}).items()}
        self.lr_control.set_epoch_scores(epoch, scores)
        model = getattr(self._network, "keras_model", None)
        for cb in self._driven_callbacks():
            cb.on_epoch_end(epoch - 1, logs=keras_logs(scores))
        if model is not None and getattr(model, "stop_training", False):
            self._stopped = True
        self._save(epoch_finished=True, scores=scores)
        self._epoch_open = False
        self._resumed_into_epoch = False
        self._step_in_epoch = 0
        self._next_epoch = epoch + 1
        self._epochs_done_here += 1

    fit = fit_epochs  # Keras Model.fit, one call per epoch (see transition.training._fit.fit_epochs)

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

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ internals
    def _scope(self) -> contextlib.AbstractContextManager[Any]:
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def _driven_callbacks(self) -> list[keras.callbacks.Callback]:
        if self._fit_mode:
            return []
        return [cb for cb in self._callbacks if is_keras_callback(cb)]

    def _build_network(
        self, net_dict: Mapping[str, Any], initial_values: Mapping[str, Mapping[str, np.ndarray]] | None = None
    ) -> Network:
        from transition.network._network import Network

        with self._scope():
            return Network.from_dict(dict(net_dict), dict(self.extern_data), initial_values=initial_values)

    def _new_optimizer(self, network: Network) -> keras.optimizers.Optimizer:
        with self._scope():
            opt = self._optimizer_factory()
            opt.build(list(network.trainable_variables))
        return opt

    def _set_network(self, network: Network, optimizer: keras.optimizers.Optimizer) -> None:
        self._network, self._optimizer = network, optimizer
        if hasattr(network, "global_train_step"):
            network.global_train_step = self._global_step
        for cb in self._driven_callbacks():
            cb.set_model(network.keras_model)

    def _start(self) -> None:
        import keras
        import tensorflow as tf

        self._started = True
        # a seeded TF global generator (required under op determinism before it is read; resume overwrites it)
        tf.random.set_global_generator(tf.random.Generator.from_seed(self.seed))
        self._store = CheckpointStore(self.model, keep=self.keep)
        try:
            # our own (committed) checkpoints: resume; foreign ones (e.g. RETURNN's network.NNN): loading rules
            ours = [info for info in self._store.list() if info.committed]
            latest = self._store.latest_good() if ours else None
            if latest is not None:
                if not self.resume:
                    raise ConfigError(
                        f"model {self.model} already has checkpoints (newest good: {latest.prefix}) and resuming is "
                        "off; resume, or use another model path, or move those files away"
                    )
                self._restore(latest)
            else:
                keras.utils.set_random_seed(self.seed)
                self._fresh_start()
            if self.handle_preemption:
                self._preempt = PreemptionHandler()
                try:
                    self._preempt.install()
                except RuntimeError:  # not the main thread: no signal handlers
                    self._preempt = None
        except BaseException:
            self.close()
            raise

    def _fresh_start(self) -> None:
        from transition.checkpoint._epochs import list_epoch_models

        existing = list_epoch_models(self.model)
        plan = decide_loading(self.load_options, "train", existing)
        net_epoch = plan.start_epoch or 1
        if plan.model_file and not plan.new_training and plan.model_epoch:
            net_epoch = plan.model_epoch  # load into the net the checkpoint was trained with; transition after
        network = self._build_network(self.net_dict_for_epoch(net_epoch))
        decision = decide_and_load(self.load_options, task="train", network=network, existing_epochs=existing)
        self.load_decision = decision
        self._log(f"loading: {decision.log_line}")
        self._global_step = int(decision.global_train_step or 0)
        self._next_epoch = int(decision.start_epoch or 1)
        self._epoch = self._next_epoch - 1
        self._set_network(network, self._new_optimizer(network))
        for cb in self._driven_callbacks():
            cb.on_train_begin()

    def _restore(self, info: CheckpointInfo) -> None:
        assert self._store is not None
        restored = self._store.restore(info)
        state = TrainingState.from_json_and_arrays(restored.state_json, restored.state_arrays,
                                                   source=f"{info.prefix}.state.json")
        epoch = state.epoch
        if epoch < 1:
            raise CheckpointError(f"{info.prefix}: the training state has epoch {epoch}; expected >= 1")
        net_dict = self.net_dict_for_epoch(epoch)
        network = self._build_network(net_dict, initial_values=params_by_layer(restored.params))
        assign_checkpoint_params(network, restored.params, info.prefix)
        optimizer = self._new_optimizer(network)
        restore_optimizer(optimizer, network, restored.optimizer, info.prefix)
        self.lr_control.history = dict(state.learning_rate_history)
        self._global_step = state.global_step
        self._set_network(network, optimizer)
        for cb in self._driven_callbacks():
            cb.on_train_begin()
        restore_callbacks(self._callbacks, state.callbacks, info.prefix, self._log)
        self._stopped = bool(state.extra.get(_EXTRA_STOPPED, False))
        if state.epoch_finished:
            self._epoch, self._next_epoch, self._step_in_epoch = epoch, epoch + 1, 0
            where = f"after epoch {epoch}"
        else:
            self._epoch, self._next_epoch, self._step_in_epoch = epoch, epoch, state.step_in_epoch
            self._resumed_into_epoch = True
            where = f"in epoch {epoch} after step {state.step_in_epoch}"
        if state.rng is not None:  # last: building the network above draws random numbers
            restore_rng_state(state.rng, network.keras_model, strict=False)
        self.resumed_from = info.prefix
        self._log(f"resuming from {info.prefix} ({where}, global step {self._global_step})")

    def _begin_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self.last_transition = None
        if not self._resumed_into_epoch:
            net_dict = self.net_dict_for_epoch(epoch)
            old = self._network.net_dict
            if old is None or not diff_net_dicts(old, net_dict).is_empty:
                from transition.network._transition import transition_network

                with self._scope():
                    result = transition_network(
                        self._network, net_dict, extern_data=self.extern_data, epoch=epoch,
                        copy_param_mode=self.copy_param_mode_for(epoch),
                        init_new_network_callback=self.init_new_network_callback, optimizer=self._optimizer,
                    )
                optimizer = result.optimizer if result.optimizer is not None else self._new_optimizer(result.network)
                self._network = None
                self._optimizer = None
                self._set_network(result.network, optimizer)
                self.last_transition = result
        lr = self.lr_control.learning_rate_for_epoch(epoch)
        set_learning_rate(self._optimizer, lr)
        for cb in self._driven_callbacks():
            cb.on_epoch_begin(epoch - 1)
        self._epoch_open = True

    def _save(self, *, epoch_finished: bool, scores: Mapping[str, float] | None = None, wait: bool = False) -> str:
        """Save a checkpoint: the values are copied to host memory now and written by the store's background
        writer (its error surfaces at the next save or at close); `wait` writes it before returning."""
        assert self._store is not None
        network = self._network
        params = {name: var for name, var in network.param_variables().items()}
        opt_vars = optimizer_arrays(self._optimizer, network)
        extra = {_EXTRA_STOPPED: True} if self._stopped else {}
        state = TrainingState(
            epoch=self._epoch,
            epoch_finished=epoch_finished,
            global_step=self._global_step,
            step_in_epoch=0 if epoch_finished else self._step_in_epoch,
            pretrain_step=pretrain_step(self.pretrain, self._epoch),
            net_dict=jsonable_net_dict(network.net_dict) if network.net_dict is not None else None,
            learning_rate_history=self.lr_control.history,
            rng=capture_rng_state(network.keras_model),
            data_position={"epoch": self._epoch, "batch_index": 0 if epoch_finished else self._step_in_epoch,
                           "shuffle_seed": self.shuffle_seed(self._epoch)},
            callbacks=collect_callback_states(self._callbacks),
            extra=extra,
        )
        save = self._store.save if wait else self._store.save_async
        save(self._epoch, state.step_in_epoch, params, opt_vars, epoch_finished=epoch_finished,
             scores=scores if epoch_finished else None, global_step=self._global_step, state=state, overwrite=True)
        from transition.checkpoint._naming import checkpoint_prefix

        return checkpoint_prefix(self.model, self._epoch, state.step_in_epoch, epoch_finished=epoch_finished)
