"""Tests of the drop-in `transition.keras.BackupAndRestore` (transition.training._backup): a model.fit killed with
SIGKILL (a subprocess) and run again ends bit-identical to an uninterrupted one (a Sequential model with Dropout
on a tf.data pipeline, EarlyStopping with min_delta); an interrupted fit resumes exactly past a damaged newest backup (fall-back, in process, with
ReduceLROnPlateau and a stateful callback of our own); an epoch whose data iterator runs across epochs restarts
from its start state; delete_checkpoint; the errors."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from transition.errors import ConfigError

SCRIPT = textwrap.dedent(
    """
    import itertools, os, sys
    import numpy as np, tensorflow as tf, keras
    import transition.keras

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(3)
    out, backup, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    features = np.random.RandomState(0).randn(96, 6).astype("float32")
    labels = (features[:, 0] + features[:, 1] > 0).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((features, labels))  # the same order in every epoch and every run
    data = data.shuffle(96, seed=1, reshuffle_each_iteration=False).batch(8)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu", name="h"),
                              keras.layers.Dropout(0.3, name="drop"), keras.layers.Dense(2, name="out")])
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    es = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0.01, patience=3)

    batches = itertools.count(1)
    kill = keras.callbacks.LambdaCallback(  # SIGKILL this process after `kill_at` batches
        on_train_batch_end=lambda batch, logs: next(batches) == kill_at and os.kill(os.getpid(), 9))
    backup_cb = transition.keras.BackupAndRestore(backup, save_freq=5, callbacks=[es])
    history = model.fit(data, epochs=6, validation_data=data.take(4), verbose=0, callbacks=[backup_cb, es, kill])
    arrays = {f"weight/{v.path}": v.numpy() for v in model.weights}
    arrays.update({f"optimizer/{v.path}": np.asarray(v.numpy()) for v in model.optimizer.variables})
    arrays.update({f"es/{k}": np.asarray(getattr(es, k)) for k in ("wait", "best", "stopped_epoch", "best_epoch")})
    arrays["val_loss"] = np.asarray(history.history["val_loss"])
    np.savez(out, **arrays)
    print("resumed_from", backup_cb.resumed_from, "backups left", sorted(os.listdir(backup)))
    """
)


def _run(script, out, backup, kill_at=0):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(script), str(out), str(backup), str(kill_at)], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_fit_killed_with_sigkill_resumes_bit_identically(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    ref = _run(script, tmp_path / "ref.npz", tmp_path / "ref_backup")
    assert ref.returncode == 0, ref.stderr[-3000:]
    # 12 batches an epoch, a backup every 5: killed after batch 23 (epoch 2, batch 11), maybe while writing the
    # backup of global batch 20; the resume skips the batches of epoch 2 that the backup had trained
    killed = _run(script, tmp_path / "run.npz", tmp_path / "backup", kill_at=23)
    assert killed.returncode == -9, killed.stderr[-3000:]
    resumed = _run(script, tmp_path / "run.npz", tmp_path / "backup")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed_from " in resumed.stdout and ".002.step" in resumed.stdout  # a mid-epoch backup of epoch 2
    assert "backups left ['backup.lock']" in resumed.stdout  # delete_checkpoint=True
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "run.npz")
    assert sorted(a.files) == sorted(b.files) and any(k.startswith("es/") for k in a.files)
    different = [k for k in a.files if k != "val_loss" and a[k].tobytes() != b[k].tobytes()]
    assert different == []
    assert a["val_loss"][-len(b["val_loss"]):].tobytes() == b["val_loss"].tobytes()  # the epochs run after the kill


# ------------------------------------------------------------------------------------------------ in process


class _Interrupt(Exception):
    pass


class _Counter:
    """A stateful callback of our own: counts trained batches (it must not count the skipped ones twice)."""

    state_key = "counter"

    def __init__(self):
        import keras

        outer = self

        class Cb(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.n += 1

        self.n = 0
        self.keras = Cb()

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def _fit(backup, *, stop_at=None, epochs=4, steps_per_epoch=None, delete_checkpoint=True, seen=None):
    """A small fit with Dropout, EarlyStopping, ReduceLROnPlateau and a stateful counter, backed up every 4 batches;
    `stop_at`: raise after that many batches (then the callback is closed, as a process exit would). Returns the
    callback, the weights and optimizer variables, and the callbacks' counters."""
    import keras
    import tensorflow as tf

    from transition.keras import BackupAndRestore

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(7)
    rng = np.random.RandomState(1)
    x = rng.randn(48, 5).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    inp = keras.Input((5,), name="x")
    h = keras.layers.Dropout(0.25, name="drop")(keras.layers.Dense(8, activation="tanh", name="h")(inp))
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(h))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    es = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e-4, patience=20)
    rlr = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)
    counter = _Counter()

    class Stop(keras.callbacks.Callback):
        n = 0

        def on_epoch_begin(self, epoch, logs=None):
            if seen is not None:
                seen.append({v.path: np.array(v.numpy()) for v in model.weights})

        def on_train_batch_end(self, batch, logs=None):
            Stop.n += 1
            if Stop.n == stop_at:
                raise _Interrupt

    cb = BackupAndRestore(backup, save_freq=4, delete_checkpoint=delete_checkpoint, callbacks=[es, rlr, counter])
    data = (x, y) if steps_per_epoch is None else (tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat(),)
    try:
        model.fit(*data, batch_size=None if steps_per_epoch else 8, epochs=epochs, steps_per_epoch=steps_per_epoch,
                  shuffle=steps_per_epoch is None,
                  validation_data=(x[:16], y[:16]), verbose=0, callbacks=[cb, es, rlr, counter.keras, Stop()])
    except _Interrupt:
        cb.close()
        raise
    weights = {v.path: np.array(v.numpy()) for v in model.weights}
    weights.update({f"opt/{i}": np.array(v.numpy()) for i, v in enumerate(model.optimizer.variables)})
    return cb, weights, (es.wait, es.best, rlr.wait, rlr.cooldown_counter, counter.n)


def _committed(backup):
    return sorted(f[: -len(".commit.json")] for f in os.listdir(backup) if f.endswith(".commit.json"))


def _damage(prefix):
    path = prefix + ".data-00000-of-00001"
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)


def test_interrupted_fit_resumes_exactly_past_a_damaged_newest_backup(tmp_path):
    _, ref_weights, ref_states = _fit(str(tmp_path / "ref"))
    backup = tmp_path / "backup"
    with pytest.raises(_Interrupt):  # 6 batches an epoch, a backup every 4: the newest is epoch 3 after batch 4
        _fit(str(backup), stop_at=17, delete_checkpoint=False)
    assert _committed(backup) == ["backup.001", "backup.002", "backup.003.step00000004"]
    _damage(str(backup / "backup.003.step00000004"))
    with pytest.warns(UserWarning, match=r"backup.003.step00000004 is damaged.*falling back"):
        cb, weights, states = _fit(str(backup), delete_checkpoint=False)
    assert cb.resumed_from.endswith("backup.002")
    assert sorted(weights) == sorted(ref_weights)
    for name in weights:  # weights, all optimizer variables (momentums, iterations, the reduced learning rate)
        assert weights[name].tobytes() == ref_weights[name].tobytes(), name
    assert states == ref_states and states[-1] == 4 * 6
    # delete_checkpoint=False kept the backups: a rerun has nothing left to train and changes nothing
    cb, again, _ = _fit(str(backup), delete_checkpoint=False)
    assert cb.resumed_from.endswith("backup.004")
    assert all(again[k].tobytes() == weights[k].tobytes() for k in weights)


def test_mid_epoch_resume_skips_the_trained_batches_exactly(tmp_path):
    _, ref_weights, ref_states = _fit(str(tmp_path / "ref"))
    backup = tmp_path / "backup"
    with pytest.raises(_Interrupt):
        _fit(str(backup), stop_at=11)  # epoch 2 after batch 5; the newest backup: epoch 2 after batch 2
    assert _committed(backup)[-1] == "backup.002.step00000002"
    cb, weights, states = _fit(str(backup))
    assert cb.resumed_from.endswith("backup.002.step00000002")
    assert all(weights[k].tobytes() == ref_weights[k].tobytes() for k in ref_weights)
    assert states == ref_states  # the counter saw each batch once, though fit stepped through the skipped ones
    assert _committed(backup) == []  # delete_checkpoint=True


def test_an_epoch_whose_data_runs_across_epochs_restarts_from_its_start(tmp_path):
    from transition.store._store import CheckpointStore

    backup = tmp_path / "backup"
    with pytest.raises(_Interrupt):  # steps_per_epoch over a repeated dataset: one data iterator for all epochs
        _fit(str(backup), stop_at=9, steps_per_epoch=5)
    assert _committed(backup) == ["backup.001", "backup.002.step00000003"]
    start = CheckpointStore(str(backup / "backup"), lock=False, cleanup=False).restore(str(backup / "backup.001"))
    seen = []
    with pytest.warns(UserWarning, match="epoch 2 restarts from its start state"):
        cb, _, _ = _fit(str(backup), steps_per_epoch=5, seen=seen)
    assert cb.resumed_from.endswith("backup.001")
    np.testing.assert_array_equal(seen[0]["h/kernel"], start.params["h/kernel"])  # not the mid-epoch weights


def test_backup_errors(tmp_path):
    import keras

    from transition.keras import BackupAndRestore

    with pytest.raises(ConfigError, match="save_freq"):
        BackupAndRestore(str(tmp_path), save_freq="batch")
    with pytest.raises(ConfigError, match="has no state_dict"):
        BackupAndRestore(str(tmp_path), callbacks=[object()])
    with pytest.raises(ConfigError, match="backup_dir"):
        BackupAndRestore("")
    model = keras.Sequential([keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    with pytest.raises(ConfigError, match="not built"):
        model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0, callbacks=[BackupAndRestore(str(tmp_path))])
