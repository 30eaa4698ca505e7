"""Network: building from net dicts (and its errors), the Keras model, training API, snapshots, imports,
initial values, from_keras, and a RETURNN oracle."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from transition.errors import ConfigError, ShapeMismatchError
from transition.network._extern_data import parse_extern_data
from transition.network._network import Network
from transition.params._report import ParamStatus
from transition.params._snapshot import ParamsSnapshot

EXT = {"data": {"dim": 5}, "classes": {"dim": 3, "sparse": True}}
NET = {
    "l1": {"class": "linear", "activation": "tanh", "n_out": 8, "from": ["data"]},
    "output": {"class": "softmax", "loss": "ce", "from": ["l1"], "target": "classes"},
}
RNG = np.random.default_rng(1)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Overrides the conftest fixture (clear_session costs ~0.7 s per test; not needed here)."""
    yield


def build(net_dict=NET, extern_data=EXT, **kw):
    return Network.from_dict(net_dict, extern_data=extern_data, **kw)


def batch(b=3, t=4):
    return RNG.standard_normal((b, t, 5)).astype("float32"), RNG.integers(0, 3, (b, t)).astype("int32")


def np_forward(net, x):
    v1, v2 = net.layers["l1"].get_param_values_dict(), net.layers["output"].get_param_values_dict()
    logits = np.tanh(x @ v1["W"] + v1["b"]) @ v2["W"] + v2["b"]
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True), logits


# ---------------------------------------------------------------------------------------------------------------
# building


def test_example_net_builds_with_named_layers_params_and_n_out_from_target():
    net = build()
    assert list(net.layers) == ["l1", "output"]
    assert {k: tuple(v.shape) for k, v in net.param_variables().items()} == {
        "l1/W": (5, 8), "l1/b": (8,), "output/W": (8, 3), "output/b": (3,),
    }
    assert net.get_param_split_info()["output"] == {"W": [[8], [3]], "b": [[3]]}
    assert net.layers["output"].layer_dict["target"] == "classes"


def test_string_from_list_from_and_no_from_are_equivalent():
    a = build({"output": {"class": "linear", "n_out": 2, "from": "data"}})
    b = build({"output": {"class": "linear", "n_out": 2}})
    c = build({"output": {"class": "linear", "n_out": 2, "from": ["data"]}})
    for net in (a, b, c):
        assert net.layers["output"].split_info["W"] == [[5], [2]]


def test_keras_model_single_input_and_fit_predict():
    net = build()
    assert not isinstance(net.keras_model.input, (list, dict))
    assert tuple(net.keras_model.input.shape) == (None, None, 5)
    x, y = batch(8, 4)
    before = net.keras_model.predict(x, verbose=0)
    np.testing.assert_allclose(before, np_forward(net, x)[0], rtol=1e-5, atol=1e-6)
    net.keras_model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    hist = net.keras_model.fit(x, y, epochs=5, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    after = net.keras_model.predict(x, verbose=0)
    np.testing.assert_allclose(after, np_forward(net, x)[0], rtol=1e-5, atol=1e-6)  # the named params changed
    assert not np.allclose(after, before)


def test_keras_model_inputs_are_the_extern_entries_read():
    ext = {"data": {"dim": 5}, "feat": {"dim": 2}, "classes": {"dim": 3, "sparse": True}}
    net = build({"output": {"class": "softmax", "from": ["data", "data:feat"], "target": "classes", "loss": "ce"}}, ext)
    assert net.input_keys == ("data", "feat")
    assert isinstance(net.keras_model.input, dict) and set(net.keras_model.input) == {"data", "feat"}
    x, y = batch()
    f = RNG.standard_normal((3, 4, 2)).astype("float32")
    v = net.layers["output"].get_param_values_dict()
    assert net.layers["output"].split_info["W"] == [[5, 2], [3]]
    logits = np.concatenate([x, f], -1) @ v["W"] + v["b"]
    out = net.call({"data": x, "feat": f, "classes": y})
    np.testing.assert_allclose(out, np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), rtol=1e-5)
    with pytest.raises(ConfigError, match="'feat'"):
        net.call({"data": x})


def test_extern_data_forms():
    infos = parse_extern_data({
        "a": {"dim": 4}, "b": {"shape": (6,)}, "c": {"dim": 9, "sparse": True}, "d": {"shape": (), "dim": 2, "sparse": True},
        "e": [7, 1], "f": {"shape": (None, 3), "dtype": "float64"},
    })
    assert (infos["a"].dim, infos["a"].time, infos["a"].sparse) == (4, True, False)
    assert (infos["b"].dim, infos["b"].time) == (6, False)
    assert (infos["c"].sparse, infos["c"].time, infos["c"].dtype) == (True, True, "int32")
    assert (infos["d"].sparse, infos["d"].time) == (True, False)
    assert (infos["e"].dim, infos["e"].sparse) == (7, True)
    assert (infos["f"].dim, infos["f"].dtype, infos["f"].time) == (3, "float64", True)
    net = build({"output": {"class": "linear", "n_out": 2}}, {"data": {"shape": (5,)}})
    assert tuple(net.call({"data": np.ones((4, 5), "float32")}).shape) == (4, 2)


@pytest.mark.parametrize(
    "ext, must_contain",
    [
        ({"data": {"dimm": 5}}, ["'data'", "'dimm'", "did you mean 'dim'"]),
        ({"data": {"shape": (None, None, 5)}}, ["'data'", "unsupported shape"]),
        ({"data": {"dim": 0}}, ["'data'", "'dim'"]),
        ({"data": {"dim": 5, "shape": (4,)}}, ["'data'", "differs"]),
        ({"data": {"dim": 5, "dtype": "floaty"}}, ["'data'", "floaty"]),
        ({}, ["extern_data"]),
    ],
)
def test_extern_data_errors(ext, must_contain):
    with pytest.raises(ConfigError) as err:
        parse_extern_data(ext)
    for s in must_contain:
        assert s in str(err.value)


@pytest.mark.parametrize(
    "net_dict, must_contain",
    [
        ({"output": {"class": "linear", "n_out": 2, "from": ["l0"]}}, ["'output'", "'l0'"]),
        ({"enc": {"class": "linear", "n_out": 2}, "output": {"class": "copy", "from": ["enc2"]}},
         ["'output'", "'enc2'", "did you mean 'enc'"]),
        ({"output": {"class": "copy", "from": "data:feats"}}, ["'output'", "'feats'"]),
        ({"a": {"class": "copy", "from": "b"}, "b": {"class": "copy", "from": "a"}, "output": {"class": "copy", "from": "a"}},
         ["cycle", "a -> b -> a"]),
        ({"output": {"class": "copy", "from": "output"}}, ["'output'", "cycle"]),
        ({"output": {"class": "lineer", "n_out": 2}}, ["'output'", "'lineer'", "did you mean 'linear'"]),
        ({"output": {"n_out": 2}}, ["'output'", "'class'"]),
        ({"outptu": {"class": "copy"}}, ["'output'", "did you mean 'outptu'"]),
        ({"output": {"class": "softmax", "target": "clases"}}, ["'output'", "'clases'", "did you mean 'classes'"]),
        ({"output": {"class": "softmax", "target": "classes", "loss": "cee"}}, ["'output'", "'cee'", "did you mean 'ce'"]),
        ({"output": {"class": "linear", "n_out": 3, "loss": "ce"}}, ["'output'", "'target'"]),
        ({"data": {"class": "copy"}, "output": {"class": "copy"}}, ["'data'", "rename"]),
        ({"a/b": {"class": "copy"}, "output": {"class": "copy"}}, ["'a/b'"]),
        ({"output": {"class": "copy", "from": []}}, ["'output'", "0 sources"]),
        ({"output": {"class": "softmax", "target": "classes", "loss": "ce", "loss_scale": "x"}}, ["'loss_scale'"]),
    ],
)
def test_net_dict_errors_name_the_layer(net_dict, must_contain):
    with pytest.raises(ConfigError) as err:
        build(net_dict)
    for s in must_contain:
        assert s in str(err.value)


# ---------------------------------------------------------------------------------------------------------------
# training side


def test_compute_loss_is_mean_ce_over_frames():
    net = build()
    x, y = batch()
    probs, _ = np_forward(net, x)
    expected = -np.mean(np.log(np.take_along_axis(probs, y[..., None], -1)))
    np.testing.assert_allclose(float(net.compute_loss({"data": x, "classes": y}, training=False)), expected, rtol=1e-5)


def test_compute_loss_sums_scaled_losses_and_accepts_dense_targets():
    ext = {"data": {"dim": 5}, "classes": {"dim": 3, "sparse": True}, "soft": {"dim": 3}}
    net = build({
        "l1": {"class": "linear", "activation": "tanh", "n_out": 8},
        "aux": {"class": "linear", "n_out": 3, "from": "l1", "loss": "mse", "target": "soft", "loss_scale": 0.5},
        "output": {"class": "softmax", "loss": "ce", "from": ["l1"], "target": "classes"},
    }, ext)
    assert net.input_keys == ("data",)
    x, y = batch()
    soft = RNG.dirichlet(np.ones(3), (3, 4)).astype("float32")
    probs, _ = np_forward(net, x)
    va, v1 = net.layers["aux"].get_param_values_dict(), net.layers["l1"].get_param_values_dict()
    aux = np.tanh(x @ v1["W"] + v1["b"]) @ va["W"] + va["b"]
    ce = -np.mean(np.log(np.take_along_axis(probs, y[..., None], -1)))
    mse = np.mean(np.sum((aux - soft) ** 2, -1))
    got = float(net.compute_loss({"data": x, "classes": y, "soft": soft}))
    np.testing.assert_allclose(got, ce + 0.5 * mse, rtol=1e-5)
    with pytest.raises(ConfigError, match="'soft'.*'aux'"):
        net.compute_loss({"data": x, "classes": y})


def test_ce_on_linear_softmax_and_on_probabilities_equals_numpy():
    x, y = batch()
    for out_layer in (
        {"class": "linear", "activation": "softmax", "n_out": 3, "from": "l1", "loss": "ce", "target": "classes",
         "is_output_layer": True},
        {"class": "activation", "activation": "softmax", "from": "l2", "loss": "ce", "target": "classes"},
    ):
        net = build({
            "l1": NET["l1"],
            "l2": {"class": "linear", "n_out": 3, "from": "l1"},
            "output": out_layer,
        })
        probs = np.asarray(net.call({"data": x}))
        expected = -np.mean(np.log(np.take_along_axis(probs, y[..., None], -1)))
        got = float(net.compute_loss({"data": x, "classes": y}, training=False))
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_gradient_step_with_trainable_variables_lowers_the_loss():
    net = build()
    x, y = batch(8, 4)
    inputs = {"data": x, "classes": y}
    opt = keras.optimizers.SGD(1.0)
    first = float(net.compute_loss(inputs))
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = net.compute_loss(inputs)
        grads = tape.gradient(loss, net.trainable_variables)
        assert all(g is not None for g in grads)
        opt.apply_gradients(zip(grads, net.trainable_variables))
    assert float(net.compute_loss(inputs)) < first


def test_untrainable_and_unconnected_layers_are_not_trained():
    net = build({
        "l1": {"class": "linear", "activation": "tanh", "n_out": 8, "trainable": False},
        "unused": {"class": "linear", "n_out": 2},
        "output": {"class": "softmax", "loss": "ce", "from": ["l1"], "target": "classes"},
    })
    ids = {id(v) for v in net.trainable_variables}
    assert ids == {id(net.layers["output"].params["W"]), id(net.layers["output"].params["b"])}
    assert "unused/W" in net.param_variables()


def test_compute_loss_without_loss_layer_is_an_error():
    net = build({"output": {"class": "linear", "n_out": 2}})
    with pytest.raises(ConfigError, match="loss"):
        net.compute_loss({"data": batch()[0]})


# ---------------------------------------------------------------------------------------------------------------
# snapshots and imports


def test_snapshot_views_are_read_only_and_keep_their_values_during_training():
    net = build()
    snap = net.get_params_serialized()
    w_before = np.array(snap.values_dict["l1"]["W"])
    assert not snap.values_dict["l1"]["W"].flags.writeable
    net.layers["l1"].params["W"].assign_add(np.ones((5, 8), "float32"))
    np.testing.assert_array_equal(snap.values_dict["l1"]["W"], w_before)
    copied = net.get_params_serialized(copy=True)
    assert copied.values_dict["l1"]["W"].flags.writeable
    np.testing.assert_array_equal(copied.values_dict["l1"]["W"], w_before + 1)
    assert snap.split_info == net.get_param_split_info()


def test_round_trip_and_global_train_step():
    a, b = build(), build()
    a.global_train_step = 17
    report = b.set_params_by_serialized(a.get_params_serialized())
    assert b.global_train_step == 17
    assert {r.name for r in report.by_status(ParamStatus.COPIED)} == set(a.param_variables())
    x, _ = batch()
    np.testing.assert_allclose(b.call({"data": x}), a.call({"data": x}), rtol=1e-6)


def test_release_drops_layers_and_keeps_snapshot_values():
    net = build()
    snap = net.get_params_serialized()
    w = np.array(snap.values_dict["l1"]["W"])
    net.release()
    assert net.layers == {} and net.param_variables() == {} and net.keras_model is None
    np.testing.assert_array_equal(snap.values_dict["l1"]["W"], w)


def test_unknown_layer_in_snapshot():
    net = build()
    snap = ParamsSnapshot(values_dict={"l11": {"W": np.zeros((5, 8), "float32")}})
    with pytest.raises(ConfigError, match="'l11'.*did you mean 'l1'.*ignore_non_existing"):
        net.set_params_by_serialized(snap)
    report = net.set_params_by_serialized(snap, ignore_non_existing=True)
    assert report.status_of("l11/W") is ParamStatus.IGNORED
    assert report.status_of("l1/W") is ParamStatus.KEPT_INIT


def test_unknown_param_and_shape_mismatch_errors():
    net = build()
    with pytest.raises(ConfigError, match="'l1'.*'V'"):
        net.layers["l1"].set_param_values_by_dict({"V": np.zeros((5, 8), "float32")})
    with pytest.raises(ShapeMismatchError, match=r"'l1'.*'W'.*\(4, 8\).*\(5, 8\)"):
        net.layers["l1"].set_param_values_by_dict({"W": np.zeros((4, 8), "float32")})
    with pytest.raises(ConfigError, match="'subsett'"):
        net.layers["l1"].set_param_values_by_dict({}, copy_param_mode="subsett")
    with pytest.raises(ConfigError, match="'epoc'"):
        net.layers["l1"].set_param_values_by_dict({}, epoc=3)


def test_ifpossible_keeps_init_and_reset_keeps_everything():
    net = build()
    w = net.layers["l1"].get_param_values_dict()["W"]
    report = net.layers["l1"].set_param_values_by_dict(
        {"W": np.zeros((4, 8), "float32"), "b": np.full(8, 3.0, "float32")}, copy_param_mode="ifpossible"
    )
    v = net.layers["l1"].get_param_values_dict()
    np.testing.assert_array_equal(v["W"], w)
    np.testing.assert_array_equal(v["b"], 3.0)
    assert report.status_of("l1/W") is ParamStatus.KEPT_INIT
    net.layers["l1"].set_param_values_by_dict({"b": np.full(8, 5.0, "float32")}, copy_param_mode="reset")
    np.testing.assert_array_equal(net.layers["l1"].get_param_values_dict()["b"], 3.0)


def test_subset_growing_first_of_two_sources_places_rows_by_split_info():
    old_net = {
        "a": {"class": "linear", "n_out": 3},
        "b": {"class": "linear", "n_out": 2},
        "output": {"class": "softmax", "from": ["a", "b"], "target": "classes"},
    }
    new_net = dict(old_net, a={"class": "linear", "n_out": 5})
    old = build(old_net)
    snap = old.get_params_serialized()
    new = build(new_net)
    report = new.set_params_by_serialized(snap, copy_param_mode="subset")
    w_old = snap.values_dict["output"]["W"]
    w_new = new.layers["output"].get_param_values_dict()["W"]
    np.testing.assert_array_equal(w_new[0:3], w_old[0:3])
    np.testing.assert_array_equal(w_new[5:7], w_old[3:5])  # b's rows land at 5..7
    assert report.status_of("output/W") is ParamStatus.PARTLY_COPIED
    assert report.status_of("b/W") is ParamStatus.COPIED


def test_custom_param_importer_callable_and_string():
    calls = []

    def importer(layer, values_dict, session, epoch=None, split_info=None):
        calls.append((layer.name, sorted(values_dict), session, epoch, split_info))
        layer.params["W"].assign(np.full((5, 8), 7.0, "float32"))

    net_dict = {
        "l1": dict(NET["l1"], custom_param_importer=importer),
        "output": dict(NET["output"], custom_param_importer="ifpossible"),
    }
    old = build()
    new = build(net_dict)
    snap = old.get_params_serialized()
    snap.values_dict["output"] = {"W": np.zeros((2, 3), "float32"), "b": np.ones(3, "float32")}
    report = new.set_params_by_serialized(snap, epoch=4)
    assert calls == [("l1", ["W", "b"], None, 4, {"W": [[5], [8]], "b": [[8]]})]
    np.testing.assert_array_equal(new.layers["l1"].get_param_values_dict()["W"], 7.0)
    assert report.status_of("l1/W") is ParamStatus.CUSTOM
    assert report.status_of("output/W") is ParamStatus.KEPT_INIT  # the string importer is the copy mode
    np.testing.assert_array_equal(new.layers["output"].get_param_values_dict()["b"], 1.0)
    assert new.layers["l1"].custom_param_importer is importer


# ---------------------------------------------------------------------------------------------------------------
# initial values


def test_initial_values_create_params_directly_and_are_skipped_by_the_import():
    old = build()
    snap = old.get_params_serialized()
    grown = dict(NET, l1=dict(NET["l1"], n_out=9))
    new = build(grown, initial_values=snap.values_dict)
    assert set(new.initialized_from_values) == {("output", "b")}  # l1/W, l1/b, output/W changed shape
    np.testing.assert_array_equal(new.layers["output"].get_param_values_dict()["b"], snap.values_dict["output"]["b"])
    same = build(initial_values=snap.values_dict)
    assert set(same.initialized_from_values) == {("l1", "W"), ("l1", "b"), ("output", "W"), ("output", "b")}
    x, _ = batch()
    np.testing.assert_allclose(same.call({"data": x}), old.call({"data": x}), rtol=1e-6)
    report = same.set_params_by_serialized(snap)
    assert all(r.reason == "created from the old value" for r in report.records)
    # training the new network does not touch the snapshot nor the old network
    w_old = np.array(snap.values_dict["l1"]["W"])
    same.layers["l1"].params["W"].assign_add(np.ones((5, 8), "float32"))
    np.testing.assert_array_equal(snap.values_dict["l1"]["W"], w_old)
    np.testing.assert_array_equal(old.layers["l1"].get_param_values_dict()["W"], w_old)


def test_initial_values_from_plain_arrays_and_reset_reinitialises():
    w = RNG.standard_normal((5, 8)).astype("float32")
    net = build(initial_values={"l1": {"W": w}, "nonexistent": {"X": np.zeros(1)}})
    assert net.initialized_from_values == (("l1", "W"),)
    w[...] = 0  # the variable does not share memory with the caller's array
    assert np.abs(net.layers["l1"].get_param_values_dict()["W"]).sum() > 0
    w2 = RNG.standard_normal((5, 8)).astype("float32")
    net2 = build(initial_values={"l1": {"W": w2}})
    report = net2.layers["l1"].set_param_values_by_dict({"W": w2}, copy_param_mode="reset")
    assert report.status_of("l1/W") is ParamStatus.KEPT_INIT
    assert not np.allclose(net2.layers["l1"].get_param_values_dict()["W"], w2)


def test_replaced_snapshot_entry_is_copied_not_skipped():
    old = build()
    snap = old.get_params_serialized()
    new = build(initial_values=snap.values_dict)
    edited = {k: dict(v) for k, v in snap.values_dict.items()}
    edited["l1"]["b"] = np.full(8, 2.0, "float32")
    report = new.set_params_by_serialized(ParamsSnapshot(values_dict=edited, split_info=snap.split_info))
    np.testing.assert_array_equal(new.layers["l1"].get_param_values_dict()["b"], 2.0)
    assert [r.reason for r in report.records if r.name == "l1/b"] == [""]


def test_initial_value_not_imported_after_all_gets_its_fresh_init():
    old = build()
    for layer in ("l1", "output"):
        old.layers[layer].params["b"].assign(np.ones(tuple(old.layers[layer].params["b"].shape), "float32"))
    snap = old.get_params_serialized()
    new = build(initial_values=snap.values_dict)
    partial = {"output": {"W": snap.values_dict["output"]["W"]}}  # lacks layer l1 and param output/b
    report = new.set_params_by_serialized(ParamsSnapshot(values_dict=partial, split_info=snap.split_info))
    assert report.status_of("l1/W") is ParamStatus.KEPT_INIT and report.status_of("output/b") is ParamStatus.KEPT_INIT
    vals = {name: v.numpy() for name, v in new.param_variables().items()}
    assert not np.array_equal(vals["l1/W"], snap.values_dict["l1"]["W"])  # re-initialised (glorot), not the old
    np.testing.assert_array_equal(vals["l1/b"], 0)
    np.testing.assert_array_equal(vals["output/b"], 0)
    np.testing.assert_array_equal(vals["output/W"], snap.values_dict["output"]["W"])


def test_large_initial_value_takes_the_fast_path():
    w = RNG.standard_normal((300, 400)).astype("float32")  # above the small-array threshold
    net = build({"output": {"class": "linear", "n_out": 400}}, {"data": {"dim": 300}}, initial_values={"output": {"W": w}})
    np.testing.assert_array_equal(net.layers["output"].get_param_values_dict()["W"], w)
    net.layers["output"].params["W"].assign_add(np.ones_like(w))
    np.testing.assert_array_equal(net.layers["output"].get_param_values_dict()["W"], w + 1)


# ---------------------------------------------------------------------------------------------------------------
# from_keras


def test_from_keras_nested_layers_and_param_paths():
    inner = keras.Sequential([keras.layers.Dense(4, name="dense")], name="block")
    inp = keras.Input((3,), name="x")
    out = keras.layers.Dense(2, name="head")(inner(inp))
    model = keras.Model(inp, out)
    net = Network.from_keras(model)
    assert set(net.layers) == {"block", "block/dense", "head"}
    assert set(net.param_variables()) == {"block/dense/kernel", "block/dense/bias", "head/kernel", "head/bias"}
    snap = net.get_params_serialized()
    net2 = Network.from_keras(keras.models.clone_model(model))
    report = net2.set_params_by_serialized(snap)
    assert len(report.by_status(ParamStatus.COPIED)) == 4
    x = RNG.standard_normal((2, 3)).astype("float32")
    np.testing.assert_allclose(net2.call({"data": x}), model(x), rtol=1e-6)


def test_from_keras_lstm_split_info_and_errors():
    inp = keras.Input((None, 3))
    model = keras.Model(inp, keras.layers.LSTM(2, name="lstm")(inp))
    net = Network.from_keras(model)
    cell = next(name for name in net.layers if name.startswith("lstm/"))  # Keras puts the weights in the cell
    assert net.layers[cell].split_info["kernel"] == [[3], [2, 2, 2, 2]]
    assert net.layers[cell].split_info["recurrent_kernel"] == [[2], [2, 2, 2, 2]]
    assert net.layers[cell].split_info["bias"] == [[2, 2, 2, 2]]
    with pytest.raises(ConfigError, match="keras.Model"):
        Network.from_keras(keras.layers.Dense(2))


# ---------------------------------------------------------------------------------------------------------------
# RETURNN oracle

_ORACLE = textwrap.dedent(
    """
    import json, sys, numpy as np, tensorflow as tf
    from returnn.config import Config
    from returnn.tf.network import TFNetwork
    from returnn.util.basic import BehaviorVersion
    tf1 = tf.compat.v1
    net_dict, extern, prefix = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    BehaviorVersion.set(12)
    with tf1.Graph().as_default():
        net = TFNetwork(config=Config({"extern_data": extern, "behavior_version": 12}), train_flag=False)
        net.construct_from_dict(net_dict)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            for v in tf1.global_variables():  # non-trivial biases, scales and running stats so that they matter
                s.run(v.assign(v + tf.abs(tf.random.normal(tf.shape(v), stddev=0.3, seed=1))))
            tf1.train.Saver().save(s, prefix)
            data = net.extern_data.data["data"]
            x = np.random.default_rng(0).standard_normal((2, 4, extern["data"]["dim"])).astype("float32")
            y = s.run(net.get_default_output_layer().output.placeholder,
                      feed_dict={data.placeholder: x, data.size_placeholder[0]: [4, 4]})
            np.savez(prefix + ".io.npz", x=x, y=y)
    """
)


@pytest.mark.oracle
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("returnn") is None, reason="returnn is not installed")
def test_returnn_checkpoint_loads_by_name_and_reproduces_returnn_output(tmp_path):
    net_dict = {
        "a": {"class": "linear", "activation": "tanh", "n_out": 4, "from": "data"},
        "b": {"class": "linear", "activation": "relu", "n_out": 3, "from": "data"},
        "ln": {"class": "layer_norm", "from": "a"},
        "bn": {"class": "batch_norm", "from": "b", "masked_time": True},
        "output": {"class": "softmax", "loss": "ce", "from": ["ln", "bn"], "target": "classes"},
    }
    prefix = str(tmp_path / "model")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", _ORACLE, json.dumps(net_dict), json.dumps(EXT), prefix],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, f"RETURNN could not build the net: {proc.stderr[-2000:]}"
    reader = tf.train.load_checkpoint(prefix)
    net = build(net_dict)
    values: dict[str, dict[str, np.ndarray]] = {}
    for name in reader.get_variable_to_shape_map():
        layer, _, param = name.partition("/")
        if layer in net.layers:
            values.setdefault(layer, {})[param] = reader.get_tensor(name)
    report = net.set_params_by_serialized(ParamsSnapshot(values_dict=values))
    assert {r.name for r in report.by_status(ParamStatus.COPIED)} == set(net.param_variables())
    io = np.load(prefix + ".io.npz", allow_pickle=False)
    np.testing.assert_allclose(net.call({"data": io["x"]}), io["y"], rtol=1e-5, atol=1e-6)


def test_outputs_are_output_first_then_the_layers_with_a_loss_or_is_output_layer():
    ext = {"data": {"dim": 3}, "classes": {"dim": 2, "sparse": True}}
    net = build({"aux": {"class": "softmax", "from": "h", "loss": "ce", "target": "classes"},
                 "h": {"class": "linear", "activation": "tanh", "n_out": 4},
                 "probe": {"class": "copy", "from": "h", "is_output_layer": True},
                 "output": {"class": "softmax", "from": "h", "loss": "ce", "target": "classes"}}, ext)
    assert net.output_layers == ("output", "aux", "probe")
    x = RNG.standard_normal((2, 5, 3)).astype("float32")
    outs = net.keras_model(x)
    assert isinstance(outs, list) and [tuple(o.shape) for o in outs] == [(2, 5, 2), (2, 5, 2), (2, 5, 4)]
    np.testing.assert_allclose(net.call({"data": x})[0], outs[0], rtol=1e-6)
    only = build({"l": {"class": "linear", "n_out": 2}, "enc_out": {"class": "softmax", "from": "l", "loss": "ce",
                                                                     "target": "classes"}}, ext)
    assert only.output_layers == ("enc_out",) and tuple(only.keras_model(x).shape) == (2, 5, 2)
    with pytest.raises(ConfigError, match=r"no output.*'is_output_layer'"):
        build({"l": {"class": "linear", "n_out": 2}}, ext)
    with pytest.raises(ConfigError, match=r"'is_output_layer' must be True or False"):
        build({"output": {"class": "linear", "n_out": 2, "is_output_layer": "yes"}}, ext)
