"""Tests of TransitionManager (transition.training._manager), the reference loop and `transition train` / `plan`."""

import textwrap

import numpy as np
import pytest

from transition.errors import CheckpointError, ConfigError, TransitionError

EXTERN = {"data": {"shape": (4,)}, "classes": {"dim": 3, "sparse": True, "shape": ()}}
NET = {
    "l1": {"class": "linear", "activation": "tanh", "n_out": 5, "from": "data"},
    "l2": {"class": "linear", "activation": "tanh", "n_out": 5, "from": "l1"},
    "output": {"class": "softmax", "loss": "ce", "from": "l2", "target": "classes"},
}


def _data(n=24, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 4).astype("float32")
    return {"data": x, "classes": (np.abs(x[:, 0] * 2).astype("int32") % 3)}


def _manager(model, **kwargs):
    import keras

    from transition.training._manager import TransitionManager

    kwargs.setdefault("network", NET)
    kwargs.setdefault("num_epochs", 3)
    return TransitionManager(model=str(model), extern_data=EXTERN, optimizer=lambda: keras.optimizers.Adam(0.01),
                             log=kwargs.pop("log", lambda s: None), **kwargs)


def _train_epoch(mgr, data, batch_size=8):
    from transition.training._data import numpy_batches
    from transition.training._loop import make_train_step

    step = make_train_step(mgr.network, mgr.optimizer)
    losses = [float(step(b)) for b in mgr.batches(numpy_batches(data, batch_size, seed=mgr.shuffle_seed()))]
    return float(np.mean(losses))


# ------------------------------------------------------------------------------------------------ config errors


def test_from_config_unknown_key_suggests(tmp_path):
    from transition.training._manager import TransitionManager

    cfg = {"model": str(tmp_path / "m"), "extern_data": EXTERN, "network": NET, "num_epochs": 1, "num_epoch": 2}
    with pytest.raises(ConfigError, match=r"'num_epoch'.*'num_epochs'"):
        TransitionManager.from_config(cfg)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"model": None}, "model"),
        ({"network": None}, "get_network"),
        ({"optimizer": {"class": "adamm"}}, "adamm"),
        ({"optimizer": {"class": "adam", "learning_rate": 0.1}}, "learning_rate"),
        ({"optimizer": {"class": "adam", "epsilonn": 0.1}}, "epsilonn"),
        ({"learning_rate_control": "newbobb"}, "newbobb"),
        ({"pretrain": {"repetitionz": 1}}, "repetitionz"),
        ({"preload_from_files": {"a": {"filename": "x", "ignore_mising": True}}}, "ignore_mising"),
        ({"keep_best_n": "2"}, "keep_best_n"),
    ],
)
def test_from_config_errors_name_the_key(tmp_path, change, key):
    from transition.training._manager import TransitionManager

    cfg = {"model": str(tmp_path / "m"), "extern_data": EXTERN, "network": NET, "num_epochs": 1}
    cfg.update(change)
    with pytest.raises(ConfigError, match=key):
        TransitionManager.from_config(cfg)


def test_manager_contract_errors(tmp_path):
    with pytest.raises(ConfigError, match="get_network"):
        _manager(tmp_path / "m", get_network=lambda epoch: NET)
    mgr = _manager(tmp_path / "m", num_epochs=2)
    with pytest.raises(TransitionError, match="inside an epoch"):
        next(iter(mgr.batches([1])))
    with mgr:
        with pytest.raises(TransitionError, match="end_epoch"):
            for _ in mgr.epochs():
                pass


# ------------------------------------------------------------------------------------- transitions and slots


def test_optimizer_slots_carried_through_transition(tmp_path):
    from transition.internal._keras_private import optimizer_slot_lists

    data = _data()
    mgr = _manager(tmp_path / "m", pretrain={"repetitions": 1})
    seen = {}

    def slots(mgr):
        names = {id(v): n for n, v in mgr.network.param_variables().items()}
        out = {}
        for slot, items in optimizer_slot_lists(mgr.optimizer).items():
            for var, sv in zip(mgr.optimizer._trainable_variables, items):
                out[(slot, names[id(var)])] = np.array(sv.numpy())
        return out

    with mgr:
        for epoch in mgr.epochs():
            if epoch == 2:
                assert mgr.last_transition is not None and "l2" in mgr.last_transition.diff.added
                after = slots(mgr)
                assert int(mgr.optimizer.iterations.numpy()) == seen["iterations"]
            _train_epoch(mgr, data)
            if epoch == 1:
                seen = slots(mgr)
                seen["iterations"] = int(mgr.optimizer.iterations.numpy())
                assert "l2/W" not in mgr.network.param_variables()
            mgr.end_epoch({"dev_score": 1.0})
    for (slot, name), value in after.items():
        if name.startswith("l2/"):  # a new layer: fresh (zero) slots
            assert not value.any(), (slot, name)
        else:  # copied params (l1, output reading l1 -> l2 of the same size): copied slots
            assert value.any() and np.array_equal(value, seen[(slot, name)]), (slot, name)


def test_get_network_rebuilds_when_the_dict_changes(tmp_path):
    def get_network(epoch, **_):
        net = {k: dict(v) for k, v in NET.items()}
        net["l2"]["n_out"] = 5 if epoch < 3 else 7
        net["#copy_param_mode"] = "subset"
        return net

    lines = []
    mgr = _manager(tmp_path / "m", network=None, get_network=get_network, num_epochs=3, log=lines.append)
    data = _data()
    transitions = {}
    with mgr:
        for epoch in mgr.epochs():
            transitions[epoch] = mgr.transition_summary
            _train_epoch(mgr, data)
            mgr.end_epoch({"dev_score": 1.0})
    assert transitions[2] is None and transitions[3] is not None
    assert "~l2" in transitions[3] and "partly copied" in transitions[3]
    assert tuple(mgr.network.param_variables()["l2/W"].shape) == (5, 7)


# --------------------------------------------------------------------------------------------- restart / resume


def test_early_stopping_state_across_restart(tmp_path):
    import keras

    scores = [1.0, 0.5, 0.7, 0.8, 0.9]

    def run(stop_after=None):
        es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2)
        mgr = _manager(tmp_path / "m", callbacks=[es], num_epochs=5)
        done = []
        with mgr:
            for epoch in mgr.epochs():
                mgr.end_epoch({"dev_score": scores[epoch - 1]})
                done.append(epoch)
                if epoch == stop_after:
                    break
        return mgr, es, done

    _, es, done = run(stop_after=3)
    assert done == [1, 2, 3] and (es.wait, es.best) == (1, 0.5)
    mgr, es, done = run()
    # restored wait=1, best=0.5: epoch 4 (0.8) is the second epoch without improvement -> stop
    assert done == [4] and mgr.stopped
    assert (es.wait, es.best, es.stopped_epoch) == (2, 0.5, 3)
    _, _, done = run()  # the stop is part of the state: nothing more to do
    assert done == []


def test_no_resume_refuses_and_resume_continues(tmp_path):
    mgr = _manager(tmp_path / "m", num_epochs=2)
    with mgr:
        for _ in mgr.epochs():
            mgr.end_epoch({"dev_score": 1.0})
            break
    with pytest.raises(ConfigError, match=r"m\.001"):
        with _manager(tmp_path / "m", num_epochs=2, resume=False) as m2:
            next(m2.epochs())
    lines = []
    with _manager(tmp_path / "m", num_epochs=2, log=lines.append) as m3:
        assert list(_ended(m3)) == [2]
    assert any("resuming from" in line and "m.001" in line for line in lines)


def _ended(mgr):
    for epoch in mgr.epochs():
        mgr.end_epoch({"dev_score": 1.0})
        yield epoch


def test_second_manager_on_same_model_is_refused(tmp_path):
    with _manager(tmp_path / "m") as m1:
        it = m1.epochs()
        next(it)
        with pytest.raises(CheckpointError, match="in use"):
            with _manager(tmp_path / "m") as m2:
                next(m2.epochs())
        it.close()


def test_batches_skip_in_resumed_epoch_with_tf_data(tmp_path):
    import tensorflow as tf

    data = _data(16)
    mgr = _manager(tmp_path / "m", num_epochs=1, save_every_n_steps=2)

    class Stop(Exception):
        pass

    with pytest.raises(Stop):
        with mgr:
            for _ in mgr.epochs():
                from transition.training._loop import make_train_step

                step = make_train_step(mgr.network, mgr.optimizer)
                for i, batch in enumerate(mgr.batches(tf.data.Dataset.from_tensor_slices(data).batch(2))):
                    step(batch)
                    if i == 4:  # steps 1..4 counted, the save after step 4 exists
                        raise Stop
    seen = []
    with _manager(tmp_path / "m", num_epochs=1) as m2:
        for _ in m2.epochs():
            assert m2.step_in_epoch == 4
            for batch in m2.batches(tf.data.Dataset.from_tensor_slices(data).batch(2)):
                seen.append(batch["data"].numpy())
            m2.end_epoch({})
    assert len(seen) == 4 and np.array_equal(seen[0], data["data"][8:10])
    assert m2.global_step == 8


def test_import_model_train_epoch1_loads_and_logs(tmp_path):
    data = _data()
    with _manager(tmp_path / "a", num_epochs=1) as a:
        for _ in a.epochs():
            _train_epoch(a, data)
            trained = {n: np.array(v.numpy()) for n, v in a.network.param_variables().items()}
            a.end_epoch({})
    lines = []
    b = _manager(tmp_path / "b", num_epochs=1, import_model_train_epoch1=str(tmp_path / "a.001"), log=lines.append)
    with b:
        for epoch in b.epochs():
            assert epoch == 1 and b.global_step == 0
            for name, var in b.network.param_variables().items():
                assert np.array_equal(var.numpy(), trained[name]), name
            b.end_epoch({})
    assert any("import_model_train_epoch1" in line and "a.001" in line for line in lines)


# ------------------------------------------------------------------------------------------------- Model.fit


def test_fit_helper_keeps_early_stopping_state_per_epoch(tmp_path):
    import keras
    import tensorflow as tf

    data = _data(24)
    ds = tf.data.Dataset.from_tensor_slices((data["data"], data["classes"])).batch(8)
    val = ds.take(1)
    es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=50)
    mgr = _manager(tmp_path / "m", num_epochs=3)
    with mgr:
        history = mgr.fit(ds, loss="sparse_categorical_crossentropy", validation_data=val, callbacks=[es])
    assert len(history) == 3 and all("dev_score" in h and "train_score" in h for h in history)
    assert mgr.global_step == 9 and int(mgr.optimizer.iterations.numpy()) == 9
    # EarlyStopping saw all three epochs (its best is the minimum, not reset by every fit call)
    assert es.best == min(h["dev_score"] for h in history)
    from transition.store._state import read_training_state

    state = read_training_state(str(tmp_path / "m.003"))
    assert state.callbacks["EarlyStopping"]["best"] == es.best


# --------------------------------------------------------------------------------------------- CLI and plan

CLI_CONFIG = textwrap.dedent(
    """
    import numpy as np

    _x = np.random.RandomState(1).randn(32, 4).astype("float32")

    def my_importer(layer, values_dict, **kwargs):
        for name, var in layer.params.items():
            if name in values_dict and tuple(values_dict[name].shape) == tuple(var.shape):
                var.assign(values_dict[name] * 0.5)

    extern_data = {"data": {"shape": (4,)}, "classes": {"dim": 2, "sparse": True, "shape": ()}}
    network = {
        "l1": {"class": "linear", "activation": "tanh", "n_out": 3, "from": "data"},
        "l2": {"class": "linear", "activation": "tanh", "n_out": 3, "from": "l1"},
        "output": {"class": "softmax", "loss": "ce", "from": "l2", "target": "classes",
                   "custom_param_importer": my_importer},
    }
    pretrain = {"repetitions": 1}
    num_epochs = 3
    batch_size = 16
    learning_rate = 0.01
    train = {"data": _x, "classes": (_x[:, 0] > 0).astype("int32")}
    dev = train
    """
)


def test_plan_lines(tmp_path):
    from transition.training._plan import plan_lines

    cfg = tmp_path / "c.config"
    cfg.write_text(CLI_CONFIG)
    lines = plan_lines(str(cfg))
    text = "\n".join(lines)
    assert lines[0].startswith("epoch 1: build 2 layers")
    assert "epoch 2: transition +l2" in text
    assert "l1/W (4, 3): copied" in text
    assert "output/W (3, 2): imported by hook my_importer" in text
    assert "l2/W (3, 3): new / reset" in text
    assert "epoch 3: same network" in text
    assert not (tmp_path / "plan-only.lock").exists()


class _Counter:
    state_key = "counter"

    def __init__(self):
        self.n = 0

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def test_callback_state_restored_new_ones_fresh_missing_ones_error(tmp_path):
    c = _Counter()
    with _manager(tmp_path / "m", callbacks=[c], num_epochs=3) as mgr:
        for epoch in mgr.epochs():
            c.n += 10
            mgr.end_epoch({})
            if epoch == 2:
                break
    c2, extra = _Counter(), _Counter()
    extra.state_key = "extra"
    lines = []
    with _manager(tmp_path / "m", callbacks=[c2, extra], num_epochs=3, log=lines.append) as mgr:
        assert list(_ended(mgr)) == [3]
    assert c2.n == 20 and extra.n == 0
    assert any("start fresh: extra" in line for line in lines)
    with pytest.raises(ConfigError, match="'counter'"):
        with _manager(tmp_path / "m", callbacks=[], num_epochs=4) as mgr:
            next(mgr.epochs())


def test_log_file_and_verbosity(tmp_path, capsys):
    from transition.training._loop import train_from_config

    cfg = tmp_path / "c.config"
    cfg.write_text(CLI_CONFIG)
    log = tmp_path / "logs" / "train.log"
    train_from_config(str(cfg), [f"--model={tmp_path / 'net'}", "--num_epochs=2", f"--log={log}",
                                 "--log_verbosity=4"])
    text = log.read_text()
    assert text == capsys.readouterr().out
    between = text.split("epoch 1/2")[1].split("epoch 2/2")[0]  # the transition report, before the epoch line
    assert "epoch 2/2" in text and "custom importer" in between and "l2" in between
    train_from_config(str(cfg), [f"--model={tmp_path / 'net2'}", "--num_epochs=1", "--log_verbosity=2"])
    out = capsys.readouterr().out
    assert "loading:" in out and "epoch 1/1" not in out


def test_foreign_epoch_files_under_model_continue_training(tmp_path):
    from transition.checkpoint._bundle_writer import write_bundle

    with _manager(tmp_path / "a", num_epochs=1) as a:
        for _ in a.epochs():
            _train_epoch(a, _data())
            trained = {n: np.array(v.numpy()) for n, v in a.network.param_variables().items()}
            a.end_epoch({})
    write_bundle(str(tmp_path / "m.002"), trained)  # like RETURNN's network.002: no commit file, no state
    lines = []
    with _manager(tmp_path / "m", num_epochs=3, log=lines.append) as b:
        for epoch in b.epochs():
            assert epoch == 3
            for name, var in b.network.param_variables().items():
                assert np.array_equal(var.numpy(), trained[name]), name
            b.end_epoch({})
    assert any("existing model" in line and "m.002" in line for line in lines), lines


def test_fit_helper_resumes_with_callback_state(tmp_path):
    import keras
    import tensorflow as tf

    data = _data(24)
    ds = tf.data.Dataset.from_tensor_slices((data["data"], data["classes"])).batch(8)

    def run(num_epochs):
        es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=50)
        mgr = _manager(tmp_path / "m", num_epochs=num_epochs)
        with mgr:
            hist = mgr.fit(ds, loss="sparse_categorical_crossentropy", validation_data=ds.take(1), callbacks=[es])
        return mgr, es, hist

    _, es1, hist1 = run(2)
    mgr, es2, hist2 = run(3)
    assert len(hist1) == 2 and len(hist2) == 1 and mgr.global_step == 9
    best = min(h["dev_score"] for h in hist1 + hist2)
    assert es2.best == best  # restored from the checkpoint, not reset by fit's on_train_begin
    assert es2.wait == (0 if hist2[0]["dev_score"] == best else es1.wait + 1)


@pytest.mark.parametrize("make", [
    lambda keras: keras.callbacks.ReduceLROnPlateau(monitor="val_loss"),
    lambda keras: keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr),
])
def test_lr_changing_keras_callbacks_are_a_config_error(tmp_path, make):
    import keras

    cb = make(keras)
    name = type(cb).__name__
    with pytest.raises(ConfigError, match=f"{name}.*learning_rate_control"):
        _manager(tmp_path / "m", callbacks=[cb])
    mgr = _manager(tmp_path / "m")
    with pytest.raises(ConfigError, match=name):
        mgr.register_callback(cb)
    cfg = {"model": str(tmp_path / "m"), "extern_data": EXTERN, "network": NET, "num_epochs": 1, "callbacks": [cb]}
    with pytest.raises(ConfigError, match=name):
        from transition.training._manager import TransitionManager

        TransitionManager.from_config(cfg)


def test_network_and_optimizer_before_epochs_are_an_error(tmp_path):
    mgr = _manager(tmp_path / "m")
    with pytest.raises(TransitionError, match="mgr.network.*epochs"):
        mgr.network  # noqa: B018
    with pytest.raises(TransitionError, match="mgr.optimizer.*epochs"):
        mgr.optimizer  # noqa: B018


def test_tf_global_generator_is_seeded_from_the_job_seed(tmp_path):
    """The manager sets TF's global generator from `seed` (reproducible; and capture_rng_state needs one under op
    determinism, see transition.store._rng)."""
    import tensorflow as tf

    tf.random.set_global_generator(tf.random.Generator.from_seed(999))
    with _manager(tmp_path / "m", num_epochs=1, seed=5) as mgr:
        for _ in mgr.epochs():
            got = tf.random.get_global_generator().state.numpy()
            mgr.end_epoch({})
    assert np.array_equal(got, tf.random.Generator.from_seed(5).state.numpy())
