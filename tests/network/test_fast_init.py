"""Fast tensors: aligned buffers TF adopts without a copy, numpy views of variables and back, zeros, fast init."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from transition.internal._aligned import (
    ADOPT_MIN_SIZE,
    ALIGN,
    adopt,
    aligned_array,
    aligned_empty,
)
from transition.network._fast_init import (
    alias_numpy,
    as_tensor,
    draw_init,
    zeros_tensor,
)

RNG = np.random.default_rng(0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 7), min_size=0, max_size=3),
    st.sampled_from(["float32", "float64", "int8", "uint16", "bool", "complex64"]),
    st.booleans(),
)
def test_aligned_array_is_aligned_contiguous_and_of_the_asked_shape(shape, dtype, zeros):
    arr = aligned_array(shape, dtype, zeros=zeros)
    assert arr.shape == tuple(shape) and arr.dtype == np.dtype(dtype) and arr.flags.c_contiguous
    assert arr.size == 0 or arr.ctypes.data % ALIGN == 0  # an empty array has no data to align
    if zeros:
        assert not arr.any()


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 5000))
def test_aligned_empty_has_the_size_and_alignment(nbytes):
    buf = aligned_empty(nbytes)
    assert buf.nbytes == nbytes and buf.dtype == np.uint8 and (nbytes == 0 or buf.ctypes.data % ALIGN == 0)


def test_adopt_shares_a_large_buffer_and_copies_a_small_one():
    big = aligned_array((ADOPT_MIN_SIZE + 3,), "float32")
    big[:] = RNG.normal(size=big.shape)
    t = adopt(big)
    assert isinstance(t, tf.Tensor) and np.shares_memory(np.asarray(t), big)
    np.testing.assert_array_equal(np.asarray(t), big)
    small = aligned_array((4, 5), "float64")
    small[:] = 1.5
    ts = adopt(small)
    np.testing.assert_array_equal(np.asarray(ts), small)
    assert ts.dtype == tf.float64


def test_alias_numpy_is_a_read_only_view_that_keeps_its_value_and_as_tensor_returns_its_tensor():
    var = keras.Variable(RNG.normal(size=(300, 300)).astype(np.float32))
    view = alias_numpy(var)
    before = view.copy()
    assert not view.flags.writeable
    t = as_tensor(view, "float32")
    assert np.shares_memory(np.asarray(t), view)  # no copy on the way back
    var.assign(np.zeros((300, 300), np.float32))  # TF copies on write: the view keeps its value
    np.testing.assert_array_equal(view, before)


@pytest.mark.parametrize("shape", [(3, 4), (400, 300)])
def test_as_tensor_casts_and_copies_other_arrays_once(shape):
    src = RNG.normal(size=shape)  # float64
    t = as_tensor(src, "float32")
    assert t.dtype == tf.float32 and tuple(t.shape) == shape
    np.testing.assert_array_equal(np.asarray(t), src.astype(np.float32))
    assert not np.shares_memory(np.asarray(t), src)
    src[0, 0] = 1e9  # the tensor holds its own copy
    assert float(t[0, 0]) != 1e9


@pytest.mark.parametrize("shape, dtype", [((2, 3), "float32"), ((300, 400), "float32"), ((70000,), "int64")])
def test_zeros_tensor(shape, dtype):
    t = zeros_tensor(shape, dtype)
    assert tuple(t.shape) == shape and t.dtype.name == dtype
    assert not np.asarray(t).any()


@pytest.mark.parametrize(
    "init, shape",
    [
        ("glorot_uniform", (64, 48)),
        ("he_uniform", (3, 32, 40)),
        ("lecun_uniform", (2000,)),
        (keras.initializers.RandomUniform(-0.3, 0.5, seed=3), (50, 60)),
        (keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="uniform"), (40, 70)),
    ],
)
def test_fast_uniform_init_has_the_distribution_of_keras(init, shape):
    init = keras.initializers.get(init)
    fast = np.asarray(draw_init(init, shape))
    ref = np.asarray(init(shape, dtype="float32"))
    assert fast.shape == shape and fast.dtype == np.float32
    assert not np.array_equal(fast, ref)  # drawn by numpy, not by TF
    width = float(ref.max() - ref.min())
    assert abs(fast.min() - ref.min()) < 0.02 * width and abs(fast.max() - ref.max()) < 0.02 * width
    assert abs(fast.mean() - ref.mean()) < 0.03 * width
    assert abs(fast.std() / ref.std() - 1) < 0.05
    np.testing.assert_array_equal(np.asarray(draw_init(init, shape)), fast)  # same seed, same values (as Keras)
