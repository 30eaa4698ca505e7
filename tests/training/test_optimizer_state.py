"""Tests of transition.training._optimizer_state: optimizer from config, learning rate, optimizer / param arrays round trip."""

import numpy as np
import pytest

from transition.errors import CheckpointError, ConfigError

EXTERN = {"data": {"shape": (3,)}, "classes": {"dim": 2, "sparse": True, "shape": ()}}
NET = {
    "l1": {"class": "linear", "activation": "tanh", "n_out": 4, "from": "data"},
    "output": {"class": "softmax", "loss": "ce", "from": "l1", "target": "classes"},
}


def _trained():
    """A network and an Adam optimizer after two steps (non-zero slots)."""
    import keras
    import tensorflow as tf

    from transition.network._network import Network

    net = Network.from_dict(NET, EXTERN)
    opt = keras.optimizers.Adam(0.1)
    opt.build(list(net.trainable_variables))
    batch = {"data": tf.constant(np.ones((2, 3), "float32")), "classes": tf.constant([0, 1], "int32")}
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = net.compute_loss(batch, training=True)
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables))
    return net, opt


def _fresh(net):
    import keras

    opt = keras.optimizers.Adam(0.1)
    opt.build(list(net.trainable_variables))
    return opt


def test_optimizer_arrays_round_trip_and_errors_name_the_variable():
    from transition.training._optimizer_state import optimizer_arrays, restore_optimizer

    net, opt = _trained()
    arrays = {k: np.array(v.numpy()) for k, v in optimizer_arrays(opt, net).items()}
    assert {"iterations", "momentums/l1/W", "velocities/output/b"} <= set(arrays)
    assert arrays["momentums/l1/W"].any() and int(arrays["iterations"]) == 2
    other = _fresh(net)
    restore_optimizer(other, net, arrays, "ckpt.003")
    again = {k: np.array(v.numpy()) for k, v in optimizer_arrays(other, net).items()}
    assert sorted(again) == sorted(arrays)
    assert all(np.array_equal(again[k], arrays[k]) for k in arrays)

    missing = {k: v for k, v in arrays.items() if k != "velocities/l1/W"}
    with pytest.raises(CheckpointError, match=r"ckpt\.003.*optimizer/velocities/l1/W"):
        restore_optimizer(_fresh(net), net, missing, "ckpt.003")
    wrong = dict(arrays, **{"momentums/l1/b": np.zeros((7,), "float32")})
    with pytest.raises(CheckpointError, match=r"momentums/l1/b.*\(7,\).*\(4,\)"):
        restore_optimizer(_fresh(net), net, wrong, "ckpt.003")
    with pytest.raises(CheckpointError, match="iterations"):
        restore_optimizer(_fresh(net), net, {}, "ckpt.003")


def test_assign_checkpoint_params_checks_names_and_shapes():
    from transition.training._optimizer_state import assign_checkpoint_params

    net, _ = _trained()
    values = {k: np.full(tuple(v.shape), 0.25, "float32") for k, v in net.param_variables().items()}
    assign_checkpoint_params(net, values, "p")
    assert all(np.all(v.numpy() == 0.25) for v in net.param_variables().values())
    with pytest.raises(CheckpointError, match="lacks params.*l1/b"):
        assign_checkpoint_params(net, {k: v for k, v in values.items() if k != "l1/b"}, "p")
    with pytest.raises(CheckpointError, match="l9/W"):
        assign_checkpoint_params(net, dict(values, **{"l9/W": values["l1/W"]}), "p")
    with pytest.raises(CheckpointError, match=r"l1/W has shape \(1,\)"):
        assign_checkpoint_params(net, dict(values, **{"l1/W": np.zeros((1,), "float32")}), "p")


def test_optimizer_factory_and_learning_rate():
    from transition.training._optimizer_state import (
        learning_rate_of,
        optimizer_factory,
        set_learning_rate,
    )

    make = optimizer_factory({"class": "SGD", "momentum": 0.5})
    a, b = make(), make()
    assert a is not b and type(a).__name__ == "SGD" and a.momentum == 0.5
    set_learning_rate(a, 0.125)
    assert learning_rate_of(a) == 0.125
    with pytest.raises(ConfigError, match="'adamm'.*adam"):
        optimizer_factory({"class": "adamm"})
    with pytest.raises(ConfigError, match="learning_rate"):
        optimizer_factory({"class": "adam", "learning_rate": 0.1})
    with pytest.raises(ConfigError, match="momentun"):
        optimizer_factory({"class": "sgd", "momentun": 0.1})
    with pytest.raises(ConfigError, match="class"):
        optimizer_factory({"epsilon": 1.0})


def test_a_checkpoint_with_the_old_rec_names_restores_params_and_slots():
    """Checkpoints of this project written before the rec layer took RETURNN's names (l/W -> l/rec/W) resume."""
    import keras

    from transition.network._network import Network
    from transition.training._optimizer_state import (
        assign_checkpoint_params,
        optimizer_arrays,
        restore_optimizer,
    )

    ext = {"data": {"dim": 3}, "classes": {"dim": 2, "sparse": True}}
    net_dict = {"l": {"class": "rec", "unit": "lstm", "n_out": 2}, "output": {"class": "softmax", "from": "l",
                                                                              "loss": "ce", "target": "classes"}}
    net = Network.from_dict(net_dict, ext)
    opt = keras.optimizers.Adam()
    opt.build(list(net.trainable_variables))
    rng = np.random.default_rng(0)
    for var in [*net.param_variables().values(), *opt.variables]:
        var.assign(rng.standard_normal(var.shape).astype(var.dtype))
    old = {name.replace("/rec/", "/"): v.numpy() for name, v in net.param_variables().items()}
    old_slots = {name.replace("/rec/", "/"): np.array(v.numpy()) for name, v in optimizer_arrays(opt, net).items()}
    assert "l/W_re" in old and "momentums/l/W_re" in old_slots
    net2 = Network.from_dict(net_dict, ext)
    opt2 = keras.optimizers.Adam()
    opt2.build(list(net2.trainable_variables))
    assign_checkpoint_params(net2, old, "old.001")
    restore_optimizer(opt2, net2, old_slots, "old.001")
    for name, var in net.param_variables().items():
        np.testing.assert_array_equal(net2.param_variables()[name].numpy(), var.numpy())
    for name, var in optimizer_arrays(opt, net).items():
        np.testing.assert_array_equal(optimizer_arrays(opt2, net2)[name].numpy(), var.numpy())
