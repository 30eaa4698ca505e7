"""Tests of Keras models as networks (transition.network._keras_wrap, the Keras side of _transition): split info from
the Keras graph, transitions between Keras models, names, and the errors for models that cannot be named."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from transition.errors import ConfigError
from transition.network._keras_wrap import diff_architectures, keras_architecture
from transition.network._network import Network
from transition.network._transition import transition_network
from transition.params._report import ParamStatus


def _concat_model(a_units):
    """Inputs x (5) -> Dense a (a_units) and b (8), concatenated (through Dropout and BatchNorm) into Dense(3)."""
    x = keras.Input((5,), name="x")
    b = keras.Input((8,), name="b")
    a = keras.layers.Dense(a_units, name="a")(x)
    cat = keras.layers.Concatenate(name="cat")([a, b])
    h = keras.layers.BatchNormalization(name="bn")(keras.layers.Dropout(0.1, name="drop")(cat))
    return keras.Model([x, b], keras.layers.Dense(3, name="out")(h))


def test_concatenation_rows_land_at_their_new_offsets():
    """The issue's example: a (16 -> 24 units) and b (8) concatenated into Dense(3); after the transition rows 0..15
    of the kernel are a's old rows and rows 24..31 are b's old rows."""
    old_net = Network.from_keras(_concat_model(16))
    assert old_net.layers["out"].split_info["kernel"] == [[16, 8], [3]]
    assert old_net.layers["bn"].split_info["gamma"] == [[16, 8]]
    old_kernel = np.array(old_net.layers["out"].params["kernel"].numpy())
    old_gamma = np.arange(24, dtype="float32")
    old_net.layers["bn"].params["gamma"].assign(old_gamma)
    new_model = _concat_model(24)
    fresh = np.array(new_model.get_layer("out").kernel.numpy())
    result = transition_network(old_net, new_model, epoch=2, copy_param_mode="subset")
    kernel = result.network.layers["out"].params["kernel"].numpy()
    np.testing.assert_array_equal(kernel[:16], old_kernel[:16])
    np.testing.assert_array_equal(kernel[24:32], old_kernel[16:24])
    np.testing.assert_array_equal(kernel[16:24], fresh[16:24])  # a's new rows keep the new model's init
    gamma = result.network.layers["bn"].params["gamma"].numpy()
    np.testing.assert_array_equal(gamma[24:], old_gamma[16:])
    assert result.network.keras_model is new_model
    assert {r.name: r.status for r in result.report.records}["out/kernel"] is ParamStatus.PARTLY_COPIED
    assert result.diff is not None and set(result.diff.changed) == {"a", "bn", "out"}


def test_lstm_and_gru_gate_parts_and_gates_growing():
    def lstm_model(units):
        x = keras.Input((None, 3), name="x")
        y = keras.Input((None, 2), name="y")
        h = keras.layers.LSTM(units, name="lstm")(keras.layers.Concatenate()([x, y]))
        return keras.Model([x, y], keras.layers.Dense(2, name="out")(h))

    old = Network.from_keras(lstm_model(4))
    cell = old.layers["lstm/lstm_cell"]
    assert cell.split_info == {"kernel": [[3, 2], [4, 4, 4, 4]], "recurrent_kernel": [[4], [4, 4, 4, 4]],
                               "bias": [[4, 4, 4, 4]]}
    old_bias = np.arange(16, dtype="float32")
    cell.params["bias"].assign(old_bias)
    result = transition_network(old, lstm_model(6), epoch=2, copy_param_mode="subset")
    bias = result.network.layers["lstm/lstm_cell"].params["bias"].numpy()
    for gate in range(4):  # Keras' order i, f, c, o: each gate's 4 old values at the start of its 6 new ones
        np.testing.assert_array_equal(bias[gate * 6 : gate * 6 + 4], old_bias[gate * 4 : gate * 4 + 4])

    x = keras.Input((None, 3))
    gru = Network.from_keras(keras.Model(x, keras.layers.GRU(5, name="gru")(x)))
    assert gru.layers["gru/gru_cell"].split_info["bias"] == [[2], [5, 5, 5]]  # reset_after: [2, 3 units]
    assert gru.layers["gru/gru_cell"].split_info["kernel"] == [[3], [5, 5, 5]]


def test_split_info_of_other_layers_and_nesting():
    x = keras.Input((None, 3), name="x")
    y = keras.Input((None, 2), name="y")
    cat = keras.layers.Concatenate()([x, y])
    conv = keras.layers.Conv1D(4, 3, name="conv")(cat)
    ln = keras.layers.LayerNormalization(name="ln")(keras.layers.Activation("relu")(cat))
    ein = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 4), name="ein")(ln)
    bi = keras.layers.Bidirectional(keras.layers.LSTM(3), name="bi")(cat)
    head = keras.layers.Dense(2, name="head")(bi)
    ids = keras.Input((None,), dtype="int32", name="ids")
    emb = keras.layers.Embedding(10, 4, name="emb")(ids)
    block = keras.Sequential([keras.layers.Dropout(0.1), keras.layers.Dense(4, name="inner")], name="block")
    nested = block(keras.layers.Concatenate()([emb, x]))
    net = Network.from_keras(keras.Model([x, y, ids], [conv, ein, head, nested]))
    info = net.get_param_split_info()
    assert info["conv"]["kernel"] == [[3], [3, 2], [4]] and info["conv"]["bias"] == [[4]]
    assert info["ln"] == {"gamma": [[3, 2]], "beta": [[3, 2]]}
    assert info["ein"]["kernel"] == [[3, 2], [4]]
    assert info["head"]["kernel"] == [[3, 3], [2]]  # forward and backward halves of the Bidirectional output
    assert info["bi/forward_lstm/lstm_cell"]["kernel"] == [[3, 2], [3, 3, 3, 3]]
    assert info["emb"] == {"embeddings": [[10], [4]]}
    assert info["block/inner"]["kernel"] == [[4, 3], [4]]  # through the nested model's input and its Dropout

    seq = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(2, name="l"), keras.layers.Dense(1, name="d")])
    assert Network.from_keras(seq).get_param_split_info()["l/lstm_cell"]["kernel"] == [[3], [2, 2, 2, 2]]
    img = keras.Input((4, 4, 2))
    c2 = keras.layers.Conv2D(3, 2, name="c2")(keras.layers.Concatenate()([img, img]))
    assert Network.from_keras(keras.Model(img, c2)).get_param_split_info()["c2"]["kernel"] == [[2], [2], [2, 2], [3]]


class _Sub(keras.Model):
    def __init__(self):
        super().__init__(name="sub")
        self.a = keras.layers.Dense(3, name="a")
        self.lstm = keras.layers.LSTM(2, name="lstm")

    def call(self, x):
        return self.a(self.lstm(x))


def test_subclassed_models_get_whole_axes_but_gates():
    model = _Sub()
    model(np.zeros((1, 2, 4), "float32"))
    info = Network.from_keras(model).get_param_split_info()
    assert info["a"]["kernel"] == [[2], [3]]
    assert info["lstm/lstm_cell"]["kernel"] == [[4], [2, 2, 2, 2]]


def test_architecture_equal_for_the_same_code_and_diff_for_a_wider_layer():
    assert diff_architectures(keras_architecture(_concat_model(16)), keras_architecture(_concat_model(16))).is_empty
    diff = diff_architectures(keras_architecture(_concat_model(16)), keras_architecture(_concat_model(24)))
    assert diff.changed["a"]["config.units"] == (16, 24) and not diff.added and not diff.removed


def _dense_model(units, names=("h", "o")):
    x = keras.Input((4,))
    h = keras.layers.Dense(units, name=names[0])(x)
    return keras.Model(x, keras.layers.Dense(2, name=names[1])(h))


def test_keras_transition_carries_slots_and_uses_importers():
    old = Network.from_keras(_dense_model(3))
    opt = keras.optimizers.Adam(0.1)
    opt.build(old.trainable_variables)
    opt.apply_gradients([(tf.ones_like(v), v) for v in old.trainable_variables])
    calls = []

    def importer(layer, values_dict, **kwargs):
        calls.append((layer.name, sorted(values_dict)))
        layer.params["kernel"].assign(np.full((3, 2), 7.0, "float32")[: layer.params["kernel"].shape[0]])

    result = transition_network(old, _dense_model(3), epoch=2, optimizer=opt, custom_param_importers={"o": importer})
    assert calls == [("o", ["bias", "kernel"])]
    assert np.all(result.network.layers["o"].params["kernel"].numpy() == 7.0)
    assert {r.name: r.status for r in result.report.records}["o/kernel"] is ParamStatus.CUSTOM
    assert int(result.optimizer.iterations.numpy()) == 1
    slots = {r.name: r.status for r in result.slots_report.records}
    assert slots["h/kernel [momentums]"] is ParamStatus.COPIED
    with pytest.raises(ConfigError, match="'oo'.*did you mean 'o'"):
        transition_network(result.network, _dense_model(3), epoch=3, custom_param_importers={"oo": importer})


def test_keras_transition_under_reset_keeps_the_new_models_init():
    """copy_param_mode "reset": every param of the new Keras model keeps its fresh init (same shapes, old values
    different), and the report says so; "subset" on the same pair copies."""
    old = Network.from_keras(_dense_model(3))
    for v in old.trainable_variables:
        v.assign(np.full(v.shape, 5.0, "float32"))
    new_model = _dense_model(3)
    fresh = {w.path: np.array(w.numpy()) for w in new_model.weights}
    result = transition_network(old, new_model, epoch=2, copy_param_mode="reset")
    for w in result.network.keras_model.weights:
        np.testing.assert_array_equal(w.numpy(), fresh[w.path])
    statuses = {r.name: r.status for r in result.report.records}
    assert set(statuses) == {"h/kernel", "h/bias", "o/kernel", "o/bias"}
    assert set(statuses.values()) == {ParamStatus.KEPT_INIT}
    with pytest.raises(ConfigError, match="old network was released.*pass that result.network"):
        transition_network(old, _dense_model(3), epoch=3)  # `old` gave its values to result.network
    again = Network.from_keras(_dense_model(3))
    for v in again.trainable_variables:
        v.assign(np.full(v.shape, 5.0, "float32"))
    copied = transition_network(again, _dense_model(3), epoch=2, copy_param_mode="subset")
    assert np.all(copied.network.layers["o"].params["kernel"].numpy() == 5.0)


def test_keras_transition_without_shared_names_is_an_error():
    old = Network.from_keras(_dense_model(3))
    with pytest.raises(ConfigError, match="shares no layer name.*fixed names"):
        transition_network(old, _dense_model(3, names=("dense_7", "dense_8")), epoch=2)


def test_models_that_cannot_be_named_are_clear_errors():
    with pytest.raises(ConfigError, match="not built"):
        Network.from_keras(keras.Sequential([keras.layers.Dense(2)]))

    class TwoOfOneName(keras.Model):
        def __init__(self):
            super().__init__(name="two")
            self.d1 = keras.layers.Dense(2, name="d")
            self.d2 = keras.layers.Dense(2, name="d")

        def call(self, x):
            return self.d2(self.d1(x))

    model = TwoOfOneName()
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ConfigError, match="two layers are named 'd'"):
        Network.from_keras(model)

    class TwoWeights(keras.layers.Layer):
        def build(self, shape):
            self.w1 = self.add_weight(shape=(2,), name="w")
            self.w2 = self.add_weight(shape=(3,), name="w")

        def call(self, x):
            return x

    x = keras.Input((3,))
    with pytest.raises(ConfigError, match="layer 'tw' has two variables named 'w'"):
        Network.from_keras(keras.Model(x, TwoWeights(name="tw")(x)))

    class RawVariable(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.raw = tf.Variable(np.zeros(3, "float32"), name="raw")

        def call(self, x):
            return x + self.raw

    with pytest.raises(ConfigError, match="'rv' holds a tf.Variable in attribute 'raw'.*add_weight"):
        Network.from_keras(keras.Model(x, RawVariable(name="rv")(x)))


def test_tied_weights_are_named_once_by_their_layer():
    class Tied(keras.layers.Layer):
        def __init__(self, other, **kwargs):
            super().__init__(**kwargs)
            self.other = other

        def call(self, h):
            return tf.matmul(h, self.other.kernel, transpose_b=True)

    x = keras.Input((3,))
    emb = keras.layers.Dense(4, name="emb")
    out = Tied(emb, name="tied")(emb(x))
    net = Network.from_keras(keras.Model(x, out))
    assert sorted(net.param_variables()) == ["emb/bias", "emb/kernel"]
