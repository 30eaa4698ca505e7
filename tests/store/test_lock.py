"""DirectoryLock: a second holder is refused with the holder's pid; a killed holder does not leave it stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from transition.errors import CheckpointError
from transition.store._lock import DirectoryLock

_HOLDER = """
import sys, time
from transition.store._lock import DirectoryLock
lock = DirectoryLock(sys.argv[1]); lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_second_holder_is_refused_naming_the_pid(tmp_path):
    model = str(tmp_path / "net")
    with DirectoryLock(model):
        holder = rf"in use by another process \(pid {os.getpid()} on host .*net\.lock"
        with pytest.raises(CheckpointError, match=holder):
            DirectoryLock(model).acquire()
    with DirectoryLock(model) as again:  # released: free again
        assert again.held


def test_killed_holder_does_not_leave_the_lock_stuck(tmp_path):
    model = str(tmp_path / "sub" / "net")
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, model], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match=f"pid {proc.pid} "):
            DirectoryLock(model).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with DirectoryLock(model) as lock:
        assert lock.held


def test_store_refuses_a_second_store_on_one_model(tmp_path):
    from transition.store._store import CheckpointStore

    model = str(tmp_path / "net")
    with CheckpointStore(model):
        with pytest.raises(CheckpointError, match=f"pid {os.getpid()}"):
            CheckpointStore(model)
    CheckpointStore(model).close()


def test_remote_paths_cannot_be_locked():
    with pytest.raises(CheckpointError, match="gs://bucket/net.*local file system"):
        DirectoryLock("gs://bucket/net")
