"""Property tests of "preserve" / "net2wider" over random stacks of linear / relu / tanh layers, widened and
deepened, for net dicts and Keras models alike: the outputs before and after agree to 1e-5, training after the
growth decreases the loss, and a refused growth gives the reason (hypothesis; tiny nets, bounded examples)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transition.errors import ConfigError
from transition.network._network import Network
from transition.network._transition import transition_network
from transition.params._report import ParamStatus

ED = {"data": {"shape": (3,)}, "classes": {"dim": 3, "sparse": True, "shape": ()}}
ACTS = [None, "relu", "tanh"]
SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def growths(draw):
    """An old stack (widths, activations), how much each layer widens, and maybe a new layer inserted at a place
    (0: right after the input) with an activation and its width relative to the old width below it."""
    depth = draw(st.integers(1, 3))
    widths = draw(st.lists(st.integers(1, 5), min_size=depth, max_size=depth))
    acts = draw(st.lists(st.sampled_from(ACTS), min_size=depth, max_size=depth))
    widen = draw(st.lists(st.integers(0, 3), min_size=depth, max_size=depth))
    new_layer = st.tuples(st.integers(0, depth), st.sampled_from([None, "linear", "relu", "tanh"]),
                          st.integers(-1, 3))
    insert = draw(st.one_of(st.none(), new_layer, new_layer))  # two in three cases deepen
    mode = draw(st.sampled_from(["preserve", "net2wider"]))
    seed = draw(st.integers(0, 2**16))
    return widths, acts, widen, insert, mode, seed


def refusal(widths, acts, insert):
    """The words a refusal must contain, or None where the growth keeps the output."""
    if insert is None:
        return None
    at, act, more = insert
    below_act = acts[at - 1] if at else "tanh"  # the input data can be negative, like a tanh
    below_width = widths[at - 1] if at else 3
    if act == "tanh":
        return ["new layer 'new'", "'tanh'", "cannot start as the identity", "None, 'linear' or 'relu'"]
    if act == "relu" and below_act != "relu":
        return ["new layer 'new'", "'relu'", "can be negative", "non-negative"]
    if below_width + more < below_width:
        return ["new layer 'new'", f"at least {below_width} unit"]
    return None


def stack(widths, acts, insert=None, widen=None):
    """[(name, units, activation)] of the hidden layers, with the new layer where `insert` says."""
    layers = [(f"l{i}", w + (widen[i] if widen else 0), a) for i, (w, a) in enumerate(zip(widths, acts))]
    if insert is not None:
        at, act, more = insert
        below = widths[at - 1] if at else 3
        layers.insert(at, ("new", below + more, act))
    return layers


def net_dict(layers):
    d, src = {}, "data"
    for name, units, act in layers:
        d[name] = {"class": "linear", "activation": act, "n_out": units, "from": src}
        src = name
    d["output"] = {"class": "softmax", "loss": "ce", "from": src, "target": "classes"}
    return d


def keras_model(layers):
    x = keras.Input((3,), name="x")
    h = x
    for name, units, act in layers:
        h = keras.layers.Dense(units, activation=act, name=name)(h)
    return keras.Model(x, keras.layers.Dense(3, name="output")(h))


def randomize(net, seed):
    rng = np.random.default_rng(seed)
    for var in net.param_variables().values():
        var.assign((rng.standard_normal(tuple(var.shape)) * 0.7).astype("float32"))
    return net


def data(seed):
    rng = np.random.default_rng(seed)
    return {"data": rng.standard_normal((16, 3)).astype("float32"), "classes": rng.integers(0, 3, 16)}


def _loss(network, batch, keras_loss):
    if keras_loss is None:
        return network.compute_loss(batch, training=True)
    return keras_loss(batch["classes"], network.keras_model(batch["data"], training=True))


def trains(network, batch, keras_loss=None, steps=5):
    """Whether a few Adam steps on the batch lower the loss of the grown network."""
    opt = keras.optimizers.Adam(0.01)
    first = None
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = _loss(network, batch, keras_loss)
        first = float(loss) if first is None else first
        variables = network.trainable_variables
        opt.apply(tape.gradient(loss, variables), variables)
    return float(_loss(network, batch, keras_loss)) < first


def check_case(case, make_old, make_new, call, keras_loss=None):
    widths, acts, widen, insert, mode, seed = case
    batch = data(seed)
    old = randomize(make_old(stack(widths, acts)), seed)
    before = call(old, batch)
    words = refusal(widths, acts, insert)
    new_spec = make_new(stack(widths, acts, insert, widen))
    if words is not None:
        with pytest.raises(ConfigError) as exc:
            transition_network(old, new_spec, extern_data=ED, epoch=2, copy_param_mode=mode, seed=seed)
        for word in words:
            assert word in str(exc.value), (word, str(exc.value))
        return
    res = transition_network(old, new_spec, extern_data=ED, epoch=2, copy_param_mode=mode, seed=seed,
                             verify_inputs=batch)
    after = call(res.network, batch)
    assert np.max(np.abs(after - before)) <= 1e-5 * max(np.max(np.abs(before)), 1e-6)
    assert res.report.output_check.max_rel_diff <= 1e-5
    grown = any(widen) or insert is not None
    assert grown == bool(res.report.by_status(ParamStatus.PRESERVED))
    assert trains(res.network, batch, keras_loss)


@SETTINGS
@given(growths())
def test_net_dict_stacks_keep_their_output_and_train_on(case):
    check_case(case, lambda layers: Network.from_dict(net_dict(layers), ED), net_dict,
               lambda net, batch: np.asarray(net.call(batch)))


@SETTINGS
@given(growths())
def test_keras_stacks_keep_their_output_and_train_on(case):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    check_case(case, lambda layers: Network.from_keras(keras_model(layers)), keras_model,
               lambda net, batch: np.asarray(net.keras_model(batch["data"])), keras_loss=loss)
