"""Hostile npz / npy / HDF5 / .keras files: a CheckpointError naming the path and what is wrong, memory bounded by
what the files hold, nothing outside them opened, `inspect` reading no values."""

from __future__ import annotations

import os
import tracemalloc

import h5py
import numpy as np
import pytest

from tests.checkpoint.hostile import MAKERS, OpenWatch, make_sentinels
from transition.checkpoint._reader import open_checkpoint, read_checkpoint
from transition.checkpoint._tools import convert_checkpoint, inspect_checkpoint
from transition.errors import CheckpointError

MiB = 1 << 20


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("sentinel"))
    make_sentinels(directory)
    return directory


def _peak(fn):
    """(result or exception, tracemalloc peak in bytes) of fn()."""
    tracemalloc.start()
    try:
        try:
            out = fn()
        except CheckpointError as exc:
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_hostile_file_is_refused_within_bounded_memory(tmp_path, sentinel, name):
    path, message = MAKERS[name](str(tmp_path), sentinel)
    watch = OpenWatch(sentinel)
    error, peak = _peak(lambda: read_checkpoint(path))
    assert isinstance(error, CheckpointError), f"{name} was read: {error!r:.200}"
    assert message in str(error) and path in str(error)
    assert peak < 2 * os.path.getsize(path) + 8 * MiB, f"{name}: {peak / MiB:.1f} MiB allocated"
    assert watch.events() == [], f"{name}: a file outside the checkpoint was opened"
    watch.close()


def test_convert_never_writes_an_outside_files_bytes(tmp_path, sentinel):
    """The h5 whose dataset was stored in an external file (the issue's /etc/passwd) is refused, nothing written."""
    path, _ = MAKERS["h5 external storage"](str(tmp_path), sentinel)
    with pytest.raises(CheckpointError, match="external files"):
        convert_checkpoint(path, str(tmp_path / "out.npz"))
    assert not (tmp_path / "out.npz").exists()


def _big_checkpoints(d) -> dict[str, str]:
    values = {f"l{i}/W": np.random.default_rng(i).normal(size=(512, 1024)).astype(np.float32) for i in range(8)}
    from tests.helpers import save_v2

    with h5py.File(d / "m.weights.h5", "w") as f:
        for name, value in values.items():
            f.create_dataset(f"layers/{name}", data=value)
    np.savez(d / "m.npz", **values)
    np.savez_compressed(d / "c.npz", **values)
    return {"tf": save_v2(str(d / "tf"), values), "h5": str(d / "m.weights.h5"), "npz": str(d / "m.npz"),
            "npz deflated": str(d / "c.npz")}


def test_inspect_reads_no_values(tmp_path):
    """Listing 16 MiB checkpoints allocates far less than their values; reading them all allocates them once."""
    for kind, path in _big_checkpoints(tmp_path).items():
        entries, peak = _peak(lambda: inspect_checkpoint(path))
        assert len(entries) == 8 and peak < 2 * MiB, f"{kind}: inspect allocated {peak / MiB:.1f} MiB"
        values, peak = _peak(lambda: read_checkpoint(path))
        total = sum(v.nbytes for v in values.values())
        assert total == 16 * MiB and peak < 1.25 * total + 2 * MiB, f"{kind}: reading allocated {peak / MiB:.1f} MiB"


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x40]))


def test_zip_members_are_crc_checked(tmp_path):
    """npz and .keras members carry crc32s: a changed value byte is seen on reading (inspect still lists it)."""
    import keras

    np.savez(tmp_path / "m.npz", a=np.arange(1000, dtype=np.float32))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(300)])
    model.save(tmp_path / "m.keras")
    for path, at in ((tmp_path / "m.npz", 2000), (tmp_path / "m.keras", os.path.getsize(tmp_path / "m.keras") // 2)):
        values = read_checkpoint(path)
        _flip(str(path), at)
        with open_checkpoint(path) as reader:
            assert reader.names() == sorted(values)
            with pytest.raises(CheckpointError, match="crc32 mismatch") as e:
                reader.read_all()
        assert str(path) in str(e.value)


def test_deflated_member_inflating_beyond_its_size_is_damage(tmp_path):
    from tests.checkpoint.hostile import _npy_header, zip_bytes

    header = _npy_header((4,), "<f4")
    path = tmp_path / "m.npz"
    path.write_bytes(zip_bytes([("a.npy", header + bytes(4000), len(header) + 16)]))  # declares 16 data bytes
    with pytest.raises(CheckpointError, match=r"'a\.npy' inflates to more than its declared 144 bytes"):
        open_checkpoint(path)  # seen when its header is read: never more than 144 bytes are inflated


def test_hdf5_crash_or_hang_in_the_child_is_a_checkpoint_error(tmp_path, monkeypatch):
    """HDF5 parses the structure in a child process: its crash or a loop is a CheckpointError, not ours."""
    import sys

    from transition.checkpoint import _h5

    with h5py.File(tmp_path / "m.weights.h5", "w") as f:
        f.create_dataset("layers/d/vars/0", data=np.ones(3))
    path = str(tmp_path / "m.weights.h5")
    monkeypatch.setattr(_h5, "_bootstrap", lambda: [sys.executable, "-c", "import os; os.abort()"])
    with pytest.raises(CheckpointError, match=r"HDF5 failed .*exit status -6.*damaged"):
        read_checkpoint(path)
    monkeypatch.setattr(_h5, "_bootstrap", lambda: [sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(_h5, "SCAN_TIMEOUT", 1.0)
    with pytest.raises(CheckpointError, match="took more than 1 s"):
        read_checkpoint(path)


def test_chunked_filtered_and_compact_h5_datasets_read_like_h5py(tmp_path):
    """The values are read without HDF5 in this process: chunks (gzip, shuffle, fletcher32, edge chunks, chunks
    never written: their fill value), big-endian and bool data, compact datasets give what h5py gives."""
    path = tmp_path / "m.weights.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("layers/a/vars/0", data=rng.normal(size=(100, 30)), chunks=(16, 7), compression="gzip",
                         shuffle=True)
        f.create_dataset("layers/b/vars/0", data=rng.normal(size=(50,)).astype(">f4"), chunks=(8,), fletcher32=True)
        f.create_dataset("layers/d/vars/0", data=np.array([True, False, True]))
        f.create_dataset("layers/e/vars/0", shape=(5, 5), dtype="f4", chunks=(2, 2), fillvalue=3.5)
        f["layers/e/vars/0"][0, 0] = 1.0
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        f.create_group("layers/f/vars")
        compact = h5py.h5d.create(f.id, b"layers/f/vars/0", h5py.h5t.IEEE_F64LE, h5py.h5s.create_simple((2, 3)),
                                  dcpl=dcpl)
        compact.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(6.0).reshape(2, 3))
        expected = {name: f[f"layers/{name}"][()] for name in ("a/vars/0", "b/vars/0", "d/vars/0", "e/vars/0",
                                                                  "f/vars/0")}
    values = read_checkpoint(path)
    assert sorted(values) == sorted(expected)
    for name, want in expected.items():
        assert values[name].dtype == want.dtype.newbyteorder("=") and np.array_equal(values[name], want), name
    with h5py.File(path, "a") as f:
        f.create_dataset("layers/g/vars/0", data=np.arange(10.0), compression="lzf")
    with pytest.raises(CheckpointError, match="filter 32000 .only deflate, shuffle and fletcher32"):
        read_checkpoint(path)


def test_remote_files_are_read_by_the_same_readers(tmp_path):
    """URLs (here TF's ram://) go through tf.io.gfile: the same parsers and checks, HDF5's child fed on stdin."""
    import io
    import uuid

    import tensorflow as tf

    from tests.helpers import save_v2
    from transition.checkpoint._bundle_reader import TFBundleReader

    root = f"ram://hostile-{uuid.uuid4().hex}"
    values = {"a/W": np.arange(6.0).reshape(2, 3)}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("layers/a/W", data=values["a/W"])
    with tf.io.gfile.GFile(f"{root}/m.weights.h5", "wb") as g:
        g.write(buf.getvalue())
    np.savez(buf := io.BytesIO(), **values)
    with tf.io.gfile.GFile(f"{root}/m.npz", "wb") as g:
        g.write(buf.getvalue())
    save_v2(f"{root}/d/b", values)
    with TFBundleReader(f"{root}/d/b") as reader:
        got = [reader.read_all()]
    got += [read_checkpoint(f"{root}/m.weights.h5"), read_checkpoint(f"{root}/m.npz")]
    for value in got:
        assert value.keys() == values.keys() and np.array_equal(value["a/W"], values["a/W"])
