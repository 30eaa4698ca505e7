"""Errors before training, never mid-run (transition.training._precheck and the data checks of the loop)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from transition.errors import ConfigError, ShapeMismatchError

EXTERN = {"data": {"shape": (4,)}, "classes": {"dim": 3, "sparse": True, "shape": ()}}


def lin(n_out, src="data", **kw):
    return {"class": "linear", "activation": "tanh", "n_out": n_out, "from": src, **kw}


def out(src):
    return {"class": "softmax", "loss": "ce", "from": src, "target": "classes"}


def _manager(model, **kwargs):
    import keras

    from transition.training._manager import TransitionManager

    kwargs.setdefault("num_epochs", 4)
    return TransitionManager(model=str(model), extern_data=EXTERN, optimizer=lambda: keras.optimizers.Adam(0.01),
                             log=lambda s: None, **kwargs)


def _start(mgr):
    with mgr:
        for _epoch in mgr.epochs():
            raise AssertionError("no epoch may start")


def test_a_typo_only_the_epoch_3_net_uses_fails_at_the_start(tmp_path):
    calls = []

    def get_network(epoch):
        calls.append(epoch)
        net = {"l1": lin(5), "output": out("l1")}
        if epoch >= 3:
            net["l2"] = {"class": "lienar", "n_out": 5, "from": "l1"}
            net["output"] = out("l2")
        return net

    with pytest.raises(ConfigError, match=r"epoch 3 \(checked before training\).*'lienar'.*did you mean 'linear'"):
        _start(_manager(tmp_path / "m", get_network=get_network))
    assert calls == [1, 2, 3]  # a pure function of the epoch: called for each epoch, up to the bad one
    assert not os.path.exists(tmp_path / "m.001.index") and not os.path.exists(tmp_path / "m.lock")


def test_a_transition_that_would_fail_mid_run_fails_at_the_start(tmp_path):
    def get_network(epoch):  # l1 grows at epoch 3, and no copy mode lets its params change shape
        return {"l1": lin(5 if epoch < 3 else 7), "output": out("l1")}

    with pytest.raises(ShapeMismatchError, match=r"epoch 3.*transition from epoch 2.*'l1', param 'W'.*\(4, 5\)"):
        _start(_manager(tmp_path / "m", get_network=get_network))

    def growing(epoch):
        return {"#copy_param_mode": "subset", **get_network(epoch)}

    mgr = _manager(tmp_path / "ok", get_network=growing, num_epochs=1)  # with "subset" it is fine
    with mgr:
        for _epoch in mgr.epochs():
            mgr.end_epoch({})


def test_pretrain_steps_are_checked_before_the_first_epoch(tmp_path):
    net = {"l1": lin(5), "l2": lin(5, "l1", dropout=1.5), "output": out("l2")}  # a bad option in the final net
    with pytest.raises(ConfigError, match=r"epoch 2 \(checked before training\).*'l2'.*'dropout'=1.5"):
        _start(_manager(tmp_path / "m", network=net, pretrain={"construction_algo": "from_output"}))


def test_check_schedule_builds_each_distinct_net_dict_once():
    from transition.training._precheck import check_schedule

    nets = {e: {"l1": lin(5 if e < 5 else 6), "output": out("l1"), "#copy_param_mode": "ifpossible"}
            for e in range(1, 11)}
    assert check_schedule(nets.__getitem__, lambda e: None, range(1, 11), EXTERN) == 2


def test_numpy_data_of_a_dim_only_key_without_a_time_axis_is_an_error_before_training(tmp_path):
    from transition.training._loop import train_from_config

    x = np.zeros((16, 32), "float32")
    cfg = {"model": str(tmp_path / "m"), "extern_data": {"data": {"dim": 32}, "classes": {"dim": 3, "sparse": True}},
           "network": {"output": {"class": "softmax", "loss": "ce", "target": "classes"}}, "num_epochs": 1,
           "train": {"data": x, "classes": np.zeros((16, 1), "int32")}, "log_verbosity": 0}
    with pytest.raises(ConfigError) as raised:
        train_from_config(cfg)
    msg = str(raised.value)
    for part in ("'data'", "(16, 32)", "[N, T, 32]", "'shape': (32,)"):
        assert part in msg, msg
    assert "\x1b[" not in msg and len(msg.splitlines()) == 1
    assert not os.path.exists(tmp_path / "m.001.index")


def test_the_configs_behavior_version_reaches_every_epochs_network(tmp_path):
    from transition.training._manager import TransitionManager

    ext = {"data": {"dim": 4}, "classes": {"dim": 3, "sparse": True}}

    def get_network(epoch):
        return {"c": {"class": "conv", "filter_size": 2, "n_out": 3 + epoch, "from": "data"},
                "output": {"class": "softmax", "loss": "ce", "target": "classes", "from": "c"},
                "#copy_param_mode": "subset"}

    cfg = {"model": str(tmp_path / "m"), "extern_data": ext, "get_network": get_network, "num_epochs": 2,
           "behavior_version": 10}
    seen = []
    with TransitionManager.from_config(cfg, log=lambda s: None) as mgr:
        for _epoch in mgr.epochs():
            seen.append(sorted(mgr.network.layers["c"].params))
            mgr.end_epoch({})
    assert seen == [["W", "bias"], ["W", "bias"]]  # also after the transition into epoch 2
    with pytest.raises(ConfigError, match="behavior_version"):
        TransitionManager.from_config(dict(cfg, behavior_version=-1))


def test_a_preserving_growth_that_cannot_keep_the_output_fails_at_the_start(tmp_path):
    # pretraining inserts l2 (tanh) at epoch 2: under "preserve" it cannot start as the identity
    net = {"l1": lin(5), "l2": lin(5, "l1"), "output": out("l2")}
    with pytest.raises(ConfigError, match=r"epoch 2 \(checked before training\).*new layer 'l2' has activation "
                                          r"'tanh'.*None, 'linear' or 'relu'"):
        _start(_manager(tmp_path / "m", network=net, pretrain={"construction_algo": "from_output",
                                                                "copy_param_mode": "preserve"}))
    assert not os.path.exists(tmp_path / "m.lock")
    relu = {"l1": lin(5, activation="relu"), "l2": lin(6, "l1", activation="relu"), "output": out("l2")}
    mgr = _manager(tmp_path / "ok", network=relu, num_epochs=2, verify_inputs={"data": np.ones((2, 4), "float32")},
                   pretrain={"construction_algo": "from_output", "copy_param_mode": "preserve"})
    with mgr:  # relu after relu: fine, and the transition's check is in the summary
        for _epoch in mgr.epochs():
            mgr.end_epoch({})
        assert "checked on 2 examples: max output diff 0" in mgr.transition_summary
        assert mgr.last_transition.report.status_of("l2/W").value == "preserved"
