"""The bundle index parser (`_bundle_table` + `_bundle_index`, no TensorFlow): it agrees with TF's own reader on
real bundles, and refuses every crafted index TF's reader would abort on, before TF sees it; what it accepts, TF
reads without aborting."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.checkpoint.bundle_builder import bundle_index, entry_proto, field, header_proto
from tests.helpers import save_v2
from transition.checkpoint._bundle_index import crc32c, mask_crc, read_bundle_index, slice_key
from transition.checkpoint._bundle_reader import TFBundleReader
from transition.errors import CheckpointError

RNG = np.random.default_rng(3)


# --- real bundles, written by TF --------------------------------------------------------------------------------------


def _many_dtypes(prefix: str) -> None:
    values = {f"d/{tf.as_dtype(e).name}": tf.constant(np.array([0, 1, 1, 0, 1, 1]).reshape(2, 3).astype(
        tf.as_dtype(e).as_numpy_dtype), dtype=tf.as_dtype(e)) for e in (1, 2, 3, 4, 5, 6, 9, 10, 14, 17, 19, 22, 23,
                                                                          24, 25, 29, 30)}
    values.update({"s/scalar": tf.constant(2.5), "s/empty": tf.zeros((0, 7)), "s/strings": tf.constant([b"a", b"bc"]),
                   "s/complex": tf.constant(np.ones(4, np.complex128))})
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[values[n] for n in names])


def _many_tensors(prefix: str) -> None:  # several data blocks, shared key prefixes, long and unicode names
    values = {f"layer_{i:04d}/W": RNG.normal(size=(i % 5, 3)).astype(np.float32) for i in range(1500)}
    values["x" * 3000] = np.float64(1.0)
    values["ünï/cødé/名前"] = np.arange(3, dtype=np.int32)
    save_v2(prefix, values)


def _tf1_partitioned(prefix: str) -> None:
    g = tf.Graph()
    with g.as_default():
        w = tf.compat.v1.get_variable("emb/E", shape=[1000, 3, 2], partitioner=tf.compat.v1.fixed_size_partitioner(7))
        v = tf.compat.v1.get_variable("out/W", shape=[5, 300], partitioner=tf.compat.v1.fixed_size_partitioner(2))
        step = tf.compat.v1.train.get_or_create_global_step()
        loss = tf.reduce_sum(tf.convert_to_tensor(w) ** 2) + tf.reduce_sum(tf.convert_to_tensor(v))
        train = tf.compat.v1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train)
            tf.compat.v1.train.Saver().save(sess, prefix)


def _raw_slices(prefix: str) -> None:  # slices with a full ("-") extent, names beyond ASCII
    big = RNG.normal(size=(140, 3)).astype(np.float32)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["aÿĀb", "aÿĀb", "z"],
                      shape_and_slices=["140 3 0,70:-", "140 3 70,70:-", ""], tensors=[big[:70], big[70:], 3.0])


def _tf2_keras(prefix: str) -> str:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    opt = keras.optimizers.Adam()
    opt.build(model.trainable_variables)
    return tf.train.Checkpoint(model=model, opt=opt).write(prefix)


def _merged(prefix: str) -> None:
    parts = [save_v2(prefix + "-p0", {"s/a": np.ones((4, 3), np.float32)}),
             save_v2(prefix + "-p1", {"s/b": np.arange(7), "s/c": RNG.normal(size=9)})]
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=parts, destination_prefix=prefix)


_WRITERS = {"dtypes": _many_dtypes, "many": _many_tensors, "tf1_partitioned": _tf1_partitioned,
            "raw_slices": _raw_slices, "tf2_keras": _tf2_keras, "merged": _merged}


@pytest.fixture(scope="module")
def real_bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    out = {}
    for name, write in _WRITERS.items():
        prefix = str(d / name)
        out[name] = write(prefix) or prefix
    return out


@pytest.mark.parametrize("name", sorted(_WRITERS))
def test_index_agrees_with_tf_on_real_bundles(real_bundles, name):
    prefix = real_bundles[name]
    index = read_bundle_index(prefix)
    tf_reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    shapes, dtypes = tf_reader.get_variable_to_shape_map(), tf_reader.get_variable_to_dtype_map()
    assert set(index.entries) == set(shapes)  # TF lists the same tensors (the slices of partitioned ones not)
    for key, entry in index.entries.items():
        assert list(entry.shape) == shapes[key] and entry.dtype == dtypes[key].as_datatype_enum, key
    with TFBundleReader(prefix) as ours:
        assert ours.names(), name
        for n in ours.names():
            want = tf_reader.get_tensor(ours.stored_key(n))
            got = ours.read(n)
            assert got.shape == want.shape and got.tobytes() == np.asarray(want).tobytes(), n
    if name in ("tf1_partitioned", "raw_slices"):
        assert index.slices  # the partitioned variables were read from their slices


def test_slice_keys_are_tfs(real_bundles):
    """`slice_key` gives the binary keys of TF's EncodeTensorNameSlice (OrderedCode): every slice key in TF's own
    partitioned bundles (multi-byte starts, full "-" extents) is found, and one as TF's Saver wrote it."""
    from transition.checkpoint._bundle_index import decode_index

    assert slice_key(b"lay/W", ((0, 3), (0, 300))) == b"\x00lay/W\x00\x01\x01\x02\x80\x83\x80\xc1,"  # TF's Saver
    for name in ("tf1_partitioned", "raw_slices"):
        prefix = real_bundles[name]
        with open(prefix + ".index", "rb") as f:
            _, raw = decode_index(f.read())
        ours = {slice_key(key.encode(), extents) for key, entry in read_bundle_index(prefix).entries.items()
                for extents in entry.slices}
        assert ours == {k for k in raw if k[:1] == b"\x00"} and ours


def test_listing_and_reading_a_bundle_imports_no_tensorflow(real_bundles):
    code = textwrap.dedent(f"""
        import sys
        from transition.checkpoint._bundle_reader import TFBundleReader
        with TFBundleReader({real_bundles['tf1_partitioned']!r}) as r:
            values = {{n: r.read(n) for n in r.names()}}
        assert values and 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)[:5]
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


# --- crafted indexes: what made TF's reader abort is a CheckpointError here ------------------------------------------


def _write(prefix: str, index: bytes, data_size: int = 4096, shards: int = 1) -> str:
    with open(prefix + ".index", "wb") as f:
        f.write(index)
    for i in range(shards):
        with open(f"{prefix}.data-{i:05d}-of-{shards:05d}", "wb") as f:
            f.write(bytes(data_size))
    return prefix


_ZEROS_CRC = mask_crc(crc32c(bytes(16)))
_CRAFTED = {
    "negative dim": ([(b"a", entry_proto(1, [-1, 4], size=16))], "a dim of size -1"),
    "33 dims": ([(b"a", entry_proto(1, [1] * 33, size=4))], "more than 32 dims"),
    "overflowing dims": ([(b"a", entry_proto(1, [1 << 40, 1 << 40], size=16))], "too many elements"),
    "unknown dtype": ([(b"a", entry_proto(250, [4], size=16))], "unknown dtype enum 250"),
    "no entry proto": ([(b"a", b"\xff\xff\xff")], "varint"),
    "group wire type": ([(b"a", b"\x0b\x0c")], "wire type 3"),
    "unknown rank": ([(b"a", entry_proto(1, [4], size=16, unknown_rank=True))], "unknown rank"),
    "size unlike shape": ([(b"a", entry_proto(1, [4], size=12))], "says 12 bytes"),
    "beyond the data": ([(b"a", entry_proto(1, [2048], size=8192))], "beyond the end"),
    "negative offset": ([(b"a", entry_proto(1, [4], offset=-8, size=16))], "offset is -8"),
    "shard out of range": ([(b"a", entry_proto(1, [4], shard=3, size=16))], "shard 3"),
    "overlapping tensors": ([(b"a", entry_proto(1, [4], size=16, crc=_ZEROS_CRC)),
                             (b"b", entry_proto(1, [4], offset=8, size=16))], "share bytes"),
    "missing slice": ([(b"a", entry_proto(1, [4], slices=[[(0, 2)], [(2, 2)]]))], "slice of partitioned"),
    "slice beyond shape": ([(b"a", entry_proto(1, [4], slices=[[(2, 4)]]))], "beyond its shape"),
    "orphan slice": ([(slice_key(b"a", ((0, 4),)), entry_proto(1, [4], size=16))], "belong to no tensor"),
    "duplicate shape": ([(b"a", entry_proto(1, [4], size=16) + field(2, b""))], "appears twice"),
    "not utf-8": ([(b"\xc3(", entry_proto(1, [4], size=16))], "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(_CRAFTED))
def test_crafted_index_is_a_checkpoint_error(tmp_path, case):
    entries, message = _CRAFTED[case]
    prefix = _write(str(tmp_path / "b"), bundle_index(entries))
    with pytest.raises(CheckpointError, match=message) as e:
        TFBundleReader(prefix)
    assert prefix in str(e.value)


@pytest.mark.parametrize("header, message", [
    (None, "no bundle header"), (header_proto(0), "0 data shards"), (header_proto(endianness=1), "big-endian"),
    (header_proto(min_consumer=2), "not readable"), (header_proto(bad_consumers=[1]), "not readable"),
    (header_proto(3), "data file .*data-00000-of-00003 is missing"),
])
def test_bad_header_is_a_checkpoint_error(tmp_path, header, message):
    """An index without its header entry no longer hides its first tensor (TF took that tensor for the header)."""
    index = bundle_index([(b"a", entry_proto(1, [4], size=16))], header, with_header=header is not None)
    with pytest.raises(CheckpointError, match=message):
        TFBundleReader(_write(str(tmp_path / "b"), index))


def test_table_structure_damage_is_a_checkpoint_error(tmp_path):
    from tests.checkpoint.bundle_builder import sstable

    good = bundle_index([(b"a", entry_proto(1, [4], size=16, crc=_ZEROS_CRC))])
    assert TFBundleReader(_write(str(tmp_path / "ok"), good)).read("a").tolist() == [0.0] * 4
    cases = {
        "keys out of order": sstable([(b"", header_proto()), (b"b", entry_proto(1, [0])), (b"a", entry_proto(1, [0]))]),
        "duplicate key": sstable([(b"", header_proto()), (b"a", entry_proto(1, [0])), (b"a", entry_proto(1, [0]))]),
        "checksum mismatch": good[:3] + bytes([good[3] ^ 1]) + good[4:],
        "bad footer": good[:-1] + b"\0",
    }
    for what, index in cases.items():
        with pytest.raises(CheckpointError, match=what):
            TFBundleReader(_write(str(tmp_path / what.replace(" ", "_")), index))


# --- hostile fields behind valid crcs: only CheckpointErrors; what is accepted, TF reads without aborting -----------

_KNOWN = [1, 2, 3, 4, 5, 6, 7, 9, 10, 14, 17, 19, 20, 21, 22, 23]
_ITEMSIZE = {1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 9: 8, 10: 1, 14: 2, 17: 2, 19: 2, 22: 4, 23: 8}
_DIM = st.one_of(st.integers(0, 6), st.integers(-3, 3), st.sampled_from([1 << 31, 1 << 62, -(1 << 63), 255]))


@st.composite
def _entry(draw, offset: int):
    """A BundleEntryProto: mostly plausible (so that many indexes pass and reach TF's reader), else hostile."""
    plausible = draw(st.sampled_from([True, True, False]))
    dtype = draw(st.sampled_from(_KNOWN) if plausible else st.one_of(st.sampled_from(_KNOWN), st.integers(-2, 300)))
    if plausible:
        dims = draw(st.lists(st.integers(0, 4), max_size=3))
    else:
        dims = draw(st.lists(_DIM, max_size=draw(st.sampled_from([3, 3, 3, 40]))))
    n = int(np.prod(dims, dtype=object)) if dims else 1
    size = n * _ITEMSIZE.get(dtype, 1)
    kwargs = dict(shard=0, offset=offset, size=size, crc=draw(st.integers(0, 2**32 - 1)))
    if not plausible:
        kwargs.update(shard=draw(st.sampled_from([0, 0, 1, -1])), offset=draw(st.sampled_from([offset, 0, 7, -4])),
                      size=draw(st.one_of(st.just(size), st.integers(-1, 5000))))
        if draw(st.integers(0, 4)) == 0:
            kwargs["slices"] = draw(st.lists(st.lists(st.tuples(st.integers(-1, 5), st.integers(-2, 5)), max_size=3),
                                             max_size=3))
    extra = draw(st.sampled_from([b"", b"", field(9, 7), field(2, b""), field(6, 5), b"\x50\x01"]))
    return entry_proto(dtype, dims, extra=extra, **kwargs), max(0, kwargs["size"])


@st.composite
def _index(draw):
    entries, at = [], 0
    for i in range(draw(st.integers(1, 4))):
        proto, size = draw(_entry(at))
        entries.append((f"v{i}".encode(), proto))
        at += size if size < 5000 else 0
    header = draw(st.sampled_from([header_proto(), header_proto(), header_proto(2), header_proto(min_consumer=1)]))
    return bundle_index(entries, header), draw(st.sampled_from([2048, 2048, 0, 17]))


_TF_OPENS = textwrap.dedent("""
    import sys
    import tensorflow as tf
    for i, prefix in enumerate(sys.argv[1:]):
        print("start", i, flush=True)
        try:
            reader = tf.compat.v1.train.NewCheckpointReader(prefix)
            for key, dtype in reader.get_variable_to_dtype_map().items():
                if dtype not in (tf.string, tf.resource, tf.variant):  # what transition reads
                    try:
                        reader.get_tensor(key)
                    except Exception:
                        pass
        except Exception:
            pass
    print("done", flush=True)
""")


def test_hostile_index_fields(tmp_path):
    """Structure-aware: valid tables and crcs around hostile fields (dims < 0, 40 dims, unknown dtypes, sizes and
    offsets that do not fit, bad shards, slices, unknown fields). Only CheckpointErrors; every index the parser
    accepts, TF's own reader (the fallback) opens and reads without aborting."""
    accepted: list[str] = []

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(case=_index())
    def check(case):
        index, data_size = case
        prefix = str(tmp_path / f"c{len(os.listdir(tmp_path))}")
        _write(prefix, index, data_size, shards=1)
        _write(prefix, index, data_size, shards=2)
        try:
            checked = read_bundle_index(prefix)
        except CheckpointError as exc:
            assert prefix in str(exc)
            return
        for entry in checked.entries.values():  # what is accepted is consistent
            assert entry.offset + entry.size <= checked.shard_sizes[entry.shard_id]
            assert len(entry.shape) <= 32 and min(entry.shape, default=0) >= 0
        accepted.append(prefix)

    check()
    assert len(accepted) >= 10, f"only {len(accepted)} accepted cases: too few to say anything about TF's reader"
    proc = subprocess.run([sys.executable, "-c", _TF_OPENS, *accepted], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    started = [line for line in proc.stdout.splitlines() if line.startswith("start")]
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("done"), (
        f"TF's reader died (status {proc.returncode}) on an index our parser accepted: "
        f"{accepted[int(started[-1].split()[1])] if started else '?'}: {proc.stderr[-1500:]}")
