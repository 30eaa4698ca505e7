"""`init_from_checkpoint` against tf.compat.v1.train.init_from_checkpoint on the same checkpoints and maps."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from transition.checkpoint._assignment_map import init_from_checkpoint  # noqa: E402
from transition.errors import (  # noqa: E402
    ConfigError,
    MissingParamsError,
    ShapeMismatchError,
    TransitionError,
)

RNG = np.random.default_rng(0)


def arr(*shape):
    return RNG.standard_normal(shape).astype("float32")


CKPT_VALUES = {
    "old_scope_1/var1": arr(4, 2),
    "old_scope_1/var2": arr(5, 3),
    "old_scope_2/var3": arr(6, 2),
    "var1": arr(4, 2),
    "var2": arr(5, 3),
}


def _initializer(val):
    def init(shape, dtype=None, partition_info=None):
        if partition_info is None:
            return tf.constant(val)
        start = partition_info.var_offset[0]
        return tf.constant(val[start:start + shape[0]])

    return init


def write_tf1(path, values, partitions=None):
    """Write a checkpoint with tf.compat.v1.train.Saver in a graph (partitioned variables saved as slices)."""
    partitions = partitions or {}
    with tf.Graph().as_default():
        for name, val in values.items():
            n = partitions.get(name)
            partitioner = (lambda shape, dtype, n=n: [n] + [1] * (len(shape) - 1)) if n else None
            tf.compat.v1.get_variable(name, shape=val.shape, dtype=tf.as_dtype(val.dtype),
                                      initializer=_initializer(val), partitioner=partitioner)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, str(path))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tf1(tmp_path_factory.mktemp("am") / "model.ckpt", CKPT_VALUES)


# Network side: {name: (shape, partitions)}
NET = {"new_scope_1/var1": ((4, 2), None), "new_scope_1/var2": ((5, 3), None), "new_scope_2/var3": ((6, 2), 2)}


def tf_oracle(ckpt_path, net, assignment_map):
    """Run TF's init_from_checkpoint in a graph; return {name: value} (partitioned variables concatenated)."""
    with tf.Graph().as_default():
        variables = {}
        for name, (shape, parts) in net.items():
            variables[name] = tf.compat.v1.get_variable(
                name, shape=shape, initializer=tf.compat.v1.zeros_initializer(),
                partitioner=(lambda shape, dtype, n=parts: [n] + [1] * (len(shape) - 1)) if parts else None)
        tf.compat.v1.train.init_from_checkpoint(ckpt_path, assignment_map)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return {name: sess.run(tf.concat(list(v), 0) if net[name][1] else v)
                    for name, v in variables.items()}


def our_store(net):
    """{"layer/param": keras.Variable} with partitioned params as name/part_i (split evenly along axis 0)."""
    store = {}
    for name, (shape, parts) in net.items():
        if parts:
            for i, rows in enumerate(np.array_split(np.arange(shape[0]), parts)):
                store[f"{name}/part_{i}"] = keras.Variable(np.zeros((len(rows),) + shape[1:], "float32"))
        else:
            store[name] = keras.Variable(np.zeros(shape, "float32"))
    return store


def our_values(store, net):
    out = {}
    for name, (shape, parts) in net.items():
        if parts:
            out[name] = np.concatenate([store[f"{name}/part_{i}"].numpy() for i in range(parts)])
        else:
            out[name] = store[name].numpy()
    return out


@pytest.mark.parametrize("assignment_map", [
    {"old_scope_1/": "new_scope_1/"},
    {"old_scope_1/var1": "new_scope_1/var1", "old_scope_1/var2": "new_scope_1/var2"},
    {"old_scope_2/var3": "new_scope_2/var3"},  # into a partitioned variable by name
    {"/": "new_scope_1/"},  # checkpoint root
    [("old_scope_1/var1", "new_scope_1/var1"), ("var1", "new_scope_1/var1")],  # pairs; later in sorted order wins
    {"old_scope_1/var1": "new_scope_1/var1", "old_scope_1/": "new_scope_1/"},
])
def test_matches_tf(ckpt, assignment_map):
    expected = tf_oracle(ckpt, NET, assignment_map)
    store = our_store(NET)
    report = init_from_checkpoint(ckpt, assignment_map, store)
    got = our_values(store, NET)
    for name in NET:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert report.loaded  # something was loaded, and the report says what
    assert set(report.loaded) <= set(store)


def test_one_tensor_into_several_variables(ckpt):
    net = {"a/var1": ((4, 2), None), "b/var1": ((4, 2), None)}
    amap = [("old_scope_1/var1", "a/var1"), ("old_scope_1/var1", "b/var1")]
    expected = tf_oracle(ckpt, net, amap)
    store = our_store(net)
    init_from_checkpoint(ckpt, amap, store)
    np.testing.assert_array_equal(store["a/var1"].numpy(), expected["a/var1"])
    np.testing.assert_array_equal(store["b/var1"].numpy(), CKPT_VALUES["old_scope_1/var1"])


def test_variable_objects_and_lists(ckpt):
    store = our_store({"l1/W": ((4, 2), None), "l2/W": ((5, 3), None)})
    parts = [keras.Variable(np.zeros((2, 2), "float32")), keras.Variable(np.zeros((4, 2), "float32"))]
    report = init_from_checkpoint(ckpt, {"old_scope_1/var2": store["l2/W"], "old_scope_2/var3": parts}, store)
    np.testing.assert_array_equal(store["l2/W"].numpy(), CKPT_VALUES["old_scope_1/var2"])
    np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts]), CKPT_VALUES["old_scope_2/var3"])
    assert "l2/W" in report.loaded and report.mapped["l2/W"] == "old_scope_1/var2"
    assert not store["l1/W"].numpy().any()  # untouched


def test_list_of_variables_that_do_not_split_the_tensor(ckpt):
    parts = [keras.Variable(np.zeros((2, 2), "float32")), keras.Variable(np.zeros((3, 2), "float32"))]
    with pytest.raises(ShapeMismatchError, match=r"old_scope_2/var3.*\(6, 2\)"):
        init_from_checkpoint(ckpt, {"old_scope_2/var3": parts}, {})
    assert not any(p.numpy().any() for p in parts)


def test_checkpoint_from_tf1_partitioned_variables(tmp_path):
    value = arr(7, 3)
    path = write_tf1(tmp_path / "part.ckpt", {"enc/W": value}, partitions={"enc/W": 3})
    store = our_store({"l/W": ((7, 3), None), "m/W": ((7, 3), 2)})
    init_from_checkpoint(path, {"enc/W": "l/W", "enc/": "m/"}, store)
    np.testing.assert_array_equal(store["l/W"].numpy(), value)
    np.testing.assert_array_equal(our_values(store, {"m/W": ((7, 3), 2)})["m/W"], value)


@pytest.mark.parametrize("assignment_map, error, match", [
    ({"old_scope_1/nope": "new_scope_1/var1"}, ConfigError, r"'old_scope_1/nope'.*not found"),
    ({"old_scope_1/var2": "new_scope_1/var1"}, ShapeMismatchError, r"new_scope_1/var1.*\(4, 2\).*\(5, 3\)"),
    ({"old_scope_1": "new_scope_1/"}, ConfigError, r"'old_scope_1'.*trailing '/'"),
    ({"old_scope_2/": "new_scope_1/"}, MissingParamsError, r"old_scope_2/var1"),
])
def test_errors_where_tf_errors(ckpt, assignment_map, error, match):
    with pytest.raises(ValueError):
        tf_oracle(ckpt, NET, assignment_map)
    store = our_store(NET)
    with pytest.raises(error, match=match) as raised:
        init_from_checkpoint(ckpt, assignment_map, store)
    assert isinstance(raised.value, ValueError)  # as TF's errors, whatever our class
    assert not any(v.numpy().any() for v in store.values())  # nothing assigned before the error


def test_scope_matching_nothing_is_an_error_unlike_tf(ckpt):
    # TF silently loads nothing here
    assert not any(v.any() for v in tf_oracle(ckpt, NET, {"old_scope_1/": "new_scope_9/"}).values())
    with pytest.raises(ConfigError, match=r"scope 'new_scope_9/' matches no param.*did you mean.*'new_scope_1/'"):
        init_from_checkpoint(ckpt, {"old_scope_1/": "new_scope_9/"}, our_store(NET))


def test_unknown_network_name_is_named(ckpt):
    with pytest.raises(TransitionError, match=r"'new_scope_1/var9'.*did you mean.*'new_scope_1/var1'"):
        init_from_checkpoint(ckpt, {"old_scope_1/var1": "new_scope_1/var9"}, our_store(NET))


def test_dtype_mismatch_is_an_error(tmp_path):
    path = write_tf1(tmp_path / "d.ckpt", {"x/W": np.zeros((2, 2), "float64")})
    with pytest.raises(ShapeMismatchError, match=r"float32.*float64"):
        init_from_checkpoint(path, {"x/W": "l/W"}, our_store({"l/W": ((2, 2), None)}))


def test_into_a_network_by_scope(tmp_path):
    from transition.network._network import Network

    net = Network.from_dict({"l1": {"class": "linear", "activation": "tanh", "n_out": 3, "from": "data"},
                             "output": {"class": "softmax", "n_out": 2, "from": "l1"}}, {"data": {"dim": 4}})
    before = net.layers["output"].params["W"].numpy().copy()
    values = {"enc/W": arr(4, 3), "enc/b": arr(3), "enc/W/Adam": arr(4, 3)}
    path = write_tf1(tmp_path / "enc.ckpt", values)
    report = init_from_checkpoint(path, {"enc/": "l1/"}, net)
    np.testing.assert_array_equal(net.layers["l1"].params["W"].numpy(), values["enc/W"])
    np.testing.assert_array_equal(net.layers["l1"].params["b"].numpy(), values["enc/b"])
    np.testing.assert_array_equal(net.layers["output"].params["W"].numpy(), before)
    assert report.loaded == ("l1/W", "l1/b") and report.unused == ("enc/W/Adam",)
    assert report.mapped == {"l1/W": "enc/W", "l1/b": "enc/b"}
