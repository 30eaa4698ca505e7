"""Tests of the reference loop's helpers (transition.training._loop, transition.training._log) and callable data."""

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transition.errors import ConfigError

EXTERN = {"data": {"shape": (2,)}, "classes": {"dim": 2, "sparse": True, "shape": ()}}


@given(st.integers(0, 2**40), st.integers(1, 10**6))
def test_epoch_seed_is_stable_and_per_epoch(seed, epoch):
    from transition.training._data import epoch_seed

    s = epoch_seed(seed, epoch)
    assert s == epoch_seed(seed, epoch) and 0 <= s < 2**63
    assert s != epoch_seed(seed, epoch + 1)


@given(st.integers(1, 40), st.integers(1, 9), st.integers(0, 2**31))
def test_numpy_batches_cover_all_rows_and_resume_at_start(n, batch_size, seed):
    from transition.training._data import num_numpy_batches, numpy_batches

    arrays = {"data": np.arange(n * 2).reshape(n, 2), "classes": np.arange(n)}
    batches = list(numpy_batches(arrays, batch_size, seed=seed))
    assert len(batches) == num_numpy_batches(arrays, batch_size)
    assert sorted(np.concatenate([b["classes"] for b in batches]).tolist()) == list(range(n))
    assert all(np.array_equal(b["data"][:, 0], b["classes"] * 2) for b in batches)  # rows stay together
    start = len(batches) // 2
    tail = list(numpy_batches(arrays, batch_size, seed=seed, start=start))
    assert [b["classes"].tolist() for b in tail] == [b["classes"].tolist() for b in batches[start:]]


def test_check_numpy_data_errors_name_the_key():
    from transition.training._data import check_numpy_data

    with pytest.raises(ConfigError, match="'clases'.*'classes'"):
        check_numpy_data("train", {"data": np.zeros((2, 2)), "clases": np.zeros(2)}, EXTERN)
    with pytest.raises(ConfigError, match="different numbers of rows"):
        check_numpy_data("dev", {"data": np.zeros((2, 2)), "classes": np.zeros(3)}, EXTERN)
    with pytest.raises(ConfigError, match="train data is empty"):
        check_numpy_data("train", {}, EXTERN)


def test_data_for_epoch_passes_what_the_function_accepts():
    from transition.training._data import data_for_epoch

    assert data_for_epoch("train", lambda epoch: epoch, epoch=3, seed=9) == 3
    assert data_for_epoch("train", lambda **kw: sorted(kw.items()), epoch=3, seed=9) == [("epoch", 3), ("seed", 9)]
    assert data_for_epoch("train", lambda: "x", epoch=3, seed=9) == "x"

    def my_data(seed):
        return None

    with pytest.raises(ConfigError, match="my_data"):
        data_for_epoch("train", my_data, epoch=1, seed=1)


def test_loss_meter_state_round_trip_and_bad_state():
    from transition.training._loop import LossMeter

    m = LossMeter()
    m.add(1.0)
    m.add(3.0)
    other = LossMeter()
    other.load_state_dict(m.state_dict())
    assert other.mean == 2.0
    with pytest.raises(ConfigError, match="transition.train_loss"):
        other.load_state_dict({"total": "x", "count": 1})


def test_progress_bar_draws_only_on_a_tty():
    from transition.training._loop import ProgressBar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for out in (tty, pipe):
        bar = ProgressBar(4, "epoch 2", out, start=1)
        for _ in range(3):
            bar.update(1, 0.5)
        bar.close()
    assert pipe.getvalue() == ""
    assert "epoch 2 [" in tty.getvalue() and "4/4" in tty.getvalue() and "loss 0.5000" in tty.getvalue()


def test_format_epoch_line():
    from transition.training._log import format_epoch_line

    line = format_epoch_line(3, 10, 45, {"train_score": 0.41234, "dev_error": 0.087}, 0.001, 2.14, "transition +l2")
    assert line == "epoch 3/10  steps 45  train_score 0.4123  dev_error 0.087  lr 0.001  2.1s  transition +l2"


def test_callable_train_data_gets_epoch_and_seed(tmp_path):
    """train / dev as functions returning a tf.data.Dataset: called per epoch with the epoch's shuffle seed."""
    import tensorflow as tf

    from transition.training._data import epoch_seed
    from transition.training._loop import train_from_config

    calls = []

    def train(epoch, seed):
        calls.append((epoch, seed))
        x = np.random.RandomState(seed % 2**32).randn(8, 2).astype("float32")
        return tf.data.Dataset.from_tensor_slices({"data": x, "classes": (x[:, 0] > 0).astype("int32")}).batch(4)

    cfg = {
        "model": str(tmp_path / "net"), "extern_data": EXTERN, "num_epochs": 2, "random_seed": 5,
        "network": {"output": {"class": "softmax", "loss": "ce", "from": "data", "target": "classes"}},
        "train": train, "dev": lambda: train(0, 0), "learning_rate": 0.1,
    }
    out = io.StringIO()
    mgr = train_from_config(cfg, out=out)
    assert calls[::2] == [(1, epoch_seed(5, 1)), (2, epoch_seed(5, 2))]  # dev calls in between
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 2 and "steps 2" in lines[0] and "dev_error" in lines[1]
    assert mgr.global_step == 4
