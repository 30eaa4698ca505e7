"""Keras `Model.fit` under the epoch manager: one fit call per epoch with `initial_epoch` set, and the mapping between
Keras' log names and ours (loss <-> train_score, val_loss <-> dev_score, val_X <-> dev_X)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from transition.store._callback_state import collect_callback_states, restore_callback_states
from transition.errors import ConfigError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from transition.training._manager import TransitionManager

__all__ = ["fit_epochs", "keras_logs", "scores_from_keras_logs", "is_keras_callback", "is_tf_dataset"]


def is_keras_callback(cb: object) -> bool:
    """Whether `cb` is a `keras.callbacks.Callback`."""
    try:
        import keras
    except ImportError:  # pragma: no cover
        return False
    return isinstance(cb, keras.callbacks.Callback)


def is_tf_dataset(data: object) -> bool:
    """Whether `data` is a `tf.data.Dataset`."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, tf.data.Dataset)


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


def fit_epochs(
    mgr: TransitionManager,
    train: tf.data.Dataset | Callable[..., tf.data.Dataset],
    *,
    loss: Any,
    validation_data: Any = None,
    metrics: Any = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = 0,
    **fit_kwargs: Any,
) -> list[dict[str, float]]:
    """Train with Keras' `Model.fit` (as `mgr.fit(...)`), one fit call per epoch (`initial_epoch` set), through
    `mgr.epochs()`.

    `train`: a tf.data.Dataset of (x, y), or a function (called with `epoch` / `seed` where it accepts them)
    returning one per epoch; in a resumed epoch the batches already trained are skipped. `callbacks` (Keras) are
    passed to every fit call and their state (EarlyStopping's wait / best, ...) is saved with the checkpoints; so
    are the manager's own callbacks. The network's Keras model is compiled with the manager's optimizer and `loss`
    after every rebuild. Returns the scores of each epoch trained by this call (our names: train_score, dev_score).
    """
    import keras

    from transition.training._loop import data_for_epoch

    for cb in callbacks:
        mgr.register_callback(cb)
    mgr._fit_mode = True  # Keras drives the callbacks itself: the manager must not call them a second time
    keras_cbs = [cb for cb in mgr.callbacks if is_keras_callback(cb)]
    history: list[dict[str, float]] = []
    compiled = None

    class _Steps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
            mgr.step_done()

    steps = _Steps()
    for epoch in mgr.epochs():
        model = mgr.network.keras_model
        if compiled is not model:  # a new network after a transition (or the first): compile with the optimizer
            model.compile(optimizer=mgr.optimizer, loss=loss, metrics=metrics)
            compiled = model
        data = train
        if callable(train):
            data = data_for_epoch("train", train, epoch=epoch, seed=mgr.shuffle_seed(epoch))
        if mgr.step_in_epoch:
            if not is_tf_dataset(data):
                raise ConfigError("mgr.fit resumes mid-epoch only with a tf.data.Dataset (it skips the trained "
                                  "batches); give one, or save at epoch ends only")
            data = data.skip(mgr.step_in_epoch)
        # Keras resets EarlyStopping & co. in on_train_begin of every fit call: re-apply their state after it
        restore_callback_states(keras_cbs, collect_callback_states(keras_cbs), strict=False)
        kwargs = dict(fit_kwargs)
        if is_tf_dataset(data):
            kwargs.setdefault("shuffle", False)  # a Dataset brings its own (per-epoch) order
        result = model.fit(data, initial_epoch=epoch - 1, epochs=epoch, validation_data=validation_data,
                           callbacks=[steps, *keras_cbs], verbose=verbose, **kwargs)
        scores = scores_from_keras_logs({k: float(v[-1]) for k, v in result.history.items() if v})
        history.append(scores)
        mgr.end_epoch(scores)  # sees model.stop_training (EarlyStopping)
    return history
