"""The command line on a hostile or broken model directory: one clear line naming the path, exit status 1, no
traceback; `status` never blocks and shows damaged checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from tests.training.test_manager import CLI_CONFIG
from transition.cli._main import main
from transition.store import _atomic

_LIMITED = os.path.join(os.path.dirname(__file__), "limited.py")


def _run(args, *, read_only=(), fsize=-1):
    for d in read_only:
        os.chmod(d, 0o555)
    try:
        proc = subprocess.run([sys.executable, _LIMITED, "1" if read_only else "0", str(fsize), *args],
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    finally:
        for d in read_only:
            os.chmod(d, 0o755)
    if proc.returncode == 97:
        pytest.skip("cannot make a directory read-only for this user")
    return proc


def _one_error_line(proc, *needles):
    errors = [line for line in proc.stderr.splitlines() if line.startswith("transition ")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "c.config"
    path.write_text(CLI_CONFIG)
    return str(path)


def test_read_only_model_directory_is_one_line(tmp_path, config):
    run = tmp_path / "run"
    run.mkdir()
    proc = _run(["train", config, f"--model={run / 'net'}", "--num_epochs=1"], read_only=[str(run)])
    _one_error_line(proc, f"{run / 'net'}.lock", "cannot be written")


def test_full_disk_is_one_line(tmp_path, config):
    """Writes beyond 300 bytes fail (EFBIG, as ENOSPC on a full disk): the lock fits, the checkpoint does not.
    (A lock that does not fit: `test_full_disk_writing_the_lock_is_one_line` in tests/store.)"""
    model = tmp_path / "run" / "net"
    proc = _run(["train", config, f"--model={model}", "--num_epochs=1"], fsize=300)
    line = _one_error_line(proc, f"{model}.001", "File too large")
    assert "{{function_node" not in line
    assert not [f for f in os.listdir(model.parent) if ".tmp-" in f]  # the failed save left nothing behind


def test_status_shows_damage_and_never_blocks(tmp_path, config, capsys):
    model = tmp_path / "run" / "net"
    assert main(["train", config, f"--model={model}", "--num_epochs=2"]) == 0
    capsys.readouterr()
    state = json.loads((tmp_path / "run" / "net.002.state.json").read_bytes())
    state["callbacks"] = [1]
    data = json.dumps(state).encode()
    (tmp_path / "run" / "net.002.state.json").write_bytes(data)
    commit = json.loads((tmp_path / "run" / "net.002.commit.json").read_bytes())
    commit["files"][".state.json"] = _atomic.file_record(data)
    (tmp_path / "run" / "net.002.commit.json").write_text(json.dumps(commit))
    os.mkfifo(f"{model}.003.commit.json")
    os.mkfifo(f"{model}.003.index")
    done: dict = {}
    thread = threading.Thread(target=lambda: done.setdefault("code", main(["status", str(model)])), daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "status blocked on a FIFO"
    out = capsys.readouterr().out
    assert done["code"] == 0 and "resume would use (*): " + f"{model}.001" in out, out
    (row_2,) = [line for line in out.splitlines() if " net.002 " in line]
    (row_3,) = [line for line in out.splitlines() if " net.003 " in line]
    assert "DAMAGED: net.002.state.json: field 'callbacks' must be an object" in row_2, out
    assert "FIFO (named pipe), not a regular file" in row_3, out
