"""Config-level loading rules (RETURNN's model / load / import_model_train_epoch1 / preload_from_files)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transition.checkpoint._load_options import decide_loading, parse_preload_from_files
from transition.checkpoint._naming import epoch_from_filename
from transition.errors import ConfigError, MissingParamsError

EXISTING = {1: "/m/net.001", 3: "/m/net.003"}


def test_training_existing_model_wins_over_load_and_import():
    opts = {"model": "/m/net", "load": "/other/net.010", "import_model_train_epoch1": "/imp/net.005"}
    plan = decide_loading(opts, "train", EXISTING)
    assert (plan.model_file, plan.model_epoch, plan.start_epoch) == ("/m/net.003", 3, 4)
    assert not plan.new_training
    line = plan.log_line()
    assert "load='/other/net.010' ignored" in line and "import_model_train_epoch1='/imp/net.005' ignored" in line
    assert "existing model" in line


def test_training_import_model_train_epoch1_starts_at_epoch_1():
    opts = {"model": "/m/net", "import_model_train_epoch1": "/imp/net.005", "load": "/other/net.010"}
    plan = decide_loading(opts, "train", {})
    assert (plan.model_file, plan.start_epoch, plan.new_training) == ("/imp/net.005", 1, True)
    assert plan.model_role == "import_model_train_epoch1"
    assert "load='/other/net.010' ignored" in plan.log_line()
    assert "step 0" in plan.log_line()


def test_training_load_continues_at_its_epoch_plus_one():
    plan = decide_loading({"load": "/x/net.007.index"}, "train", {})
    assert (plan.model_file, plan.model_epoch, plan.start_epoch, plan.new_training) == ("/x/net.007.index", 7, 8,
                                                                                          False)
    plan = decide_loading({"load": "/x/net.007", "load_epoch": 9}, "train", {})
    assert (plan.model_epoch, plan.start_epoch) == (9, 10)


def test_training_load_without_epoch_is_a_new_training():
    plan = decide_loading({"load": "/x/pretrained"}, "train", {})
    assert (plan.start_epoch, plan.new_training, plan.model_file) == (1, True, "/x/pretrained")
    assert "unknown" in plan.log_line()


def test_training_from_scratch():
    plan = decide_loading({"model": "/m/net"}, "train", {})
    assert (plan.model_file, plan.start_epoch, plan.new_training) == (None, 1, True)
    assert "random init" in plan.log_line()


def test_training_resumes_the_newest_epoch_whatever_load_epoch_says():
    plan = decide_loading({"model": "/m/net", "load_epoch": 1}, "train", EXISTING)  # as RETURNN's EngineBase
    assert (plan.model_file, plan.start_epoch) == ("/m/net.003", 4)
    assert "load_epoch=1 ignored in training: the newest epoch 3" in plan.log_line()
    with pytest.raises(ConfigError, match=r"load_epoch=2.*\[1, 3\]"):
        decide_loading({"model": "/m/net", "load_epoch": 2}, "train", EXISTING)
    with pytest.raises(ConfigError, match=r"load_epoch=2.*none"):
        decide_loading({"model": "/m/net", "load_epoch": 2, "import_model_train_epoch1": "/imp/net"}, "train", {})


def test_non_training_without_model_fails_unless_allow_random_model_init():
    with pytest.raises(ConfigError, match="allow_random_model_init"):
        decide_loading({"model": "/m/net"}, "search", {})
    plan = decide_loading({"model": "/m/net", "allow_random_model_init": True}, "search", {})
    assert plan.model_file is None and plan.start_epoch == 1 and not plan.is_training


def test_non_training_uses_load_over_existing_and_ignores_import():
    opts = {"model": "/m/net", "load": "/x/net.010", "import_model_train_epoch1": "/imp/net.001"}
    plan = decide_loading(opts, "forward", EXISTING)
    assert (plan.model_file, plan.model_epoch, plan.start_epoch) == ("/x/net.010", 10, 10)
    assert "import_model_train_epoch1='/imp/net.001' ignored" in plan.log_line()
    plan = decide_loading({"model": "/m/net"}, "forward", EXISTING)
    assert plan.model_file == "/m/net.003"
    plan = decide_loading({"model": "/m/net", "load_epoch": 1}, "forward", EXISTING)
    assert plan.model_file == "/m/net.001"
    with pytest.raises(ConfigError, match="load_epoch=5"):
        decide_loading({"model": "/m/net", "load_epoch": 5}, "forward", EXISTING)


PRELOADS = {
    "b_recog": {"filename": "/p/b"},
    "a_train": {"filename": "/p/a", "init_for_train": True},
    "c_train": {"filename": "/p/c", "init_for_train": True, "prefix": "x_"},
    "0_recog": {"filename": "/p/0"},
}


def test_preloads_sorted_and_init_for_train_only_at_new_training():
    plan = decide_loading({"preload_from_files": PRELOADS}, "train", {})
    assert [e.name for e in plan.preloads] == ["a_train", "c_train"]
    assert {name for name, _ in plan.skipped_preloads} == {"0_recog", "b_recog"}
    assert [f for _, f in plan.files] == ["/p/a", "/p/c"]


def test_preloads_none_when_continuing_training():
    plan = decide_loading({"model": "/m/net", "preload_from_files": PRELOADS}, "train", EXISTING)
    assert plan.preloads == ()
    assert len(plan.skipped_preloads) == 4


def test_preloads_outside_training_only_without_init_for_train():
    plan = decide_loading({"preload_from_files": PRELOADS, "load": "/x/net.002"}, "search", {})
    assert [e.name for e in plan.preloads] == ["0_recog", "b_recog"]
    assert plan.files[-1] == ("load", "/x/net.002")  # the main model comes after the preloads


def test_preload_unknown_key_is_named_with_suggestion():
    with pytest.raises(ConfigError, match=r"'ignore_mising'.*did you mean 'ignore_missing'"):
        parse_preload_from_files({"m": {"filename": "/p", "ignore_mising": True}})


@pytest.mark.parametrize("entry, match", [
    ({"init_for_train": True}, "needs 'filename'"),
    ({"filename": "/p", "ignore_params": "W"}, "ignore_params"),
    ({"filename": "/p", "ignore_missing": "yes"}, "ignore_missing"),
    ({"filename": "/p", "var_name_mapping": ["a"]}, "var_name_mapping"),
    ({"filename": "/p", "prefix": 3}, "prefix"),
])
def test_preload_bad_entries(entry, match):
    with pytest.raises(ConfigError, match=match):
        parse_preload_from_files({"m": entry})


def test_preload_entry_options_are_kept():
    (entry,) = parse_preload_from_files({"m": {"filename": "/p", "ignore_params": ["a/W"], "prefix": "x_",
                                              "ignore_params_prefixes": ["b/"], "var_name_mapping": {"x_c/W": "c/W"},
                                              "ignore_missing": True}})
    opts = entry.load_options()
    assert opts["ignore_params"] == ("a/W",) and opts["prefix"] == "x_" and opts["ignore_missing"] is True
    assert opts["ignore_params_prefixes"] == ("b/",) and opts["var_name_mapping"] == {"x_c/W": "c/W"}


@pytest.mark.parametrize("opts, match", [
    ({"load_epoch": 0, "model": "/m"}, "load_epoch"),
    ({"load_epoch": 3}, "neither 'model' nor 'load'"),
    ({"allow_random_model_init": "yes"}, "allow_random_model_init"),
    ({"load": 5}, "'load'"),
    ({"preload_from_files": ["a"]}, "preload_from_files"),
])
def test_bad_option_values(opts, match):
    with pytest.raises(ConfigError, match=match):
        decide_loading(opts, "train", {})


def test_load_ignore_missing_vars_is_carried():
    assert decide_loading({"load": "/x/n.001", "load_ignore_missing_vars": True}, "eval", {}).ignore_missing
    assert not decide_loading({"load": "/x/n.001"}, "eval", {}).ignore_missing


@given(st.integers(1, 99999), st.sampled_from(["", ".index", ".meta", ".data-00000-of-00001"]),
       st.sampled_from(["net", "/a/b/network", "m.pretrain"]))
def test_epoch_from_filename(epoch, suffix, base):
    assert epoch_from_filename(f"{base}.{epoch:03d}{suffix}") == epoch


def test_epoch_from_filename_none():
    assert epoch_from_filename("/a/model") is None


# ---------------------------------------------------------------------------------------------------------------
# decide_and_load: real files, a real Network.

tf = pytest.importorskip("tensorflow")

import numpy as np  # noqa: E402

from transition.checkpoint._load_options import decide_and_load  # noqa: E402
from transition.network._network import Network

R = np.random.default_rng(2)
EXTERN = {"data": {"dim": 4}, "classes": {"dim": 2, "sparse": True}}
NET_DICT = {"enc": {"class": "linear", "activation": "tanh", "n_out": 3, "from": "data"},
            "sub_enc": {"class": "linear", "activation": "tanh", "n_out": 3, "from": "enc"},
            "output": {"class": "softmax", "n_out": 2, "from": "sub_enc", "loss": "ce", "target": "classes"}}
SHAPES = {"enc/W": (4, 3), "enc/b": (3,), "sub_enc/W": (3, 3), "sub_enc/b": (3,), "output/W": (3, 2),
          "output/b": (2,)}


def save(path, names, **extra):
    vals = {n: R.standard_normal(SHAPES[n]).astype("float32") for n in names}
    vals.update(extra)
    tf.raw_ops.SaveV2(prefix=str(path), tensor_names=list(vals), shape_and_slices=[""] * len(vals),
                      tensors=[tf.constant(v) for v in vals.values()])
    return str(path), vals


def current(net):
    return {n: np.array(v.numpy()) for n, v in net.param_variables().items()}


def test_new_training_preloads_first_entry_wins_and_main_import_keeps_them(tmp_path):
    a, va = save(tmp_path / "a", ["enc/W", "enc/b"])
    b, vb = save(tmp_path / "b", ["enc/W", "enc/b", "output/W"])
    imp, vi = save(tmp_path / "imp.010", list(SHAPES), global_step=np.int64(99))
    opts = {"model": str(tmp_path / "model"), "import_model_train_epoch1": imp,
            "preload_from_files": {"2_b": {"filename": b, "init_for_train": True, "ignore_missing": True},
                                   "1_a": {"filename": a, "init_for_train": True, "ignore_missing": True},
                                   "0_recog": {"filename": a, "prefix": "sub_"}}}
    net = Network.from_dict(NET_DICT, EXTERN)
    dec = decide_and_load(opts, task="train", network=net)
    got = current(net)
    np.testing.assert_array_equal(got["enc/W"], va["enc/W"])  # "1_a" sorts first and wins over "2_b"
    np.testing.assert_array_equal(got["output/W"], vb["output/W"])  # only "2_b" has it
    np.testing.assert_array_equal(got["output/b"], vi["output/b"])  # the import fills the rest ...
    np.testing.assert_array_equal(got["sub_enc/W"], vi["sub_enc/W"])
    assert (dec.start_epoch, dec.global_train_step, dec.loaded_epoch) == (1, 0, None)
    assert [role for role, _ in dec.files] == ["preload_from_files['1_a']", "preload_from_files['2_b']",
                                              "import_model_train_epoch1"]
    assert set(dec.reports[-1].skipped) == {"enc/W", "enc/b", "output/W"}  # ... and keeps the preloaded ones
    assert "'0_recog' skipped" in dec.log_line


def test_training_continues_from_existing_model(tmp_path):
    model = tmp_path / "net"
    save(f"{model}.001", list(SHAPES))
    _, v2 = save(f"{model}.002", list(SHAPES), global_step=np.int64(40))
    other, _ = save(tmp_path / "other.005", list(SHAPES))
    opts = {"model": str(model), "load": other, "import_model_train_epoch1": other,
            "preload_from_files": {"x": {"filename": other, "init_for_train": True}}}
    net = Network.from_dict(NET_DICT, EXTERN)
    dec = decide_and_load(opts, task="train", network=net)
    assert (dec.start_epoch, dec.loaded_epoch, dec.global_train_step) == (3, 2, 40)
    assert dec.files == (("existing model", f"{model}.002"),)
    assert "ignored: the existing model" in dec.log_line
    for name, value in current(net).items():
        np.testing.assert_array_equal(value, v2[name])


def test_recognition_with_load_and_prefixed_preload(tmp_path):
    main, vm = save(tmp_path / "main.007", list(SHAPES))
    sub, vs = save(tmp_path / "sub2", [], **{"enc/W": R.standard_normal((3, 3)).astype("float32"),
                                            "enc/b": R.standard_normal(3).astype("float32")})
    opts = {"load": main, "preload_from_files": {"s": {"filename": sub, "prefix": "sub_"}}}
    net = Network.from_dict(NET_DICT, EXTERN)
    dec = decide_and_load(opts, task="search", network=net)
    got = current(net)
    np.testing.assert_array_equal(got["sub_enc/W"], vs["enc/W"])
    np.testing.assert_array_equal(got["enc/W"], vm["enc/W"])
    assert dec.start_epoch == 7 and dec.files[0] == ("preload_from_files['s']", sub)


def test_recognition_with_only_preloads_needs_allow_random_model_init(tmp_path):
    sub, vs = save(tmp_path / "all", list(SHAPES))
    opts = {"preload_from_files": {"s": {"filename": sub}}}
    net = Network.from_dict(NET_DICT, EXTERN)
    with pytest.raises(ConfigError, match="allow_random_model_init"):
        decide_and_load(opts, task="forward", network=net)
    dec = decide_and_load({**opts, "allow_random_model_init": True}, task="forward", network=net)
    np.testing.assert_array_equal(current(net)["output/W"], vs["output/W"])
    assert dec.files == (("preload_from_files['s']", sub),)


def test_load_ignore_missing_vars(tmp_path):
    part, _ = save(tmp_path / "part.003", ["enc/W", "enc/b"])
    net = Network.from_dict(NET_DICT, EXTERN)
    with pytest.raises(MissingParamsError, match="output/W"):
        decide_and_load({"load": part}, task="eval", network=net)
    dec = decide_and_load({"load": part, "load_ignore_missing_vars": True}, task="eval", network=net)
    assert set(dec.reports[0].missing) == {"sub_enc/W", "sub_enc/b", "output/W", "output/b"}


def test_preload_into_a_net_whose_layers_are_all_prefixed(tmp_path):
    """A net without a layer "output" (its output is the layer with the loss) preloads a whole other model."""
    base, vals = save(tmp_path / "base.004", list(SHAPES))
    prefixed = {f"enc_{name}": dict(d, **({"from": f"enc_{d['from']}"} if d["from"] != "data" else {}))
                for name, d in NET_DICT.items()}
    net = Network.from_dict(prefixed, EXTERN)
    assert net.output_layers == ("enc_output",)
    opts = {"model": str(tmp_path / "new"),
            "preload_from_files": {"base": {"filename": base, "prefix": "enc_", "init_for_train": True}}}
    dec = decide_and_load(opts, task="train", network=net)
    assert set(dec.reports[0].loaded) == {f"enc_{n}" for n in SHAPES}
    for name, value in current(net).items():
        np.testing.assert_array_equal(value, vals[name[len("enc_"):]])
