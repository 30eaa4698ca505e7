"""A hostile model directory: malformed state / commit files mark their checkpoint damaged (the resume falls back),
a commit file must cover its whole checkpoint, only regular files inside the directory are opened, and the lock
never follows a symlink nor truncates another file."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import store_model
from transition.errors import CheckpointError
from transition.store import _atomic
from transition.store._lock import DirectoryLock
from transition.store._rng import capture_rng_state
from transition.store._state import TrainingState, dumps_state, loads_state
from transition.store._store import CheckpointStore


@pytest.fixture
def model(tmp_path):
    """A model with good checkpoints at epochs 1 and 2 (the newest with an RNG state)."""
    model = store_model(tmp_path)
    with CheckpointStore(model) as store:
        for epoch in (1, 2):
            rng = capture_rng_state(numpy_generators={"data": np.random.default_rng(epoch)}, tf=False,
                                    keras_global=False)
            store.save(epoch, 0, {"l/W": np.full((3, 2), epoch, np.float32)},
                       state=TrainingState(epoch=epoch, rng=rng, extra={"a": [1, {"b": 2}]}))
    return model


def _scan(model):
    with CheckpointStore(model, lock=False, cleanup=False) as store:
        return store.scan_for_resume()


def _recommit(prefix: str, **files: bytes) -> None:
    """Replace files of a committed checkpoint (suffix -> bytes) and their records in its commit file, so that
    sizes and checksums match: only what the files say is wrong."""
    commit = json.loads(open(prefix + ".commit.json", "rb").read())
    for key, data in files.items():
        suffix = {"state": ".state.json", "index": ".index"}[key]
        with open(prefix + suffix, "wb") as f:
            f.write(data)
        commit["files"][suffix] = _atomic.file_record(data)
    with open(prefix + ".commit.json", "w") as f:
        json.dump(commit, f)


def _falls_back(model, reason: str) -> None:
    scan = _scan(model)
    assert scan.resume_from.prefix == model + ".001", scan.skipped
    assert [i.prefix for i in scan.skipped] == [model + ".002"]
    assert reason in scan.skipped[0].damaged, scan.skipped[0].damaged


def _state_obj(model) -> dict:
    return json.loads(open(model + ".002.state.json", "rb").read())


_STATE_DAMAGE = {
    "a float for a dict": (lambda o: o.update(callbacks=1.5), "field 'callbacks' must be an object"),
    "a list for a dict": (lambda o: o.update(data_position=[1]), "field 'data_position' must be an object"),
    "superscript epoch key": (lambda o: o.update(learning_rate_history={"²": {"learning_rate": 1.0, "scores": {}}}),
                              "the key must be an epoch number"),
    "deep nesting": (lambda o: o.update(extra={"x": json.loads("[" * 500 + "]" * 500)}), "nested deeper"),
    "unknown field": (lambda o: o.update(surprise=1), "unknown field 'surprise'"),
    "rng of the wrong type": (lambda o: o.update(rng=[1, 2]), "rng"),
    "rng array missing": (lambda o: o.update(arrays=o["arrays"] + ["nope"]), "'state/nope' is not in checkpoint"),
    "a missing field": (lambda o: o.pop("epoch"), "missing field 'epoch'"),
}


@pytest.mark.parametrize("case", sorted(_STATE_DAMAGE))
def test_malformed_state_file_is_damage_and_the_resume_falls_back(model, case):
    change, reason = _STATE_DAMAGE[case]
    obj = _state_obj(model)
    change(obj)
    _recommit(model + ".002", state=json.dumps(obj).encode())
    _falls_back(model, reason)


@pytest.mark.parametrize("text, reason", [
    (b'{"format": "transition.TrainingState", "format": "x"}', "duplicate key"),
    (b"[" * 100_000, "nested too deeply"),
    (b"\xff\xfe", "not valid JSON"),
    (b'{"epoch": NaN}', "not JSON"),
    (b"[1]", "the top level must be a JSON object"),
])
def test_unparsable_state_file_is_damage(model, text, reason):
    _recommit(model + ".002", state=text)
    _falls_back(model, reason)


def _commit_text(model) -> str:
    return open(model + ".002.commit.json").read()


@pytest.mark.parametrize("change, reason", [
    (lambda c: c["files"].pop(".index") and c["files"].pop(".data-00000-of-00001"), "does not cover its file(s)"),
    (lambda c: c.update(meta=dict(c["meta"], epoch=2.0)), "meta.epoch"),
    (lambda c: c.update(meta=dict(c["meta"], scores=[1])), "meta.scores"),
    (lambda c: c.update(files=[1]), "'files' must be a non-empty object"),
    (lambda c: c.update(format="other"), "no 'format'"),
    (lambda c: c["files"][".index"].update(size=1.5), "expected {'size': int, 'crc32c': int}"),
    (lambda c: c.update(meta=dict(c["meta"], epoch=1)), "describes 'network.001'"),
    (lambda c: c["meta"].pop("global_step"), "meta.global_step is missing"),  # found by the fuzz campaign
])
def test_malformed_commit_file_is_damage(model, change, reason):
    commit = json.loads(_commit_text(model))
    change(commit)
    with open(model + ".002.commit.json", "w") as f:
        json.dump(commit, f)
    _falls_back(model, reason)


def test_a_commit_file_listing_only_the_state_is_not_trusted(model):
    """The issue's tampering: a commit that lists only the state file left the bundle unchecked."""
    commit = json.loads(_commit_text(model))
    commit["files"] = {".state.json": commit["files"][".state.json"]}
    with open(model + ".002.commit.json", "w") as f:
        json.dump(commit, f)
    with open(model + ".002.data-00000-of-00001", "r+b") as f:  # tampered params
        f.write(b"\x7f\x7f\x7f\x7f")
    _falls_back(model, "does not cover its file(s) ['.data-00000-of-00001', '.index']")
    os.remove(model + ".002.index")
    os.remove(model + ".002.data-00000-of-00001")
    _falls_back(model, "does not list ['.index']")


def test_a_file_the_commit_does_not_cover_is_damage(model):
    with open(model + ".002.data-00000-of-00002", "wb") as f:
        f.write(b"extra")
    _falls_back(model, "does not cover its file(s) ['.data-00000-of-00002']")


def test_duplicate_key_in_a_commit_file_is_damage(model):
    text = _commit_text(model)
    with open(model + ".002.commit.json", "w") as f:
        f.write(text.replace('"format"', '"meta": {}, "format"', 1))
    _falls_back(model, "duplicate key 'meta'")


def _in_thread(fn, timeout=60.0):
    """fn() in a thread, failing the test when it blocks (a FIFO would block an open forever)."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.parametrize("suffix", [".commit.json", ".state.json", ".index", ".data-00000-of-00001"])
def test_fifo_named_like_a_checkpoint_file_never_blocks(model, suffix):
    path = model + ".002" + suffix
    os.remove(path)
    os.mkfifo(path)
    scan = _in_thread(lambda: _scan(model))
    assert scan.resume_from.prefix == model + ".001"
    assert "FIFO" in scan.skipped[0].damaged and path in scan.skipped[0].damaged


def test_symlink_out_of_the_model_directory_is_damage(model, tmp_path):
    outside = tmp_path / "elsewhere.state.json"
    outside.write_bytes(open(model + ".002.state.json", "rb").read())  # the same bytes: only the place is wrong
    os.remove(model + ".002.state.json")
    os.symlink(outside, model + ".002.state.json")
    _falls_back(model, "outside")


def test_symlink_inside_the_model_directory_is_followed(model):
    os.rename(model + ".002.state.json", model + ".002.state.json.real")
    os.symlink(os.path.basename(model) + ".002.state.json.real", model + ".002.state.json")
    assert _scan(model).resume_from.prefix == model + ".002"


@pytest.mark.parametrize("kind", ["symlink", "hard link", "fifo"])
def test_the_lock_never_follows_links_nor_truncates_another_file(model, tmp_path, kind):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    lock = model + ".lock"
    os.remove(lock)
    {"symlink": lambda: os.symlink(precious, lock), "hard link": lambda: os.link(precious, lock),
     "fifo": lambda: os.mkfifo(lock)}[kind]()
    reason = {"symlink": "is a symlink", "hard link": "has 2 hard links", "fifo": "not a regular file"}[kind]
    with pytest.raises(CheckpointError, match=reason) as e:
        _in_thread(lambda: CheckpointStore(model))
    assert lock in str(e.value) and precious.read_text() == "keep me"
    os.remove(lock)
    with DirectoryLock(model) as held:  # removed: created anew
        assert held.held


def test_writes_never_follow_a_symlink(model, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    with CheckpointStore(model) as store:
        os.symlink(precious, model + ".003.pending")  # planted after the store cleaned up
        with pytest.raises(CheckpointError, match="is a symlink: refusing to write through it"):
            store.save(3, 0, {"l/W": np.zeros((3, 2), np.float32)})
    assert precious.read_text() == "keep me"


def test_full_disk_writing_the_lock_is_one_line(tmp_path, monkeypatch):
    import errno

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    model = store_model(tmp_path)
    with pytest.raises(CheckpointError) as e:
        DirectoryLock(model).acquire()
    assert str(e.value) == f"cannot write the lock file {model}.lock: No space left on device (is the disk full?)"


# --- structure-aware: any JSON value anywhere in a state or commit file is a CheckpointError or a valid state -------

_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                     | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


def _paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, path + (i,))


_DELETE = object()  # as a replacement: remove the key (or list item)


def _replace(obj, path, value):
    if not path:
        return {} if value is _DELETE else value
    obj = json.loads(json.dumps(obj))
    node = obj
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return obj


_STATE = TrainingState(epoch=3, global_step=7, step_in_epoch=2, epoch_finished=False, net_dict={"l": {"n_out": 2}},
                       learning_rate_history={1: {"learning_rate": 0.1, "scores": {"dev": 0.5}}},
                       rng=capture_rng_state(numpy_generators={"d": np.random.default_rng(0)}, tf=False,
                                             keras_global=False),
                       data_position={"batch_index": 4}, callbacks={"cb": {"best": 1.0}}, extra={"x": [1, 2]})
_STATE_BYTES, _STATE_ARRAYS = dumps_state(_STATE)
_STATE_PATHS = list(_paths(json.loads(_STATE_BYTES)))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(path=st.sampled_from(_STATE_PATHS), value=_JSON | st.just(_DELETE))
def test_any_value_anywhere_in_a_state_file(path, value):
    data = json.dumps(_replace(json.loads(_STATE_BYTES), path, value)).encode()
    try:
        state = loads_state(data, _STATE_ARRAYS, source="s.state.json")
    except CheckpointError as exc:
        assert "s.state.json" in str(exc)
    else:
        assert isinstance(state, TrainingState)


@pytest.fixture(scope="module")
def commit_dir(tmp_path_factory):
    model = store_model(tmp_path_factory.mktemp("commit"))
    with CheckpointStore(model) as store:
        store.save(1, 0, {"l/W": np.ones(2, np.float32)}, scores={"dev": 0.5})
    return model, open(model + ".001.commit.json", "rb").read()


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=_JSON | st.just(_DELETE))
def test_any_value_anywhere_in_a_commit_file(commit_dir, data, value):
    from transition.store._listing import list_checkpoints

    model, original = commit_dir
    prefix = model + ".001"
    path = data.draw(st.sampled_from(list(_paths(json.loads(original)))))
    try:
        with open(prefix + ".commit.json", "w") as f:
            json.dump(_replace(json.loads(original), path, value), f)
        (info,) = list_checkpoints(model, checksums=True)  # never raises: marks the checkpoint instead
        assert info.good or prefix in info.damaged
        try:
            _atomic.verify(prefix)
        except CheckpointError as exc:
            assert prefix in str(exc)
    finally:
        with open(prefix + ".commit.json", "wb") as f:
            f.write(original)
