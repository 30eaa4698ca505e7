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
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from transition._callback_state import collect_callback_states, restore_callback_states
from transition._config import Config, load_config
from transition._errors import CheckpointError, ConfigError, TransitionError, did_you_mean
from transition._importing import ParamStatus
from transition._keep import KeepPolicy
from transition._load_options import LoadDecision, decide_and_load, decide_loading
from transition._lr_control import LearningRateControl
from transition._netdict import diff_net_dicts
from transition._preempt import PREEMPTED_EXIT_CODE, PreemptionHandler
from transition._pretrain import Pretrain, pretrain_from_config
from transition._rng import capture_rng_state, restore_rng_state
from transition._slots import optimizer_slot_lists
from transition._state import TrainingState
from transition._store import CheckpointStore

__all__ = ["TransitionManager", "optimizer_factory", "transition_summary"]

_EXTRA_STOPPED = "transition.stopped"


def optimizer_factory(value: Any) -> Callable[[], Any]:
    """A function creating the optimizer: `value` itself if callable, else from a config dict
    {"class": "adam", **options} (the Keras optimizer class, by name in any case)."""
    if callable(value):
        return value
    if not isinstance(value, Mapping) or not isinstance(value.get("class"), str):
        raise ConfigError(f'optimizer must be a function or a dict like {{"class": "adam"}}, got {value!r}')
    import keras

    opts = dict(value)
    name = opts.pop("class")
    if "learning_rate" in opts or "lr" in opts:
        raise ConfigError(
            f"optimizer {value!r}: set the learning rate with the top-level option 'learning_rate' "
            "(the learning-rate control owns it), not in the optimizer dict"
        )
    classes = {}
    for attr in dir(keras.optimizers):
        cls = getattr(keras.optimizers, attr)
        base = keras.optimizers.Optimizer
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base:
            classes[attr.lower()] = cls
    key = name.lower().replace("_", "")
    if key not in classes:
        raise ConfigError(f"optimizer class {name!r} is not a Keras optimizer{did_you_mean(key, classes)}; "
                          f"known: {', '.join(sorted(classes))}")
    cls = classes[key]

    def make() -> Any:
        try:
            return cls(**opts)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"optimizer {value!r}: {exc}") from None

    make()  # fail early on a bad option
    return make


def transition_summary(result: Any) -> str:
    """One line on what a transition did: layers added / removed / changed and param counts by outcome."""
    parts = []
    diff = getattr(result, "diff", None)
    if diff is not None:
        if diff.added:
            parts.append("+" + ",+".join(diff.added))
        if diff.removed:
            parts.append("-" + ",-".join(diff.removed))
        if diff.changed:
            parts.append("~" + ",~".join(diff.changed))
    counts: dict[str, int] = {}
    for rec in result.report.records:
        counts[rec.status.value] = counts.get(rec.status.value, 0) + 1
    hooks = sorted({r.layer for r in result.report.by_status(ParamStatus.CUSTOM)})
    text = "transition " + " ".join(parts) if parts else "transition"
    if counts:
        text += " (params: " + ", ".join(f"{n} {status}" for status, n in counts.items())
        if hooks:
            text += "; custom importer in " + ",".join(hooks)
        text += ")"
    return text


def _jsonable_net_dict(value: Any) -> Any:
    """The net dict for the TrainingState: functions and other objects become {"$object": "<qualified name>"}."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable_net_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable_net_dict(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__ == "numpy":
        return _jsonable_net_dict(tolist())
    name = getattr(value, "__qualname__", None) or type(value).__qualname__
    return {"$object": f"{getattr(value, '__module__', '?')}.{name}"}


def _is_keras_callback(cb: Any) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover
        return False
    return isinstance(cb, keras.callbacks.Callback)


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
        optimizer: Callable[[], Any] | Mapping[str, Any],
        num_epochs: int,
        pretrain: Pretrain | str | Mapping[str, Any] | None = None,
        get_network: Callable[..., Mapping[str, Any]] | None = None,
        callbacks: Sequence[Any] = (),
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
        strategy: Any = None,
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
        self._callbacks: list[Any] = list(callbacks)
        num_pretrain = pretrain.get_train_num_epochs() if pretrain is not None else 0
        if learning_rate_control is None:
            learning_rate_control = LearningRateControl(
                float(_lr_value(self._optimizer_factory())), num_pretrain_epochs=num_pretrain
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

        self._network: Any = None
        self._optimizer: Any = None
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
        self.last_transition: Any = None
        self.load_decision: LoadDecision | None = None
        self.resumed_from: str | None = None

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_config(
        cls,
        source: str | Mapping[str, Any] | Config,
        overrides: Mapping[str, Any] | Sequence[str] | None = None,
        *,
        callbacks: Sequence[Any] = (),
        resume: bool = True,
        strategy: Any = None,
        log: Callable[[str], None] | None = None,
    ) -> TransitionManager:
        """Build from a RETURNN-style config file (or dict); see `transition._config.KNOWN_KEYS`."""
        cfg = load_config(source, overrides)
        if cfg["task"] != "train":
            raise ConfigError(f"{cfg.where()}: task={cfg['task']!r}; the manager trains (task='train')")
        cfg.require("model", "extern_data", "num_epochs")
        if not cfg.is_set("network") and not cfg.is_set("get_network"):
            raise ConfigError(f"{cfg.where()}: set 'network' (a net dict) or 'get_network' (a function of the epoch)")
        pretrain = None
        if cfg.is_set("pretrain"):
            if not cfg.is_set("network"):
                raise ConfigError(f"{cfg.where()}: 'pretrain' needs 'network' (the final net dict)")
            pretrain = pretrain_from_config(
                cfg["pretrain"], cfg["network"],
                pretrain_repetitions=cfg["pretrain_repetitions"],
                pretrain_construction_algo=cfg["pretrain_construction_algo"],
                pretrain_copy_output_layer=cfg["pretrain_copy_output_layer"],
                pretrain_greedy=cfg["pretrain_greedy"],
            )
        num_pretrain = pretrain.get_train_num_epochs() if pretrain is not None else 0
        lr_control = LearningRateControl.from_config(cfg, num_pretrain_epochs=num_pretrain)
        keep_kwargs: dict[str, Any] = {}
        if cfg.is_set("keep_last_n"):
            keep_kwargs["keep_last"] = cfg["keep_last_n"]
        if cfg.is_set("keep_best_n"):
            keep_kwargs["keep_best"] = cfg["keep_best_n"]
            keep_kwargs["score"] = cfg["keep_best_score"] or cfg["learning_rate_control_error_measure"] or "dev_score"
            keep_kwargs["mode"] = cfg["keep_best_mode"]
        if cfg.is_set("keep_every_n_epochs"):
            keep_kwargs["keep_every"] = cfg["keep_every_n_epochs"]
        if cfg["deterministic"]:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        mgr = cls(
            model=str(cfg["model"]),
            network=cfg["network"],
            get_network=cfg["get_network"],
            pretrain=pretrain,
            extern_data=cfg["extern_data"],
            optimizer=cfg["optimizer"] if cfg.is_set("optimizer") else {"class": "adam"},
            num_epochs=cfg["num_epochs"],
            callbacks=list(cfg["callbacks"]) + list(callbacks),
            learning_rate_control=lr_control,
            load=cfg["load"],
            load_epoch=cfg["load_epoch"],
            import_model_train_epoch1=cfg["import_model_train_epoch1"],
            allow_random_model_init=cfg["allow_random_model_init"],
            load_ignore_missing_vars=cfg["load_ignore_missing_vars"],
            preload_from_files=cfg["preload_from_files"],
            keep=KeepPolicy(**keep_kwargs),
            save_every_n_steps=cfg["save_every_n_steps"],
            seed=cfg["random_seed"],
            init_new_network_callback=cfg["init_new_network_callback"],
            strategy=strategy,
            resume=resume,
            log=log,
        )
        mgr.config = cfg
        return mgr

    def register_callback(self, callback: Any) -> None:
        """Add a callback (its state is saved with the checkpoints); before `epochs()` starts."""
        if self._started:
            raise TransitionError("register callbacks before iterating mgr.epochs()")
        self._callbacks.append(callback)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def network(self) -> Any:
        """The Network of the current epoch (rebuilt at transitions: fetch it again each epoch)."""
        return self._network

    @property
    def optimizer(self) -> Any:
        """The optimizer of the current network (recreated, slots carried, at transitions)."""
        return self._optimizer

    @property
    def epoch(self) -> int:
        """The current (or last) epoch, 1-based; 0 before the first."""
        return self._epoch

    @property
    def global_step(self) -> int:
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
    def stopped(self) -> bool:
        """True when a callback stopped the training (Keras' model.stop_training)."""
        return self._stopped

    @property
    def transition_summary(self) -> str | None:
        """What the transition at the start of the current epoch did, in one line (None: no transition)."""
        return transition_summary(self.last_transition) if self.last_transition is not None else None

    def shuffle_seed(self, epoch: int | None = None) -> int:
        """The data-shuffle seed of `epoch` (default: the current one), derived from the job's seed."""
        from transition._train_loop import epoch_seed

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

    def _copy_mode_for(self, epoch: int) -> str | None:
        if self.pretrain is not None:
            return self.pretrain.get_copy_param_mode_for_epoch(epoch)
        return None

    def _pretrain_step(self, epoch: int) -> int | None:
        if self.pretrain is None or not self.pretrain.is_pretrain_epoch(epoch):
            return None
        total = 0
        for idx, reps in enumerate(self.pretrain.repetitions):
            total += reps
            if epoch <= total:
                return idx
        return None

    # ------------------------------------------------------------------------------------------ the loop
    def epochs(self) -> Iterator[int]:
        """Yield the epochs to train, starting where the model's checkpoints (or the loading options) say."""
        if self._started:
            raise TransitionError("mgr.epochs() can be iterated once; create a new TransitionManager to run again")
        self._start()
        try:
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

    def batches(self, data: Iterable[Any]) -> Iterator[Any]:
        """Iterate `data` within the current epoch, counting steps: a step is done when the next batch is asked for.

        In a resumed epoch the batches trained before the restart are skipped (tf.data: `skip`). After each step:
        a preemption signal saves a checkpoint and exits with PREEMPTED_EXIT_CODE; `save_every_n_steps` saves.
        """
        if not self._epoch_open:
            raise TransitionError("mgr.batches() is for use inside an epoch of mgr.epochs() (before end_epoch)")
        skip = self._step_in_epoch
        iterator: Iterator[Any]
        if skip and _is_tf_dataset(data):
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
            cb.on_epoch_end(epoch - 1, logs=_keras_logs(scores))
        if model is not None and getattr(model, "stop_training", False):
            self._stopped = True
        self._save(epoch_finished=True, scores=scores)
        self._epoch_open = False
        self._resumed_into_epoch = False
        self._step_in_epoch = 0
        self._next_epoch = epoch + 1

    def fit(
        self,
        train: Any,
        *,
        loss: Any,
        validation_data: Any = None,
        metrics: Any = None,
        callbacks: Sequence[Any] = (),
        verbose: Any = 0,
        **fit_kwargs: Any,
    ) -> list[dict[str, float]]:
        """Train with Keras' `Model.fit`, one fit call per epoch (`initial_epoch` set), through `epochs()`.

        `train`: a tf.data.Dataset of (x, y), or a function (called with `epoch` / `seed` where it accepts them)
        returning one per epoch; in a resumed epoch the batches already trained are skipped. `callbacks` (Keras)
        are passed to every fit call and their state (EarlyStopping's wait / best, ...) is saved with the
        checkpoints; so are the manager's own callbacks. The network's Keras model is compiled with the manager's
        optimizer and `loss` after every rebuild. Returns the scores of each epoch trained by this call.
        """
        import keras

        from transition._train_loop import data_for_epoch

        for cb in callbacks:
            self.register_callback(cb)
        self._fit_mode = True
        keras_cbs = [cb for cb in self._callbacks if _is_keras_callback(cb)]
        history: list[dict[str, float]] = []
        compiled = None

        class _Steps(keras.callbacks.Callback):
            def on_train_batch_end(inner, batch: int, logs: Any = None) -> None:  # noqa: N805
                self.step_done()

        steps = _Steps()
        for epoch in self.epochs():
            model = self._network.keras_model
            if compiled is not model:
                model.compile(optimizer=self._optimizer, loss=loss, metrics=metrics)
                compiled = model
            data = train
            if callable(train):
                data = data_for_epoch("train", train, epoch=epoch, seed=self.shuffle_seed(epoch))
            if self._step_in_epoch:
                if not _is_tf_dataset(data):
                    raise ConfigError("mgr.fit resumes mid-epoch only with a tf.data.Dataset (it skips the trained "
                                      "batches); give one, or save at epoch ends only")
                data = data.skip(self._step_in_epoch)
            # Keras resets EarlyStopping & co. in on_train_begin of every fit call: re-apply their state after it
            restore_callback_states(keras_cbs, collect_callback_states(keras_cbs), strict=False)
            kwargs = dict(fit_kwargs)
            if _is_tf_dataset(data):
                kwargs.setdefault("shuffle", False)  # a Dataset brings its own (per-epoch) order
            result = model.fit(data, initial_epoch=epoch - 1, epochs=epoch, validation_data=validation_data,
                               callbacks=[steps, *keras_cbs], verbose=verbose, **kwargs)
            logs = {k: float(v[-1]) for k, v in result.history.items() if v}
            scores = _scores_from_keras_logs(logs)
            if getattr(model, "stop_training", False):
                self._stopped = True
            history.append(scores)
            self.end_epoch(scores)
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

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ internals
    def _scope(self) -> Any:
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def _driven_callbacks(self) -> list[Any]:
        if self._fit_mode:
            return []
        return [cb for cb in self._callbacks if _is_keras_callback(cb)]

    def _build_network(self, net_dict: Mapping[str, Any], initial_values: Any = None) -> Any:
        from transition._network import Network

        with self._scope():
            return Network.from_dict(dict(net_dict), dict(self.extern_data), initial_values=initial_values)

    def _new_optimizer(self, network: Any) -> Any:
        with self._scope():
            opt = self._optimizer_factory()
            opt.build(list(network.trainable_variables))
        return opt

    def _set_network(self, network: Any, optimizer: Any) -> None:
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
        from transition._epoch_files import list_epoch_models

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

    def _restore(self, info: Any) -> None:
        assert self._store is not None
        restored = self._store.restore(info)
        state = TrainingState.from_json_and_arrays(restored.state_json, restored.state_arrays,
                                                   source=f"{info.prefix}.state.json")
        epoch = state.epoch
        if epoch < 1:
            raise CheckpointError(f"{info.prefix}: the training state has epoch {epoch}; expected >= 1")
        net_dict = self.net_dict_for_epoch(epoch)
        values: dict[str, dict[str, Any]] = {}
        for name, arr in restored.params.items():
            layer, _, param = name.partition("/")
            values.setdefault(layer, {})[param] = arr
        network = self._build_network(net_dict, initial_values=values)
        _assign_remaining(network, restored.params, info.prefix)
        optimizer = self._new_optimizer(network)
        _restore_optimizer(optimizer, network, restored.optimizer, info.prefix)
        self.lr_control.history = dict(state.learning_rate_history)
        self._global_step = state.global_step
        self._set_network(network, optimizer)
        for cb in self._driven_callbacks():
            cb.on_train_begin()
        restored = restore_callback_states(self._callbacks, state.callbacks, strict=False)
        for key in state.callbacks:
            if key not in restored:
                raise ConfigError(
                    f"checkpoint {info.prefix} has the state of callback {key!r}, but no callback with that state_key "
                    f"was given{did_you_mean(key, [k for k in collect_callback_states(self._callbacks)])}; add it "
                    "(its state would be lost), or start a new model path"
                )
        fresh = [k for k in collect_callback_states(self._callbacks) if k not in state.callbacks]
        if fresh:
            self._log(f"callbacks without a saved state start fresh: {', '.join(fresh)}")
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
                from transition._transition import transition_network

                with self._scope():
                    result = transition_network(
                        self._network, net_dict, extern_data=self.extern_data, epoch=epoch,
                        copy_param_mode=self._copy_mode_for(epoch),
                        init_new_network_callback=self.init_new_network_callback, optimizer=self._optimizer,
                    )
                optimizer = result.optimizer if result.optimizer is not None else self._new_optimizer(result.network)
                self._network = None
                self._optimizer = None
                self._set_network(result.network, optimizer)
                self.last_transition = result
        lr = self.lr_control.learning_rate_for_epoch(epoch)
        _set_lr(self._optimizer, lr)
        for cb in self._driven_callbacks():
            cb.on_epoch_begin(epoch - 1)
        self._epoch_open = True

    def _save(self, *, epoch_finished: bool, scores: Mapping[str, float] | None = None, wait: bool = False) -> str:
        """Save a checkpoint: the values are copied to host memory now and written by the store's background
        writer (its error surfaces at the next save or at close); `wait` writes it before returning."""
        assert self._store is not None
        network = self._network
        params = {name: var for name, var in network.param_variables().items()}
        opt_vars = _optimizer_arrays(self._optimizer, network)
        extra = {_EXTRA_STOPPED: True} if self._stopped else {}
        state = TrainingState(
            epoch=self._epoch,
            epoch_finished=epoch_finished,
            global_step=self._global_step,
            step_in_epoch=0 if epoch_finished else self._step_in_epoch,
            pretrain_step=self._pretrain_step(self._epoch),
            net_dict=_jsonable_net_dict(network.net_dict) if network.net_dict is not None else None,
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
        from transition._store import checkpoint_prefix

        return checkpoint_prefix(self.model, self._epoch, state.step_in_epoch, epoch_finished=epoch_finished)


# ---------------------------------------------------------------------------------------------- helpers


def _is_tf_dataset(data: Any) -> bool:
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, tf.data.Dataset)


def _keras_logs(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores with Keras' names added: train_score -> loss, dev_score -> val_loss, dev_X -> val_X."""
    logs = dict(scores)
    for key, value in scores.items():
        if key == "train_score":
            logs.setdefault("loss", value)
        elif key == "dev_score":
            logs.setdefault("val_loss", value)
        elif key.startswith("dev_"):
            logs.setdefault("val_" + key[4:], value)
    return logs


def _scores_from_keras_logs(logs: Mapping[str, float]) -> dict[str, float]:
    """Keras' logs with our names: loss -> train_score, val_loss -> dev_score, val_X -> dev_X, X -> train_X."""
    scores = {}
    for key, value in logs.items():
        if key == "loss":
            scores["train_score"] = value
        elif key == "val_loss":
            scores["dev_score"] = value
        elif key.startswith("val_"):
            scores["dev_" + key[4:]] = value
        elif key != "learning_rate":
            scores["train_" + key] = value
    return scores


def _lr_value(optimizer: Any) -> float:
    lr = optimizer.learning_rate
    return float(lr.numpy()) if hasattr(lr, "numpy") else float(lr)


def _set_lr(optimizer: Any, lr: float) -> None:
    var = getattr(optimizer, "_learning_rate", None)
    if var is not None and hasattr(var, "assign"):
        var.assign(lr)
    else:
        optimizer.learning_rate = lr


def _optimizer_arrays(optimizer: Any, network: Any) -> dict[str, Any]:
    """{"iterations": ..., "{slot}/{layer}/{param}": ...} of a built optimizer (names under "optimizer/")."""
    names = {id(v): name for name, v in network.param_variables().items()}
    out: dict[str, Any] = {"iterations": optimizer.iterations}
    trainable = list(getattr(optimizer, "_trainable_variables", []) or [])
    for slot, items in optimizer_slot_lists(optimizer).items():
        for var, slot_var in zip(trainable, items):
            if slot_var is not None and id(var) in names:
                out[f"{slot}/{names[id(var)]}"] = slot_var
    return out


def _restore_optimizer(optimizer: Any, network: Any, arrays: Mapping[str, Any], prefix: str) -> None:
    names = {id(v): name for name, v in network.param_variables().items()}
    if "iterations" not in arrays:
        raise CheckpointError(f"checkpoint {prefix} has no optimizer/iterations; it was not written by the manager")
    optimizer.iterations.assign(arrays["iterations"])
    trainable = list(getattr(optimizer, "_trainable_variables", []) or [])
    for slot, items in optimizer_slot_lists(optimizer).items():
        for var, slot_var in zip(trainable, items):
            if slot_var is None or id(var) not in names:
                continue
            key = f"{slot}/{names[id(var)]}"
            if key not in arrays:
                raise CheckpointError(f"checkpoint {prefix} has no optimizer/{key}{did_you_mean(key, arrays)}; "
                                      "was it written with another optimizer?")
            value = arrays[key]
            if tuple(value.shape) != tuple(slot_var.shape):
                raise CheckpointError(f"checkpoint {prefix}: optimizer/{key} has shape {tuple(value.shape)}, the "
                                      f"optimizer needs {tuple(slot_var.shape)}")
            slot_var.assign(value)


def _assign_remaining(network: Any, params: Mapping[str, Any], prefix: str) -> None:
    """Assign the params that were not created from the checkpoint's values; every param must be there."""
    done = {f"{layer}/{param}" for layer, param in getattr(network, "initialized_from_values", ())}
    variables = network.param_variables()
    missing = [name for name in variables if name not in params]
    if missing:
        raise CheckpointError(f"checkpoint {prefix} lacks params {missing[:5]} of the network of its epoch; the "
                              "config's network changed since it was written? Use the same network, or load params "
                              "with 'load' / 'preload_from_files' into a new model path")
    unknown = [name for name in params if name not in variables]
    if unknown:
        raise CheckpointError(f"checkpoint {prefix} has params {unknown[:5]} that the network of its epoch lacks; "
                              "the config's network changed since it was written?")
    for name, var in variables.items():
        if name in done:
            continue
        value = params[name]
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointError(f"checkpoint {prefix}: param {name} has shape {tuple(value.shape)}, the network "
                                  f"needs {tuple(var.shape)}; the config's network changed since it was written?")
        var.assign(value)
