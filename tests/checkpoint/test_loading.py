"""Loading params into a network: name resolution (pure planning) and real loads into a Network."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import save_v2
from transition.checkpoint._load_plan import DictSource, plan_load
from transition.checkpoint._load_report import LoadReport
from transition.errors import ConfigError, MissingParamsError, ShapeMismatchError

F32 = np.dtype("float32")


def specs_of(shapes):
    return {name: (shape, F32) for name, shape in shapes.items()}


def zeros(shapes, dtype="float32"):
    return {name: np.zeros(shape, dtype) for name, shape in shapes.items()}


NET = {"l1/W": (2, 3), "l1/b": (3,), "l2/W": (3, 4)}


def plan(net=NET, ckpt=None, custom=None, **opts):
    ckpt = zeros(net) if ckpt is None else ckpt
    return plan_load(specs_of(net), custom or {}, DictSource(ckpt), path="ck", **opts)


def test_plain_load_assigns_every_param_by_name():
    p = plan(ckpt={**zeros(NET), "global_step": np.int64(3)})
    assert dict(p.assign) == {n: n for n in NET}
    assert p.report.unused == ("global_step",) and p.report.missing == ()


def test_prefix_loads_prefixed_layers_from_unprefixed_names():
    net = {**NET, "main_l1/W": (2, 3), "main_l1/b": (3,)}
    p = plan(net, ckpt=zeros(NET), prefix="main_")
    assert dict(p.assign) == {"main_l1/W": "l1/W", "main_l1/b": "l1/b"}
    assert p.report.mapped == {"main_l1/W": "l1/W", "main_l1/b": "l1/b"}


def test_prefix_matching_nothing_is_an_error():
    with pytest.raises(ConfigError, match="prefix 'mian_'"):
        plan(prefix="mian_")


def test_var_name_mapping_swap_swaps():
    net = {"a/W": (2, 2), "b/W": (2, 2)}
    p = plan(net, var_name_mapping={"a/W": "b/W", "b/W": "a/W"})
    assert dict(p.assign) == {"a/W": "b/W", "b/W": "a/W"}


def test_var_name_mapping_with_prefix_accepts_returnn_style_keys():
    net = {"x_l1/W": (2, 3)}
    ckpt = {"old/W": np.zeros((2, 3), "float32")}
    assert dict(plan(net, ckpt, prefix="x_", var_name_mapping={"l1/W": "old/W"}).assign) == {"x_l1/W": "old/W"}
    assert dict(plan(net, ckpt, prefix="x_", var_name_mapping={"x_l1/W": "old/W"}).assign) == {"x_l1/W": "old/W"}


def test_var_name_mapping_errors_name_the_entry():
    with pytest.raises(ConfigError, match=r"key 'l3/W'.*did you mean 'l2/W'"):
        plan(var_name_mapping={"l3/W": "l2/W"})
    with pytest.raises(ConfigError, match=r"'l2/Wx' is not in checkpoint ck.*did you mean 'l2/W'"):
        plan(var_name_mapping={"l2/W": "l2/Wx"})


def test_ignore_params_and_prefixes():
    p = plan(ckpt=zeros({"l2/W": (3, 4)}), ignore_params=["l1/W"], ignore_params_prefixes=["l1/b"])
    assert set(p.report.ignored) == {"l1/W", "l1/b"} and dict(p.assign) == {"l2/W": "l2/W"}
    # checkpoint-side names: with a prefix, the name without it
    p = plan({"x_l1/W": (2, 3), "x_l2/W": (3, 4)}, zeros({"l2/W": (3, 4)}), prefix="x_", ignore_params=["l1/W"])
    assert p.report.ignored == ("x_l1/W",)


def test_ignore_entries_matching_nothing_are_errors():
    with pytest.raises(ConfigError, match=r"ignore_params.*'l1/w'.*did you mean.*'l1/W'"):
        plan(ignore_params=["l1/w"])
    with pytest.raises(ConfigError, match=r"ignore_params_prefixes.*'l9'"):
        plan(ignore_params_prefixes=["l9"])
    with pytest.raises(ConfigError, match="lists of names"):
        plan(ignore_params="l1/W")


def test_nothing_selected_is_an_error():
    with pytest.raises(ConfigError, match="nothing selected"):
        plan(ignore_params_prefixes=["l"])


def test_missing_params_named_with_close_matches():
    ckpt = {"l1/W": np.zeros((2, 3), "float32"), "l1/bias": np.zeros(3, "float32"),
            "l2/W": np.zeros((3, 4), "float32")}
    with pytest.raises(MissingParamsError, match=r"'l1/b'.*did you mean 'l1/bias'"):
        plan(ckpt=ckpt)
    p = plan(ckpt=ckpt, ignore_missing=True)
    assert p.report.missing == ("l1/b",) and p.report.unused == ("l1/bias",) and "l1/b" not in p.assign


def test_nothing_found_is_an_error_even_with_ignore_missing():
    with pytest.raises(MissingParamsError, match="none of the 3"):
        plan(ckpt={"other/W": np.zeros(1, "float32")}, ignore_missing=True)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ShapeMismatchError, match=r"'l2/W'.*\(3, 4\).*\(4, 3\)"):
        plan(ckpt={**zeros(NET), "l2/W": np.zeros((4, 3), "float32")})


def test_dtype_mismatch_and_cast():
    ckpt = {**zeros(NET), "l1/b": np.zeros(3, "float64")}
    with pytest.raises(ShapeMismatchError, match=r"'l1/b'.*float32.*float64.*cast=True"):
        plan(ckpt=ckpt)
    p = plan(ckpt=ckpt, cast=True)
    assert p.report.converted == {"l1/b": "float64 -> float32"} and p.cast["l1/b"] == F32
    with pytest.raises(ShapeMismatchError, match="int32"):
        plan(ckpt={**zeros(NET), "l1/b": np.zeros(3, "int32")}, cast=True)


def test_custom_missing_load_func():
    calls = []

    def supply(*, name, shape, reader):
        calls.append((name, shape, sorted(reader.names())))
        return np.ones(shape, "float32") if name == "l1/b" else None

    ckpt = zeros({"l1/W": (2, 3), "l2/W": (3, 4)})
    p = plan(ckpt=ckpt, custom_missing_load_func=supply)
    assert calls == [("l1/b", (3,), ["l1/W", "l2/W"])]
    assert np.array_equal(p.supplied["l1/b"], np.ones(3)) and "l1/b" in p.report.loaded
    with pytest.raises(MissingParamsError, match="'l2/W'"):
        plan(ckpt=zeros({"l1/W": (2, 3)}), custom_missing_load_func=supply)
    with pytest.raises(ShapeMismatchError, match="custom_missing_load_func"):
        plan(ckpt=zeros({"l1/W": (2, 3), "l2/W": (3, 4)}),
             custom_missing_load_func=lambda name, shape, reader: np.ones(5, "float32"))


def test_skip_params_left_alone_and_not_missing():
    p = plan(ckpt=zeros({"l1/W": (2, 3), "l2/W": (3, 4)}), skip_params={"l1/b", "l2/W"})
    assert dict(p.assign) == {"l1/W": "l1/W"} and set(p.report.skipped) == {"l1/b", "l2/W"}
    assert p.report.missing == ()


def test_custom_importer_layers_get_all_their_checkpoint_names():
    ckpt = {**zeros(NET), "l1/W_old": np.zeros(1, "float32")}
    p = plan(ckpt=ckpt, custom={"l1": ("W", "b")})
    assert dict(p.custom) == {"l1": {"W": "l1/W", "b": "l1/b", "W_old": "l1/W_old"}}
    assert dict(p.assign) == {"l2/W": "l2/W"}
    assert p.report.custom_layers == ("l1",) and {"l1/W", "l1/b"} <= set(p.report.loaded)
    with pytest.raises(MissingParamsError, match="l1/W"):
        plan(ckpt=zeros({"l2/W": (3, 4)}), custom={"l1": ("W", "b")})


def test_dict_source_strips_colon_zero():
    src = DictSource({"a/W:0": np.zeros(2), "b": np.ones(1)})
    assert sorted(src.names()) == ["a/W", "b"]
    with pytest.raises(ConfigError, match="'a/W'"):
        DictSource({"a/W:0": np.zeros(2), "a/W": np.zeros(2)})


def test_report_str_and_combine():
    r1 = LoadReport(path="one", loaded=("a/W",), missing=("b/W",), unused=("x",), mapped={"a/W": "old/W"})
    r2 = LoadReport(path="two", loaded=("b/W",), converted={"b/W": "float64 -> float32"})
    text = str(r1)
    assert "one" in text and "a/W" in text and "from old/W" in text and "missing" in text
    both = LoadReport.combine([r1, r2])
    assert both.loaded == ("a/W", "b/W") and both.missing == () and both.path == "one + two"
    assert both.converted == {"b/W": "float64 -> float32"}


names_st = st.lists(st.from_regex(r"[a-c]{1,2}/[WbX]", fullmatch=True), min_size=1, max_size=6, unique=True)


@settings(max_examples=50, deadline=None)
@given(names_st, names_st)
def test_plan_partitions_the_names(net_names, extra):
    """Every selected param is loaded or missing; every checkpoint name is used or unused."""
    net = {n: (2,) for n in net_names}
    ckpt = zeros({n: (2,) for n in extra})
    if not set(net) & set(ckpt):
        with pytest.raises(MissingParamsError):
            plan(net, ckpt, ignore_missing=True)
        return
    p = plan(net, ckpt, ignore_missing=True)
    assert set(p.report.loaded) == set(net) & set(ckpt)
    assert set(p.report.missing) == set(net) - set(ckpt)
    assert set(p.report.unused) == set(ckpt) - set(net)


# ---------------------------------------------------------------------------------------------------------------
# Real loads into a Network, from checkpoints written with TF's own savers and numpy.

tf = pytest.importorskip("tensorflow")

from transition.checkpoint._loading import (
    chain_restore,
    load_checkpoint,
    restore_from_dict,
)
from transition.network._network import Network

EXTERN = {"data": {"dim": 4}, "classes": {"dim": 2, "sparse": True}}
R = np.random.default_rng(1)


def rnd(*shape, dtype="float32"):
    return R.standard_normal(shape).astype(dtype)


def make_net(names=("l1",), importer=None):
    net_dict, src = {}, "data"
    for name in names:
        net_dict[name] = {"class": "linear", "activation": "tanh", "n_out": 3, "from": src}
        if importer is not None and name == names[0]:
            net_dict[name]["custom_param_importer"] = importer
        src = name
    net_dict["output"] = {"class": "softmax", "n_out": 2, "from": src, "loss": "ce", "target": "classes"}
    return Network.from_dict(net_dict, EXTERN)


def values_of(net):
    return {n: np.array(v.numpy()) for n, v in net.param_variables().items()}


def ckpt_for(names=("l1",), **overrides):
    vals = {}
    n_in = 4
    for name in names:
        vals[f"{name}/W"], vals[f"{name}/b"] = rnd(n_in, 3), rnd(3)
        n_in = 3
    vals["output/W"], vals["output/b"] = rnd(3, 2), rnd(2)
    vals.update(overrides)
    return vals


def assert_loaded(net, vals, mapping):
    got = values_of(net)
    for net_name, ckpt_name in mapping.items():
        np.testing.assert_array_equal(got[net_name], vals[ckpt_name], err_msg=net_name)


def test_load_checkpoint_real(tmp_path):
    net = make_net()
    vals = ckpt_for(global_step=np.int64(7))
    report = load_checkpoint(net, save_v2(tmp_path / "m.003", vals))
    assert_loaded(net, vals, {n: n for n in net.param_variables()})
    assert set(report.loaded) == set(net.param_variables()) and report.unused == ("global_step",)
    assert "4 loaded" in str(report)


def test_load_with_prefix_leaves_other_layers_alone(tmp_path):
    net = make_net(("l1", "main_l1"))
    before = values_of(net)
    vals = {"l1/W": rnd(3, 3), "l1/b": rnd(3)}  # shape of main_l1 (its input is l1's output)
    report = load_checkpoint(net, save_v2(tmp_path / "m", vals), prefix="main_")
    assert_loaded(net, vals, {"main_l1/W": "l1/W", "main_l1/b": "l1/b"})
    after = values_of(net)
    for name in ("l1/W", "l1/b", "output/W"):
        np.testing.assert_array_equal(after[name], before[name])
    assert report.loaded == ("main_l1/W", "main_l1/b")


def test_var_name_mapping_swap_real(tmp_path):
    net = Network.from_dict({"a": {"class": "linear", "activation": None, "n_out": 3, "from": "data"},
                             "b": {"class": "linear", "activation": None, "n_out": 4, "from": "a"},
                             "output": {"class": "softmax", "n_out": 2, "from": "b"}}, EXTERN)
    vals = {"a/W": rnd(4, 3), "a/b": rnd(3), "b/W": rnd(3, 4), "b/b": rnd(4), "output/W": rnd(4, 2),
            "output/b": rnd(2)}
    with pytest.raises(ShapeMismatchError, match=r"'a/W'.*\(4, 3\).*\(3, 4\)"):
        load_checkpoint(net, save_v2(tmp_path / "m", vals), var_name_mapping={"a/W": "b/W", "b/W": "a/W"})
    net2 = make_net(("a", "b"))
    vals2 = {"a/W": rnd(4, 3), "a/b": rnd(3), "b/W": rnd(3, 3), "b/b": rnd(3), "output/W": rnd(3, 2),
             "output/b": rnd(2)}
    report = load_checkpoint(net2, save_v2(tmp_path / "m2", vals2), var_name_mapping={"a/b": "b/b", "b/b": "a/b"})
    assert_loaded(net2, vals2, {"a/b": "b/b", "b/b": "a/b", "a/W": "a/W"})
    assert report.mapped == {"a/b": "b/b", "b/b": "a/b"}


def test_errors_assign_nothing(tmp_path):
    net = make_net()
    before = values_of(net)
    vals = ckpt_for()
    del vals["output/b"]
    path = save_v2(tmp_path / "m", vals)
    with pytest.raises(MissingParamsError, match="'output/b'"):
        load_checkpoint(net, path)
    for name, value in values_of(net).items():
        np.testing.assert_array_equal(value, before[name])
    report = load_checkpoint(net, path, ignore_missing=True)
    assert report.missing == ("output/b",)
    np.testing.assert_array_equal(values_of(net)["output/b"], before["output/b"])
    assert_loaded(net, vals, {"l1/W": "l1/W"})


def test_cast_and_custom_missing_load_func(tmp_path):
    net = make_net()
    vals = ckpt_for(**{"l1/W": rnd(4, 3, dtype="float64")})
    del vals["output/b"]
    path = save_v2(tmp_path / "m", vals)
    with pytest.raises(ShapeMismatchError, match="float64"):
        load_checkpoint(net, path, ignore_missing=True)

    def supply(*, name, shape, reader):
        return reader.read("output/W")[0] if name == "output/b" else None

    report = load_checkpoint(net, path, cast=True, custom_missing_load_func=supply)
    got = values_of(net)
    np.testing.assert_allclose(got["l1/W"], vals["l1/W"].astype("float32"))
    np.testing.assert_array_equal(got["output/b"], vals["output/W"][0])
    assert report.converted == {"l1/W": "float64 -> float32"} and "output/b" in report.loaded


def test_custom_param_importer_gets_the_layer_values(tmp_path):
    calls = []

    def importer(*, layer, values_dict, session=None):
        calls.append(sorted(values_dict))
        layer.params["W"].assign(values_dict["W_old"] * 2)
        layer.params["b"].assign(values_dict["b"])

    net = make_net(importer=importer)
    vals = ckpt_for(**{"l1/W_old": rnd(4, 3)})
    del vals["l1/W"]
    report = load_checkpoint(net, save_v2(tmp_path / "m", vals))
    assert calls == [["W_old", "b"]]
    got = values_of(net)
    np.testing.assert_array_equal(got["l1/W"], vals["l1/W_old"] * 2)
    assert report.custom_layers == ("l1",) and "l1/W" in report.loaded


def test_skip_params_left_alone(tmp_path):
    net = make_net()
    before = values_of(net)
    vals = ckpt_for()
    report = load_checkpoint(net, save_v2(tmp_path / "m", vals), skip_params={"l1/W"})
    np.testing.assert_array_equal(values_of(net)["l1/W"], before["l1/W"])
    assert_loaded(net, vals, {"l1/b": "l1/b"})
    assert report.skipped == ("l1/W",)


def test_restore_from_dict_and_npz(tmp_path):
    net = make_net()
    vals = ckpt_for()
    report = restore_from_dict(net, {f"{k}:0": v for k, v in vals.items()})
    assert_loaded(net, vals, {n: n for n in vals})
    assert report.path == "<dict>"
    vals2 = ckpt_for()
    np.savez(tmp_path / "zoo.npz", **{f"{k}:0": v for k, v in vals2.items()})
    load_checkpoint(net, tmp_path / "zoo.npz")
    assert_loaded(net, vals2, {n: n for n in vals2})
    with pytest.raises(ConfigError, match="ignore_mising"):
        restore_from_dict(net, vals, ignore_mising=True)


def test_chain_restore_later_overrides(tmp_path):
    net = make_net()
    first = ckpt_for()
    second = {"l1/W": rnd(4, 3)}
    path = save_v2(tmp_path / "first", first)
    report = chain_restore(net, [path, second])
    assert_loaded(net, first, {"l1/b": "l1/b", "output/W": "output/W"})
    assert_loaded(net, second, {"l1/W": "l1/W"})
    assert set(report.loaded) == set(first) and report.missing == ()
    # with options per source
    third = {"x_l1/b": rnd(3)}
    chain_restore(net, [path, (third, {"var_name_mapping": {"l1/b": "x_l1/b"}, "ignore_params": ["l1/W"]})])
    assert_loaded(net, third, {"l1/b": "x_l1/b"})
    assert_loaded(net, first, {"l1/W": "l1/W"})


def test_chain_restore_missing_everywhere_is_an_error(tmp_path):
    net = make_net()
    before = values_of(net)
    with pytest.raises(MissingParamsError, match="output/b"):
        chain_restore(net, [{"l1/W": rnd(4, 3)}, {"l1/b": rnd(3), "output/W": rnd(3, 2)}])
    np.testing.assert_array_equal(values_of(net)["l1/W"], before["l1/W"])
    report = chain_restore(net, [{"l1/W": rnd(4, 3)}, {"l1/b": rnd(3)}], ignore_missing=True)
    assert set(report.missing) == {"output/W", "output/b"}
    with pytest.raises(MissingParamsError, match="none of"):
        chain_restore(net, [{"l1/W": rnd(4, 3)}, {"other/W": rnd(3)}], ignore_missing=True)


def test_v1_saver_checkpoint_given_as_index_file(tmp_path):
    net = make_net()
    vals = ckpt_for()
    with tf.Graph().as_default():
        for name, value in vals.items():
            tf.compat.v1.get_variable(name, initializer=tf.constant(value))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            path = saver.save(sess, str(tmp_path / "v1" / "model.ckpt"))
    load_checkpoint(net, path + ".index")
    assert_loaded(net, vals, {n: n for n in vals})


def test_missing_file_names_the_path(tmp_path):
    from transition.errors import CheckpointError

    with pytest.raises(CheckpointError, match="nope"):
        load_checkpoint(make_net(), tmp_path / "nope")


def test_returnn_style_saver_checkpoint_gives_the_numpy_forward_pass(tmp_path):
    """A checkpoint written as RETURNN writes it (tf.compat.v1.train.Saver in a graph, with Adam slots,
    global_step and a .meta), loaded by name: the network computes the numpy forward pass of those values."""
    net = Network.from_dict({"l1": {"class": "linear", "activation": "tanh", "n_out": 3, "from": "data"},
                             "l2": {"class": "linear", "activation": "relu", "n_out": 5, "from": "l1"},
                             "output": {"class": "softmax", "n_out": 2, "from": "l2"}}, EXTERN)
    vals = {"l1/W": rnd(4, 3), "l1/b": rnd(3), "l2/W": rnd(3, 5), "l2/b": rnd(5), "output/W": rnd(5, 2),
            "output/b": rnd(2)}
    with tf.Graph().as_default():
        tf_vars = {n: tf.compat.v1.get_variable(n, initializer=tf.constant(v)) for n, v in vals.items()}
        step = tf.compat.v1.train.get_or_create_global_step()
        loss = tf.add_n([tf.reduce_sum(v) for v in tf_vars.values()])
        tf.compat.v1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)  # creates slots, not run
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            path = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "net.005"))
    assert (tmp_path / "net.005.meta").exists()
    report = load_checkpoint(net, path)
    assert set(report.loaded) == set(vals)
    assert {"global_step", "l1/W/Adam", "l1/W/Adam_1", "beta1_power"} <= set(report.unused)
    x = R.standard_normal((2, 7, 4)).astype("float32")
    h = np.tanh(x @ vals["l1/W"] + vals["l1/b"])
    h = np.maximum(h @ vals["l2/W"] + vals["l2/b"], 0)
    logits = h @ vals["output/W"] + vals["output/b"]
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(net({"data": x})), expected, rtol=1e-5, atol=1e-6)


def test_custom_param_importer_with_prefix_mapping_and_ignores(tmp_path):
    """The importer's values_dict holds every checkpoint name under the layer (prefix stripped, relative to the
    layer), var_name_mapping entries of the layer, minus ignored names; it is called once and does the assignment."""
    calls = []

    def importer(*, layer, values_dict, session=None):
        calls.append((layer.name, sorted(values_dict)))
        layer.params["W"].assign(values_dict["W"] + values_dict["W/Adam"])
        layer.params["b"].assign(values_dict["b"])

    net = make_net(("x_l1",), importer=importer)
    before = values_of(net)
    vals = {"l1/W": rnd(4, 3), "l1/W/Adam": rnd(4, 3), "l1/W_old": rnd(2), "other/b": rnd(3),
            "output/W": rnd(3, 2)}
    path = save_v2(tmp_path / "m", vals)
    report = load_checkpoint(net, path, prefix="x_", var_name_mapping={"l1/b": "other/b"},
                             ignore_params=["l1/W_old"])
    assert calls == [("x_l1", ["W", "W/Adam", "b"])]
    got = values_of(net)
    np.testing.assert_array_equal(got["x_l1/W"], vals["l1/W"] + vals["l1/W/Adam"])
    np.testing.assert_array_equal(got["x_l1/b"], vals["other/b"])
    np.testing.assert_array_equal(got["output/W"], before["output/W"])  # not under the prefix
    assert report.custom_layers == ("x_l1",) and set(report.loaded) == {"x_l1/W", "x_l1/b"}
    assert "custom   x_l1" in str(report) and set(report.unused) == {"l1/W_old", "output/W"}


def test_custom_param_importer_without_checkpoint_values_is_missing(tmp_path):
    called = []
    net = make_net(importer=lambda *, layer, values_dict, session=None: called.append(1))
    path = save_v2(tmp_path / "m", {"output/W": rnd(3, 2), "output/b": rnd(2)})
    with pytest.raises(MissingParamsError, match="'l1/W'"):
        load_checkpoint(net, path)
    assert not called
    assert set(load_checkpoint(net, path, ignore_missing=True).missing) == {"l1/W", "l1/b"} and not called


def _net_with_copy_mode(mode, n_out=3):
    return Network.from_dict({"l1": {"class": "linear", "activation": None, "n_out": n_out, "from": "data",
                                     "custom_param_importer": mode},
                              "output": {"class": "softmax", "n_out": 2, "from": "l1"}}, EXTERN)


def test_copy_mode_importer_reset_keeps_init(tmp_path):
    net = _net_with_copy_mode("reset")
    before = values_of(net)
    vals = ckpt_for()
    report = load_checkpoint(net, save_v2(tmp_path / "m", vals))
    got = values_of(net)
    np.testing.assert_array_equal(got["l1/W"], before["l1/W"])
    np.testing.assert_array_equal(got["output/W"], vals["output/W"])
    assert set(report.kept_init) == {"l1/W", "l1/b"} and "l1/W" not in report.loaded
    assert "kept     l1/W" in str(report) and "2 kept at init" in str(report)


def test_copy_mode_importer_ifpossible_and_subset(tmp_path):
    vals = ckpt_for(**{"l1/W": rnd(4, 2), "l1/b": rnd(2)})  # the checkpoint's l1 has 2 units, the network's 3
    vals["output/W"] = rnd(3, 2)
    path = save_v2(tmp_path / "m", vals)
    with pytest.raises(ShapeMismatchError, match=r"'l1/W'.*\(4, 3\).*\(4, 2\)"):
        load_checkpoint(make_net(), path)  # without a copy mode a differing shape is an error

    net = _net_with_copy_mode("ifpossible")
    before = values_of(net)
    report = load_checkpoint(net, path)
    np.testing.assert_array_equal(values_of(net)["l1/W"], before["l1/W"])
    np.testing.assert_array_equal(values_of(net)["output/W"], vals["output/W"])
    assert set(report.kept_init) == {"l1/W", "l1/b"}

    net = _net_with_copy_mode("subset")
    before = values_of(net)
    report = load_checkpoint(net, path)
    got = values_of(net)
    np.testing.assert_array_equal(got["l1/W"][:, :2], vals["l1/W"])  # the old units copied ...
    np.testing.assert_array_equal(got["l1/W"][:, 2], before["l1/W"][:, 2])  # ... the new one keeps its init
    np.testing.assert_array_equal(got["l1/b"][:2], vals["l1/b"])
    assert report.converted["l1/W"] == "subset (4, 2) -> (4, 3)" and "l1/W" in report.loaded


def test_copy_mode_subset_with_other_ndim_fails_before_assigning(tmp_path):
    net = _net_with_copy_mode("subset")
    before = values_of(net)
    path = save_v2(tmp_path / "m", ckpt_for(**{"l1/b": rnd(3, 1)}))
    with pytest.raises(ShapeMismatchError, match=r"'l1/b'.*\(3,\).*\(3, 1\).*'subset' needs the same number"):
        load_checkpoint(net, path)
    for name, value in values_of(net).items():
        np.testing.assert_array_equal(value, before[name])


def test_chain_restore_rejects_per_source_ignore_missing():
    with pytest.raises(ConfigError, match=r"source 1: 'ignore_missing'.*chain_restore\(\.\.\., ignore_missing=True\)"):
        chain_restore(make_net(), [ckpt_for(), ({"l1/W": rnd(4, 3)}, {"ignore_missing": True})])


def test_directly_read_values_stay_the_variables_own(tmp_path):
    """Values read straight from the data file are adopted by the variables: later in-place updates, a second load
    and the checkpoint's removal do not disturb each other."""
    import glob
    import os

    net = make_net()
    vals = ckpt_for()
    prefix = save_v2(tmp_path / "m.001", vals)
    load_checkpoint(net, prefix)
    w = net.layers["l1"].params["W"]
    w.assign_add(np.ones((4, 3), np.float32))  # an optimizer-style in-place update
    np.testing.assert_array_equal(w.numpy(), vals["l1/W"] + 1)
    other = make_net()
    load_checkpoint(other, prefix)  # a second load from the same file gets its own buffers
    np.testing.assert_array_equal(other.layers["l1"].params["W"].numpy(), vals["l1/W"])
    for f in glob.glob(prefix + ".*"):
        os.remove(f)
    np.testing.assert_array_equal(w.numpy(), vals["l1/W"] + 1)
    assert_loaded(other, vals, {n: n for n in other.param_variables()})


def test_tensor_suffix_is_accepted_in_ignore_params_and_var_name_mapping():
    ckpt = {"l1/W": np.zeros((2, 3), F32), "l1/b": np.zeros(3, F32), "old/W": np.ones((3, 4), F32)}
    p = plan(ckpt=ckpt, ignore_params=["l1/b:0"], var_name_mapping={"l2/W:0": "old/W:0"})
    assert p.report.ignored == ("l1/b",) and dict(p.assign) == {"l1/W": "l1/W", "l2/W": "old/W"}
    p = plan(ckpt=ckpt, ignore_params_prefixes=["l1/W:0"], var_name_mapping={"l2/W": "old/W"}, ignore_missing=True)
    assert p.report.ignored == ("l1/W",)


def _gates(n_rows, n, offset):
    """A [n_rows, 4n] kernel whose gate block g holds offset + 10 * g + column within the block."""
    return np.concatenate([np.full((n_rows, n), offset + 10.0 * g) + np.arange(n) for g in range(4)], axis=1
                          ).astype("float32")


def test_standard_lstm_kernel_is_converted_to_the_native_layout(tmp_path):
    net = Network.from_dict({"l": {"class": "rec", "unit": "lstm", "n_out": 2, "from": "data"},
                             "output": {"class": "softmax", "n_out": 2, "from": "l"}}, EXTERN)
    kernel = np.concatenate([_gates(4, 2, 0.0), _gates(2, 2, 100.0)], axis=0)  # rows: inputs (4), then h (2)
    bias = _gates(1, 2, 1000.0)[0]
    path = save_v2(tmp_path / "m", {"l/rec/lstm_cell/kernel": kernel, "l/rec/lstm_cell/bias": bias,
                                    "output/W": rnd(2, 2), "output/b": rnd(2)})
    report = load_checkpoint(net, path)
    got = values_of(net)
    order = [1, 0, 2, 3]  # TF's LSTMCell: i, j, f, o; RETURNN's native LSTM: j, i, f, o
    np.testing.assert_array_equal(got["l/rec/W"], _gates(4, 2, 0.0).reshape(4, 4, 2)[:, order].reshape(4, 8))
    np.testing.assert_array_equal(got["l/rec/W_re"], _gates(2, 2, 100.0).reshape(2, 4, 2)[:, order].reshape(2, 8))
    np.testing.assert_array_equal(got["l/rec/b"], bias.reshape(4, 2)[order].reshape(8))
    assert report.unused == () and set(report.loaded) == set(net.param_variables())


def test_subset_importer_through_load_checkpoint_puts_lstm_gates_into_their_gates(tmp_path):
    """A checkpoint of a 2-unit LSTM into a 3-unit one whose custom_param_importer is "subset": the old parts are
    inferred as RETURNN does (the new split info for the old shape), so each gate's block lands in its gate."""
    net = Network.from_dict({"l": {"class": "rec", "unit": "lstm", "n_out": 3, "from": "data",
                                   "custom_param_importer": "subset"},
                             "output": {"class": "softmax", "n_out": 2, "from": "data"}}, EXTERN)
    before = values_of(net)
    old_w, old_w_re, old_b = _gates(4, 2, 0.0), _gates(2, 2, 100.0), _gates(1, 2, 1000.0)[0]
    path = save_v2(tmp_path / "m", {"l/rec/W": old_w, "l/rec/W_re": old_w_re, "l/rec/b": old_b,
                                    "output/W": rnd(4, 2), "output/b": rnd(2)})
    load_checkpoint(net, path)
    got = values_of(net)
    for g in range(4):
        np.testing.assert_array_equal(got["l/rec/W"][:, 3 * g : 3 * g + 2], old_w[:, 2 * g : 2 * g + 2])
        np.testing.assert_array_equal(got["l/rec/W"][:, 3 * g + 2], before["l/rec/W"][:, 3 * g + 2])
        np.testing.assert_array_equal(got["l/rec/b"][3 * g : 3 * g + 2], old_b[2 * g : 2 * g + 2])
        np.testing.assert_array_equal(got["l/rec/W_re"][:2, 3 * g : 3 * g + 2], old_w_re[:, 2 * g : 2 * g + 2])
