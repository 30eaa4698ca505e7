"""read_checkpoint / open_checkpoint against checkpoints written by TF's own savers, Keras, h5py and numpy."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import save_v2
from transition.checkpoint._bundle_reader import tf_key_to_name
from transition.checkpoint._reader import open_checkpoint, read_checkpoint
from transition.errors import CheckpointError, MissingParamsError

RNG = np.random.default_rng(0)


# --- writers -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf1_ckpt(tmp_path_factory):
    """A TF1 graph checkpoint: a partitioned variable, Adam slots, global_step (RETURNN / tensorpack style)."""
    d = tmp_path_factory.mktemp("tf1")
    prefix = str(d / "model.003")
    g = tf.Graph()
    with g.as_default():
        w = tf.compat.v1.get_variable(
            "lay/W", shape=[7, 3], partitioner=tf.compat.v1.fixed_size_partitioner(3),
            initializer=tf.compat.v1.random_normal_initializer(seed=1),
        )
        b = tf.compat.v1.get_variable("lay/b", shape=[3], initializer=tf.compat.v1.ones_initializer())
        step = tf.compat.v1.train.get_or_create_global_step()
        loss = tf.reduce_sum(tf.convert_to_tensor(w) ** 2) + tf.reduce_sum(b)
        train = tf.compat.v1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train)
            full_w, full_b = sess.run([tf.convert_to_tensor(w), b])
            saver.save(sess, prefix)
    return prefix, {"lay/W": full_w, "lay/b": full_b}


@pytest.fixture(scope="module")
def tf2_ckpt(tmp_path_factory):
    """A TF2 object-based checkpoint with optimizer slots (`.OPTIMIZER_SLOT`)."""
    d = tmp_path_factory.mktemp("tf2")
    module = tf.Module()
    module.w = tf.Variable(RNG.normal(size=(2, 3)).astype(np.float32))
    module.n = tf.Variable(np.int32(7))
    opt = tf.compat.v1.train.AdamOptimizer(0.1)
    opt.minimize(lambda: tf.reduce_sum(module.w ** 2), var_list=[module.w])
    ckpt = tf.train.Checkpoint(net=module, opt=opt)
    path = ckpt.save(str(d / "ckpt"))
    return path, {
        "net/w": module.w.numpy(),
        "net/n": module.n.numpy(),
        "opt/net/w/m": opt.get_slot(module.w, "m").numpy(),
        "opt/net/w/v": opt.get_slot(module.w, "v").numpy(),
    }


@pytest.fixture()
def raw_ckpt(tmp_path):
    values = {"a/W": RNG.normal(size=(20, 5)).astype(np.float32), "a/b": np.arange(5, dtype=np.int64)}
    return save_v2(str(tmp_path / "raw"), values), values


# --- TF bundles ----------------------------------------------------------------------------------------------------


def test_tf1_saver_names_values_and_partitioned_variable(tf1_ckpt):
    prefix, expected = tf1_ckpt
    values = read_checkpoint(prefix)
    assert {"lay/W", "lay/b", "lay/W/Adam", "lay/W/Adam_1", "global_step"} <= set(values)
    assert not any("part_" in n for n in values), "slices of a partitioned variable must not be listed"
    np.testing.assert_array_equal(values["lay/W"], expected["lay/W"])  # the whole tensor, from 3 slices
    np.testing.assert_array_equal(values["lay/b"], expected["lay/b"])
    assert values["global_step"] == 1 and values["global_step"].dtype == np.int64


@pytest.mark.parametrize("suffix", ["", ".index", ".meta", ".data-00000-of-00001"])
def test_tf_prefix_given_with_any_suffix(tf1_ckpt, suffix):
    prefix, expected = tf1_ckpt
    with open_checkpoint(prefix + suffix) as reader:
        assert reader.path == prefix
        np.testing.assert_array_equal(reader.read("lay/W"), expected["lay/W"])


def test_tf_directory_and_state_file_give_latest(tmp_path):
    save_v2(str(tmp_path / "ck-1"), {"x": np.zeros(2, np.float32)})
    save_v2(str(tmp_path / "ck-2"), {"x": np.ones(2, np.float32)})
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path), str(tmp_path / "ck-2"))
    for path in (tmp_path, tmp_path / "checkpoint"):
        with open_checkpoint(path) as reader:
            assert reader.path.endswith("ck-2")
            np.testing.assert_array_equal(reader.read("x"), np.ones(2))


def test_directory_without_state_file_is_an_error(tmp_path):
    save_v2(str(tmp_path / "only"), {"x": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointError, match="'checkpoint' state file") as e:
        open_checkpoint(tmp_path)
    assert "only" in str(e.value)


def test_tf2_object_based_names(tf2_ckpt):
    path, expected = tf2_ckpt
    values = read_checkpoint(path)
    assert set(values) == set(expected) | {"opt/beta1_power", "opt/beta2_power"}
    for name, value in expected.items():
        np.testing.assert_array_equal(values[name], value)
    with open_checkpoint(path) as reader:
        assert reader.stored_key("net/w") == "net/w/.ATTRIBUTES/VARIABLE_VALUE"


def test_tf2_keras_model_checkpoint(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "k"))
    values = read_checkpoint(path)
    assert len(values) == 2 and not any(".ATTRIBUTES" in n or "save_counter" in n for n in values)
    kernel = next(v for v in values.values() if v.shape == (4, 3))
    np.testing.assert_array_equal(kernel, model.layers[0].kernel.numpy())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True), min_size=1, max_size=4))
def test_tf_key_to_name(parts):
    name = "/".join(parts)
    assert tf_key_to_name(name) == name  # name-based keys are kept
    assert tf_key_to_name(name + "/.ATTRIBUTES/VARIABLE_VALUE") == name
    assert tf_key_to_name(name + "/.ATTRIBUTES/OBJECT_CONFIG_JSON") is None
    assert tf_key_to_name(f"{name}/.OPTIMIZER_SLOT/opt/m/.ATTRIBUTES/VARIABLE_VALUE") == f"opt/{name}/m"


def test_lazy_reader_lists_without_reading_and_read_fails_on_damaged_data(raw_ckpt):
    prefix, values = raw_ckpt
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as fp:
        fp.write(b"\xff" * os.path.getsize(data))  # values garbage, index intact
    with open_checkpoint(prefix) as reader:
        assert reader.names() == ["a/W", "a/b"]
        assert reader.shape("a/W") == (20, 5) and reader.dtype("a/W") == np.float32
        assert reader.dtype("a/b") == np.int64 and reader.nbytes("a/W") == 400
        for read in (reader.read, reader.read_for_assign):
            with pytest.raises(CheckpointError, match="a/W") as e:
                read("a/W")
            assert prefix in str(e.value)


def test_read_for_assign_gives_the_same_values(tf1_ckpt, tf2_ckpt):
    for path in (tf1_ckpt[0], tf2_ckpt[0]):  # partitioned TF1 variables, TF2 object-based keys
        with open_checkpoint(path) as reader:
            for name in reader.names():
                value = reader.read_for_assign(name)
                assert tuple(value.shape) == reader.shape(name)
                np.testing.assert_array_equal(np.asarray(value), reader.read(name), err_msg=name)


def test_unknown_name_names_it_and_suggests(raw_ckpt):
    prefix, values = raw_ckpt
    with open_checkpoint(prefix) as reader:
        np.testing.assert_array_equal(reader.read("a/W:0"), values["a/W"])  # ':0' accepted
        assert reader.has("a/b:0") and not reader.has("a/c")
        with pytest.raises(MissingParamsError, match=r"'a/w'.*did you mean .*'a/W'"):
            reader.read("a/w")


def _truncate(path, frac):
    with open(path, "r+b") as fp:
        fp.truncate(int(os.path.getsize(path) * frac))


def _garbage(path):
    with open(path, "r+b") as fp:
        fp.write(np.random.default_rng(1).integers(0, 256, os.path.getsize(path), dtype=np.uint8).tobytes())


@pytest.mark.parametrize(
    "damage",
    ["truncate_index", "garbage_index", "empty_index", "truncate_data", "garbage_data", "delete_data"],
)
def test_damaged_tf_checkpoint_is_a_checkpoint_error(raw_ckpt, damage):
    prefix, _ = raw_ckpt
    target = prefix + (".index" if "index" in damage else ".data-00000-of-00001")
    {
        "truncate_index": lambda: _truncate(target, 0.5),
        "garbage_index": lambda: _garbage(target),
        "empty_index": lambda: _truncate(target, 0),
        "truncate_data": lambda: _truncate(target, 0.5),
        "garbage_data": lambda: _garbage(target),
        "delete_data": lambda: os.remove(target),
    }[damage]()
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(prefix)
    assert prefix in str(e.value)
    assert "restore" in str(e.value) or "copy" in str(e.value)


def test_missing_path_is_an_error_with_epoch_hint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "nothing")
    save_v2(str(tmp_path / "net.004"), {"x": np.zeros(1, np.float32)})
    with pytest.raises(CheckpointError, match=r"model name with epochs \[4\]"):
        read_checkpoint(tmp_path / "net")


def test_meta_without_index_is_an_error(tmp_path):
    (tmp_path / "m.001.meta").write_bytes(b"graph")
    with pytest.raises(CheckpointError, match=r"no .*m\.001\.index"):
        read_checkpoint(tmp_path / "m.001.meta")


def test_unknown_file_format_is_an_error(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"hello world")
    with pytest.raises(CheckpointError, match="weights.bin"):
        read_checkpoint(path)


# --- this project's checkpoints ------------------------------------------------------------------------------------


def test_uncommitted_project_checkpoint_is_refused(raw_ckpt):
    prefix, values = raw_ckpt
    open(prefix + ".pending", "w").close()
    with pytest.raises(CheckpointError, match="not committed") as e:
        read_checkpoint(prefix)
    assert prefix in str(e.value)
    with open(prefix + ".commit.json", "w") as fp:
        fp.write("{}")
    np.testing.assert_array_equal(read_checkpoint(prefix)["a/W"], values["a/W"])


def test_project_checkpoint_written_by_the_store(tmp_path):
    from transition.checkpoint._epochs import find_epoch_model
    from transition.store._store import CheckpointStore

    model = str(tmp_path / "net")
    w = RNG.normal(size=(4, 3)).astype(np.float32)
    with CheckpointStore(model) as store:
        store.save(2, 0, {"l1/W": w}, optimizer_vars={"iterations": np.int64(5)})
    epoch, prefix = find_epoch_model(model)
    assert (epoch, prefix) == (2, f"{model}.002")
    values = read_checkpoint(prefix)
    np.testing.assert_array_equal(values["l1/W"], w)
    assert values["optimizer/iterations"] == 5


def test_closed_reader_refuses_to_read(raw_ckpt, tmp_path):
    prefix, values = raw_ckpt
    np.savez(tmp_path / "z.npz", a=np.ones(2))
    for path, name in ((prefix, "a/W"), (tmp_path / "z.npz", "a")):
        reader = open_checkpoint(path)
        reader.close()
        assert name in reader.names()  # the index stays available
        with pytest.raises(CheckpointError, match="closed; open it again") as e:
            reader.read(name)
        assert str(reader.path) in str(e.value)


# --- numpy ---------------------------------------------------------------------------------------------------------


def test_npz_with_and_without_tensor_suffix(tmp_path):
    w = RNG.normal(size=(3, 4)).astype(np.float32)
    path = tmp_path / "zoo.npz"
    np.savez(path, **{"conv0/W:0": w, "conv0/b": np.arange(4)})
    with open_checkpoint(path) as reader:
        assert reader.kind == "npz" and reader.names() == ["conv0/W", "conv0/b"]
        assert reader.shape("conv0/W") == (3, 4) and reader.dtype("conv0/b") == np.arange(4).dtype
        np.testing.assert_array_equal(reader.read("conv0/W"), w)
        np.testing.assert_array_equal(reader.read("conv0/W:0"), w)


def test_npz_with_both_spellings_is_an_error(tmp_path):
    path = tmp_path / "dup.npz"
    np.savez(path, **{"x:0": np.zeros(1), "x": np.ones(1)})
    with pytest.raises(CheckpointError, match="'x'"):
        open_checkpoint(path)


def test_npz_with_object_array_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, good=np.zeros(2), bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="pickled object array under 'bad'"):
        open_checkpoint(path)


@pytest.mark.parametrize("damage", ["garbage", "truncate"])
def test_damaged_npz_is_a_checkpoint_error(tmp_path, damage):
    path = tmp_path / "bad.npz"
    np.savez(path, w=np.arange(1000.0))
    (_garbage if damage == "garbage" else lambda p: _truncate(p, 0.6))(path)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value)


def test_npy_dict_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, {"w": np.zeros(2)}, allow_pickle=True)
    with pytest.raises(CheckpointError, match="pickled Python object") as e:
        open_checkpoint(path)
    assert str(path) in str(e.value)


def test_npy_plain_array_is_refused(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((2, 3)))
    with pytest.raises(CheckpointError, match="unnamed"):
        open_checkpoint(path)


def test_npy_structured_record(tmp_path):
    w, b = RNG.normal(size=(2, 3)), np.arange(3, dtype=np.int32)
    record = np.zeros((), dtype=[("l/W", np.float64, (2, 3)), ("l/b:0", np.int32, (3,))])
    record["l/W"], record["l/b:0"] = w, b
    path = tmp_path / "rec.npy"
    np.save(path, record)
    with open_checkpoint(path) as reader:
        assert reader.names() == ["l/W", "l/b"] and reader.shape("l/W") == (2, 3)
        np.testing.assert_array_equal(reader.read("l/W"), w)
        np.testing.assert_array_equal(reader.read("l/b"), b)


def test_npz_without_extension_is_recognised_by_magic(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.ones(2))
    shutil.move(tmp_path / "x.npz", tmp_path / "params")
    assert list(read_checkpoint(tmp_path / "params")) == ["a"]


# --- Keras ---------------------------------------------------------------------------------------------------------


def test_keras3_weights_h5(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    with open_checkpoint(path) as reader:
        assert reader.kind == "keras_h5"
        assert reader.names() == ["dense/vars/0", "dense/vars/1", "dense_1/vars/0", "dense_1/vars/1"]
        np.testing.assert_array_equal(reader.read("dense/vars/0"), model.layers[0].kernel.numpy())
        np.testing.assert_array_equal(reader.read("dense_1/vars/1"), model.layers[1].bias.numpy())


def test_keras_archive(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    path = str(tmp_path / "m.keras")
    model.save(path)
    values = read_checkpoint(path)
    assert sorted(values) == ["dense/vars/0", "dense/vars/1"]
    np.testing.assert_array_equal(values["dense/vars/0"], model.layers[0].kernel.numpy())


def test_legacy_keras_h5(tmp_path):
    path = tmp_path / "legacy.h5"
    kernel = RNG.normal(size=(4, 3)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        g = f.create_group("dense")
        g.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        g.create_dataset("dense/kernel:0", data=kernel)
        g.create_dataset("dense/bias:0", data=np.zeros(3, np.float32))
    with open_checkpoint(path) as reader:
        assert reader.kind == "keras_legacy_h5" and reader.names() == ["dense/bias", "dense/kernel"]
        np.testing.assert_array_equal(reader.read("dense/kernel"), kernel)


def test_damaged_h5_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "bad.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=np.zeros((50, 50)))
    _garbage(path)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value)


# --- direct reads from the data files (offsets from the .index, TF's crc32c) ----------------------------------------

from transition.checkpoint._bundle_index import (  # noqa: E402
    crc32c,
    fast_crc32c_available,
    parse_bundle_index,
)
from transition.checkpoint._bundle_reader import TFBundleReader  # noqa: E402

needs_crc32c = pytest.mark.skipif(not fast_crc32c_available(), reason="google-crc32c without its C extension")


def _crc32c_reference(data: bytes, crc: int = 0) -> int:
    """Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@needs_crc32c
@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32c_matches_the_reference_and_extends(a, b):
    assert crc32c(a) == _crc32c_reference(a)
    assert crc32c(b, crc32c(a)) == crc32c(a + b) == _crc32c_reference(b, _crc32c_reference(a))


_CRC_VECTORS = [  # RFC 3720 B.4 and the usual check value
    (b"123456789", 0xE3069283), (bytes(32), 0x8A9136AA), (b"\xff" * 32, 0x62A8AB43),
    (np.arange(32, dtype=np.uint8), 0x46DD794E),
]


@needs_crc32c
def test_crc32c_known_vectors():
    for data, want in _CRC_VECTORS:
        assert crc32c(data) == want


def test_crc32c_is_google_crc32c_on_writable_and_read_only_buffers():
    """The crc32c is google-crc32c's (a dependency): it takes writable numpy memory without a copy too."""
    import google_crc32c

    big = np.frombuffer(RNG.bytes(1 << 20), np.uint8).copy()
    assert big.flags.writeable
    assert crc32c(big) == google_crc32c.value(big.tobytes())
    assert crc32c(big[1000:], crc32c(big[:1000])) == crc32c(big)
    assert big.flags.writeable  # the caller's array is left as it was


_DTYPES = {
    "f16": np.float16, "f32": np.float32, "f64": np.float64, "i8": np.int8, "u16": np.uint16, "i32": np.int32,
    "i64": np.int64, "c64": np.complex64, "b": np.bool_,
}


@pytest.fixture()
def many_dtypes_ckpt(tmp_path):
    values = {f"d/{k}": (RNG.normal(size=(3, 5)) * 50).astype(t) for k, t in _DTYPES.items()}
    values["d/scalar"] = np.float32(2.5)
    values["d/empty"] = np.zeros((0, 4), np.float32)
    values["d/big"] = RNG.normal(size=(300, 200)).astype(np.float32)
    return save_v2(str(tmp_path / "many"), values), values


@needs_crc32c
def test_index_entries_give_offsets_sizes_and_tf_crcs(many_dtypes_ckpt):
    prefix, values = many_dtypes_ckpt
    header, entries = parse_bundle_index(prefix + ".index")
    assert header.num_shards == 1 and set(entries) == set(values)
    data = open(prefix + ".data-00000-of-00001", "rb").read()
    for name, entry in entries.items():
        expected = np.ascontiguousarray(values[name])
        assert entry.size == expected.nbytes, name
        chunk = data[entry.offset : entry.offset + entry.size]
        assert chunk == expected.tobytes(), name
        masked = (((crc32c(chunk) >> 15) | (crc32c(chunk) << 17)) + 0xA282EAD8) & 0xFFFFFFFF  # TF's crc32c::Mask
        assert entry.crc32c == masked, name


@needs_crc32c
def test_direct_reads_equal_tf_reads_for_every_dtype(many_dtypes_ckpt):
    prefix, values = many_dtypes_ckpt
    with TFBundleReader(prefix) as fast, TFBundleReader(prefix, direct=False) as slow:
        for name in fast.names():
            direct = fast._read_direct(name)
            assert direct is not None, f"{name} was not read directly"
            assert direct.ctypes.data % 64 == 0 or direct.size == 0
            for got in (fast.read(name), np.asarray(fast.read_for_assign(name))):
                assert got.dtype == values[name].dtype and got.shape == np.shape(values[name])
                np.testing.assert_array_equal(got, values[name], err_msg=name)
                np.testing.assert_array_equal(got, slow.read(name), err_msg=name)


def test_without_the_direct_reader_tf_reads_every_value(many_dtypes_ckpt):
    """Where the direct reader does not apply (no C crc32c, a remote file system) TF's own reader gives the same
    values."""
    prefix, values = many_dtypes_ckpt
    with TFBundleReader(prefix, direct=False) as reader:
        for name in reader.names():
            assert reader._read_direct(name) is None, name
            for got in (reader.read(name), np.asarray(reader.read_for_assign(name))):
                assert got.dtype == values[name].dtype and got.shape == np.shape(values[name])
                np.testing.assert_array_equal(got, values[name], err_msg=name)


@needs_crc32c
def test_sharded_bundle_is_read_directly(tmp_path):
    """MergeV2Checkpoints makes a 2-shard bundle (what a multi-device saver writes)."""
    a = {"s/a": RNG.normal(size=(4, 3)).astype(np.float32)}
    b = {"s/b": np.arange(7, dtype=np.int64), "s/c": RNG.normal(size=9)}
    parts = [save_v2(str(tmp_path / "p0"), a), save_v2(str(tmp_path / "p1"), b)]
    prefix = str(tmp_path / "merged")
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=parts, destination_prefix=prefix)
    assert os.path.exists(prefix + ".data-00001-of-00002")
    with TFBundleReader(prefix) as reader:
        for name, value in {**a, **b}.items():
            assert reader._read_direct(name) is not None
            np.testing.assert_array_equal(reader.read(name), value)


@needs_crc32c
def test_partitioned_variable_is_assembled_from_its_slices(tf1_ckpt):
    prefix, expected = tf1_ckpt
    with TFBundleReader(prefix) as reader, TFBundleReader(prefix, direct=False) as slow:
        whole = reader._read_direct("lay/W")  # stored as 3 slices
        np.testing.assert_array_equal(whole, expected["lay/W"])
        np.testing.assert_array_equal(np.asarray(reader.read_for_assign("lay/W")), expected["lay/W"])
        np.testing.assert_array_equal(slow.read("lay/W"), expected["lay/W"])


@needs_crc32c
def test_one_changed_byte_fails_the_crc_and_names_the_tensor(many_dtypes_ckpt):
    prefix, _ = many_dtypes_ckpt
    _, entries = parse_bundle_index(prefix + ".index")
    entry = entries["d/big"]
    with open(prefix + ".data-00000-of-00001", "r+b") as fp:
        fp.seek(entry.offset + entry.size // 2)
        byte = fp.read(1)
        fp.seek(-1, os.SEEK_CUR)
        fp.write(bytes([byte[0] ^ 0x10]))
    with open_checkpoint(prefix) as reader:
        np.testing.assert_array_equal(reader.read("d/f32"), reader.read("d/f32"))  # others are fine
        for read in (reader.read, reader.read_for_assign):
            with pytest.raises(CheckpointError, match=r"'d/big'.*crc32c mismatch") as e:
                read("d/big")
            assert prefix in str(e.value) and "restore" in str(e.value)


@needs_crc32c
def test_truncated_data_file_names_the_tensor(many_dtypes_ckpt):
    prefix, _ = many_dtypes_ckpt
    _, entries = parse_bundle_index(prefix + ".index")
    with open(prefix + ".data-00000-of-00001", "r+b") as fp:
        fp.truncate(entries["d/big"].offset + 10)
    with pytest.raises(CheckpointError, match=r"'d/big'.*truncated"):  # found before anything is read
        TFBundleReader(prefix)


@needs_crc32c
def test_data_file_truncated_while_open_names_the_tensor(many_dtypes_ckpt):
    prefix, _ = many_dtypes_ckpt
    _, entries = parse_bundle_index(prefix + ".index")
    with TFBundleReader(prefix) as reader:
        with open(prefix + ".data-00000-of-00001", "r+b") as fp:
            fp.truncate(entries["d/big"].offset + 10)
        with pytest.raises(CheckpointError, match=r"'d/big'.*truncated"):
            reader.read_for_assign("d/big")


@needs_crc32c
def test_damaged_index_block_is_reported(many_dtypes_ckpt):
    prefix, _ = many_dtypes_ckpt
    data = bytearray(open(prefix + ".index", "rb").read())
    data[5] ^= 0xFF  # inside the first data block
    damaged = str(prefix) + "-bad.index"
    open(damaged, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        parse_bundle_index(damaged)
    with pytest.raises(ValueError, match="bad footer"):
        parse_bundle_index(prefix + ".data-00000-of-00001")
