"""Tests of the epoch transition and of carrying optimizer slots through it (small real networks)."""

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from transition.errors import ConfigError, ShapeMismatchError
from transition.network._fast_init import alias_numpy
from transition.network._network import Network
from transition.network._slots import optimizer_slot_lists, snapshot_slots
from transition.network._transition import transition_network
from transition.params._report import ParamStatus

ED = {"data": {"dim": 5}, "classes": {"dim": 3, "sparse": True}}


def lin(n_out, src, act="tanh", **kw):
    return {"class": "linear", "activation": act, "n_out": n_out, "from": src, **kw}


def out(src, **kw):
    return {"class": "softmax", "loss": "ce", "from": src, "target": "classes", **kw}


def values(net):
    return {name: v.numpy().copy() for name, v in net.param_variables().items()}


def batch(seed=0):
    rng = np.random.default_rng(seed)
    return {"data": rng.standard_normal((2, 4, 5)).astype("float32"), "classes": rng.integers(0, 3, (2, 4))}


def train_step(net, opt, seed=0):
    with tf.GradientTape() as tape:
        loss = net.compute_loss(batch(seed))
    grads = tape.gradient(loss, net.trainable_variables)
    opt.apply(grads, net.trainable_variables)


def test_grow_by_one_layer_copies_and_keeps_init():
    old_dict = {"l1": lin(4, "data"), "output": out("l1")}
    new_dict = {"l1": lin(4, "data"), "l2": lin(4, "l1"), "output": out("l2")}
    old = Network.from_dict(old_dict, ED)
    old.global_train_step = 17
    before = values(old)
    res = transition_network(old, new_dict, extern_data=ED, epoch=2)
    after = values(res.network)
    for name in ("l1/W", "l1/b", "output/W", "output/b"):
        np.testing.assert_array_equal(after[name], before[name])
        assert res.report.status_of(name) is ParamStatus.COPIED
    assert res.report.status_of("l2/W") is ParamStatus.KEPT_INIT
    assert np.any(after["l2/W"] != 0)  # randomly initialised, not zeros
    assert res.network.global_train_step == 17
    assert res.diff.added == ("l2",) and res.diff.changed == {"output": {"from": (["l1"], ["l2"])}}
    # copied params were created from the snapshot, not randomly initialised first
    assert ("l1", "W") in res.network.initialized_from_values
    assert ("l2", "W") not in res.network.initialized_from_values
    # the new network works and trains
    assert res.network.call(batch()).shape == (2, 4, 3)
    assert set(res.timings) >= {"snapshot", "build", "import"}


def _grow_two_inputs(old_dims: tuple[int, int], new_dims: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, Any]:
    """The output W (reading layers "a" and "b") before and after a "subset" transition that resizes a / b, and
    the transition's result."""
    def net(dims: tuple[int, int]) -> dict:
        return {"a": lin(dims[0], "data"), "b": lin(dims[1], "data"), "output": out(["a", "b"])}

    old = Network.from_dict(net(old_dims), ED)
    w_old = old.layers["output"].params["W"].numpy().copy()
    res = transition_network(old, net(new_dims), extern_data=ED, epoch=2, copy_param_mode="subset")
    return w_old, res.network.layers["output"].params["W"].numpy(), res


def test_growing_a_source_of_a_copy_keeps_the_other_sources_rows_in_place_downstream():
    # output reads copy(["a", "b"]): its W parts are [dim_a, dim_b] (RETURNN's rule), so when a grows 3 -> 5 in a
    # subset transition, b's rows land at rows 5..7 also behind the copy
    def net(dim_a):
        return {"a": lin(dim_a, "data"), "b": lin(3, "data"), "c": {"class": "copy", "from": ["a", "b"]},
                "output": out("c")}

    old = Network.from_dict(net(3), ED)
    assert old.layers["output"].split_info["W"] == [[3, 3], [3]]
    w_old = old.layers["output"].params["W"].numpy().copy()
    res = transition_network(old, net(5), extern_data=ED, epoch=2, copy_param_mode="subset")
    w_new = res.network.layers["output"].params["W"].numpy()
    np.testing.assert_array_equal(w_new[0:3], w_old[0:3])
    np.testing.assert_array_equal(w_new[5:8], w_old[3:6])


def test_subset_without_split_info_infers_the_lstm_gates():
    """set_param_values_by_dict(copy_param_mode="subset") without split_info: the old parts are the layer's new
    split info transformed to the old shape (RETURNN's rule), so each gate block lands in its gate."""
    def net(n):
        return {"l": {"class": "rec", "unit": "lstm", "n_out": n, "from": "data"}, "output": out("l")}

    old = Network.from_dict(net(2), ED).layers["l"].get_param_values_dict()
    layer = Network.from_dict(net(3), ED).layers["l"]
    before = layer.get_param_values_dict()
    report = layer.set_param_values_by_dict(old, copy_param_mode="subset")
    got = layer.get_param_values_dict()
    for g in range(4):
        np.testing.assert_array_equal(got["rec/W"][:, 3 * g: 3 * g + 2], old["rec/W"][:, 2 * g: 2 * g + 2])
        np.testing.assert_array_equal(got["rec/W"][:, 3 * g + 2], before["rec/W"][:, 3 * g + 2])
        np.testing.assert_array_equal(got["rec/W_re"][:2, 3 * g: 3 * g + 2], old["rec/W_re"][:, 2 * g: 2 * g + 2])
    assert "inferred" in report.records[0].reason


def test_first_of_two_inputs_grows_rows_land_at_offset():
    # an output reading ["a", "b"] where a grows 3 -> 5: b's rows must land at rows 5..7
    w_old, w_new, res = _grow_two_inputs((3, 3), (5, 3))
    assert w_new.shape == (8, 3)
    np.testing.assert_array_equal(w_new[0:3], w_old[0:3])
    np.testing.assert_array_equal(w_new[5:8], w_old[3:6])
    assert res.report.status_of("output/W") is ParamStatus.PARTLY_COPIED
    assert res.report.status_of("b/W") is ParamStatus.COPIED


def test_copy_mode_from_net_dict_and_mismatch_errors():
    old_dict = {"l1": lin(4, "data"), "output": out("l1")}
    wide = {"l1": lin(6, "data"), "output": out("l1")}
    with pytest.raises(ShapeMismatchError, match=r"'l1'.*'W'.*\(5, 4\).*\(5, 6\)"):
        transition_network(Network.from_dict(old_dict, ED), wide, extern_data=ED, epoch=2)
    res = transition_network(
        Network.from_dict(old_dict, ED), dict(wide, **{"#copy_param_mode": "ifpossible"}), extern_data=ED, epoch=2
    )
    assert res.report.status_of("l1/W") is ParamStatus.KEPT_INIT
    assert res.report.status_of("output/b") is ParamStatus.COPIED
    with pytest.raises(ConfigError, match="'subsett'"):
        transition_network(Network.from_dict(old_dict, ED), wide, extern_data=ED, epoch=2, copy_param_mode="subsett")


def test_removed_layer_ignored_or_error():
    old_dict = {"l1": lin(4, "data"), "l2": lin(4, "l1"), "output": out("l2")}
    new_dict = {"l1": lin(4, "data"), "output": out("l1")}
    res = transition_network(Network.from_dict(old_dict, ED), new_dict, extern_data=ED, epoch=2)
    assert res.report.status_of("l2/W") is ParamStatus.IGNORED
    with pytest.raises(ConfigError, match="'l2'"):
        transition_network(
            Network.from_dict(old_dict, ED), new_dict, extern_data=ED, epoch=2, ignore_non_existing=False
        )


def test_reset_mode_keeps_fresh_init():
    d = {"l1": lin(4, "data"), "output": out("l1")}
    old = Network.from_dict(d, ED)
    before = values(old)
    res = transition_network(old, d, extern_data=ED, epoch=2, copy_param_mode="reset")
    assert not np.array_equal(values(res.network)["l1/W"], before["l1/W"])
    assert len(res.report.by_status(ParamStatus.KEPT_INIT)) == 4


def test_callback_may_edit_snapshot_and_gets_kwargs():
    d = {"l1": lin(4, "data"), "output": out("l1")}
    old = Network.from_dict(d, ED)
    before = values(old)
    seen = {}

    def callback(*, new_epoch, new_network, old_network_params):
        seen.update(epoch=new_epoch, net=new_network)
        old_network_params.values_dict.pop("l1")  # do not copy l1
        old_network_params.values_dict["output"]["b"] = np.array([1.0, 2.0, 3.0], np.float32)

    res = transition_network(old, d, extern_data=ED, epoch=5, init_new_network_callback=callback)
    after = values(res.network)
    assert seen["epoch"] == 5 and seen["net"] is res.network
    assert not np.array_equal(after["l1/W"], before["l1/W"])
    assert res.report.status_of("l1/W") is ParamStatus.KEPT_INIT
    np.testing.assert_array_equal(after["output/b"], [1, 2, 3])
    np.testing.assert_array_equal(after["output/W"], before["output/W"])


def test_with_callback_params_are_still_created_from_the_snapshot():
    d = {"l1": lin(4, "data"), "output": out("l1")}
    old = Network.from_dict(d, ED)
    before = values(old)
    seen = {}

    def callback(*, new_epoch, new_network, old_network_params):
        seen["w"] = new_network.layers["l1"].params["W"].numpy().copy()  # already the old value: no random init
        old_network_params.values_dict["output"].pop("W")  # remove one param: it gets its fresh init

    res = transition_network(old, d, extern_data=ED, epoch=2, init_new_network_callback=callback)
    after = values(res.network)
    assert {("l1", "W"), ("l1", "b"), ("output", "W"), ("output", "b")} <= set(res.network.initialized_from_values)
    np.testing.assert_array_equal(seen["w"], before["l1/W"])
    for name in ("l1/W", "l1/b", "output/b"):
        np.testing.assert_array_equal(after[name], before[name])
        assert res.report.status_of(name) is ParamStatus.COPIED
    assert res.report.status_of("output/W") is ParamStatus.KEPT_INIT
    assert not np.array_equal(after["output/W"], before["output/W"])
    limit = np.sqrt(6 / (4 + 3))  # glorot_uniform of [4, 3]
    assert np.abs(after["output/W"]).max() <= limit and np.abs(after["output/W"]).std() > 0.1 * limit


def test_custom_importer_gets_old_and_new_layer_dict():
    calls = []

    def importer(layer, values_dict, session, epoch, old_layer_dict, new_layer_dict):
        calls.append((epoch, old_layer_dict["n_out"], new_layer_dict["n_out"], session))
        layer.params["W"].assign(np.full(tuple(layer.params["W"].shape), 0.5, np.float32))

    old = Network.from_dict({"l1": lin(4, "data"), "output": out("l1")}, ED)
    new_dict = {"l1": lin(6, "data", custom_param_importer=importer), "output": out("l1")}
    opt = keras.optimizers.Adam(0.01)
    opt.build(old.trainable_variables)
    train_step(old, opt)
    res = transition_network(old, new_dict, extern_data=ED, epoch=3, copy_param_mode="ifpossible", optimizer=opt)
    assert calls == [(3, 4, 6, None)]
    assert res.report.status_of("l1/W") is ParamStatus.CUSTOM
    np.testing.assert_array_equal(res.network.layers["l1"].params["W"].numpy(), 0.5)
    # slots of custom-imported params are fresh
    assert res.slots_report.status_of("l1/W [momentums]") is ParamStatus.KEPT_INIT


def _slot_values(opt, net, slot):
    by_id = {id(v): name for name, v in net.param_variables().items()}
    slots = optimizer_slot_lists(opt)[slot]
    return {by_id[id(v)]: s.numpy() for v, s in zip(opt._trainable_variables, slots) if s is not None}


def test_adam_moments_survive_add_and_widen_with_subset():
    old_dict = {"l1": lin(4, "data"), "l2": lin(4, "l1"), "output": out("l2")}
    new_dict = {"l1": lin(4, "data"), "l2": lin(6, "l1"), "l3": lin(4, "l2"), "output": out("l3")}
    old = Network.from_dict(old_dict, ED)
    opt = keras.optimizers.Adam(0.01, beta_1=0.8)
    for seed in range(3):
        train_step(old, opt, seed)
    old_m = _slot_values(opt, old, "momentums")
    old_v = _slot_values(opt, old, "velocities")
    assert set(optimizer_slot_lists(opt)) == {"momentums", "velocities"}
    assert np.any(old_m["l1/W"] != 0)
    res = transition_network(old, new_dict, extern_data=ED, epoch=2, copy_param_mode="subset", optimizer=opt)
    new_opt, net = res.optimizer, res.network
    assert new_opt is not opt and new_opt.beta_1 == pytest.approx(0.8)
    assert int(new_opt.iterations.numpy()) == 3
    m = _slot_values(new_opt, net, "momentums")
    v = _slot_values(new_opt, net, "velocities")
    # unchanged layer: copied
    np.testing.assert_array_equal(m["l1/W"], old_m["l1/W"])
    np.testing.assert_array_equal(v["l1/b"], old_v["l1/b"])
    # widened layer: overlap copied, new part fresh (zeros)
    assert m["l2/W"].shape == (4, 6)
    np.testing.assert_array_equal(m["l2/W"][:, :4], old_m["l2/W"])
    np.testing.assert_array_equal(m["l2/W"][:, 4:], 0)
    np.testing.assert_array_equal(v["l2/b"][:4], old_v["l2/b"])
    # new layer: fresh
    np.testing.assert_array_equal(m["l3/W"], 0)
    assert res.slots_report.status_of("l3/W [momentums]") is ParamStatus.KEPT_INIT
    # output: its input changed from l2 (4) to l3 (4): same shape, copied
    np.testing.assert_array_equal(m["output/W"], old_m["output/W"])
    # the new optimizer trains the new network
    w = net.layers["l3"].params["W"].numpy().copy()
    train_step(net, new_opt)
    assert int(new_opt.iterations.numpy()) == 4
    assert not np.array_equal(net.layers["l3"].params["W"].numpy(), w)


def test_large_slots_are_shared_not_copied_and_the_optimizers_stay_independent():
    ed = {"data": {"dim": 260}, "classes": {"dim": 3, "sparse": True}}
    old = Network.from_dict({"l1": lin(300, "data"), "output": out("l1")}, ed)
    new_dict = {"l1": lin(300, "data"), "l2": lin(300, "l1"), "output": out("l2")}
    rng = np.random.default_rng(0)
    xb = {"data": rng.standard_normal((2, 3, 260)).astype("float32"), "classes": rng.integers(0, 3, (2, 3))}

    def step(net, opt):
        with tf.GradientTape() as tape:
            loss = net.compute_loss(xb)
        opt.apply(tape.gradient(loss, net.trainable_variables), net.trainable_variables)

    opt = keras.optimizers.Adam(0.01)
    step(old, opt)
    w_index = [id(v) for v in opt._trainable_variables].index(id(old.layers["l1"].params["W"]))
    old_slot = optimizer_slot_lists(opt)["momentums"][w_index]
    snap = snapshot_slots(opt, old)
    view = snap.slots["momentums"]["l1"]["W"]
    assert not view.flags.writeable and np.shares_memory(view, alias_numpy(old_slot))  # no copy
    old_m = old_slot.numpy().copy()
    res = transition_network(old, new_dict, extern_data=ed, epoch=2, optimizer=opt)
    m = _slot_values(res.optimizer, res.network, "momentums")
    np.testing.assert_array_equal(m["l1/W"], old_m)
    np.testing.assert_array_equal(m["l2/W"], 0)  # the new layer's slots: (lazily) zeroed
    for _ in range(2):
        step(res.network, res.optimizer)
    m = _slot_values(res.optimizer, res.network, "momentums")
    assert np.any(m["l2/W"] != 0) and not np.array_equal(m["l1/W"], old_m)
    np.testing.assert_array_equal(old_slot.numpy(), old_m)  # the old optimizer's slots are untouched
    np.testing.assert_array_equal(view, old_m)


def test_slots_of_foreign_variable_is_error():
    net = Network.from_dict({"l1": lin(4, "data"), "output": out("l1")}, ED)
    foreign = keras.Variable(np.zeros((2, 2), np.float32), name="foreign")
    opt = keras.optimizers.Adam()
    opt.build(net.trainable_variables + [foreign])
    with pytest.raises(Exception, match="foreign"):
        snapshot_slots(opt, net)


def test_matches_returnn_subset_when_first_part_is_last():
    # Growing the LAST of two inputs is the case RETURNN also gets right; ours must agree with the plain overlap.
    w_old, w_new, _ = _grow_two_inputs((3, 2), (3, 4))
    np.testing.assert_array_equal(w_new[:5], w_old)


def test_unbuilt_optimizer_gives_fresh_built_optimizer():
    d = {"l1": lin(4, "data"), "output": out("l1")}
    opt = keras.optimizers.SGD(0.05, momentum=0.9)
    res = transition_network(Network.from_dict(d, ED), d, extern_data=ED, epoch=2, optimizer=opt)
    assert isinstance(res.optimizer, keras.optimizers.SGD) and res.optimizer.built
    assert res.optimizer.momentum == pytest.approx(0.9)
    assert len(res.slots_report) == 4 and not res.slots_report.by_status(ParamStatus.COPIED)
    train_step(res.network, res.optimizer)


# ---------------------------------------------------------------------------------------------------------------
# Depth: a chain longer than Python's recursion limit (tiny layers, so that it stays fast)


def chain(n, dim=2):
    """n linear layers (no activation) of `dim` units in a chain; the last is "output"."""
    d = {f"l{i}": {"class": "linear", "activation": None, "n_out": dim, "from": f"l{i - 1}" if i else "data"}
         for i in range(n - 1)}
    d["output"] = {"class": "linear", "activation": None, "n_out": dim, "from": f"l{n - 2}"}
    return d


def rotations(n, dim=2, seed=0):
    """Initial values that keep a long chain's output finite and non-trivial: a rotation and a small bias each."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in chain(n, dim):
        a = rng.uniform(0, 2 * np.pi)
        out[name] = {"W": np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], "float32"),
                     "b": rng.uniform(-0.1, 0.1, dim).astype("float32")}
    return out


@pytest.fixture
def python_recursion_limit():
    """Python's default recursion limit (TensorFlow raises it to 3000 on import) for the test."""
    import sys

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield 1000
    sys.setrecursionlimit(before)


@pytest.mark.slow
def test_a_chain_deeper_than_the_recursion_limit_builds_and_grows_with_its_values_and_outputs(python_recursion_limit):
    import sys

    from transition.network._build import dry_build

    n, ed = 1500, {"data": {"dim": 2}}
    assert n > python_recursion_limit
    assert dry_build(chain(n), ed)[f"l{n - 2}"] == {"W": (2, 2), "b": (2,)}  # the check without variables
    net = Network.from_dict(chain(n), ed, initial_values=rotations(n))
    x = np.random.default_rng(1).standard_normal((2, 3, 2)).astype("float32")
    y = np.asarray(net.call({"data": x}))
    assert np.all(np.isfinite(y)) and np.abs(y).max() > 0.1  # the chain computes something
    lengths = net.output_lengths({"data": x, "data:seq_len": np.array([3, 2], "int32")})
    np.testing.assert_array_equal(lengths["output"], [3, 2])
    before = values(net)

    # "preserve": the feature graphs of both nets, the growth plan and the output check walk the whole chain
    result = transition_network(net, chain(n + 1), extern_data=ed, epoch=2, copy_param_mode="preserve",
                                verify_inputs={"data": x})
    del net
    new = result.network
    assert result.diff.added == (f"l{n - 1}",)
    after = values(new)
    assert set(after) - set(before) == {f"l{n - 1}/W", f"l{n - 1}/b"}
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    np.testing.assert_array_equal(after[f"l{n - 1}/W"], np.eye(2))  # the new layer starts as the identity
    np.testing.assert_allclose(np.asarray(new.call({"data": x})), y, rtol=1e-5, atol=1e-6)
    assert result.report.output_check.max_abs_diff <= 1e-5
    assert sys.getrecursionlimit() == python_recursion_limit  # the room Keras needed is given back
