"""Layer classes: param names / shapes / split info as RETURNN's, forward passes against numpy, option errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from transition.errors import ConfigError
from transition.network._fast_init import draw_init
from transition.network._layers_base import (
    REQUIRED,
    DataInfo,
    NetLayer,
    register_layer_class,
)
from transition.network._network import Network

EXT = {"data": {"dim": 5}, "classes": {"dim": 3, "sparse": True}}
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Overrides the conftest fixture: keras.backend.clear_session() costs ~0.7 s per test and these tests need no
    clean Keras name space."""
    yield


def build(net_dict, extern_data=EXT, **kw):
    return Network.from_dict(net_dict, extern_data=extern_data, **kw)


def values(net, layer):
    return net.layers[layer].get_param_values_dict()


def x_data(b=2, t=4, d=5):
    return RNG.standard_normal((b, t, d)).astype("float32")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------------
# params and split info


def test_linear_params_and_split_info_per_source():
    net = build({
        "a": {"class": "linear", "n_out": 3},
        "b": {"class": "linear", "n_out": 2},
        "output": {"class": "linear", "n_out": 4, "from": ["a", "b"]},
    })
    layer = net.layers["output"]
    assert {p: tuple(v.shape) for p, v in layer.params.items()} == {"W": (5, 4), "b": (4,)}
    assert layer.split_info == {"W": [[3, 2], [4]], "b": [[4]]}
    assert np.all(values(net, "output")["b"] == 0)


def test_linear_without_bias_has_only_w():
    net = build({"output": {"class": "linear", "n_out": 4, "with_bias": False}})
    assert list(net.layers["output"].params) == ["W"]


@pytest.mark.parametrize(
    "layer_dict, expected",
    [
        ({"class": "softmax", "target": "classes"}, {"W": (5, 3), "b": (3,)}),
        ({"class": "layer_norm"}, {"scale": (5,), "bias": (5,)}),
        (
            {"class": "batch_norm"},
            {"batch_norm/v2_mean": (5,), "batch_norm/v2_variance": (5,), "batch_norm/v2_gamma": (5,),
             "batch_norm/v2_beta": (5,)},
        ),
        ({"class": "conv", "filter_size": [3], "n_out": 6}, {"W": (3, 5, 6), "bias": (6,)}),
        ({"class": "rec", "unit": "lstm", "n_out": 2}, {"rec/W": (5, 8), "rec/W_re": (2, 8), "rec/b": (8,)}),
        ({"class": "rec", "unit": "nativelstm", "n_out": 2}, {"rec/W": (5, 8), "rec/W_re": (2, 8), "rec/b": (8,)}),
        ({"class": "copy"}, {}),
        ({"class": "pool", "mode": "max", "pool_size": [2]}, {}),
        ({"class": "reduce", "mode": "max", "axis": "T"}, {}),
    ],
)
def test_param_names_and_shapes_follow_returnn(layer_dict, expected):
    net = build({"output": layer_dict}, behavior_version=12)
    assert {p: tuple(v.shape) for p, v in net.layers["output"].params.items()} == expected
    assert set(net.param_variables()) == {f"output/{p}" for p in expected}


def test_lstm_split_info_has_four_gates_and_source_parts():
    net = build({
        "a": {"class": "linear", "n_out": 3},
        "b": {"class": "copy"},
        "output": {"class": "rec", "unit": "lstm", "n_out": 2, "from": ["a", "b"]},
    })
    assert net.layers["output"].split_info == {
        "rec/W": [[3, 5], [2, 2, 2, 2]], "rec/W_re": [[2], [2, 2, 2, 2]], "rec/b": [[2, 2, 2, 2]],
    }


def test_conv_and_norm_split_info_follow_sources():
    net = build({
        "a": {"class": "linear", "n_out": 3},
        "c": {"class": "conv", "filter_size": 2, "n_out": 4, "from": ["a", "data"]},
        "output": {"class": "layer_norm", "from": ["a", "data"]},
    })
    assert net.layers["c"].split_info["W"] == [[2], [3, 5], [4]]
    assert net.layers["output"].split_info == {"scale": [[3, 5]], "bias": [[3, 5]]}


def test_batch_norm_stats_are_not_trainable():
    net = build({"output": {"class": "batch_norm"}})
    trainable = {id(v) for v in net.trainable_variables}
    p = net.layers["output"].params
    assert id(p["batch_norm/v2_gamma"]) in trainable and id(p["batch_norm/v2_beta"]) in trainable
    assert id(p["batch_norm/v2_mean"]) not in trainable and id(p["batch_norm/v2_variance"]) not in trainable


# ---------------------------------------------------------------------------------------------------------------
# forward passes


def test_linear_and_softmax_forward_match_numpy():
    net = build({
        "l1": {"class": "linear", "activation": "tanh", "n_out": 4},
        "output": {"class": "softmax", "from": "l1", "target": "classes"},
    })
    x = x_data()
    v1, v2 = values(net, "l1"), values(net, "output")
    net.layers["l1"].params["b"].assign(RNG.standard_normal(4).astype("float32"))
    v1 = values(net, "l1")
    expected = softmax(np.tanh(x @ v1["W"] + v1["b"]) @ v2["W"] + v2["b"])
    np.testing.assert_allclose(net.call({"data": x}), expected, rtol=1e-5, atol=1e-6)


def test_linear_on_sparse_input_is_an_embedding():
    ext = {"data": {"dim": 7, "sparse": True}, "classes": {"dim": 3, "sparse": True}}
    net = build({"output": {"class": "linear", "n_out": 4, "activation": None}}, ext)
    p = net.layers["output"].params
    assert tuple(p["W"].shape) == (7, 4)
    p["b"].assign(np.arange(4, dtype="float32"))
    ids = np.array([[0, 6, 3], [2, 2, 1]], dtype="int32")
    v = values(net, "output")
    np.testing.assert_allclose(net.call({"data": ids}), v["W"][ids] + v["b"], rtol=1e-6)


def test_copy_concatenates_and_combine_kinds():
    net = build({
        "a": {"class": "linear", "n_out": 5, "activation": "relu"},
        "cat": {"class": "copy", "from": ["a", "data"]},
        "add": {"class": "combine", "kind": "add", "from": ["a", "data"]},
        "sub": {"class": "combine", "kind": "sub", "from": ["a", "data"]},
        "mul": {"class": "combine", "kind": "mul", "from": ["a", "data"], "activation": "tanh"},
        "output": {"class": "copy", "from": ["cat", "add", "sub", "mul"]},
    })
    x = x_data()
    va = values(net, "a")
    a = np.maximum(x @ va["W"] + va["b"], 0)
    expected = np.concatenate([a, x, a + x, a - x, np.tanh(a * x)], axis=-1)
    np.testing.assert_allclose(net.call({"data": x}), expected, rtol=1e-5, atol=1e-6)


def test_activation_layer():
    net = build({"output": {"class": "activation", "activation": "sigmoid"}})
    x = x_data()
    np.testing.assert_allclose(net.call({"data": x}), sigmoid(x), rtol=1e-5)


def test_layer_norm_forward():
    net = build({"output": {"class": "layer_norm"}})
    net.layers["output"].params["scale"].assign(np.arange(1, 6, dtype="float32"))
    net.layers["output"].params["bias"].assign(np.full(5, 0.5, "float32"))
    x = x_data()
    norm = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(net.call({"data": x}), norm * np.arange(1, 6) + 0.5, rtol=1e-4, atol=1e-5)


def test_batch_norm_uses_batch_stats_in_training_and_running_stats_otherwise():
    net = build({"output": {"class": "batch_norm", "momentum": 0.5}})
    x = x_data(3, 4)
    eval_out = net.call({"data": x}, training=False)
    np.testing.assert_allclose(eval_out, x / np.sqrt(1 + 1e-3), rtol=1e-5)  # running mean 0, var 1
    train_out = net.call({"data": x}, training=True)
    mean, var = x.mean((0, 1)), x.var((0, 1))
    np.testing.assert_allclose(train_out, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)
    v = values(net, "output")
    np.testing.assert_allclose(v["batch_norm/v2_mean"], 0.5 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v["batch_norm/v2_variance"], 0.5 + 0.5 * var, rtol=1e-5)


def test_dropout_only_in_training():
    ext = {"data": {"shape": (2000,)}}
    net = build({"output": {"class": "dropout", "dropout": 0.5}}, ext)
    x = np.ones((2, 2000), "float32")
    np.testing.assert_array_equal(net.call({"data": x}, training=False), x)
    y = np.asarray(net.call({"data": x}, training=True))
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6


@pytest.mark.parametrize("padding, strides", [("same", 1), ("valid", 1), ("valid", 2)])
def test_conv_forward(padding, strides):
    net = build({"output": {"class": "conv", "filter_size": 3, "n_out": 2, "padding": padding, "strides": strides,
                            "activation": "relu"}}, behavior_version=10)
    net.layers["output"].params["bias"].assign(np.array([0.1, -0.2], "float32"))
    v = values(net, "output")
    x = x_data(2, 7)
    xp = np.pad(x, [(0, 0), (1, 1), (0, 0)]) if padding == "same" else x
    steps = range(0, xp.shape[1] - 2, strides)
    expected = np.stack([np.einsum("bkc,kco->bo", xp[:, t : t + 3], v["W"]) for t in steps], axis=1) + v["bias"]
    np.testing.assert_allclose(net.call({"data": x}), np.maximum(expected, 0), rtol=1e-4, atol=1e-5)


def _numpy_lstm(x, w, w_re, b, reverse=False):
    n = w_re.shape[0]
    bsz, t_len, _ = x.shape
    c, h = np.zeros((bsz, n)), np.zeros((bsz, n))
    out = np.zeros((bsz, t_len, n))
    steps = range(t_len - 1, -1, -1) if reverse else range(t_len)
    for t in steps:
        g = x[:, t] @ w + h @ w_re + b
        cell_in, in_gate, fgt_gate, out_gate = np.split(g, 4, axis=-1)  # RETURNN NativeLstm2 order
        c = sigmoid(fgt_gate) * c + sigmoid(in_gate) * np.tanh(cell_in)
        h = sigmoid(out_gate) * np.tanh(c)
        out[:, t] = h
    return out


@pytest.mark.parametrize("direction", [1, -1])
def test_lstm_forward_matches_native_lstm_gate_order(direction):
    net = build({"output": {"class": "rec", "unit": "lstm", "n_out": 3, "direction": direction}})
    net.layers["output"].params["rec/b"].assign(RNG.standard_normal(12).astype("float32"))
    v = values(net, "output")
    x = x_data(2, 5)
    expected = _numpy_lstm(x, v["rec/W"], v["rec/W_re"], v["rec/b"], reverse=direction == -1)
    np.testing.assert_allclose(net.call({"data": x}), expected, rtol=1e-4, atol=1e-5)


def test_hash_keys_are_comments():
    net = build({"output": {"class": "linear", "n_out": 2, "#note": "anything", "#repetition": 3}})
    assert tuple(net.layers["output"].params["W"].shape) == (5, 2)


# ---------------------------------------------------------------------------------------------------------------
# option errors


@pytest.mark.parametrize(
    "layer_dict, must_contain",
    [
        ({"class": "linear", "n_out": 2, "activaton": "tanh"}, ["'output'", "'activaton'", "did you mean 'activation'"]),
        ({"class": "softmax", "target": "classes", "activation": "tanh"}, ["'output'", "'activation'"]),
        ({"class": "copy", "with_bias": True}, ["'output'", "'with_bias'"]),
        ({"class": "combine"}, ["'output'", "'kind'", "missing"]),
        ({"class": "combine", "kind": "div", "from": ["data", "data"]}, ["'kind'", "'div'"]),
        ({"class": "combine", "kind": "sub", "from": ["data", "data", "data"]}, ["'kind'", "exactly 2"]),
        ({"class": "linear", "n_out": 2, "activation": "tanhh"}, ["'tanhh'", "did you mean 'tanh'"]),
        ({"class": "linear", "n_out": 0}, ["'n_out'", "0"]),
        ({"class": "linear"}, ["'n_out'", "target"]),
        ({"class": "linear", "n_out": 2, "dropout": 1.5}, ["'dropout'", "1.5"]),
        ({"class": "copy", "n_out": 7}, ["n_out=7", "5"]),
        ({"class": "conv", "n_out": 2, "filter_size": 3, "padding": "full"}, ["'padding'", "'full'"]),
        ({"class": "conv", "n_out": 2, "filter_size": [3, 3]}, ["'filter_size'", "1-D"]),
        ({"class": "rec", "unit": "gru", "n_out": 2}, ["'unit'", "'gru'"]),
        ({"class": "rec", "unit": "lstm", "n_out": 2, "direction": 0}, ["'direction'"]),
        ({"class": "linear", "n_out": 2, "trainable": "no"}, ["'trainable'"]),
        ({"class": "batch_norm", "momentum": 2}, ["'momentum'"]),
    ],
)
def test_option_errors_name_layer_and_option(layer_dict, must_contain):
    with pytest.raises(ConfigError) as err:
        build({"output": layer_dict})
    for s in must_contain:
        assert s in str(err.value)


def test_sparse_source_into_dense_only_layer_is_an_error():
    with pytest.raises(ConfigError, match="'output'.*sparse"):
        build({"output": {"class": "layer_norm", "from": "data:classes"}})


def test_conv_without_time_axis_is_an_error():
    with pytest.raises(ConfigError, match="'output'.*time axis"):
        build({"output": {"class": "conv", "n_out": 2, "filter_size": 3}}, {"data": {"shape": (5,)}})


def test_combine_needs_equal_dims():
    with pytest.raises(ConfigError, match=r"'output'.*\[4, 5\]"):
        build({"a": {"class": "linear", "n_out": 4}, "output": {"class": "combine", "kind": "add", "from": ["a", "data"]}})


# ---------------------------------------------------------------------------------------------------------------
# user layer classes


class ScaleLayer(NetLayer):
    """y = x * s, one param "s" per feature (a user layer class following the documented protocol)."""

    layer_options = {"init": 2.0, "mode": REQUIRED}

    def create_params(self):
        self.add_param("s", (self.in_dim(),), "ones", split_info=[self.source_dims()])

    def forward(self, inputs, training, logits=False):
        return self.concat(inputs) * self.params["s"] * float(self.opts["init"])


def test_user_layer_class_registers_and_builds():
    register_layer_class("my_scale", ScaleLayer)
    net = build({"a": {"class": "linear", "n_out": 2}, "output": {"class": "my_scale", "mode": 1, "from": ["a", "data"]}})
    layer = net.layers["output"]
    assert layer.split_info == {"s": [[2, 5]]}
    x = x_data()
    va = values(net, "a")
    np.testing.assert_allclose(
        net.call({"data": x}), 2.0 * np.concatenate([x @ va["W"] + va["b"], x], -1), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ConfigError, match="'output'.*'mode'"):
        build({"output": {"class": "my_scale"}})
    with pytest.raises(ConfigError, match="'output'.*'inti'.*did you mean 'init'"):
        build({"output": {"class": "my_scale", "mode": 1, "inti": 3.0}})


def test_register_layer_class_rejects_non_layer_classes():
    with pytest.raises(ConfigError, match="'bad'.*NetLayer"):
        register_layer_class("bad", dict)


def test_data_info_shape():
    assert DataInfo(5).shape == (None, 5)
    assert DataInfo(5, sparse=True).shape == (None,)
    assert DataInfo(5, time=False).shape == (5,)


# ---------------------------------------------------------------------------------------------------------------
# symbolic outputs without tracing, fast random init

SPEC_CASES = [
    ({"class": "linear", "n_out": 3, "activation": "relu"}, "data"),
    ({"class": "linear", "n_out": 3}, "classes"),  # embedding of int ids
    ({"class": "softmax", "target": "classes"}, "data"),
    ({"class": "copy"}, "classes"),
    ({"class": "copy", "dropout": 0.1}, "data"),
    ({"class": "dropout", "dropout": 0.5}, "data"),
    ({"class": "activation", "activation": "tanh"}, "data"),
    ({"class": "layer_norm"}, "data"),
    ({"class": "batch_norm"}, "data"),
    ({"class": "conv", "filter_size": 3, "n_out": 4, "padding": "valid", "strides": 2}, "data"),
    ({"class": "conv", "filter_size": 3, "n_out": 4}, "data"),
    ({"class": "rec", "unit": "lstm", "n_out": 2}, "data"),
    ({"class": "linear", "n_out": 3}, "frame"),  # no time axis
]


@pytest.mark.parametrize("layer_dict, src", SPEC_CASES)
@pytest.mark.parametrize("time_len", [None, 7])
def test_symbolic_output_spec_equals_the_traced_one(layer_dict, src, time_len):
    ext = dict(EXT, frame={"shape": (5,)})
    net = build({"output": dict(layer_dict, **{"from": f"data:{src}"})}, ext)
    layer = net.layers["output"].keras_layer
    info = layer.sources[0]
    shape = (None,) + ((time_len,) if info.time else ()) + (() if info.sparse else (info.dim,))
    x = keras.KerasTensor(shape, dtype="int32" if info.sparse else "float32")
    fast = layer.compute_output_spec([x])
    traced = keras.layers.Layer.compute_output_spec(layer, [x])
    assert fast.dtype == traced.dtype
    if type(layer).keeps_time_length:
        assert fast.shape == traced.shape
    else:  # the time length is left unknown
        assert len(fast.shape) == len(traced.shape) and fast.shape[2:] == traced.shape[2:] and fast.shape[1] is None


class CountingLayer(NetLayer):
    """The identity, counting the calls of forward."""

    calls = 0

    def forward(self, inputs, training, logits=False):
        type(self).calls += 1
        return self.concat(inputs)


class TracedCountingLayer(CountingLayer):
    trace_output_spec = True


class TracedLengthsLayer(NetLayer):
    """The identity, traced, taking the sequence lengths; counts the calls of forward."""

    trace_output_spec = True
    calls = 0

    def forward(self, inputs, training, logits=False, seq_len=None):
        type(self).calls += 1
        return self.concat(inputs)


def test_building_does_not_trace_forward_unless_asked():
    register_layer_class("counting", CountingLayer)
    register_layer_class("traced_counting", TracedCountingLayer)
    CountingLayer.calls = TracedCountingLayer.calls = 0
    net = build({"a": {"class": "counting"}, "output": {"class": "linear", "n_out": 2, "from": "a"}})
    assert CountingLayer.calls == 0
    net.call({"data": x_data()})
    assert CountingLayer.calls == 1
    build({"output": {"class": "traced_counting"}})
    assert TracedCountingLayer.calls == 1  # the graph with sequence lengths reuses its output: it takes no lengths
    register_layer_class("traced_lengths", TracedLengthsLayer)
    TracedLengthsLayer.calls = 0
    build({"output": {"class": "traced_lengths"}})
    assert TracedLengthsLayer.calls == 2  # once per graph: the outputs, and the outputs with sequence lengths


def test_fast_init_is_reproducible_with_keras_seed_and_other_inits_are_keras():
    d = {"output": {"class": "linear", "n_out": 300}}
    ws = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        ws.append(values(build(d, {"data": {"dim": 400}}), "output")["W"])
    np.testing.assert_array_equal(ws[0], ws[1])
    assert not np.array_equal(ws[0], values(build(d, {"data": {"dim": 400}}), "output")["W"])
    neg = keras.initializers.GlorotUniform(seed=-5)  # any int seed works
    assert np.abs(np.asarray(draw_init(neg, (300, 400)))).max() <= np.sqrt(6 / 700)
    np.testing.assert_array_equal(np.asarray(draw_init("zeros", (300, 400))), 0)
    normal = keras.initializers.GlorotNormal(seed=3)
    np.testing.assert_array_equal(np.asarray(draw_init(normal, (20, 30))), np.asarray(normal((20, 30))))


# ---------------------------------------------------------------------------------------------------------------
# Keras config: a net dict network saves as .keras and loads back


def test_net_dict_network_saves_as_keras_file_and_loads_back(tmp_path):
    extern = {"data": {"dim": 4}, "classes": {"dim": 3, "sparse": True}}
    net_dict = {
        "l1": {"class": "linear", "activation": "tanh", "n_out": 5, "from": "data", "dropout": 0.1},
        "lstm": {"class": "rec", "unit": "lstm", "n_out": 3, "from": "l1"},
        "ln": {"class": "layer_norm", "from": ["lstm", "l1"]},
        "output": {"class": "softmax", "loss": "ce", "from": "ln", "target": "classes",
                   "custom_param_importer": lambda **kwargs: None},  # a training-time hook: not in the file
    }
    net = Network.from_dict(net_dict, extern)
    for var in net.param_variables().values():  # non-trivial values, so that a lost or reordered one shows
        var.assign(var + 0.1)
    path = str(tmp_path / "net.keras")
    net.keras_model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype("float32")
    np.testing.assert_array_equal(loaded(x), net.keras_model(x))
    assert [type(layer).__name__ for layer in loaded.layers[1:]] == ["LinearLayer", "RecLayer", "LayerNormLayer",
                                                                     "SoftmaxLayer"]
    assert "custom_param_importer" not in loaded.get_layer("output").layer_dict
    bad = Network.from_dict({"output": {"class": "softmax", "from": "data", "target": "classes",
                                        "#note": object()}}, extern)
    with pytest.raises(ConfigError, match="'output': option '#note' holds a object"):
        bad.keras_model.save(str(tmp_path / "bad.keras"))


# --------------------------------------------------------------------------------------------------------------
# sequence lengths


@pytest.mark.parametrize("direction", [1, -1])
def test_lstm_honours_sequence_lengths_in_both_directions(direction):
    net = build({"output": {"class": "rec", "unit": "lstm", "n_out": 3, "direction": direction}})
    net.layers["output"].params["rec/b"].assign(RNG.standard_normal(12).astype("float32"))
    v = values(net, "output")
    x, lens = x_data(3, 6), np.array([6, 2, 4], "int32")
    y = np.asarray(net.call({"data": x, "data:seq_len": lens}))
    for i, n in enumerate(lens):  # each sequence as if alone; the backward one starts at its own last frame
        expected = _numpy_lstm(x[i : i + 1, :n], v["rec/W"], v["rec/W_re"], v["rec/b"], reverse=direction == -1)
        np.testing.assert_allclose(y[i, :n], expected[0], rtol=1e-4, atol=1e-5)
        assert not y[i, n:].any()  # 0 past the end, as RETURNN's native LSTM


def test_pool_and_reduce_over_time_with_lengths():
    net = build({"p": {"class": "pool", "mode": "max", "pool_size": [2]},
                 "r": {"class": "reduce", "mode": "mean", "axis": "T", "from": "data", "is_output_layer": True},
                 "output": {"class": "reduce", "mode": "max", "axis": "T", "from": "p"}})
    x, lens = x_data(2, 7), np.array([7, 3], "int32")
    outs = net.call({"data": x, "data:seq_len": lens})
    lengths = net.output_lengths({"data": x, "data:seq_len": lens})
    assert lengths == {"output": None, "r": None}
    pooled = [x[i, : (n // 2) * 2].reshape(-1, 2, 5).max(axis=1) for i, n in enumerate(lens)]  # "valid", strides 2
    np.testing.assert_allclose(outs[0], np.stack([p.max(axis=0) for p in pooled]), rtol=1e-6)
    np.testing.assert_allclose(outs[1], np.stack([x[i, :n].mean(axis=0) for i, n in enumerate(lens)]), rtol=1e-5)


@pytest.mark.parametrize("layer_dict, must_contain", [
    ({"class": "pool", "mode": "median", "pool_size": [2]}, ["'mode'", "'max' or 'avg'"]),
    ({"class": "pool", "mode": "max", "pool_size": [2, 2]}, ["'pool_size'", "1-D over time"]),
    ({"class": "pool", "mode": "max", "pool_size": 3, "strides": 2, "dilation_rate": 2}, ["'dilation_rate'"]),
    ({"class": "reduce", "mode": "max", "axis": "F"}, ["'axis'", "axis='T'"]),
    ({"class": "reduce", "mode": "prod", "axis": "T"}, ["'mode'", "'logsumexp'"]),
    ({"class": "reduce", "mode": "max", "axis": "T", "axes": "T"}, ["not both"]),
])
def test_pool_and_reduce_option_errors_name_the_option(layer_dict, must_contain):
    with pytest.raises(ConfigError) as raised:
        build({"output": layer_dict})
    for part in must_contain:
        assert part in str(raised.value), str(raised.value)


def test_conv_with_bias_follows_behavior_version():
    conv = {"class": "conv", "filter_size": 2, "n_out": 3}
    assert set(build({"output": conv}).layers["output"].params) == {"W"}  # not set: 0, as RETURNN
    assert set(build({"output": conv}, behavior_version=9).layers["output"].params) == {"W"}
    assert set(build({"output": conv}, behavior_version=10).layers["output"].params) == {"W", "bias"}
    assert set(build({"output": dict(conv, with_bias=True)}).layers["output"].params) == {"W", "bias"}
    with pytest.raises(ConfigError, match="behavior_version"):
        build({"output": conv}, behavior_version=-1)
