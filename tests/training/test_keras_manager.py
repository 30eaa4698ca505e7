"""TransitionManager over Keras models (transition.training._keras_net and the manager's Keras side): a fixed model
in a custom loop, get_network giving models of another architecture (a transition) or the same (none), the
options, and the exact resume of `mgr.fit` (a growing Keras model killed with SIGKILL in a subprocess; a net dict
interrupted mid-epoch), including shuffled data from `lambda epoch, seed: ...`."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from transition.errors import ConfigError, TransitionError


def _model(units=6, names=("hidden", "out")):
    import keras

    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(units, activation="tanh", name=names[0])(x)
    return keras.Model(x, keras.layers.Dense(3, name=names[1])(h))


def _manager(model, **kwargs):
    import keras

    from transition.training._manager import TransitionManager

    kwargs.setdefault("num_epochs", 3)
    return TransitionManager(str(model), optimizer=lambda: keras.optimizers.Adam(0.01),
                             log=kwargs.pop("log", lambda s: None), **kwargs)


def _data(n=32):
    rng = np.random.RandomState(0)
    x = rng.randn(n, 4).astype("float32")
    return x, (np.abs(x[:, 0] * 2).astype("int32") % 3)


def _dataset(epoch=None, seed=None, n=32):
    import tensorflow as tf

    x, y = _data(n)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return (ds.shuffle(n, seed=seed) if seed is not None else ds).batch(8)


def _custom_epoch(mgr):
    import keras
    import tensorflow as tf

    model, opt = mgr.network.keras_model, mgr.optimizer
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for x, y in mgr.batches(_dataset(seed=mgr.shuffle_seed())):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    mgr.end_epoch({"train_score": float(loss)})


def test_custom_loop_over_a_keras_model_resumes(tmp_path):
    model = _model()
    with _manager(tmp_path / "m", network=model, num_epochs=2) as mgr:
        for epoch in mgr.epochs():
            assert mgr.network.keras_model is model and mgr.network.net_dict is None
            _custom_epoch(mgr)
    trained = {k: np.array(v.numpy()) for k, v in mgr.network.param_variables().items()}
    slots = int(mgr.optimizer.iterations.numpy())
    restarted = _model()  # a new process builds the model anew: the checkpoint gives it its values
    with _manager(tmp_path / "m", network=restarted, num_epochs=3) as mgr2:
        epochs = []
        for epoch in mgr2.epochs():
            epochs.append(epoch)
            for name, var in mgr2.network.param_variables().items():
                np.testing.assert_array_equal(var.numpy(), trained[name])
            assert int(mgr2.optimizer.iterations.numpy()) == slots
            _custom_epoch(mgr2)
    assert epochs == [3] and mgr2.resumed_from.endswith("m.002")


def _dropout_model():
    import keras

    x = keras.Input((4,), name="x")
    h = keras.layers.Dropout(0.3, seed=1, name="drop")(keras.layers.Dense(6, activation="tanh", name="hidden")(x))
    return keras.Model(x, keras.layers.Dense(3, name="out")(h))


def _interruptible_run(model_dir, crash_at=None):
    """A custom loop over a Keras model with dropout and Adam, saving every 2 steps; raises at (epoch, step)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)  # the same init in every run (a resumed run takes its values from the checkpoint)
    with _manager(model_dir, network=_dropout_model(), num_epochs=3, save_every_n_steps=2) as mgr:
        for epoch in mgr.epochs():
            model, opt = mgr.network.keras_model, mgr.optimizer
            loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            for step, (x, y) in enumerate(mgr.batches(_dataset(seed=mgr.shuffle_seed())), 1):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y, model(x, training=True))
                opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
                if (epoch, step) == crash_at:
                    raise RuntimeError("crash")  # after the save at step 2, before step 4's
            mgr.end_epoch({"train_score": float(loss)})
    return {k: np.array(v.numpy()) for k, v in mgr.network.param_variables().items()}, mgr


def test_custom_loop_over_a_keras_model_resumes_mid_epoch_bit_identically(tmp_path):
    """A crash at step 3 of epoch 2; a new manager with a new model resumes from the save at step 2 (the batches
    of the epoch already trained are skipped, dropout's and the optimizer's state restored) and ends equal."""
    expected, _ = _interruptible_run(tmp_path / "straight")
    with pytest.raises(RuntimeError, match="crash"):
        _interruptible_run(tmp_path / "crashed", crash_at=(2, 3))
    resumed, mgr = _interruptible_run(tmp_path / "crashed")
    assert re.fullmatch(r".*/crashed\.002\.step0*2", mgr.resumed_from), mgr.resumed_from  # the save at step 2
    for name, value in expected.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)


def test_get_network_transitions_only_when_the_architecture_changes(tmp_path):
    built = []

    def get_network(epoch):
        built.append(_model(6 if epoch < 3 else 9))  # a new object every epoch
        return built[-1]

    lines = []
    with _manager(tmp_path / "m", get_network=get_network, num_epochs=3, copy_param_mode="subset",
                  log=lines.append) as mgr:
        seen = []
        for epoch in mgr.epochs():
            seen.append((epoch, mgr.network.keras_model, mgr.last_transition))
            _custom_epoch(mgr)
    (_, m1, t1), (_, m2, t2), (_, m3, t3) = seen
    assert t1 is None and t2 is None and m2 is m1  # epoch 2: the same architecture, no transition
    assert m3 is built[-1] and t3 is not None and t3.optimizer is not None
    records = {r.name: r.status.value for r in t3.report.records}
    assert records["hidden/kernel"] == "partly copied" and records["out/kernel"] == "partly copied"
    assert mgr.transition_summary.startswith("transition ~hidden,~out")


def test_preserve_grows_a_keras_model_under_the_manager_without_changing_its_output(tmp_path):
    """copy_param_mode "preserve" with get_network widening a Keras model: the output at the start of epoch 3 is the
    one epoch 2 ended with (checked here and by the manager's verify_inputs, whose figure the report holds)."""
    x, _ = _data()
    ends = {}
    with _manager(tmp_path / "m", get_network=lambda epoch: _model(6 if epoch < 3 else 9), num_epochs=3,
                  copy_param_mode="preserve", verify_inputs={"data": x}) as mgr:
        for epoch in mgr.epochs():
            if epoch == 3:
                np.testing.assert_allclose(np.asarray(mgr.network.keras_model(x)), ends[2], rtol=0, atol=1e-6)
                check = mgr.last_transition.report.output_check
            _custom_epoch(mgr)
            ends[epoch] = np.asarray(mgr.network.keras_model(x))
    assert mgr.network.keras_model.get_layer("hidden").kernel.shape == (4, 9)
    assert check is not None and check.examples == len(x) and check.max_abs_diff <= 1e-6
    assert not np.allclose(ends[3], ends[2])  # epoch 3 trained the grown model


def test_fit_logs_the_transition_and_importers_apply(tmp_path):
    import keras

    calls = []

    def importer(layer, values_dict, epoch=None, **kwargs):
        calls.append((layer.name, epoch))

    lines = []
    with _manager(tmp_path / "m", get_network=lambda epoch: _model(6 if epoch < 2 else 8), num_epochs=2,
                  copy_param_mode="ifpossible", custom_param_importers={"out": importer}, log=lines.append) as mgr:
        mgr.fit(lambda epoch, seed: _dataset(seed=seed),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert calls == [("out", 2)]
    assert any(line.startswith("epoch 2: transition ~hidden,~out") and "custom importer in out" in line
               for line in lines), lines
    with pytest.raises(ConfigError, match="custom_param_importers names layer 'hiden'.*did you mean 'hidden'"):
        with _manager(tmp_path / "m2", network=_model(), custom_param_importers={"hiden": importer}) as mgr:
            next(mgr.epochs())


def test_keras_options_errors(tmp_path):
    from transition.network._network import Network

    net_dict = {"output": {"class": "softmax", "from": "data", "target": "classes"}}
    with pytest.raises(ConfigError, match="'extern_data' is required for a net dict"):
        _manager(tmp_path / "m", network=net_dict)
    with pytest.raises(ConfigError, match="pretrain needs a net dict"):
        _manager(tmp_path / "m", network=_model(), pretrain="default")
    with pytest.raises(ConfigError, match="copy_param_mode"):
        _manager(tmp_path / "m", network=_model(), copy_param_mode="subsett")
    mgr = _manager(tmp_path / "m", get_network=lambda epoch: Network.from_keras(_model()))
    with pytest.raises(ConfigError, match=r"returned a transition.Network; return its Keras model"):
        next(mgr.epochs())
    mgr = _manager(tmp_path / "m2", get_network=lambda epoch: net_dict)
    with pytest.raises(ConfigError, match="net dicts need the option 'extern_data'"):
        next(mgr.epochs())
    with pytest.raises(TransitionError, match="is a Keras model"):
        _manager(tmp_path / "m3", network=_model()).net_dict_for_epoch(1)


def test_resume_sets_the_tf_global_seed(tmp_path):
    """Ops seeded by TF's global seed (Dataset.shuffle(seed=...)) give the uninterrupted run's order on resume."""
    import tensorflow as tf

    def order():
        return [int(v) for v in tf.data.Dataset.range(8).shuffle(8, seed=1).as_numpy_iterator()]

    with _manager(tmp_path / "m", network=_model(), num_epochs=1, seed=11) as mgr:
        for _ in mgr.epochs():
            fresh = order()
            mgr.end_epoch({})
    tf.random.set_seed(999)  # as a new process would have it: not the job's seed
    with _manager(tmp_path / "m", network=_model(), num_epochs=2, seed=11) as mgr:
        for _ in mgr.epochs():
            assert order() == fresh
            mgr.end_epoch({})
    assert mgr.resumed_from is not None


# ------------------------------------------------------------------------------------------- exact resume of fit

NET = {
    "l1": {"class": "linear", "activation": "tanh", "n_out": 6, "from": "data", "dropout": 0.2},
    "output": {"class": "softmax", "loss": "ce", "from": "l1", "target": "classes"},
}
EXTERN = {"data": {"shape": (4,)}, "classes": {"dim": 3, "sparse": True, "shape": ()}}


class _Interrupt(Exception):
    pass


def _fit_net_dict(model, stop_at=None, stop_at_epoch_end=None):
    import keras

    class Stop(keras.callbacks.Callback):
        n = 0

        def on_train_batch_end(self, batch, logs=None):
            Stop.n += 1
            if Stop.n == stop_at:
                raise _Interrupt

        def on_epoch_end(self, epoch, logs=None):  # after the epoch's last step was saved, before its end is
            if epoch + 1 == stop_at_epoch_end:
                raise _Interrupt

    es = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e-3, patience=50)
    mgr = _manager(model, network=NET, extern_data=EXTERN, num_epochs=3, save_every_n_steps=3, seed=5,
                   callbacks=[es])
    with mgr:
        mgr.fit(lambda epoch, seed: _dataset(seed=seed), loss="sparse_categorical_crossentropy",
                validation_data=_dataset(), metrics=["accuracy"], callbacks=[Stop()] if stop_at or stop_at_epoch_end else [])
    return mgr


def _checkpoint(model, epoch):
    from transition.store._state import TrainingState
    from transition.store._store import CheckpointStore

    restored = CheckpointStore(model, lock=False, cleanup=False).restore(f"{model}.{epoch:03d}")
    return restored, TrainingState.from_json_and_arrays(restored.state_json, restored.state_arrays)


def _assert_same_checkpoints(a, b, epoch):
    (ra, sa), (rb, sb) = _checkpoint(a, epoch), _checkpoint(b, epoch)
    for group in ("params", "optimizer"):
        da, db = getattr(ra, group), getattr(rb, group)
        assert sorted(da) == sorted(db), group
        for name in da:
            assert np.asarray(da[name]).tobytes() == np.asarray(db[name]).tobytes(), f"{group} {name} differs"
    assert sa.learning_rate_history == sb.learning_rate_history  # the scores of every epoch, bit for bit
    assert sa.callbacks == sb.callbacks and sa.rng == sb.rng and sa.global_step == sb.global_step


def test_fit_over_a_net_dict_resumes_exactly_mid_epoch(tmp_path):
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    ref = str(tmp_path / "ref" / "net")
    _fit_net_dict(ref)
    run = str(tmp_path / "run" / "net")
    with pytest.raises(_Interrupt):
        _fit_net_dict(run, stop_at=7)  # epoch 2 (4 steps an epoch), after the save at global step 6
    mgr = _fit_net_dict(run)
    assert mgr.resumed_from == f"{run}.002.step00000002"
    _assert_same_checkpoints(ref, run, 3)

    # restarted after the last step of epoch 3 (global step 12, saved) and before its end: nothing is left to train
    # in it, yet its end (scores, callbacks) comes as in the uninterrupted run, and no extra step is run
    after_last = str(tmp_path / "after-last" / "net")
    with pytest.raises(_Interrupt):
        _fit_net_dict(after_last, stop_at_epoch_end=3)
    mgr = _fit_net_dict(after_last)
    assert mgr.resumed_from == f"{after_last}.003.step00000004"
    _assert_same_checkpoints(ref, after_last, 3)


GROWING = textwrap.dedent(
    """
    import sys
    import transition, keras, numpy as np, tensorflow as tf
    tf.config.experimental.enable_op_determinism()

    def get_network(epoch):  # widens "hidden" at epoch 3; Dropout (a SeedGenerator) and a concatenation
        x = keras.Input((4,), name="x")
        h = keras.layers.Dense(8 if epoch < 3 else 12, activation="tanh", name="hidden")(x)
        h = keras.layers.Dropout(0.2, name="drop")(h)
        return keras.Model(x, keras.layers.Dense(3, name="out")(keras.layers.Concatenate(name="cat")([h, x])))

    rng = np.random.RandomState(0)
    x = rng.randn(64, 4).astype("float32")
    y = ((x[:, 0] > 0).astype("int32") + (x[:, 1] > 0)).astype("int32")
    dev = tf.data.Dataset.from_tensor_slices((x[:32], y[:32])).batch(16)
    es = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e-3, patience=50)
    mgr = transition.TransitionManager(sys.argv[1], get_network=get_network, num_epochs=4, save_every_n_steps=3,
                                       optimizer=lambda: keras.optimizers.Adam(0.01), copy_param_mode="subset",
                                       callbacks=[es])
    with mgr:
        mgr.fit(lambda epoch, seed: tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=seed).batch(8),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), validation_data=dev,
                metrics=["accuracy"])
    """
)


def _run_growing(script, model, kill_when=None, timeout=120, kill_at=None):
    """Run the script; with `kill_when(files)`, SIGKILL it (this process only) once that holds for the model's
    files, after a short random delay; with `kill_at`, it kills itself there (the store's fault points). Returns
    the exit code."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if kill_at is not None:
        env["TRANSITION_TEST_KILL_AT"] = kill_at
    proc = subprocess.Popen([sys.executable, str(script), model], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    directory = os.path.dirname(model)
    deadline = time.monotonic() + timeout
    try:
        while kill_when is not None and proc.poll() is None and time.monotonic() < deadline:
            files = os.listdir(directory) if os.path.isdir(directory) else []
            if kill_when(files):
                time.sleep(np.random.default_rng().uniform(0.0, 0.15))
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        _, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, -signal.SIGKILL), err[-3000:]
    return proc.returncode


@pytest.mark.slow
def test_growing_keras_model_under_fit_resumes_bit_identically_after_sigkill(tmp_path):
    script = tmp_path / "grow.py"
    script.write_text(GROWING)
    ref = str(tmp_path / "ref" / "net")
    assert _run_growing(script, ref) == 0
    run = str(tmp_path / "run" / "net")
    # first kill: somewhere after the first mid-epoch save of epoch 2; second: right after the save after the last
    # batch of the grown epoch 3 (global step 24; only the epoch's end is left: its logs, validation, callbacks)
    _run_growing(script, run, kill_when=lambda files: any(f.startswith("net.002.step") for f in files))
    assert _run_growing(script, run, kill_at="committed:net.003.step00000008") == -signal.SIGKILL
    assert _run_growing(script, run) == 0
    _assert_same_checkpoints(ref, run, 3)
    _assert_same_checkpoints(ref, run, 4)
    restored, _ = _checkpoint(run, 4)
    assert restored.params["hidden/kernel"].shape == (4, 12)  # the grown network
