"""Every reader, the epoch listing, convert / avg and `transition status` on a URL file system (ram://): all file
access goes through internal._fs (tf.io.gfile for URLs), none through os / glob / open."""

from __future__ import annotations

import json
import uuid

import h5py
import numpy as np
import pytest

from tests.helpers import save_v2

tf = pytest.importorskip("tensorflow")

VALUES = {"l1/W": np.arange(6, dtype=np.float32).reshape(2, 3), "l1/b": np.array([1.5, -2.0], np.float64)}


@pytest.fixture
def ram():
    return f"ram://t-{uuid.uuid4().hex}"


def _upload(local: str, remote: str) -> str:
    tf.io.gfile.makedirs(remote.rsplit("/", 1)[0])
    tf.io.gfile.copy(local, remote, overwrite=True)
    return remote


def _assert_values(got: dict) -> None:
    assert sorted(got) == sorted(VALUES)
    for name, value in VALUES.items():
        np.testing.assert_array_equal(got[name], value)
        assert got[name].dtype == value.dtype


def test_every_reader_on_ram(tmp_path, ram):
    from transition.checkpoint._reader import open_checkpoint, read_checkpoint

    np.savez(tmp_path / "a.npz", **VALUES)
    record = np.zeros((), dtype=[(k, v.dtype, v.shape) for k, v in VALUES.items()])
    for k, v in VALUES.items():
        record[k] = v
    np.save(tmp_path / "a.npy", record)
    with h5py.File(tmp_path / "a.h5", "w") as f:  # a legacy Keras weights file
        f.attrs["layer_names"] = [b"l1"]
        g = f.create_group("l1")
        g.attrs["weight_names"] = [b"l1/W:0", b"l1/b:0"]
        for k, v in VALUES.items():
            g.create_dataset(k + ":0", data=v)
    for name in ("a.npz", "a.npy", "a.h5"):
        _assert_values(read_checkpoint(_upload(str(tmp_path / name), f"{ram}/{name}")))
    _assert_values(read_checkpoint(save_v2(f"{ram}/bundle.001", VALUES)))
    with open_checkpoint(f"{ram}/bundle.001") as reader:
        assert reader.kind == "tf" and reader.shape("l1/W") == (2, 3)


def test_epoch_listing_convert_avg_and_status_on_ram(ram, capsys):
    from transition.checkpoint._epochs import find_epoch_model, list_epoch_models
    from transition.checkpoint._reader import read_checkpoint
    from transition.checkpoint._tools import average_checkpoints, convert_checkpoint
    from transition.cli._main import main
    from transition.store._store import CheckpointStore

    model = f"{ram}/m/network"
    for epoch in (1, 2):
        save_v2(f"{model}.{epoch:03d}", {k: v * epoch for k, v in VALUES.items()})
    assert list_epoch_models(model) == {1: f"{model}.001", 2: f"{model}.002"}
    assert find_epoch_model(model) == (2, f"{model}.002")
    convert_checkpoint(f"{model}.002", f"{ram}/out/c.npz")
    convert_checkpoint(f"{model}.001", f"{ram}/out/c")
    assert sorted(tf.io.gfile.listdir(f"{ram}/out")) == ["c.data-00000-of-00001", "c.index", "c.npz"]
    np.testing.assert_array_equal(read_checkpoint(f"{ram}/out/c.npz")["l1/W"], VALUES["l1/W"] * 2)
    np.testing.assert_array_equal(read_checkpoint(f"{ram}/out/c")["l1/b"], VALUES["l1/b"])
    average_checkpoints([f"{model}.001", f"{model}.002"], f"{ram}/out/avg.npz")
    np.testing.assert_allclose(read_checkpoint(f"{ram}/out/avg.npz")["l1/W"], VALUES["l1/W"] * 1.5)

    ours = f"{ram}/s/network"
    with CheckpointStore(ours) as store:  # no lock on a URL (a warning), the commit protocol through gfile
        store.save(1, 0, VALUES, scores={"dev": 0.5})
    assert main(["status", ours, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["resume_from"] == ours + ".001" and status["checkpoints"][0]["damaged"] is None
    assert main(["status", f"{ram}/nowhere/network"]) == 0
    assert "does not exist" in capsys.readouterr().out
