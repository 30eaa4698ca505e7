"""Fault injection: SIGKILL inside a save, damaged files, a full disk. The previous checkpoint always survives."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from transition.errors import CheckpointError
from transition.store import _atomic
from transition.store._keep import KeepPolicy
from transition.store._store import CheckpointStore

_CHILD = textwrap.dedent("""
    import os, sys, numpy as np
    from transition.store._keep import KeepPolicy
    from transition.store._store import CheckpointStore
    model, point, mode = sys.argv[1:4]
    with CheckpointStore(model, keep=KeepPolicy(keep_last=1)) as store:
        store.save(1, 0, {"l/W": np.full(4, 1.0)}, {"iterations": np.array(1)})
        os.environ["TRANSITION_TEST_KILL_AT"] = point
        if mode == "async":
            store.save_async(2, 0, {"l/W": np.full(4, 2.0)}, {"iterations": np.array(2)})
            store.wait()
        else:
            store.save(2, 0, {"l/W": np.full(4, 2.0)}, {"iterations": np.array(2)})
    print("not killed", flush=True)
""")

# kill point -> the epoch a resume must use
# (each kill point costs a process that imports TF: the other points, "bundle_written" / "state_written" in a sync
# save, lie between these and behave alike)
KILL_POINTS = {
    ("pending_created", "sync"): 1,
    ("bundle_written", "async"): 1,  # inside a background save
    ("before_commit", "sync"): 1,  # every file in place, no commit file yet
    ("committed", "sync"): 2,  # commit file written, .pending not yet removed
    ("deleting", "sync"): 2,  # the keep policy was deleting epoch 1
}


@pytest.fixture(scope="module")
def killed_models(tmp_path_factory):
    """Run every kill point in its own process, all at once (each imports TF: keep the wall time down)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    procs = {}
    for point, mode in KILL_POINTS:
        model = str(tmp_path_factory.mktemp(f"kill-{point}-{mode}") / "net")
        procs[(point, mode)] = (model, subprocess.Popen([sys.executable, "-c", _CHILD, model, point, mode], env=env,
                                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    out = {}
    for key, (model, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[key] = (model, proc.returncode, stdout.decode() + stderr.decode()[-2000:])
    return out


@pytest.mark.parametrize("point, mode", sorted(KILL_POINTS))
def test_sigkill_inside_a_save_then_resume(killed_models, point, mode):
    model, returncode, output = killed_models[(point, mode)]
    assert returncode == -signal.SIGKILL, output
    with CheckpointStore(model) as store:  # the next start: cleans leftovers, resumes from the last good one
        info = store.latest_good()
        assert info is not None and info.epoch == KILL_POINTS[(point, mode)]
        restored = store.restore(info)
        np.testing.assert_array_equal(restored.params["l/W"], np.full(4, float(info.epoch)))
        assert int(restored.optimizer["iterations"]) == info.epoch
        assert all(i.good for i in store.list(checksums=True))
    names = os.listdir(os.path.dirname(model))
    assert not [n for n in names if ".tmp-" in n or n.endswith(".pending")], names
    if info.epoch == 1:
        assert not [n for n in names if n.startswith("net.002")], names


def _two_checkpoints(model: str) -> None:
    with CheckpointStore(model, keep=KeepPolicy(keep_last=None)) as store:
        store.save(1, 0, {"l/W": np.full(64, 1.0)})
        store.save(2, 0, {"l/W": np.full(64, 2.0)})


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _garbage(path):
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())


def _flip_bit(path):
    with open(path, "r+b") as f:
        f.seek(10)
        byte = f.read(1)[0]
        f.seek(10)
        f.write(bytes([byte ^ 0x10]))


DAMAGE = {
    "truncated data": (".data-00000-of-00001", _truncate, "has .* bytes, the commit file says"),
    "garbage index": (".index", _garbage, "checksum"),
    "bit flip in data": (".data-00000-of-00001", _flip_bit, "checksum"),
    "missing state": (".state.json", os.remove, "missing"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_newest_is_skipped_with_a_warning_naming_it(tmp_path, caplog, damage):
    model = str(tmp_path / "net")
    _two_checkpoints(model)
    suffix, hurt, reason = DAMAGE[damage]
    hurt(model + ".002" + suffix)
    with CheckpointStore(model) as store, caplog.at_level(logging.WARNING, logger="transition"):
        info = store.latest_good()
        assert info.prefix == model + ".001"
        np.testing.assert_array_equal(store.restore(info).params["l/W"], np.full(64, 1.0))
        with pytest.raises(CheckpointError, match=r"net\.002"):
            store.restore(model + ".002")
    assert f"skipping damaged checkpoint {model}.002" in caplog.text
    assert any(__import__("re").search(reason, r.getMessage()) for r in caplog.records), caplog.text


def test_all_damaged_is_an_error_not_a_fresh_start(tmp_path):
    model = str(tmp_path / "net")
    _two_checkpoints(model)
    _flip_bit(model + ".001.data-00000-of-00001")
    _truncate(model + ".002.index")
    with CheckpointStore(model) as store:
        with pytest.raises(CheckpointError, match=r"none is good.*net\.002.*net\.001"):
            store.latest_good()


def _disk_full_on(suffix):
    real = _atomic._write_bytes

    def write(path, data):
        if path.endswith(suffix):
            with open(path, "wb") as f:  # a partial write, then the error
                f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(path, data)

    return write


@pytest.mark.parametrize("suffix", [".state.json", ".commit.json"])
def test_disk_full_during_a_save_keeps_the_previous_and_raises(tmp_path, monkeypatch, suffix):
    model = str(tmp_path / "net")
    with CheckpointStore(model) as store:
        store.save(1, 0, {"l/W": np.full(8, 1.0)})
        monkeypatch.setattr(_atomic, "_write_bytes", _disk_full_on(suffix))
        with pytest.raises(CheckpointError, match=r"net\.002.*No space left") as exc:
            store.save(2, 0, {"l/W": np.full(8, 2.0)})
        cause = exc.value.__cause__
        assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
        monkeypatch.undo()
        assert store.latest_good().prefix == model + ".001"
        assert [i.epoch for i in store.list()] == [1]
    assert not [n for n in os.listdir(tmp_path) if n.startswith("net.002")]


def test_background_write_error_surfaces_at_the_next_save_and_at_close(tmp_path, monkeypatch):
    model = str(tmp_path / "net")
    store = CheckpointStore(model)
    store.save(1, 0, {"l/W": np.full(8, 1.0)})
    monkeypatch.setattr(_atomic, "_write_bytes", _disk_full_on(".state.json"))
    store.save_async(2, 0, {"l/W": np.full(8, 2.0)})
    with pytest.raises(CheckpointError, match=r"background save of .*net\.002 failed.*No space left"):
        store.save_async(3, 0, {"l/W": np.full(8, 3.0)})  # the previous error first; this save does not start
    store.save_async(3, 0, {"l/W": np.full(8, 3.0)})
    with pytest.raises(CheckpointError, match=r"net\.003 failed"):
        store.close()
    monkeypatch.undo()
    with CheckpointStore(model) as again:
        assert again.latest_good().prefix == model + ".001"


def test_disk_full_while_the_bundle_is_written_keeps_the_previous(tmp_path, monkeypatch):
    from transition.store import _store

    model = str(tmp_path / "net")
    real = _store.write_bundle

    def full(prefix, arrays):
        real(prefix, arrays)  # the temporaries exist: the error comes late, as on a full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), prefix + ".data-00000-of-00001")

    with CheckpointStore(model) as store:
        store.save(1, 0, {"l/W": np.full(8, 1.0)})
        monkeypatch.setattr(_store, "write_bundle", full)
        with pytest.raises(CheckpointError, match=r"saving checkpoint .*net\.002 failed.*No space left"):
            store.save(2, 0, {"l/W": np.full(8, 2.0)})
        monkeypatch.undo()
        assert [i.prefix for i in store.list()] == [model + ".001"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith("net.002")]


def test_a_background_error_nobody_collected_is_reported_at_exit(capsys, caplog):
    import weakref

    from transition.store._writer import BackgroundWriter, _report_at_exit

    writer = BackgroundWriter()

    def fail():
        raise OSError(errno.EIO, "I/O error")

    writer.submit(fail, "/exp/net.007")
    with caplog.at_level(logging.ERROR, logger="transition"):
        _report_at_exit(weakref.ref(writer))  # what atexit runs
    err = capsys.readouterr().err
    assert "background save of /exp/net.007 failed: OSError" in err and "/exp/net.007" in caplog.text
    writer.close()  # the error was handed out once: closing now raises nothing
