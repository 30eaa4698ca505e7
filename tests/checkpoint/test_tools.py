"""inspect / convert / avg, as functions and through the command line."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import save_v2
from transition.checkpoint._reader import read_checkpoint
from transition.checkpoint._tools import (
    average_checkpoints,
    convert_checkpoint,
    format_inspection,
    inspect_checkpoint,
    select_names,
)
from transition.errors import CheckpointError, ConfigError, ShapeMismatchError

RNG = np.random.default_rng(3)


def _values(scale: float = 1.0) -> dict[str, np.ndarray]:
    return {
        "l1/W": (scale * RNG.normal(size=(4, 3))).astype(np.float32),
        "l1/b": (scale * RNG.normal(size=3)).astype(np.float64),
        "out/W": (scale * RNG.normal(size=(3, 2))).astype(np.float16),
        "global_step": np.int64(10 * scale),
    }


def _tf1_saver(prefix, values):
    """Write with tf.compat.v1.train.Saver in a graph, as RETURNN does."""
    g = tf.Graph()
    with g.as_default():
        tf_vars = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
        saver = tf.compat.v1.train.Saver(tf_vars)
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(prefix), write_meta_graph=False)
    return str(prefix)


def _assert_same(a: dict, b: dict):
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name  # a scalar (global_step) stays 0-d, not [1]
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# --- inspect -------------------------------------------------------------------------------------------------------


def test_inspect_lists_names_shapes_dtypes_sizes(tmp_path):
    values = _values()
    prefix = save_v2(tmp_path / "m", values)
    entries = inspect_checkpoint(prefix)
    assert [e.name for e in entries] == sorted(values)
    for name, shape, dtype, nbytes in entries:
        assert shape == np.shape(values[name]) and dtype == np.asarray(values[name]).dtype
        assert nbytes == np.asarray(values[name]).nbytes
    table = format_inspection(entries, path=prefix)
    total = sum(np.asarray(v).nbytes for v in values.values())
    assert "l1/W" in table and "4x3" in table and "float16" in table
    assert f"total: 4 arrays, {4 * 3 + 3 + 3 * 2 + 1} elements" in table and f"({total} bytes)" in table


# --- select_names --------------------------------------------------------------------------------------------------


def test_select_names_by_name_and_prefix():
    names = ["l1/W", "l1/b", "l10/W", "out/W", "global_step"]
    assert select_names(names, ["l1"]) == ["l1/W", "l1/b"]  # 'l1' does not select 'l10/W'
    assert select_names(names, ["l1/", "global_step"]) == ["global_step", "l1/W", "l1/b"]
    assert select_names(names, ["out/W:0"]) == ["out/W"]
    with pytest.raises(ConfigError, match=r"'out/w'.*did you mean 'out/W'"):
        select_names(names, ["l1", "out/w"])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.from_regex(r"[ab]{1,2}(/[ab]{1,2}){0,2}", fullmatch=True), min_size=1, max_size=8, unique=True),
       st.data())
def test_select_names_property(names, data):
    """A name is selected iff it equals an entry or lies under one (entry + '/'); every entry selects something."""
    only = data.draw(st.lists(st.sampled_from(sorted({n.rsplit("/", 1)[0] for n in names} | set(names))),
                              min_size=1, max_size=3))
    got = select_names(names, only)
    assert got == sorted(n for n in names if any(n == e or n.startswith(e + "/") for e in only))


# --- convert -------------------------------------------------------------------------------------------------------


def test_convert_tf_to_npz_and_back(tmp_path):
    values = {k: np.asarray(v) for k, v in _values().items()}
    src = _tf1_saver(tmp_path / "model.001", values)
    npz = str(tmp_path / "m.npz")
    assert convert_checkpoint(src, npz) == sorted(values)
    _assert_same(read_checkpoint(npz), values)
    back = str(tmp_path / "back")
    convert_checkpoint(npz, back)
    # TF's own reader sees the same names
    reader = tf.train.load_checkpoint(back)
    assert set(reader.get_variable_to_shape_map()) == set(values)
    _assert_same({n: np.asarray(reader.get_tensor(n)) for n in values}, values)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["model.001.index", "model.001.data-00000-of-00001", "checkpoint", "m.npz", "back.index",
         "back.data-00000-of-00001"]
    ), "no temporary files may be left"


def test_convert_only_names_and_errors(tmp_path):
    values = _values()
    src = save_v2(tmp_path / "m", values)
    dst = str(tmp_path / "part.npz")
    assert convert_checkpoint(src, dst, only_names=["l1"]) == ["l1/W", "l1/b"]
    assert sorted(read_checkpoint(dst)) == ["l1/W", "l1/b"]
    with pytest.raises(CheckpointError, match="exists"):
        convert_checkpoint(src, dst)
    convert_checkpoint(src, dst, only_names=["out"], overwrite=True)
    assert sorted(read_checkpoint(dst)) == ["out/W"]
    with pytest.raises(ConfigError, match="'l2'"):
        convert_checkpoint(src, str(tmp_path / "x.npz"), only_names=["l2"])
    assert not os.path.exists(tmp_path / "x.npz")


def test_convert_exact_names(tmp_path):
    from transition.errors import MissingParamsError

    values = {**_values(), "l1/W/Adam": np.zeros((4, 3), np.float32)}
    src = save_v2(tmp_path / "m", values)
    dst = str(tmp_path / "net.npz")
    assert convert_checkpoint(src, dst, exact_names=["l1/W:0", "out/W"]) == ["l1/W", "out/W"]
    _assert_same(read_checkpoint(dst), {n: values[n] for n in ("l1/W", "out/W")})  # no l1/W/Adam
    with pytest.raises(MissingParamsError, match=r"lacks 1 of the 2.*'l1/w'.*did you mean .*'l1/W'"):
        convert_checkpoint(src, str(tmp_path / "x.npz"), exact_names=["l1/w", "out/W"])
    assert not os.path.exists(tmp_path / "x.npz")


def test_convert_overwrites_tf_bundle_and_removes_stale_shards(tmp_path):
    src = save_v2(tmp_path / "m", _values())
    dst = str(tmp_path / "out")
    stale = dst + ".data-00001-of-00002"
    convert_checkpoint(src, dst, only_names=["l1/W"])
    open(stale, "w").close()
    convert_checkpoint(src, dst, only_names=["out/W"], overwrite=True)
    assert list(read_checkpoint(dst)) == ["out/W"] and not os.path.exists(stale)


# --- avg -----------------------------------------------------------------------------------------------------------


def test_average_is_elementwise_mean_and_ints_from_last(tmp_path):
    runs = [_values(s) for s in (1.0, 2.0, 3.0)]
    paths = [save_v2(tmp_path / f"m.{i:03d}", v) for i, v in enumerate(runs, 1)]
    out = str(tmp_path / "avg.npz")
    average_checkpoints(paths, out)
    avg = read_checkpoint(out)
    for name in ("l1/W", "l1/b", "out/W"):
        expected = np.mean([r[name].astype(np.float64) for r in runs], axis=0).astype(runs[0][name].dtype)
        assert avg[name].dtype == runs[0][name].dtype
        np.testing.assert_allclose(avg[name], expected, rtol=1e-3 if name == "out/W" else 1e-6)
    assert avg["global_step"] == runs[-1]["global_step"] and avg["global_step"].dtype == np.int64


def test_average_errors_name_the_difference(tmp_path):
    a = save_v2(tmp_path / "a", _values())
    b_values = _values()
    b_values["l2/W"] = np.zeros(2, np.float32)
    b = save_v2(tmp_path / "b", b_values)
    with pytest.raises(CheckpointError, match=r"only in the second \['l2/W'\]"):
        average_checkpoints([a, b], str(tmp_path / "o.npz"))
    c_values = _values()
    c_values["l1/W"] = np.zeros((4, 4), np.float32)
    c = save_v2(tmp_path / "c", c_values)
    with pytest.raises(ShapeMismatchError, match=r"'l1/W'.*\[4, 3\].*\[4, 4\]"):
        average_checkpoints([a, c], str(tmp_path / "o.npz"))
    assert not os.path.exists(tmp_path / "o.npz")


