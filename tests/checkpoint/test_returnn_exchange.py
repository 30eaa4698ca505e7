"""Checkpoints exchanged with RETURNN, with the installed returnn as the oracle (one subprocess for the module):

- a RETURNN checkpoint of a net with every layer class we have (rec units lstm / nativelstm2 / nativelstm in both
  directions, copy, conv, pool, reduce, linear, layer_norm, batch_norm, softmax) loads by name, without a mapping, and on a padded batch
  our outputs, their sequence lengths, the losses and frame errors equal RETURNN's;
- RETURNN loads a checkpoint we wrote (the store's) and reproduces our outputs;
- a "standardlstm" checkpoint loads into our LSTM with RETURNN's layout conversion (equal to RETURNN's own);
- conv at behavior_version 5 has no bias (a RETURNN checkpoint of it loads as it is);
- split info through copies as RETURNN records it; checkpoints with this project's old rec names keep loading.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import run_returnn, save_v2
from transition.checkpoint._loading import load_checkpoint
from transition.errors import MissingParamsError
from transition.network._network import Network
from transition.store._store import CheckpointStore

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

_ORACLE = """
import json, sys, numpy as np, tensorflow as tf
from returnn.config import Config
from returnn.tf.network import TFNetwork
from returnn.util.basic import BehaviorVersion
from returnn.tf.util.basic import get_param_axes_split_info
tf1 = tf.compat.v1
job = json.load(sys.stdin)


def feed_of(net, batch):
    feed = {}
    for key, data in net.extern_data.data.items():
        if key in batch:
            feed[data.placeholder] = np.asarray(batch[key])
            if data.have_time_axis():
                feed[data.size_placeholder[0]] = np.asarray(batch[key + ":seq_len"])
    return feed


res = {}
for case in job["cases"]:
    BehaviorVersion._behavior_version = case["bv"]  # one process, several behavior versions (test only)
    with tf1.Graph().as_default():
        net = TFNetwork(config=Config({"extern_data": case["extern"], "behavior_version": case["bv"]}),
                        train_flag=False, eval_flag=True)
        net.construct_from_dict(case["net"])
        fetches = {}
        for name in case["net"]:
            out = net.layers[name].output.copy_as_batch_major()
            fetches[name] = out.placeholder
            if out.have_time_axis():
                fetches[name + ":seq_len"] = out.get_sequence_lengths()
        losses, _, _ = net.get_losses_initialized()
        for name, holder in losses.items():
            fetches["loss:" + name] = holder.get_loss_value() * holder.get_norm_factor()
            if holder.get_error_value() is not None:
                fetches["error:" + name] = holder.get_error_value() * holder.get_norm_factor()
        params = net.get_saveable_params_list()
        with tf1.Session() as s:
            s.run(tf1.variables_initializer(list({id(v): v for v in tf1.global_variables() + params}.values())))
            if case.get("load"):
                net.load_params_from_file(case["load"], session=s)
            else:  # non-trivial values everywhere, so that every param matters
                for v in params:
                    if not v.name.startswith("global_step"):
                        s.run(v.assign(v + tf.random.normal(tf.shape(v), stddev=0.3, seed=1)))
            if case.get("save"):
                tf1.train.Saver(var_list=params).save(s, case["save"])
            r = {k: np.asarray(v).tolist() for k, v in s.run(fetches, feed_dict=feed_of(net, case["batch"])).items()}
        r["params"] = sorted(v.name[:-2] for v in params)
        r["split_info"] = {f"{lname}/{p}": get_param_axes_split_info(v) for lname, layer in net.layers.items()
                           for p, v in layer.params.items() if get_param_axes_split_info(v)}
        res[case["name"]] = r
json.dump(res, open(job["result"], "w"))
"""

LENS = [7, 5, 3]
EXTERN = {"data": {"dim": 3}, "classes": {"dim": 4, "sparse": True},
          "label": {"dim": 4, "sparse": True, "shape": ()}}
NET = {
    "fw": {"class": "rec", "unit": "lstm", "n_out": 4, "from": "data"},
    "bw": {"class": "rec", "unit": "nativelstm2", "n_out": 4, "direction": -1, "from": "data"},
    "nat": {"class": "rec", "unit": "nativelstm", "n_out": 3, "direction": -1, "from": "data"},
    "cat": {"class": "copy", "from": ["fw", "bw"]},
    "conv": {"class": "conv", "filter_size": [3], "n_out": 5, "padding": "same", "from": "cat"},
    "convs": {"class": "conv", "filter_size": [3], "n_out": 2, "padding": "valid", "strides": 2, "from": "data"},
    "pool": {"class": "pool", "mode": "max", "pool_size": [2], "from": ["fw", "bw"]},
    "pmax": {"class": "pool", "mode": "max", "pool_size": [3], "padding": "same", "strides": 1,
             "use_time_mask": True, "from": "fw"},
    "pavg": {"class": "pool", "mode": "avg", "pool_size": [3], "padding": "same", "strides": 2, "from": "bw"},
    "red": {"class": "reduce", "mode": "max", "axis": "T", "from": "pool"},
    "rmean": {"class": "reduce", "mode": "mean", "axis": "T", "from": "pmax"},
    "ravg": {"class": "reduce", "mode": "mean", "axis": "T", "from": "pavg"},
    "rsum": {"class": "reduce", "mode": "sum", "axis": "T", "from": "convs"},
    "lin": {"class": "linear", "activation": "tanh", "n_out": 4, "from": "cat"},
    "ln": {"class": "layer_norm", "from": "lin", "is_output_layer": True},
    "bn": {"class": "batch_norm", "masked_time": True, "from": "conv", "is_output_layer": True},
    "output": {"class": "softmax", "loss": "ce", "target": "classes", "from": ["conv", "nat", "lin"]},
    "seqout": {"class": "softmax", "loss": "ce", "target": "label", "from": ["red", "rmean", "ravg", "rsum"]},
}
STANDARD = {"st": {"class": "rec", "unit": "standardlstm", "n_out": 4, "from": "data"},
            "output": {"class": "softmax", "loss": "ce", "target": "classes", "from": "st"}}
OLD_CONV = {"c": {"class": "conv", "filter_size": [2], "n_out": 3, "padding": "same", "from": "data"},
            "output": {"class": "softmax", "loss": "ce", "target": "classes", "from": "c"}}


def _batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 3)).astype("float32")
    for i, n in enumerate(LENS):
        x[i, n:] = 0.0
    return {"data": x, "data:seq_len": np.array(LENS, "int32"),
            "classes": rng.integers(0, 4, (3, 7)).astype("int32"), "classes:seq_len": np.array(LENS, "int32"),
            "label": np.array([1, 2, 3], "int32")}


def _as_outputs(net_dict):
    """Every layer an output, so that the network gives every layer's output."""
    return {name: dict(d, is_output_layer=True) for name, d in net_dict.items()}


def _outputs(net, batch):
    return dict(zip(net.output_layers, net.call(batch))), net.output_lengths(batch)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("returnn")
    batch = _batch()
    ours = Network.from_dict(_as_outputs(NET), EXTERN, behavior_version=12)
    rng = np.random.default_rng(1)
    for var in ours.param_variables().values():
        var.assign(var.numpy() + rng.normal(0, 0.3, var.shape).astype("float32"))
    with CheckpointStore(str(tmp / "ours" / "net")) as store:
        prefix = store.save(1, 0, ours.param_variables()).prefix
    plain = {k: v.tolist() for k, v in batch.items()}
    cases = [
        {"name": "main", "net": NET, "bv": 12, "save": str(tmp / "returnn_main")},
        {"name": "ours", "net": NET, "bv": 12, "load": prefix},
        {"name": "standard", "net": STANDARD, "bv": 12, "save": str(tmp / "returnn_standard")},
        {"name": "standard_as_native", "net": {**STANDARD, "st": dict(STANDARD["st"], unit="nativelstm2")},
         "bv": 12, "load": str(tmp / "returnn_standard")},
        {"name": "old_conv", "net": OLD_CONV, "bv": 5, "save": str(tmp / "returnn_old_conv")},
    ]
    for case in cases:
        case.update(extern=EXTERN, batch=plain)
    result = run_returnn(_ORACLE, {"cases": cases}, tmp)
    return {"tmp": tmp, "batch": batch, "ours": ours, "returnn": result}


def _assert_outputs_equal(net, batch, expected, layers):
    outs, lengths = _outputs(net, batch)
    for name in layers:
        np.testing.assert_allclose(np.asarray(outs[name]), np.asarray(expected[name]), rtol=1e-4, atol=1e-5,
                                   err_msg=name)
        if name + ":seq_len" in expected:
            np.testing.assert_array_equal(np.asarray(lengths[name]), expected[name + ":seq_len"], err_msg=name)
        else:
            assert lengths[name] is None, name


def test_returnn_checkpoint_loads_without_mapping_and_equals_returnn_on_a_padded_batch(exchange):
    theirs = exchange["returnn"]["main"]
    assert {"fw/rec/W", "fw/rec/W_re", "fw/rec/b", "nat/rec/W", "conv/bias"} <= set(theirs["params"])
    net = Network.from_dict(_as_outputs(NET), EXTERN, behavior_version=12)
    assert set(net.param_variables()) == set(theirs["params"]) - {"global_step"}
    report = load_checkpoint(net, str(exchange["tmp"] / "returnn_main"))
    assert set(report.loaded) == set(net.param_variables()) and report.unused == ("global_step",)
    _assert_outputs_equal(net, exchange["batch"], theirs, NET)
    terms = net.loss_terms(exchange["batch"], training=False, errors=True)
    for layer in ("output", "seqout"):  # losses and frame errors over the real frames only, as RETURNN's
        assert float(terms[layer].value) == pytest.approx(theirs[f"loss:{layer}"], rel=1e-5)
        assert float(terms[layer].errors / terms[layer].frames) == pytest.approx(theirs[f"error:{layer}"], abs=1e-6)
    total = theirs["loss:output"] + theirs["loss:seqout"]
    assert float(net.compute_loss(exchange["batch"], training=False)) == pytest.approx(total, rel=1e-5)


def test_padding_changes_nothing_on_the_real_frames(exchange):
    """The backward LSTMs start at each sequence's own end: more padding leaves the real frames' outputs alone
    (unlike an average pooling with "same" padding at a sequence's end, which sees padded frames, as RETURNN's)."""
    net = exchange["ours"]
    batch = exchange["batch"]
    longer = dict(batch, data=np.pad(batch["data"], [(0, 0), (0, 4), (0, 0)]),
                  classes=np.pad(batch["classes"], [(0, 0), (0, 4)]))
    short, _ = _outputs(net, batch)
    long, _ = _outputs(net, longer)
    for name in ("fw", "bw", "nat", "lin", "conv", "output", "red", "rmean", "rsum"):
        a, b = np.asarray(short[name]), np.asarray(long[name])
        if a.ndim == 3:
            for i, n in enumerate(LENS):
                np.testing.assert_allclose(a[i, :n], b[i, :n], rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def test_split_info_through_copies_as_returnn_records_it(exchange):
    theirs = exchange["returnn"]["main"]["split_info"]
    net = exchange["ours"]
    for name in ("lin/W", "output/W", "seqout/W"):  # lin reads copy(["fw", "bw"]): parts [4, 4]
        layer, param = name.split("/")
        assert net.layers[layer].split_info[param] == theirs[name], name
    assert theirs["lin/W"] == [[4, 4], [4]]


def test_returnn_loads_our_checkpoint_and_reproduces_our_output(exchange):
    theirs = exchange["returnn"]["ours"]
    outs, _ = _outputs(exchange["ours"], exchange["batch"])
    for name in NET:
        np.testing.assert_allclose(np.asarray(theirs[name]), np.asarray(outs[name]), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_standard_lstm_checkpoint_loads_with_returnns_layout_conversion(exchange):
    net = Network.from_dict(_as_outputs({**STANDARD, "st": dict(STANDARD["st"], unit="lstm")}), EXTERN,
                            behavior_version=12)
    report = load_checkpoint(net, str(exchange["tmp"] / "returnn_standard"))
    assert set(report.loaded) == set(net.param_variables())
    assert "st/rec/lstm_cell/kernel" in report.mapped["st/rec/W_re"]
    assert "layout conversion" in report.converted["st/rec/W"]
    assert "st/rec/lstm_cell/kernel" not in report.unused
    _assert_outputs_equal(net, exchange["batch"], exchange["returnn"]["standard_as_native"], STANDARD)


def test_conv_below_behavior_version_10_has_no_bias_and_loads_as_it_is(exchange):
    theirs = exchange["returnn"]["old_conv"]
    assert "c/bias" not in theirs["params"]
    net = Network.from_dict(_as_outputs(OLD_CONV), EXTERN, behavior_version=5)
    assert set(net.layers["c"].params) == {"W"}
    load_checkpoint(net, str(exchange["tmp"] / "returnn_old_conv"))
    _assert_outputs_equal(net, exchange["batch"], theirs, OLD_CONV)
    with pytest.raises(MissingParamsError, match="c/bias"):  # with a bias (behavior_version 10 on) it is missing
        load_checkpoint(Network.from_dict(OLD_CONV, EXTERN, behavior_version=10),
                        str(exchange["tmp"] / "returnn_old_conv"))


def test_checkpoints_with_the_old_rec_names_keep_loading(exchange, tmp_path):
    ours = exchange["ours"]
    old = {}
    for name, var in ours.param_variables().items():
        old[name.replace("/rec/", "/")] = var.numpy()  # fw/W, fw/W_re, fw/b as written before the rename
    prefix = save_v2(tmp_path / "old", old)
    net = Network.from_dict(_as_outputs(NET), EXTERN, behavior_version=12)
    report = load_checkpoint(net, prefix)
    assert set(report.loaded) == set(net.param_variables()) and not report.unused
    assert report.mapped["fw/rec/W_re"] == "fw/W_re" and "old name" in report.converted["fw/rec/W_re"]
    expected, _ = _outputs(ours, exchange["batch"])
    got, _ = _outputs(net, exchange["batch"])
    for name in NET:
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(expected[name]), err_msg=name)
