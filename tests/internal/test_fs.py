"""internal._fs: one file API for local paths (os, no TensorFlow) and URLs (tf.io.gfile)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from transition.internal import _fs


@pytest.fixture(params=["local", "ram"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path)
    pytest.importorskip("tensorflow")
    return f"ram://fs-test-{uuid.uuid4().hex}"


def test_files_round_trip_on_local_and_ram(root):
    d = f"{root}/a/b"
    assert not _fs.exists(d) and not _fs.isdir(d)
    _fs.makedirs(d)
    assert _fs.isdir(d) and not _fs.isfile(d)
    with _fs.open_binary(f"{d}/x.tmp", "wb") as f:
        f.write(b"0123456789")
    _fs.rename(f"{d}/x.tmp", f"{d}/x")
    assert _fs.listdir(d) == ["x"] and _fs.isfile(f"{d}/x") and _fs.size(f"{d}/x") == 10
    assert _fs.read_bytes(f"{d}/x", 4) == b"01234"  # limit + 1: the caller sees that the file is larger
    assert _fs.remove(f"{d}/x") and not _fs.remove(f"{d}/x")
    with pytest.raises(FileNotFoundError):
        _fs.size(f"{d}/x")
    with pytest.raises(FileNotFoundError):
        _fs.listdir(f"{root}/missing")


def test_local_paths_do_not_import_tensorflow(tmp_path):
    code = ("import sys; from transition.internal import _fs; "
            f"_fs.makedirs({str(tmp_path / 'd')!r}); _fs.listdir({str(tmp_path)!r}); _fs.exists('x'); "
            "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _fs.is_local("/a/b") and _fs.is_local("file:///a") and not _fs.is_local("gs://b/a")
