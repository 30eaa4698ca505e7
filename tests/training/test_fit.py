"""Tests of the Keras log-name mapping of transition.training._fit (the fit loop itself: tests/test_manager.py)."""

from hypothesis import given
from hypothesis import strategies as st

from transition.training._fit import (
    is_keras_callback,
    is_tf_dataset,
    keras_logs,
    scores_from_keras_logs,
)

_names = st.sampled_from(["score", "error", "accuracy", "ce"])
_value = st.floats(allow_nan=False, allow_infinity=False)


@given(st.dictionaries(st.tuples(st.sampled_from(["train", "dev"]), _names), _value, max_size=6))
def test_scores_survive_keras_names_and_back(raw):
    scores = {f"{split}_{name}": v for (split, name), v in raw.items()}
    logs = keras_logs(scores)
    if "dev_score" in scores:
        assert logs["val_loss"] == scores["dev_score"]
    if "train_score" in scores:
        assert logs["loss"] == scores["train_score"]
    keras_only = {k: v for k, v in logs.items() if k not in scores}
    back = scores_from_keras_logs(keras_only)
    # every dev score and train_score comes back under its own name
    for key, value in scores.items():
        if key.startswith("dev_") or key == "train_score":
            assert back[key] == value, key


def test_keras_fit_logs_to_scores():
    logs = {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7, "learning_rate": 0.001}
    assert scores_from_keras_logs(logs) == {
        "train_score": 0.5, "train_accuracy": 0.8, "dev_score": 0.6, "dev_accuracy": 0.7,
    }


def test_type_checks():
    import keras
    import tensorflow as tf

    assert is_keras_callback(keras.callbacks.EarlyStopping()) and not is_keras_callback(object())
    assert is_tf_dataset(tf.data.Dataset.range(2)) and not is_tf_dataset([1, 2])
