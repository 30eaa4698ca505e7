"""Tests of RETURNN-style config loading (transition.training._config)."""

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transition.errors import ConfigError
from transition.training._config import KNOWN_KEYS, load_config, parse_overrides


def _write(tmp_path, text, name="exp.config"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


GOOD = textwrap.dedent("""
    #!rnn.py
    import os
    from math import pi
    import numpy as np

    _hidden = 8

    def _make_net(n):
        return {"l1": {"class": "linear", "n_out": n, "from": "data"}, "output": {"class": "softmax", "from": "l1"}}

    def my_importer(layer, values_dict, session=None):
        pass

    class Helper:
        pass

    extern_data = {"data": {"dim": 4}, "classes": {"dim": 3, "sparse": True}}
    network = _make_net(_hidden)
    model = os.path.join("runs", "net")
    num_epochs = 3
    learning_rate = 0.01
    learning_rate_control = "newbob"
    optimizer = {"class": "adam"}
    train = {"data": np.zeros((4, 4), "float32"), "classes": np.zeros((4,), "int32")}
""")


def test_file_config_keeps_options_and_skips_helpers(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    assert set(cfg) == {
        "extern_data", "network", "model", "num_epochs", "learning_rate", "learning_rate_control", "optimizer", "train"
    }
    assert cfg["network"]["l1"]["n_out"] == 8
    assert cfg["batch_size"] == KNOWN_KEYS["batch_size"][1]  # default
    assert not cfg.is_set("dev")


def test_unknown_key_suggests_closest(tmp_path):
    path = _write(tmp_path, GOOD + "num_epoch = 4\n")
    with pytest.raises(ConfigError, match=r"'num_epoch'.*did you mean 'num_epochs'") as info:
        load_config(path)
    assert path in str(info.value)


def test_misspelt_function_option_is_error(tmp_path):
    path = _write(tmp_path, GOOD.replace("network = _make_net(_hidden)", "def get_netwrok(epoch):\n    return {}"))
    with pytest.raises(ConfigError, match=r"get_netwrok.*get_network"):
        load_config(path)


def test_bad_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="num_epochs"):
        load_config(_write(tmp_path, GOOD + "num_epochs = '3'\n"))
    with pytest.raises(ConfigError, match="optimizer"):
        load_config({"optimizer": {"lr": 1.0}})
    with pytest.raises(ConfigError, match="learning_rate_control"):
        load_config({"learning_rate_control": "newbobb"})


def test_overrides_are_literals_and_checked(tmp_path):
    path = _write(tmp_path, GOOD)
    cfg = load_config(path, ["--num_epochs=7", "--model=other/net", "--learning_rate=1e-4", "--dev=None"])
    assert cfg["num_epochs"] == 7 and cfg["model"] == "other/net" and cfg["learning_rate"] == 1e-4
    with pytest.raises(ConfigError, match=r"'batch_sise'.*batch_size"):
        load_config(path, ["--batch_sise=3"])
    with pytest.raises(ConfigError, match="--key=value"):
        load_config(path, ["num_epochs=3"])


def test_dict_config_and_network_conflict():
    cfg = load_config({"network": {"output": {"class": "copy"}}, "num_epochs": 2})
    assert cfg.path is None and cfg["num_epochs"] == 2
    with pytest.raises(ConfigError, match="get_network"):
        load_config({"network": {}, "get_network": lambda epoch: {}})


def test_require_names_missing_option():
    cfg = load_config({"num_epochs": 2})
    with pytest.raises(ConfigError, match="'model'"):
        cfg.require("num_epochs", "model")


def test_missing_file_and_syntax_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.config"):
        load_config(str(tmp_path / "nope.config"))
    with pytest.raises(ConfigError, match="syntax error"):
        load_config(_write(tmp_path, "num_epochs = (\n"))


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                 st.lists(st.integers(), max_size=3), st.text(alphabet="abcxyz_/.", min_size=1)))
def test_parse_overrides_round_trips_literals(value):
    text = repr(value) if not isinstance(value, str) else value
    assert parse_overrides([f"--x={text}"])["x"] == value


def test_main_job_config_is_valid():
    """examples/digits.config (the README's main job) loads, and every option reaches the manager."""
    import os

    pytest.importorskip("sklearn")
    from transition.training._config import manager_options

    path = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples", "digits.config")
    cfg = load_config(path)
    opts = manager_options(cfg)
    assert opts.model == "runs/digits/network" and opts.num_epochs == 24
    assert callable(cfg["network"]["output"]["custom_param_importer"]) and opts.init_new_network_callback is None
    assert opts.pretrain.get_train_num_epochs() == 6 and opts.save_every_n_steps == 20
    assert opts.pretrain.get_copy_param_mode_for_epoch(3) == "preserve" and opts.verify_inputs is cfg["dev"]
    ctl = opts.learning_rate_control
    assert (ctl.kind, ctl.pretrain_learning_rate, ctl.learning_rate) == ("newbob_relative", 0.005, 0.003)
    assert (opts.keep.keep_best, opts.keep.score) == (1, "dev_error")
    assert len(cfg["train"]["data"]) + len(cfg["dev"]["data"]) == 1797


def test_manager_config_errors_name_the_option():
    from transition.training._config import (
        manager_options as manager_kwargs_from_config,
    )

    base = {"model": "m", "extern_data": {"data": {"dim": 2}}, "num_epochs": 1}
    with pytest.raises(ConfigError, match="'network'.*'get_network'"):
        manager_kwargs_from_config(load_config(base))
    with pytest.raises(ConfigError, match="'pretrain' needs 'network'"):
        manager_kwargs_from_config(load_config(dict(base, get_network=lambda epoch: {}, pretrain="default")))
    with pytest.raises(ConfigError, match="task='eval'"):
        manager_kwargs_from_config(load_config(dict(base, network={}, task="eval")))
    with pytest.raises(ConfigError, match="'num_epochs' is required"):
        manager_kwargs_from_config(load_config({"model": "m", "extern_data": {}, "network": {}}))
