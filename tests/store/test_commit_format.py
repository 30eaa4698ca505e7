"""Commit files: format 2 records crc32c per file; format 1 (zlib.crc32) checkpoints are still verified and restored;
a record whose checksum key does not fit its version is damage. Also: writing a file never truncates a new one."""

from __future__ import annotations

import json
import os
import zlib

import google_crc32c
import numpy as np
import pytest

from tests.helpers import store_model
from transition.errors import CheckpointError
from transition.internal import _fs
from transition.store import _atomic
from transition.store._store import CheckpointStore

pytest.importorskip("tensorflow")


def _saved(tmp_path) -> tuple[str, str]:
    model = store_model(tmp_path)
    with CheckpointStore(model) as store:
        info = store.save(1, 0, {"l/W": np.arange(12, dtype=np.float32).reshape(3, 4)})
    return model, info.prefix


def _as_version_1(prefix: str) -> None:
    """Rewrite the commit file as transition's format 1 wrote it: zlib.crc32 of every file under "crc32"."""
    path = prefix + ".commit.json"
    commit = json.loads(open(path, "rb").read())
    commit["version"] = 1
    commit["files"] = {suffix: {"size": rec["size"], "crc32": zlib.crc32(open(prefix + suffix, "rb").read())}
                       for suffix, rec in commit["files"].items()}
    with open(path, "w") as f:
        json.dump(commit, f)


def test_format_2_records_the_crc32c_of_every_file(tmp_path):
    _, prefix = _saved(tmp_path)
    commit = json.loads(open(prefix + ".commit.json", "rb").read())
    assert commit["version"] == 2
    for suffix, rec in commit["files"].items():
        data = open(prefix + suffix, "rb").read()
        assert rec == {"size": len(data), "crc32c": google_crc32c.value(data)} == _atomic.file_record(data)


def test_a_format_1_checkpoint_verifies_and_restores(tmp_path):
    model, prefix = _saved(tmp_path)
    _as_version_1(prefix)
    assert _atomic.verify(prefix).version == 1
    with CheckpointStore(model) as store:
        assert store.latest_good().prefix == prefix
        np.testing.assert_array_equal(store.restore(prefix).params["l/W"], np.arange(12).reshape(3, 4))


def test_damage_in_a_format_1_checkpoint_is_found_by_its_zlib_crc32(tmp_path):
    _, prefix = _saved(tmp_path)
    _as_version_1(prefix)
    data = bytearray(open(prefix + ".data-00000-of-00001", "rb").read())
    data[5] ^= 1
    open(prefix + ".data-00000-of-00001", "wb").write(bytes(data))
    with pytest.raises(CheckpointError, match=r"damaged: checksum of .*\.data-00000-of-00001 is 0x[0-9a-f]{8}, the "
                                              r"commit file says"):
        _atomic.verify(prefix)


@pytest.mark.parametrize("version, key", [(2, "crc32"), (1, "crc32c")])
def test_a_checksum_key_of_the_other_version_is_damage(tmp_path, version, key):
    _, prefix = _saved(tmp_path)
    path = prefix + ".commit.json"
    commit = json.loads(open(path, "rb").read())
    commit["version"] = version
    commit["files"] = {suffix: {"size": 1, key: 0} for suffix in commit["files"]}
    open(path, "w").write(json.dumps(commit))
    expected = "crc32c" if key == "crc32" else "crc32"
    with pytest.raises(CheckpointError, match=rf"file '\.[a-z0-9.-]+': expected {{'size': int, '{expected}': int}}"):
        _atomic.read_commit(prefix)


def test_writing_truncates_an_old_file_but_not_a_new_one(tmp_path, monkeypatch):
    truncated = []
    real = os.ftruncate
    monkeypatch.setattr(os, "ftruncate", lambda fd, n: (truncated.append(n), real(fd, n))[1])
    path = str(tmp_path / "f")
    with _fs.open_binary(path, "wb") as f:
        f.write(b"a long first content")
    assert truncated == []  # ext4 writes a file truncated to 0 back on close: not for a new file
    with _fs.open_binary(path, "wb") as f:
        f.write(b"short")
    assert truncated == [0] and open(path, "rb").read() == b"short"
