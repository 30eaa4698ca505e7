"""Callback states: Keras EarlyStopping / ReduceLROnPlateau / ModelCheckpoint resume as if never interrupted."""

import math
import warnings

import keras
import numpy as np
import pytest

from transition.errors import ConfigError
from transition.store._callback_state import (
    KerasCallbackState,
    adapt_callback,
    collect_callback_states,
    restore_callback_states,
)
from transition.store._state import TrainingState, dumps_state, loads_state

# The monitored score per epoch: with patience 3 it stops at epoch 6 (best 3.0 at epoch 3); a callback that
# forgot its best at a resume in epochs 4-5 would see 2.9 at epoch 8 as new best and stop later.
SCORES = [5.0, 4.0, 4.5, 3.0, 3.2, 3.1, 3.3, 3.4, 2.9, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1]


class ScriptedScore(keras.callbacks.Callback):
    """Puts SCORES[epoch] into the logs as "score" (runs before the monitor callbacks)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = SCORES[epoch]


def _fit(callbacks, initial_epoch, epochs, model=None):
    if model is None:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = np.ones((4, 2), "float32")
    hist = model.fit(x, x[:, :1], batch_size=4, epochs=epochs, initial_epoch=initial_epoch,
                     callbacks=[ScriptedScore(), *callbacks], verbose=0)
    return model, hist.epoch


def _through_json(states):
    data, arrays = dumps_state(TrainingState(callbacks=states))
    return loads_state(data, arrays).callbacks


@pytest.mark.parametrize("split", [4, 5])
def test_early_stopping_stops_at_the_same_epoch_after_resume(split):
    def make():
        return keras.callbacks.EarlyStopping(monitor="score", patience=3, mode="min")

    full = make()
    _, epochs_full = _fit([full], 0, len(SCORES))
    assert full.stopped_epoch > split  # the run stops, after the split

    first = make()
    model, epochs_a = _fit([first], 0, split)
    states = _through_json(collect_callback_states([first]))
    assert set(states) == {"EarlyStopping"}

    resumed = make()
    restore_callback_states([resumed], states)
    assert (resumed.wait, resumed.best, resumed.best_epoch) == (first.wait, first.best, first.best_epoch)
    _, epochs_b = _fit([resumed], split, len(SCORES), model=model)
    assert epochs_a + epochs_b == epochs_full
    assert (resumed.stopped_epoch, resumed.best, resumed.best_epoch, resumed.wait) == (
        full.stopped_epoch, full.best, full.best_epoch, full.wait)

    fresh = make()  # without the restored state the resumed run would go on longer
    _, epochs_c = _fit([fresh], split, len(SCORES), model=model)
    assert epochs_a + epochs_c != epochs_full


def test_reduce_lr_on_plateau_resumes_counters_and_learning_rate():
    def make():
        return keras.callbacks.ReduceLROnPlateau(monitor="score", mode="min", patience=1, cooldown=1, factor=0.5,
                                                 min_lr=1e-6)

    full = make()
    model_full, _ = _fit([full], 0, 10)
    lr_full = float(model_full.optimizer.learning_rate.numpy())

    first = make()
    model, _ = _fit([first], 0, 4)
    states = _through_json(collect_callback_states([first]))
    assert states["ReduceLROnPlateau"]["cooldown_counter"] == first.cooldown_counter
    resumed = make()
    restore_callback_states([resumed], states)
    _fit([resumed], 4, 10, model=model)
    assert (resumed.wait, resumed.best, resumed.cooldown_counter) == (full.wait, full.best, full.cooldown_counter)
    assert float(model.optimizer.learning_rate.numpy()) == lr_full

    control, _ = _fit([make()], 0, 4)  # a fresh callback at the resume gives another learning rate
    _fit([make()], 4, 10, model=control)
    assert float(control.optimizer.learning_rate.numpy()) != lr_full


def test_model_checkpoint_keeps_its_best(tmp_path):
    def make():
        return keras.callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), monitor="score", mode="min",
                                               save_best_only=True, save_weights_only=True)

    first = make()
    model, _ = _fit([first], 0, 4)
    assert first.best == 3.0
    states = _through_json(collect_callback_states([first]))
    (tmp_path / "best.weights.h5").unlink()
    resumed = make()
    restore_callback_states([resumed], states)
    _fit([resumed], 4, 6, model=model)  # scores 3.2, 3.1: worse than the restored best 3.0
    assert resumed.best == 3.0
    assert not (tmp_path / "best.weights.h5").exists()  # a fresh callback would have saved at epoch 4


class Counter:
    """A user callback implementing the Stateful protocol."""

    def __init__(self, state_key=None):
        if state_key:
            self.state_key = state_key
        self.count = 0
        self.best = math.inf

    def state_dict(self):
        return {"count": self.count, "best": self.best}

    def load_state_dict(self, state):
        self.count, self.best = state["count"], state["best"]


def test_user_stateful_with_infinite_best_round_trips():
    a = Counter()
    a.count = 7
    states = _through_json(collect_callback_states([a, keras.callbacks.History()]))
    assert states == {"Counter": {"count": 7, "best": math.inf}}
    b = Counter()
    assert restore_callback_states([b], states) == ["Counter"]
    assert (b.count, b.best) == (7, math.inf)


def test_adapt_callback():
    c = Counter()
    assert adapt_callback(c) is c
    assert adapt_callback(keras.callbacks.History()) is None
    es = keras.callbacks.EarlyStopping()
    adapted = adapt_callback(es)
    assert isinstance(adapted, KerasCallbackState) and adapted.callback is es and adapted.state_key == "EarlyStopping"
    es.state_key = "es_dev"
    assert adapt_callback(es).state_key == "es_dev"
    with pytest.raises(ConfigError, match="History"):
        KerasCallbackState(keras.callbacks.History())


def test_duplicate_state_key_names_both():
    with pytest.raises(ConfigError) as info:
        collect_callback_states([Counter("k"), keras.callbacks.EarlyStopping(), Counter("k")])
    assert "'k'" in str(info.value) and str(info.value).count("Counter") == 2
    with pytest.raises(ConfigError, match="EarlyStopping"):
        collect_callback_states([keras.callbacks.EarlyStopping(), keras.callbacks.EarlyStopping()])


def test_strict_restore_names_the_key():
    states = {"Counter": {"count": 1, "best": 0.0}}
    with pytest.raises(ConfigError, match="'Counter'.*no such callback"):
        restore_callback_states([], states)
    with pytest.raises(ConfigError, match="'other'.*no state"):
        restore_callback_states([Counter(), Counter("other")], states)
    c, other = Counter(), Counter("other")
    assert restore_callback_states([c, other], states, strict=False) == ["Counter"]
    assert c.count == 1 and other.count == 0


def test_bad_states_are_errors():
    with pytest.raises(ConfigError, match="'bad'"):
        collect_callback_states([type("Bad", (Counter,), {"state_dict": lambda self: {"x": object()}})("bad")])
    es = keras.callbacks.EarlyStopping(monitor="val_loss")
    good = KerasCallbackState(es).state_dict()
    with pytest.raises(ConfigError, match="monitor 'loss'"):
        restore_callback_states([es], {"EarlyStopping": {**good, "monitor": "loss"}})
    with pytest.raises(ConfigError, match="'wiat'"):
        restore_callback_states([es], {"EarlyStopping": {**good, "wiat": 1}})
    with pytest.raises(ConfigError, match="'wait'"):
        restore_callback_states([es], {"EarlyStopping": {**good, "wait": -2}})
    with pytest.raises(ConfigError, match="'best'"):
        restore_callback_states([es], {"EarlyStopping": {**good, "best": "low"}})


def test_restore_best_weights_warns():
    es = keras.callbacks.EarlyStopping(monitor="score", restore_best_weights=True)
    es.on_train_begin()
    es.best = 1.0
    state = collect_callback_states([es])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restore_callback_states([keras.callbacks.EarlyStopping(monitor="score", restore_best_weights=True)], state)
    assert any("best_weights" in str(w.message) for w in caught)


def test_numpy_and_tensor_values_are_stored_as_numbers():
    import tensorflow as tf

    es = keras.callbacks.EarlyStopping(monitor="score")
    es.on_train_begin()
    es.best, es.wait = tf.constant(2.5), np.int64(3)
    state = collect_callback_states([es])["EarlyStopping"]
    assert (state["best"], state["wait"]) == (2.5, 3)
    assert type(state["best"]) is float and type(state["wait"]) is int
