"""Function-preserving transitions ("preserve", "net2wider") of net dicts and Keras models: the new network computes
what the old one did, the report says how, refused growths name the layer and what would work, verify_inputs
checks the outputs, optimizer slots follow (small real networks)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from transition.errors import ConfigError, OutputChangedError
from transition.netdict._pretrain import Pretrain
from transition.network._network import Network
from transition.network._preserve import check_growth, plan_growth
from transition.network._feature_graph import graph_of_net_dict, graph_of_network
from transition.network._slots import optimizer_slot_lists
from transition.network._transition import transition_network
from transition.params._report import ParamStatus
from transition.params._snapshot import ParamsSnapshot

ED = {"data": {"dim": 5}, "classes": {"dim": 3, "sparse": True}}
RNG = np.random.default_rng(0)
X = {"data": RNG.standard_normal((3, 6, 5)).astype("float32"), "classes": RNG.integers(0, 3, (3, 6))}


def lin(n_out, src, act="relu", **kw):
    return {"class": "linear", "activation": act, "n_out": n_out, "from": src, **kw}


def out(src, **kw):
    return {"class": "softmax", "loss": "ce", "from": src, "target": "classes", **kw}


def randomize(net, seed=1):
    """Give every param a random value (biases, norm statistics too), so that nothing is preserved by chance."""
    rng = np.random.default_rng(seed)
    for name, var in net.param_variables().items():
        value = rng.standard_normal(tuple(var.shape)) * 0.5
        if "variance" in name:
            value = np.abs(value) + 0.5
        var.assign(value.astype("float32"))
    return net


def outputs(net, x=X):
    return np.asarray(net.call(x))


def grow(old_dict, new_dict, mode="preserve", **kw):
    old = randomize(Network.from_dict(old_dict, ED))
    before = outputs(old)
    res = transition_network(old, new_dict, extern_data=ED, epoch=2, copy_param_mode=mode, **kw)
    return before, res


def test_widen_and_deepen_keeps_the_output_and_reports_how():
    old_dict = {"l1": lin(4, "data"), "output": out("l1")}
    new_dict = {"l1": lin(6, "data"), "l2": lin(8, "l1"), "output": out("l2")}
    before, res = grow(old_dict, new_dict, verify_inputs=X)
    np.testing.assert_allclose(outputs(res.network), before, rtol=1e-5, atol=1e-6)
    rep = {r.name: r for r in res.report.records}
    assert rep["l1/W"].status is ParamStatus.PRESERVED and rep["l1/W"].reason == "fresh init on 2 new units"
    assert rep["l2/W"].status is ParamStatus.PRESERVED and rep["l2/W"].reason.startswith("identity")
    assert rep["output/W"].reason == "zero outgoing of 4 new inputs"  # l2's units 4..7: l1's new units and 2 more
    w_l2 = res.network.layers["l2"].params["W"].numpy()
    np.testing.assert_array_equal(w_l2[:, :6], np.eye(6))
    assert res.network.layers["output"].params["W"].numpy()[4:].tolist() == [[0.0] * 3] * 4
    check = res.report.output_check
    assert check.ok and check.examples == 3 and check.max_rel_diff <= 1e-5
    assert set(check.scores) == {"output error", "output loss"}
    assert check.scores["output loss"][0] == pytest.approx(check.scores["output loss"][1], rel=1e-5)


def test_net2wider_copies_units_and_divides_their_outgoing_weights():
    old_dict = {"l1": lin(3, "data", act="tanh"), "l2": lin(3, "l1"), "output": out("l2")}
    new_dict = {"l1": lin(5, "data", act="tanh"), "l2": lin(4, "l1"), "output": out("l2")}
    old = randomize(Network.from_dict(old_dict, ED))
    w_old = old.layers["l2"].params["W"].numpy().copy()
    before = outputs(old)
    res = transition_network(old, new_dict, extern_data=ED, epoch=2, copy_param_mode="net2wider", seed=3,
                             net2wider_noise=0.2)
    np.testing.assert_allclose(outputs(res.network), before, rtol=1e-5, atol=1e-6)
    w1 = res.network.layers["l1"].params["W"].numpy()
    copies = {q: int(np.argmin(np.abs(w1[:, :3] - w1[:, [q]]).sum(axis=0))) for q in (3, 4)}
    for q, src in copies.items():
        np.testing.assert_array_equal(w1[:, q], w1[:, src])  # incoming weights copied
    w2 = res.network.layers["l2"].params["W"].numpy()
    for src in set(copies.values()):
        rows = [src] + [q for q, s in copies.items() if s == src]
        np.testing.assert_allclose(w2[rows, :3].sum(axis=0), w_old[src], rtol=1e-5)  # the shares add up
        assert not np.allclose(w2[rows[0], :3], w2[rows[1], :3])  # the noise breaks the copies' symmetry
    assert "replicated 2 units" in res.report.records[0].reason
    assert "divided among" in {r.name: r for r in res.report.records}["l2/W"].reason


def test_lstm_conv_concatenation_and_batch_norm_widened():
    def net(n_lstm, n_conv):
        return {"a": {"class": "rec", "unit": "lstm", "n_out": n_lstm, "from": "data"},
                "b": {"class": "conv", "n_out": n_conv, "filter_size": 3, "from": "data", "activation": "relu",
                      "with_bias": True},
                "c": {"class": "copy", "from": ["a", "b"]}, "bn": {"class": "batch_norm", "from": "c"},
                "output": out("bn")}

    seq = dict(X, **{"data:seq_len": np.array([6, 4, 2])})  # with lengths, the LSTM keeps its state past the end
    for mode in ("preserve", "net2wider"):
        old = randomize(Network.from_dict(net(3, 2), ED))
        before, before_seq = outputs(old), outputs(old, seq)
        res = transition_network(old, net(5, 4), extern_data=ED, epoch=2, copy_param_mode=mode, verify_inputs=seq)
        np.testing.assert_allclose(outputs(res.network), before, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outputs(res.network, seq), before_seq, rtol=1e-5, atol=1e-6)
        assert res.report.status_of("a/rec/W_re") is ParamStatus.PRESERVED
    rec = {r.name: r for r in res.report.records}
    assert rec["bn/batch_norm/v2_gamma"].status is ParamStatus.PRESERVED
    gamma = res.network.layers["bn"].params["batch_norm/v2_gamma"].numpy()
    assert gamma.shape == (9,)


def test_batch_norm_new_features_get_identity_scale_and_shift():
    def net(n):
        return {"a": lin(n, "data"), "bn": {"class": "batch_norm", "from": "a"}, "output": out("bn")}

    _, res = grow(net(3), net(5))
    p = {k: v.numpy() for k, v in res.network.layers["bn"].params.items()}
    assert p["batch_norm/v2_gamma"][3:].tolist() == [1, 1] and p["batch_norm/v2_beta"][3:].tolist() == [0, 0]
    assert p["batch_norm/v2_mean"][3:].tolist() == [0, 0] and p["batch_norm/v2_variance"][3:].tolist() == [1, 1]
    assert "identity on 2 new features" in {r.name: r for r in res.report.records}["bn/batch_norm/v2_gamma"].reason


@pytest.mark.parametrize("new, words", [
    ({"l1": lin(4, "data", act="tanh"), "n": lin(4, "l1", act="tanh"), "output": out("n")},
     ["new layer 'n'", "'tanh'", "cannot start as the identity", "None, 'linear' or 'relu'", "'subset'"]),
    ({"l1": lin(4, "data", act="tanh"), "n": lin(4, "l1"), "output": out("n")},
     ["new layer 'n'", "'relu'", "'l1'", "can be negative", "after a non-negative layer"]),
    ({"l1": lin(4, "data", act="tanh"), "n": lin(3, "l1", act=None), "output": out("n")},
     ["new layer 'n' has 3 units but reads 4 features", "at least 4 units"]),
    ({"l1": lin(6, "data", act="tanh"), "ln": {"class": "layer_norm", "from": "l1"}, "output": out("ln")},
     ["layer 'ln'", "normalises over all its input features", "grows from 4 to 6", "'subset'"]),
    ({"l1": lin(4, "data", act="tanh"), "n": {"class": "rec", "unit": "lstm", "n_out": 4, "from": "l1"},
      "output": out("n")}, ["new layer 'n' (rec)", "an LSTM does not pass its input through"]),
    ({"l1": lin(3, "data", act="tanh"), "output": out("l1")}, ["layer 'l1' has 3 units, 4 before"]),
])
def test_refused_growths_name_the_layer_and_what_would_work(new, words):
    old_dict = {"l1": lin(4, "data", act="tanh"), "output": out("l1")}
    if "ln" in new:
        old_dict = {"l1": lin(4, "data", act="tanh"), "ln": {"class": "layer_norm", "from": "l1"}, "output": out("ln")}
    old = Network.from_dict(old_dict, ED)
    with pytest.raises(ConfigError) as exc:
        transition_network(old, new, extern_data=ED, epoch=2, copy_param_mode="preserve")
    for word in words:
        assert word in str(exc.value)
    assert "cannot keep output 'output' unchanged" in str(exc.value)
    assert old.call(X).shape == (3, 6, 3)  # refused before anything was released: the old network still works


def test_refused_axis_and_output_changes():
    conv = {"c": {"class": "conv", "n_out": 3, "filter_size": 3, "from": "data"}, "output": out("c")}
    wider_filter = {"c": {"class": "conv", "n_out": 3, "filter_size": 5, "from": "data"}, "output": out("c")}
    with pytest.raises(ConfigError, match="layer 'c' changed option 'filter_size' from 3 to 5"):
        grow(conv, wider_filter)
    with pytest.raises(ConfigError, match="layer 'l1' changed option 'activation' from \"relu\" to \"tanh\""):
        grow({"l1": lin(4, "data"), "output": out("l1")}, {"l1": lin(4, "data", act="tanh"), "output": out("l1")})
    regression = {"l1": lin(4, "data"), "output": lin(3, "l1", act=None)}
    with pytest.raises(ConfigError, match="output 'output' has 5 features, 3 before"):
        grow(regression, {"l1": lin(4, "data"), "output": lin(5, "l1", act=None)})
    hidden_softmax = {"s": lin(4, "data", act="softmax"), "output": out("s")}
    with pytest.raises(ConfigError, match="'softmax' normalises over all its units"):
        grow(hidden_softmax, {"s": lin(6, "data", act="softmax"), "output": out("s")})
    # a new layer on a side branch (not on a path of the old network) may be anything: it starts afresh
    side = {"l1": lin(4, "data"), "t": lin(2, "data", act="tanh"), "output": out(["l1", "t"])}
    before, res = grow({"l1": lin(4, "data"), "output": out("l1")}, side)
    np.testing.assert_allclose(outputs(res.network), before, rtol=1e-5, atol=1e-6)
    assert res.report.status_of("t/W") is ParamStatus.KEPT_INIT


def test_verify_inputs_names_the_first_layer_whose_output_moved():
    old_dict = {"l1": lin(4, "data"), "l2": lin(4, "l1"), "output": out("l2")}
    new_dict = {"l1": lin(6, "data"), "l2": lin(4, "l1"), "output": out("l2")}
    with pytest.raises(OutputChangedError) as exc:
        grow(old_dict, new_dict, "subset", verify_inputs=X)
    msg = str(exc.value)
    assert "first layer whose output moved is 'l2'" in msg and "W partly copied" in msg and "tolerance 1e-05" in msg

    def bad_importer(layer, values_dict, **kwargs):  # forgets the old output weights
        layer.params["W"].assign(np.zeros(tuple(layer.params["W"].shape), "float32"))

    new_dict = {"l1": lin(6, "data"), "l2": lin(4, "l1"), "output": out("l2", custom_param_importer=bad_importer)}
    with pytest.raises(OutputChangedError, match="moved is 'output'.*W custom importer"):
        grow(old_dict, new_dict, verify_inputs=X)
    _, res = grow(old_dict, new_dict, verify_inputs=X, verify_tolerance=10.0)  # a loose tolerance only reports
    assert res.report.output_check.max_rel_diff > 1e-3 and res.report.output_check.tolerance == 10.0


def test_adam_slots_copied_for_old_values_and_zero_for_new_parts():
    old_dict = {"l1": lin(3, "data"), "output": out("l1")}
    new_dict = {"l1": lin(5, "data"), "l2": lin(5, "l1"), "output": out("l2")}
    for mode in ("preserve", "net2wider"):
        old = randomize(Network.from_dict(old_dict, ED))
        opt = keras.optimizers.Adam(0.01)
        with tf.GradientTape() as tape:
            loss = old.compute_loss(X)
        opt.apply(tape.gradient(loss, old.trainable_variables), old.trainable_variables)
        slots = {name: {k: np.array(v.numpy()) for k, v in zip(
            [f"{n}/{p}" for n, layer in old.layers.items() for p in layer.params], items)}
            for name, items in optimizer_slot_lists(opt).items()}
        res = transition_network(old, new_dict, extern_data=ED, epoch=2, copy_param_mode=mode, optimizer=opt)
        new_slots = dict(zip([f"{n}/{p}" for n, layer in res.network.layers.items() for p in layer.params],
                             optimizer_slot_lists(res.optimizer)["momentums"]))
        m_old = slots["momentums"]
        np.testing.assert_array_equal(new_slots["l1/W"].numpy()[:, :3], m_old["l1/W"])
        assert not new_slots["l1/W"].numpy()[:, 3:].any()  # new units (also net2wider's copies): zero
        np.testing.assert_array_equal(new_slots["output/W"].numpy()[:3], m_old["output/W"])
        if mode == "preserve":
            assert not new_slots["output/W"].numpy()[3:].any()
        assert not new_slots["l2/W"].numpy().any()  # a new layer's slots start at zero
        assert {r.status for r in res.slots_report.records} >= {ParamStatus.PRESERVED}
        with tf.GradientTape() as tape:  # and the new network trains on
            loss = res.network.compute_loss(X)
        res.optimizer.apply(tape.gradient(loss, res.network.trainable_variables), res.network.trainable_variables)


def test_set_params_by_serialized_preserve_derives_the_old_network():
    small = randomize(Network.from_dict({"l1": lin(4, "data"), "output": out("l1")}, ED))
    before = outputs(small)
    big = Network.from_dict({"l1": lin(6, "data"), "l2": lin(6, "l1"), "output": out("l2")}, ED)
    report = big.set_params_by_serialized(small.get_params_serialized(copy=True), copy_param_mode="preserve")
    np.testing.assert_allclose(outputs(big), before, rtol=1e-5, atol=1e-6)
    assert report.status_of("l2/W") is ParamStatus.PRESERVED and report.status_of("output/W") is ParamStatus.PRESERVED
    assert report.status_of("output/b") is ParamStatus.COPIED
    # a snapshot that does not fit the derived old network is refused
    snap = ParamsSnapshot({"l1": {"W": np.zeros((5, 4)), "b": np.zeros(4)}, "output": {"W": np.zeros((3, 3)),
                                                                                       "b": np.zeros(3)}})
    with pytest.raises(ConfigError, match="'output'"):
        Network.from_dict({"l1": lin(6, "data"), "output": out("l1")}, ED).set_params_by_serialized(
            snap, copy_param_mode="preserve")


def test_pretrain_schedule_with_preserve_is_checked_without_building():
    final = {"l1": lin(4, "data"), "l2": lin(6, "l1"), "l3": lin(8, "l2", act="tanh"), "output": out("l3")}
    pre = Pretrain(final, copy_param_mode="preserve")
    steps = [pre.get_network_json_for_epoch(e) for e in (1, 2, 3)]
    assert pre.get_copy_param_mode_for_epoch(2) == "preserve"
    check_growth(graph_of_net_dict(steps[0], ED), steps[1], graph_of_net_dict(steps[1], ED), "preserve")
    with pytest.raises(ConfigError, match="new layer 'l3' has activation 'tanh'"):
        check_growth(graph_of_net_dict(steps[1], ED), steps[2], graph_of_net_dict(steps[2], ED), "preserve")
    step = dict(steps[2], **{"#copy_param_mode": "net2wider"})
    assert Pretrain(final, construction_algo=lambda idx, net_dict: step if idx == 0 else None
                    ).get_copy_param_mode_for_epoch(1) == "net2wider"


# ------------------------------------------------------------------------------------------------ Keras


def keras_model(hidden, extra=None, lstm=4, name_input=True):
    x = keras.Input((5, 3), name="x" if name_input else None)
    h = keras.layers.LSTM(lstm, return_sequences=True, name="lstm")(x)
    h = keras.layers.Dense(hidden, activation="relu", name="hidden")(h)
    h = keras.layers.Concatenate(name="cat")([keras.layers.Dropout(0.2, name="drop")(h), x])
    h = keras.layers.BatchNormalization(name="bn")(h)
    if extra is not None:
        h = keras.layers.Dense(extra[0], activation=extra[1], name="extra")(h)
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model(x, keras.layers.Dense(2, name="out")(h))


def _keras_grow(old_model, new_model, mode="preserve", **kw):
    old = randomize(Network.from_keras(old_model))
    x = RNG.standard_normal((4, 5, 3)).astype("float32")
    before = np.asarray(old_model(x))
    res = transition_network(old, new_model, epoch=2, copy_param_mode=mode, verify_inputs=x, **kw)
    return before, np.asarray(res.network.keras_model(x)), res


@pytest.mark.parametrize("mode", ["preserve", "net2wider"])
def test_keras_widened_lstm_dense_concatenation_and_a_new_dense(mode):
    before, after, res = _keras_grow(keras_model(4), keras_model(6, extra=(9 + 3 + 2, None), lstm=6), mode)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    rec = {r.name: r for r in res.report.records}
    assert rec["extra/kernel"].reason.startswith("identity") and rec["out/kernel"].status is ParamStatus.PRESERVED
    assert rec["lstm/lstm_cell/recurrent_kernel"].status is ParamStatus.PRESERVED
    assert rec["bn/gamma"].status is ParamStatus.PRESERVED and res.report.output_check.ok


def test_keras_refusal_names_the_layer_and_unnamed_inputs_match():
    with pytest.raises(ConfigError, match="new layer 'extra' has activation 'relu'.*'bn' \\(BatchNormalization"):
        _keras_grow(keras_model(4), keras_model(4, extra=(9, "relu")))
    with pytest.raises(ConfigError, match="new layer 'extra' has activation 'tanh'"):
        _keras_grow(keras_model(4), keras_model(4, extra=(9, "tanh")))
    before, after, _ = _keras_grow(keras_model(4, name_input=False), keras_model(5, name_input=False))
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_plan_of_a_graph_is_reusable_and_deterministic():
    old = graph_of_net_dict({"l1": lin(3, "data"), "output": out("l1")}, ED)
    new = graph_of_net_dict({"l1": lin(5, "data"), "output": out("l1")}, ED)
    a = plan_growth(old, new, "net2wider", seed=7).params["l1"]["W"].axes[1].index
    b = plan_growth(old, new, "net2wider", seed=7).params["l1"]["W"].axes[1].index
    assert a.tolist() == b.tolist() and a[:3].tolist() == [0, 1, 2] and all(0 <= i < 3 for i in a[3:])
    with pytest.raises(ConfigError, match="net2wider_noise must be a number in \\[0, 1\\)"):
        plan_growth(old, new, "net2wider", noise=2)
    assert graph_of_network(Network.from_dict({"l1": lin(3, "data"), "output": out("l1")}, ED)).outputs == (
        "output",)


def test_a_new_input_on_a_side_branch_is_a_new_feature():
    extern = {"data": {"dim": 5}, "extra": {"dim": 2}, "classes": {"dim": 3, "sparse": True}}
    old = randomize(Network.from_dict({"l1": lin(4, "data"), "output": out("l1")}, extern))
    before = outputs(old)
    new = {"l1": lin(4, "data"), "side": lin(3, "data:extra", act="tanh"), "output": out(["l1", "side"])}
    res = transition_network(old, new, extern_data=extern, epoch=2, copy_param_mode="preserve")
    x = dict(X, extra=RNG.standard_normal((3, 6, 2)).astype("float32"))
    np.testing.assert_allclose(outputs(res.network, x), before, rtol=1e-5, atol=1e-6)
    assert res.report.status_of("output/W") is ParamStatus.PRESERVED


def test_keras_sequential_conv_gru_embedding_and_layer_norm():
    def seq(h, extra=False):
        layers = [keras.Input((4,)), keras.layers.Dense(h, activation="relu", name="a")]
        layers += [keras.layers.Dense(h + 2, activation="relu", name="n")] if extra else []
        return keras.Sequential(layers + [keras.layers.Dense(2, name="o")])

    def conv(c, extra=False, norm=False, gru=3):
        x = keras.Input((5, 3), name="x")
        h = keras.layers.Conv1D(c, 3, padding="same", activation="relu", name="c")(x)
        if extra:
            h = keras.layers.Conv1D(c + 1, 3, padding="same", activation="relu", name="n")(h)
        if norm:
            h = keras.layers.LayerNormalization(name="ln")(h)
        return keras.Model(x, keras.layers.Dense(2, name="o")(keras.layers.GRU(gru, name="g")(h)))

    def emb(d):
        x = keras.Input((5,), dtype="int32", name="ids")
        h = keras.layers.GlobalMaxPooling1D(name="p")(keras.layers.Embedding(10, d, name="e")(x))
        return keras.Model(x, keras.layers.Dense(2, name="o")(h))

    ids = RNG.integers(0, 10, (4, 5)).astype("int32")
    for mode in ("preserve", "net2wider"):
        for old_model, new_model, x in ((seq(3), seq(5, True), RNG.standard_normal((4, 4)).astype("float32")),
                                        (conv(2), conv(4, True, gru=5), RNG.standard_normal((4, 5, 3))),
                                        (emb(3), emb(5), ids)):
            old = randomize(Network.from_keras(old_model))
            before = np.asarray(old_model(x))
            res = transition_network(old, new_model, epoch=2, copy_param_mode=mode, verify_inputs=x)
            np.testing.assert_allclose(np.asarray(new_model(x)), before, rtol=1e-5, atol=1e-6)
            assert res.report.output_check.ok
    with pytest.raises(ConfigError, match="layer 'ln' \\(LayerNormalization normalises.*grows from 2 to 4"):
        transition_network(Network.from_keras(conv(2, norm=True)), conv(4, norm=True), epoch=2,
                           copy_param_mode="preserve")


def test_keras_verify_inputs_names_the_first_moved_layer_under_subset():
    with pytest.raises(OutputChangedError, match="moved is 'pool'.*, which reads the new layer 'extra'"):
        _keras_grow(keras_model(4), keras_model(6, extra=(13, None)), "subset")
