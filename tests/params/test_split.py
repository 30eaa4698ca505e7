"""Tests of copy_with_new_split_axes (pure numpy)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transition.errors import ConfigError, ShapeMismatchError
from transition.params._split import (
    check_axis_splits,
    copy_with_new_split_axes,
    transform_split_info_to_shape,
    whole_axis_splits,
)


@st.composite
def split_pair(draw, max_axes=3, max_parts=3, max_dim=4):
    """Old and new axis splits with the same number of parts per axis."""
    n_axes = draw(st.integers(1, max_axes))
    old, new = [], []
    for _ in range(n_axes):
        k = draw(st.integers(1, max_parts))
        old.append(draw(st.lists(st.integers(0, max_dim), min_size=k, max_size=k)))
        new.append(draw(st.lists(st.integers(0, max_dim), min_size=k, max_size=k)))
    return old, new


def _shape(splits):
    return tuple(sum(p) for p in splits)


def _values(splits, offset=1.0):
    shape = _shape(splits)
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) + offset


@settings(max_examples=60, deadline=None)
@given(split_pair())
def test_unchanged_splits_is_identity(pair):
    old, _ = pair
    values = _values(old)
    out = copy_with_new_split_axes(old, old, values)
    np.testing.assert_array_equal(out, values)


@settings(max_examples=60, deadline=None)
@given(split_pair())
def test_grow_then_shrink_round_trips(pair):
    old, new = pair
    grown = [[max(o, n) for o, n in zip(op, np_)] for op, np_ in zip(old, new)]
    values = _values(old)
    big = copy_with_new_split_axes(old, grown, values, np.full(_shape(grown), -7.0))
    back = copy_with_new_split_axes(grown, old, big)
    np.testing.assert_array_equal(back, values)
    # Everything of `big` that is not an old value is the fill value.
    assert np.count_nonzero(big != -7.0) == values.size


@settings(max_examples=60, deadline=None)
@given(split_pair())
def test_each_part_overlap_lands_at_its_new_offset(pair):
    old, new = pair
    values = _values(old)
    fill = -1.0
    out = copy_with_new_split_axes(old, new, values, np.full(_shape(new), fill))
    assert out.shape == _shape(new)
    # Check entry by entry against the definition.
    for idx in np.ndindex(out.shape):
        old_idx = []
        for axis, i in enumerate(idx):
            part, off = 0, 0
            while i >= off + new[axis][part]:
                off += new[axis][part]
                part += 1
            within = i - off
            if within >= old[axis][part]:
                old_idx = None
                break
            old_idx.append(sum(old[axis][:part]) + within)
        expected = fill if old_idx is None else values[tuple(old_idx)]
        assert out[idx] == expected


def test_first_of_two_inputs_grows():
    # An output reading ["a", "b"] where a grows 3 -> 5: b's rows land at rows 5..7.
    old = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)
    out = copy_with_new_split_axes([[3, 3], [4]], [[5, 3], [4]], old, np.full((8, 4), np.nan, np.float32))
    np.testing.assert_array_equal(out[0:3], old[0:3])
    np.testing.assert_array_equal(out[5:8], old[3:6])
    assert np.isnan(out[3:5]).all()


def test_new_values_default_zeros_old_dtype_and_written_in_place():
    old = np.ones((2, 2), dtype=np.float16)
    out = copy_with_new_split_axes([[2], [2]], [[3], [1]], old)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, [[1], [1], [0]])
    buf = np.full((3, 3), 5.0)
    res = copy_with_new_split_axes([[2], [2]], [[3], [3]], np.zeros((2, 2)), buf)
    assert res is buf and buf[0, 0] == 0 and buf[2, 2] == 5


def test_error_axis_count():
    with pytest.raises(ShapeMismatchError, match=r"2 axes.*1"):
        copy_with_new_split_axes([[2], [2]], [[2]], np.zeros((2, 2)))


def test_error_part_count():
    with pytest.raises(ConfigError, match=r"axis 0 has 2 old parts \[1, 1\] but 1 new parts \[3\]"):
        copy_with_new_split_axes([[1, 1]], [[3]], np.zeros(2))


def test_error_split_does_not_match_old_shape():
    with pytest.raises(ShapeMismatchError, match=r"sums to 4.*\(3,\)"):
        copy_with_new_split_axes([[2, 2]], [[2, 2]], np.zeros(3))


def test_error_new_values_shape():
    with pytest.raises(ShapeMismatchError, match=r"\(2,\).*\(3,\)"):
        copy_with_new_split_axes([[2]], [[3]], np.zeros(2), np.zeros(2))


def test_whole_axis_splits_and_check():
    assert whole_axis_splits((3, 4)) == [[3], [4]]
    check_axis_splits([[1, 2], [4]], (3, 4), "x")
    with pytest.raises(ShapeMismatchError, match="my param"):
        check_axis_splits([[1, 1]], (3,), "my param")


_ORACLE = """
import json, sys
import numpy as np
from returnn.tf.util.basic import copy_with_new_split_axes
out = []
for old, new in json.load(sys.stdin):
    shape_old = tuple(sum(p) for p in old)
    shape_new = tuple(sum(p) for p in new)
    values = np.arange(int(np.prod(shape_old)), dtype=np.float64).reshape(shape_old) + 1
    out.append(copy_with_new_split_axes(old, new, values, np.full(shape_new, -3.0)).tolist())
json.dump(out, sys.stdout)
"""


@pytest.mark.oracle
def test_matches_returnn():
    # RETURNN's TF utils switch TF to graph mode on import: ask it in a subprocess.
    pytest.importorskip("returnn")
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(40):
        n_axes = int(rng.integers(1, 4))
        parts = [int(rng.integers(1, 4)) for _ in range(n_axes)]
        old = [[int(d) for d in rng.integers(0, 4, k)] for k in parts]
        new = [[int(d) for d in rng.integers(0, 4, k)] for k in parts]
        cases.append((old, new))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", _ORACLE], input=json.dumps(cases), capture_output=True, text=True,
                          env=env, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"returnn oracle not usable here: {proc.stderr[-300:]}")
    theirs = json.loads(proc.stdout)
    for (old, new), expected in zip(cases, theirs):
        ours = copy_with_new_split_axes(old, new, _values(old), np.full(_shape(new), -3.0))
        np.testing.assert_array_equal(ours, np.asarray(expected).reshape(_shape(new)), err_msg=f"{old} -> {new}")


_TRANSFORM_ORACLE = """
import json, sys
from returnn.tf.util.basic import transform_param_axes_split_info_to_new_shape as transform
out = []
for info, shape in json.load(sys.stdin):
    try:
        out.append(transform(info, shape))
    except AssertionError:
        out.append(None)
json.dump(out, sys.stdout)
"""


def _transform_cases(rng):
    cases = [([[3], [2, 2, 2, 2]], [3, 12]), ([[5, 3], [4]], [7, 4]), ([[2, 2, 2, 2]], [4]), ([[4], [1, 1]], [6, 3])]
    for _ in range(60):
        info, shape = [], []
        for _axis in range(int(rng.integers(1, 4))):
            parts = [int(p) for p in rng.integers(1, 5, int(rng.integers(1, 5)))]
            if rng.random() < 0.3:
                parts = [parts[0]] * len(parts)  # gates
            info.append(parts)
            shape.append(max(0, sum(parts) + int(rng.integers(-3, 6))))
        cases.append((info, shape))
    return cases


@pytest.mark.oracle
def test_inferred_old_parts_match_returnn():
    pytest.importorskip("returnn")
    cases = _transform_cases(np.random.default_rng(1))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", _TRANSFORM_ORACLE], input=json.dumps(cases), capture_output=True,
                          text=True, env=env, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"returnn oracle not usable here: {proc.stderr[-300:]}")
    for (info, shape), expected in zip(cases, json.loads(proc.stdout.splitlines()[-1])):
        if expected is None:
            with pytest.raises(ShapeMismatchError):
                transform_split_info_to_shape(info, shape)
        else:
            assert transform_split_info_to_shape(info, shape) == expected, (info, shape)
