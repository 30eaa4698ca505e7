"""CheckpointStore, the commit protocol and the bundle: round trips, naming, hostile commit files, ram://."""

from __future__ import annotations

import json
import logging
import os
import uuid

import google_crc32c
import numpy as np
import pytest

from tests.helpers import store_model
from transition.checkpoint._naming import checkpoint_prefix
from transition.errors import CheckpointError, ConfigError
from transition.store import _atomic
from transition.store._keep import KeepPolicy
from transition.store._store import CheckpointStore

tf = pytest.importorskip("tensorflow")


def _params(value: float = 1.0) -> dict[str, np.ndarray]:
    return {
        "hidden/W": np.full((3, 4), value, np.float32),
        "hidden/b": np.arange(4, dtype=np.float64) + value,
        "output/W": np.arange(8, dtype=np.int32).reshape(2, 4),
    }


@pytest.fixture
def model(tmp_path):
    return store_model(tmp_path)


def test_round_trip_and_tf_reads_layer_param_names(model):
    from transition.store._state import TrainingState

    state = TrainingState(epoch=2, epoch_finished=True, global_step=17, step_in_epoch=5, data_position={"batch": 5})
    opt = {"iterations": np.array(17, np.int64), "adam/m/hidden/W": np.ones((3, 4), np.float32)}
    with CheckpointStore(model) as store:
        info = store.save(2, 5, _params(2.0), opt, state=state, scores={"dev_score": 0.5}, global_step=17)
        assert info.prefix == model + ".002" and info.good and info.scores == {"dev_score": 0.5}
        restored = store.restore(store.latest_good())
        assert store.restore_state(info) == state
    for name, value in _params(2.0).items():
        np.testing.assert_array_equal(restored.params[name], value)
        assert restored.params[name].dtype == value.dtype
    assert set(restored.optimizer) == set(opt) and restored.optimizer["iterations"].shape == ()
    assert restored.state_json["global_step"] == 17
    reader = tf.train.load_checkpoint(model + ".002")  # TF tools and RETURNN read the names as they are
    np.testing.assert_array_equal(reader.get_tensor("hidden/W"), _params(2.0)["hidden/W"])
    assert "optimizer/iterations" in reader.get_variable_to_shape_map()


def test_commit_file_checksums_match_the_files(model):
    with CheckpointStore(model) as store:
        info = store.save(1, 0, _params())
    commit = json.loads(open(info.prefix + ".commit.json").read())
    assert commit["version"] == _atomic.FORMAT_VERSION
    assert set(commit["files"]) == {".index", ".data-00000-of-00001", ".state.json"}
    for suffix, rec in commit["files"].items():
        data = open(info.prefix + suffix, "rb").read()
        assert rec == {"size": len(data), "crc32c": google_crc32c.value(data)}, suffix
    assert not os.path.exists(info.prefix + ".pending")


def test_keras_variables_are_saved(model):
    import keras

    var = keras.Variable(np.full((2, 3), 4.0, np.float32))
    with CheckpointStore(model) as store:
        store.save_async(1, 0, {"l/W": var})
        var.assign(np.zeros((2, 3), np.float32))  # after save_async returned: must not change the checkpoint
        store.wait()
        np.testing.assert_array_equal(store.restore(model + ".001").params["l/W"], np.full((2, 3), 4.0))


def test_mid_epoch_naming_and_order(model):
    with CheckpointStore(model, keep=KeepPolicy(keep_last=None)) as store:
        store.save(3, 100, _params(), epoch_finished=False)
        assert store.latest_good().prefix == model + ".003.step00000100"
        store.save(3, 250, _params(), epoch_finished=True)
        assert store.latest_good().prefix == model + ".003"  # the epoch end is after its mid-epoch checkpoints
        store.save(4, 7, _params(), epoch_finished=False)
        assert store.latest_good().prefix == model + ".004.step00000007"
        # the superseded mid-epoch checkpoint is gone (they exist for resuming), the epoch ends stay
        assert [i.prefix for i in store.list()] == [model + ".003", model + ".004.step00000007"]
    assert checkpoint_prefix("m", 1000) == "m.1000"


def test_keep_policy_deletes_after_commit_and_keeps_mid_epoch_only_while_newest(model):
    with CheckpointStore(model, keep=KeepPolicy(keep_last=2)) as store:
        for epoch in range(1, 5):
            store.save(epoch, 0, _params(epoch))
        store.save(5, 3, _params(), epoch_finished=False)
        assert [i.epoch for i in store.list()] == [3, 4, 5]
        store.save(5, 9, _params())
        assert [(i.epoch, i.epoch_finished) for i in store.list()] == [(4, True), (5, True)]
    assert not [n for n in os.listdir(os.path.dirname(model)) if ".001" in n or "step" in n]


def test_saving_over_a_good_checkpoint_is_refused_unless_overwrite(model):
    with CheckpointStore(model) as store:
        store.save(1, 0, _params(1.0))
        with pytest.raises(CheckpointError, match=r"network\.001 already exists"):
            store.save(1, 0, _params(2.0))
        np.testing.assert_array_equal(store.restore(model + ".001").params["hidden/W"], _params(1.0)["hidden/W"])
        store.save(1, 0, _params(3.0), overwrite=True)
        np.testing.assert_array_equal(store.restore(model + ".001").params["hidden/W"], _params(3.0)["hidden/W"])


def test_bad_arguments_name_the_offending_thing(model):
    with CheckpointStore(model, keep=KeepPolicy(keep_best=1, score="dev_score")) as store:
        with pytest.raises(ConfigError, match="optimizer/x"):
            store.save(1, 0, {"optimizer/x": np.ones(2)})
        with pytest.raises(ConfigError, match="score 'dev_score' is not among.*did you mean 'dev_scor'"):
            store.save(1, 0, _params(), scores={"dev_scor": 1.0})
        with pytest.raises(ConfigError, match="epoch"):
            store.save(-1, 0, _params())
    assert not os.path.exists(model + ".001.pending")


def test_empty_model_has_no_checkpoint_and_legacy_files_are_not_a_silent_restart(model):
    with CheckpointStore(model) as store:
        assert store.latest_good() is None and store.list() == []
    os.makedirs(os.path.dirname(model), exist_ok=True)
    tf.raw_ops.SaveV2(prefix=model + ".001", tensor_names=["a/W"], shape_and_slices=[""], tensors=[np.ones(2)])
    with CheckpointStore(model) as store:
        (info,) = store.list()
        assert not info.committed and "no commit file" in info.damaged
        with pytest.raises(CheckpointError, match=r"none is good.*network\.001: not committed"):
            store.latest_good()


def _committed(model) -> str:
    with CheckpointStore(model) as store:
        return store.save(1, 0, _params()).prefix


HOSTILE = {
    "not json": b"{nope",
    "not an object": b"[1, 2]",
    "wrong format": json.dumps({"format": "x", "version": 1}).encode(),
    "newer version": json.dumps({"format": _atomic.FORMAT, "version": 99, "files": {}, "meta": {}}).encode(),
    "path traversal": None,  # filled below: a file name with ../
    "slash": None,
    "huge size": None,
    "size is a string": None,
    "meta wrong type": None,
}


def _hostile_commit(good: dict, case: str) -> bytes:
    obj = json.loads(json.dumps(good))
    if case == "path traversal":
        obj["files"]["/../../../../etc/passwd"] = {"size": 1, "crc32": 0}
    elif case == "slash":
        obj["files"][".index/x"] = obj["files"].pop(".index")
    elif case == "huge size":
        obj["files"][".index"]["size"] = 10**18
    elif case == "size is a string":
        obj["files"][".index"]["size"] = "12"
    elif case == "meta wrong type":
        obj["meta"]["epoch"] = "1"
    else:
        return HOSTILE[case]
    return json.dumps(obj).encode()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_commit_file_is_a_clear_error(model, case):
    prefix = _committed(model)
    good = json.loads(open(prefix + ".commit.json").read())
    open(prefix + ".commit.json", "wb").write(_hostile_commit(good, case))
    before = sorted(os.listdir(os.path.dirname(os.path.dirname(model))))
    with CheckpointStore(model) as store:
        (info,) = store.list()
        assert info.committed and not info.good and prefix in info.damaged
        with pytest.raises(CheckpointError, match=r"network\.001"):
            store.latest_good()
        with pytest.raises(CheckpointError, match=r"network\.001"):
            store.restore(prefix)
    assert sorted(os.listdir(os.path.dirname(os.path.dirname(model)))) == before  # nothing written outside


def test_oversized_commit_file_is_refused_without_reading_it(model):
    prefix = _committed(model)
    with open(prefix + ".commit.json", "ab") as f:
        f.truncate(_atomic.MAX_COMMIT_BYTES + 10)
    with pytest.raises(CheckpointError, match="commit.json.*bytes"):
        _atomic.read_commit(prefix)


def test_ram_filesystem_commit_marker_decides(caplog):
    model = f"ram://transition-test-{uuid.uuid4().hex}/net"
    with caplog.at_level(logging.WARNING, logger="transition"):
        store = CheckpointStore(model)
    assert "no lock" in caplog.text
    with store:
        store.save(1, 0, _params(1.0))
        store.save_async(2, 0, _params(2.0))
        store.wait()
        # a save that wrote its files but never its commit marker (rename on such file systems is not atomic)
        tf.raw_ops.SaveV2(prefix=model + ".003", tensor_names=["hidden/W"], shape_and_slices=[""],
                          tensors=[np.ones((3, 4), np.float32)])
        with tf.io.gfile.GFile(model + ".003.pending", "wb") as f:
            f.write(b"{}")
        assert store.latest_good().prefix == model + ".002"
        np.testing.assert_array_equal(store.restore(store.latest_good()).params["hidden/b"], _params(2.0)["hidden/b"])
    with CheckpointStore(model) as store:  # reopening cleans the uncommitted one
        assert [i.epoch for i in store.list()] == [1, 2]
        assert not tf.io.gfile.exists(model + ".003.index")


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.uint8, np.bool_, np.complex64])
def test_large_unaligned_and_strided_arrays_round_trip(model, dtype):
    rng = np.random.default_rng(1)
    base = (rng.standard_normal(40_001) * 50).astype(dtype)
    params = {"a/unaligned": base[1:], "a/strided": base[::2], "a/big2d": np.resize(base, (300, 300)).T}
    with CheckpointStore(model) as store:
        store.save(1, 0, params)
        store.save_async(2, 0, params)
        store.wait()
        for epoch in (1, 2):
            restored = store.restore(f"{model}.{epoch:03d}").params
            for name, value in params.items():
                assert restored[name].dtype == value.dtype and restored[name].shape == value.shape
                np.testing.assert_array_equal(restored[name], value)


def test_bundle_whose_index_declares_more_than_its_data_is_refused(tmp_path):
    from transition.checkpoint._bundle_reader import TFBundleReader
    from transition.checkpoint._bundle_writer import write_bundle

    prefix = str(tmp_path / "m.001")
    write_bundle(prefix, {"a/W": np.ones((100, 10), np.float32)})
    with TFBundleReader(prefix) as reader:
        assert reader.read("a/W").shape == (100, 10)
    with open(prefix + ".data-00000-of-00001", "r+b") as f:
        f.truncate(100)
    with pytest.raises(CheckpointError, match=r"m\.001 is damaged: tensor 'a/W' \(bytes 0\.\.4000.*\(100 bytes\)"):
        TFBundleReader(prefix)  # refused on opening, before anything is allocated

