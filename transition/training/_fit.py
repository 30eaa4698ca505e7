"""Keras `Model.fit` under the epoch manager (`TransitionManager.fit`): one fit call per epoch with `initial_epoch`
set, and the mapping between Keras' log names and ours (loss <-> train_score, val_loss <-> dev_score,
val_X <-> dev_X)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from transition.errors import ConfigError
from transition.internal._keras_private import build_compiled_metrics, multi_worker_fit, replace_train_function
from transition.store._callback_state import (
    collect_callback_states,
    restore_callback_states,
)
from transition.training._data import data_for_epoch, is_tf_dataset
from transition.training._dist_data import shard_by_data
from transition.training._keras_state import KerasMetricsState

__all__ = ["KerasFit", "keras_logs", "scores_from_keras_logs", "is_keras_callback", "is_tf_dataset"]


def is_keras_callback(cb: object) -> bool:
    """Whether `cb` is a `keras.callbacks.Callback`."""
    try:
        import keras
    except ImportError:  # pragma: no cover
        return False
    return isinstance(cb, keras.callbacks.Callback)


def keras_logs(scores: Mapping[str, float]) -> dict[str, float]:
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


def scores_from_keras_logs(logs: Mapping[str, float]) -> dict[str, float]:
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


def _keras_callback_classes() -> tuple[type, type]:
    import keras

    class StepCounter(keras.callbacks.Callback):
        """Counts each trained batch as a manager step (saves / preemption happen there)."""

        def __init__(self, step_done: Callable[[], None]):
            super().__init__()
            self._step_done = step_done
            self.skip_next = False  # the next batch is one drawn again without training (see `_redraw_last`)

        def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
            if self.skip_next:
                self.skip_next = False
                return
            self._step_done()

    class ReapplyStates(keras.callbacks.Callback):
        """Given after the user's callbacks to `fit`: after Keras' `on_train_begin` reset EarlyStopping & co., gives
        the callbacks back the states they had before the fit call; in a resumed epoch, after Keras' reset of the
        metrics at the epoch start, gives them their sums of the batches before the restart."""

        def __init__(self, callbacks: Sequence[object], metrics: KerasMetricsState | None, data_spec: Any = None):
            super().__init__()
            self._callbacks = list(callbacks)
            self._states = collect_callback_states(self._callbacks)
            self._metrics, self._data_spec = metrics, data_spec

        def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
            restore_callback_states(self._callbacks, self._states, strict=False)

        def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            if self._metrics is not None:
                build_compiled_metrics(self.model, self._data_spec)  # Keras would build them in the first step
                self._metrics.apply(self.model)

    return StepCounter, ReapplyStates


def _skipped(data: Any, skip: int) -> tuple[Any, bool]:
    """`data` without the `skip` batches trained before a restart, and whether nothing is left of it: then the
    last trained batch instead (Keras' fit takes a dataset of cardinality 0 for one of unknown length and runs a
    step on it, whose stateful ops without an input, the optimizer's step counter and the dropout seeds, advance)."""
    import tensorflow as tf

    rest = data.skip(skip)
    size = int(rest.cardinality())
    if size == tf.data.UNKNOWN_CARDINALITY:  # look: a fresh pipeline, drawn to one batch past the skipped ones
        size = len(list(rest.take(1)))
    return (data.skip(skip - 1), True) if size == 0 else (rest, False)


def _redraw_last(model: Any, train_function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The train function of the step that draws the epoch's last batch again: no training; its logs are the
    metrics' restored sums (what the interrupted fit had after that batch); then Keras' own function again."""

    def step(iterator: Any) -> Any:
        next(iterator)
        model.train_function = train_function
        return model.get_metrics_result()

    return step


class KerasFit:
    """The fit calls of one `TransitionManager.fit`: compiles the model after each rebuild, skips the batches
    trained before a mid-epoch restart (and gives the metrics their sums of those), counts steps (after the other
    callbacks, so that a save holds their state after the step), keeps the Keras callbacks' states across fit
    calls."""

    def __init__(self, step_done: Callable[[], None], keras_callbacks: Sequence[object],
                 metrics_state: KerasMetricsState, strategy: Any = None):
        step_counter, self._reapply = _keras_callback_classes()
        self._strategy = strategy  # compile in its scope; a Dataset keeps the single-worker order (DATA sharding)
        self._steps = step_counter(step_done)
        self._callbacks = list(keras_callbacks)
        self._metrics = metrics_state
        self._compiled: Any = None

    def epoch(self, model: Any, optimizer: Any, train: Any, *, epoch: int, seed: int, skip: int, loss: Any,
              metrics: Any, validation_data: Any, verbose: int | str, **fit_kwargs: Any) -> dict[str, float]:
        """Train `epoch` with one `model.fit` call; returns its scores (our names)."""
        if self._compiled is not model:  # a new network after a transition (or the first)
            with self._strategy.scope() if self._strategy is not None else contextlib.nullcontext():
                model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
            self._compiled = model
        data = data_for_epoch("train", train, epoch=epoch, seed=seed) if callable(train) else train
        self._metrics.model = model
        if skip:
            if not is_tf_dataset(data):
                raise ConfigError("mgr.fit resumes mid-epoch only with a tf.data.Dataset (it skips the trained "
                                  "batches); give one, or save at epoch ends only")
            data, redraw = _skipped(data, skip)
            if redraw:  # the restart came after the epoch's last batch: draw that one again, without training
                replace_train_function(model, lambda train_function: _redraw_last(model, train_function))
                self._steps.skip_next = True
        else:
            self._metrics.discard()  # an epoch from its start: Keras' reset of the metrics is right
        kwargs = dict(fit_kwargs)
        if is_tf_dataset(data):
            kwargs.setdefault("shuffle", False)  # a Dataset brings its own (per-epoch) order
            if self._strategy is not None:
                data = shard_by_data(data)
        reapply = self._reapply(self._callbacks, self._metrics if skip else None, data.element_spec if skip else None)
        callbacks = [*self._callbacks, reapply, self._steps]
        with multi_worker_fit(model, self._strategy, data.element_spec) if is_tf_dataset(
                data) else contextlib.nullcontext():
            result = model.fit(data, initial_epoch=epoch - 1, epochs=epoch, validation_data=validation_data,
                               callbacks=callbacks, verbose=verbose, **kwargs)
        return scores_from_keras_logs({k: float(v[-1]) for k, v in result.history.items() if v})
