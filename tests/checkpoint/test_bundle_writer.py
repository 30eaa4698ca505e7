"""The bundle writer (`_bundle_writer.write_bundle`, `_bundle_encode`): the files TF's SaveV2 would write, read by TF
and by our reader; the crc32c values it returns; crc32c_combine; refusals."""

from __future__ import annotations

import os
import random

import google_crc32c
import numpy as np
import pytest

from transition.checkpoint import _bundle_reader, _bundle_writer
from transition.checkpoint._bundle_encode import crc32c_combine, encode_table
from transition.checkpoint._bundle_reader import TFBundleReader
from transition.checkpoint._bundle_table import decode_index, table_entries
from transition.checkpoint._bundle_writer import write_bundle
from transition.errors import CheckpointError

DATA = ".data-00000-of-00001"


def _arrays() -> dict[str, np.ndarray]:
    import ml_dtypes

    rng = np.random.default_rng(3)
    return {
        "a/W": rng.standard_normal((30, 7)).astype(np.float32),
        "a/b": rng.standard_normal(7),
        "big/endian": np.arange(5, dtype=">i4"),
        "c/scalar": np.array(3, np.int64),
        "d/empty": np.zeros((0, 3), np.float16),
        "e/bool": np.array([True, False, True]),
        "f/bf16": np.linspace(-2, 2, 9).astype(ml_dtypes.bfloat16),
        "g/transposed": np.arange(12.0).reshape(3, 4).T,  # not C-contiguous
        "h/u8": np.arange(256, dtype=np.uint8),
        "i/c64": (rng.standard_normal(4) + 1j).astype(np.complex64),
        "j/u16": np.arange(5, dtype=np.uint16),
        "k/i8": np.arange(-3, 3, dtype=np.int8),
    }


def test_files_are_those_savev2_writes(tmp_path):
    """Same data file byte for byte, same header and entries in the index (only TF's shortened index keys differ)."""
    tf = pytest.importorskip("tensorflow")
    arrays = _arrays()
    written = write_bundle(str(tmp_path / "ours"), arrays)
    names = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=str(tmp_path / "tf"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[np.require(arrays[n], arrays[n].dtype.newbyteorder("="), "C") for n in names])
    assert (tmp_path / f"ours{DATA}").read_bytes() == (tmp_path / f"tf{DATA}").read_bytes()
    assert decode_index((tmp_path / "ours.index").read_bytes()) == decode_index((tmp_path / "tf.index").read_bytes())
    assert written.names == tuple(names)


def test_tf_and_our_reader_read_every_dtype(tmp_path):
    tf = pytest.importorskip("tensorflow")
    arrays = _arrays()
    prefix = str(tmp_path / "m.001")
    write_bundle(prefix, arrays)
    reader = tf.train.load_checkpoint(prefix)
    with TFBundleReader(prefix) as ours:
        for name, value in arrays.items():
            for got in (reader.get_tensor(name), ours.read(name)):
                assert got.shape == value.shape and got.dtype == value.dtype.newbyteorder("="), name
                np.testing.assert_array_equal(got, value)


@pytest.mark.parametrize("chunk", [7, 1000, 4 << 20])
def test_returned_crcs_and_sizes_are_those_of_the_files(tmp_path, monkeypatch, chunk):
    """Pieces smaller than a tensor, tensors hashed twice (small) and combined (large): the same crc32c."""
    monkeypatch.setattr(_bundle_writer, "CHUNK", chunk)
    monkeypatch.setattr(_bundle_writer, "_COMBINE_MIN", 2000)
    arrays = dict(_arrays(), **{"z/large": np.arange(3000, dtype=np.float32)})
    written = write_bundle(str(tmp_path / "m"), arrays)
    data, index = (tmp_path / f"m{DATA}").read_bytes(), (tmp_path / "m.index").read_bytes()
    assert (written.data_size, written.data_crc32c) == (len(data), google_crc32c.value(data))
    assert (written.index_size, written.index_crc32c) == (len(index), google_crc32c.value(index))
    with TFBundleReader(str(tmp_path / "m")) as reader:  # every tensor's crc32c in the index checked on reading
        np.testing.assert_array_equal(reader.read("z/large"), arrays["z/large"])


def test_many_tensors_span_several_index_blocks(tmp_path):
    tf = pytest.importorskip("tensorflow")
    arrays = {f"layer{i:05d}/{'x' * 60}": np.full(3, i, np.int32) for i in range(4000)}
    prefix = str(tmp_path / "m")
    write_bundle(prefix, arrays)
    index = (tmp_path / "m.index").read_bytes()
    assert len(index) > 262144 + 4096  # more than one data block
    assert len(list(table_entries(index))) == len(arrays) + 1  # and the header
    reader = tf.train.load_checkpoint(prefix)
    for name in (min(arrays), max(arrays), sorted(arrays)[1234]):
        np.testing.assert_array_equal(reader.get_tensor(name), arrays[name])


def test_encode_table_refuses_keys_out_of_order():
    with pytest.raises(ValueError, match="out of order"):
        encode_table([(b"b", b""), (b"a", b"")])


def test_crc32c_combine_is_the_crc_of_the_joined_bytes():
    rnd = random.Random(5)
    for _ in range(200):
        a, b = os.urandom(rnd.randint(0, 3000)), os.urandom(rnd.randint(0, 3000))
        assert crc32c_combine(google_crc32c.value(a), google_crc32c.value(b), len(b)) == google_crc32c.value(a + b)


@pytest.mark.parametrize("value, match", [
    (np.array(["a", "b"]), r"array 'l/s' for .*m has dtype <U1; a checkpoint bundle takes numeric"),
    (np.array([object()]), r"array 'l/s' .* has dtype object"),
])
def test_non_numeric_arrays_are_refused_naming_the_array(tmp_path, value, match):
    with pytest.raises(CheckpointError, match=match):
        write_bundle(str(tmp_path / "m"), {"l/s": value})
    assert not os.listdir(tmp_path)  # refused before any file was created


def test_a_damaged_later_piece_is_found_by_the_chunked_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(_bundle_reader, "_CHUNK", 64)
    prefix = str(tmp_path / "m")
    write_bundle(prefix, {"l/W": np.arange(1000, dtype=np.float32)})
    with open(prefix + DATA, "r+b") as f:
        f.seek(3990)
        f.write(b"\x01")
    with TFBundleReader(prefix) as reader, pytest.raises(CheckpointError, match=r"crc32c mismatch for 'l/W'"):
        reader.read("l/W")


def test_a_slow_crc32c_is_warned_about_and_the_bundle_still_correct(tmp_path, monkeypatch):
    """google-crc32c without its C extension (its pure-Python fallback): a RuntimeWarning, the same files."""
    monkeypatch.setattr(google_crc32c, "implementation", "python")
    value = np.arange(6, dtype="float32")
    with pytest.warns(RuntimeWarning, match="without its C extension.*reinstall"):
        write_bundle(str(tmp_path / "slow"), {"a": value})
    np.testing.assert_array_equal(TFBundleReader(str(tmp_path / "slow")).read("a"), value)
