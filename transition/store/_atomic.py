"""The commit protocol of a checkpoint prefix (see docs/ARCHITECTURE.md, "On-disk naming").

A save at `prefix`: create `{prefix}.pending`, drop any old `{prefix}.commit.json`, write each file under a temporary
name `{prefix}.tmp-<hex>...`, fsync it, rename it into place, then write `{prefix}.commit.json` (format version, every
file's size and crc32c) atomically (temp + fsync + rename + fsync of the directory) and remove `.pending`. Commit
files of format version 1 (zlib.crc32 checksums) are still read and verified.
The commit file decides: a prefix without one is not committed, also on file systems whose rename is not atomic.
File names come from `checkpoint._naming`; all paths go through `internal._fs` (local paths through `os`, gs://, ram://,
... through `tf.io.gfile`); fsync is done where the path is local.
"""

from __future__ import annotations

import json
import os
import signal
import time
import zlib
from collections.abc import Mapping
from typing import Any

import attrs

from transition.checkpoint._bundle_table import crc32c
from transition.checkpoint._naming import (
    COMMIT_SUFFIX,
    PENDING_SUFFIX,
    CommitState,
    commit_coverage_problem,
    commit_state,
    is_checkpoint_file_suffix,
    is_temp_rest,
    parse_name,
    temp_prefix,
)
from transition.errors import CheckpointError
from transition.internal import _fs, _jsonsafe

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FileRecord",
    "CommitInfo",
    "PendingSave",
    "read_commit",
    "verify",
    "file_crc32",
    "file_record",
    "delete_checkpoint",
    "cleanup_leftovers",
    "has_commit",
]

FORMAT = "transition-checkpoint"
FORMAT_VERSION = 2
# the checksum of every file in a commit file, by format version: its key and function (crc, data) -> crc
CHECKSUMS = {1: ("crc32", zlib.crc32), 2: ("crc32c", crc32c)}
MAX_COMMIT_BYTES = 1 << 20  # a commit file is a few hundred bytes; a bigger one is not ours
_CHUNK = 4 << 20  # bytes read (and hashed) at a time by `file_crc32`
_KILL_ENV = "TRANSITION_TEST_KILL_AT"
# False only in bench/save.py, to compare with writers that do not fsync (tf.train.Checkpoint.write); never in use
DURABLE = True


def fault_point(name: str, prefix: str = "") -> None:
    """Test hook: SIGKILL this process here when the env var TRANSITION_TEST_KILL_AT is `name`, or `name:end`
    and the checkpoint `prefix` ends with `end` (e.g. "committed:net.003.step00000008")."""
    spec = os.environ.get(_KILL_ENV)
    if spec is None:
        return
    wanted, _, end = spec.partition(":")
    if wanted == name and (not end or prefix.endswith(end)):
        os.kill(os.getpid(), signal.SIGKILL)


def _split(prefix: str) -> tuple[str, str]:
    directory, base = os.path.split(prefix)
    return directory or ".", base


def _fsync(path: str, *, directory: bool = False) -> None:
    if not _fs.is_local(path) or not DURABLE:
        return  # remote file systems make a closed file durable themselves
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(_fs.local_path(path), flags)
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise  # some file systems cannot fsync a directory; a file must be synced
    finally:
        os.close(fd)


def _wrap(prefix: str, what: str, exc: BaseException) -> CheckpointError:
    return CheckpointError(f"checkpoint {prefix}: {what} failed: {exc}")


@attrs.frozen
class FileRecord:
    """A file of a checkpoint: its size and checksum (crc32c; zlib.crc32 in commit files of format version 1)."""

    size: int
    crc: int


@attrs.frozen
class CommitInfo:
    """A validated `{prefix}.commit.json`: files (suffix -> size, checksum) and the caller's metadata."""

    prefix: str
    files: Mapping[str, FileRecord]
    meta: Mapping[str, Any]
    version: int = FORMAT_VERSION

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())


def _record_json(record: FileRecord) -> dict[str, int]:
    return {"size": record.size, CHECKSUMS[FORMAT_VERSION][0]: record.crc}


def file_record(data: bytes) -> dict[str, int]:
    """The record a commit file (of `FORMAT_VERSION`) holds for a file of these bytes: its size and checksum."""
    return _record_json(FileRecord(size=len(data), crc=CHECKSUMS[FORMAT_VERSION][1](data, 0)))


def file_crc32(path: str, *, within: str | None = None, version: int = FORMAT_VERSION) -> tuple[int, int]:
    """(checksum, size) of the (regular) file at `path`, read in chunks: its crc32c (zlib.crc32 for a commit file
    of format version 1)."""
    update = CHECKSUMS[version][1]
    crc, size = 0, 0
    with _fs.open_random(path, within=within) as f:
        buf = bytearray(min(_CHUNK, f.size))
        view = memoryview(buf)
        while size < f.size:
            n = min(len(buf), f.size - size)
            f.read_into(view[:n], size)
            crc = update(view[:n], crc)
            size += n
    return crc, size


def _write_bytes(path: str, data: bytes) -> None:
    """Write `data` to `path` and fsync it (the single place file bytes are written; tests monkeypatch it)."""
    with _fs.open_binary(path, "wb") as f:
        f.write(data)
    _fsync(path)


def has_commit(prefix: str) -> bool:
    """Whether the checkpoint at `prefix` is committed (`_naming.commit_state`)."""
    return commit_state(prefix) is CommitState.COMMITTED


def _files_of(prefix: str, names: list[str] | None = None) -> list[str]:
    """The names (in the directory of `prefix`) of its bundle / state files and its temporaries."""
    directory, base = _split(prefix)
    if names is None:
        names = _fs.listdir(directory)
    out = []
    for name in names:
        if not name.startswith(base + "."):
            continue
        rest = name[len(base) :]
        if is_checkpoint_file_suffix(rest) or (rest.startswith(".tmp-") and is_temp_rest(rest)):
            out.append(name)
    return out


class PendingSave:
    """One save at `prefix`: `begin()`, then `write_bytes` / `place` per file, then `commit(meta)`; `abort()` on error.

    Used as a context manager it begins on enter and aborts (removes the partial files) when the block raises.
    """

    def __init__(self, prefix: str, *, overwrite: bool = False):
        self.prefix = prefix
        self.overwrite = overwrite
        self.temp_prefix = temp_prefix(prefix)
        self._files: dict[str, FileRecord] = {}
        self._directory = _split(prefix)[0]

    def __enter__(self) -> PendingSave:
        self.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def begin(self) -> None:
        if has_commit(self.prefix) and not self.overwrite:
            raise CheckpointError(
                f"checkpoint {self.prefix} already exists and is committed; delete it or save under another epoch/step"
            )
        try:
            if not _fs.isdir(self._directory):
                _fs.makedirs(self._directory)
            _write_bytes(self.prefix + PENDING_SUFFIX, json.dumps({"pid": os.getpid(), "time": time.time()}).encode())
            _fsync(self._directory, directory=True)
            fault_point("pending_created", self.prefix)
            removed = _fs.remove(self.prefix + COMMIT_SUFFIX)
            for name in _files_of(self.prefix):
                removed = _fs.remove(os.path.join(self._directory, name)) or removed
            if removed:  # a new prefix (the usual case) has nothing to remove: no second directory fsync
                _fsync(self._directory, directory=True)
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - OSError, tf.errors.OpError
            raise _wrap(self.prefix, "starting the save", exc) from exc

    def place(self, temp_path: str, suffix: str, *, crc32c: int | None = None, size: int | None = None,
              synced: bool = False) -> None:
        """fsync `temp_path` (unless `synced`), rename it to `{prefix}{suffix}` and record its size and checksum.

        `crc32c`/`size` may come from memory (no re-read); when the file's size differs, the file is hashed instead.
        """
        crc = crc32c
        if not is_checkpoint_file_suffix(suffix):
            raise CheckpointError(f"checkpoint {self.prefix}: {suffix!r} is not a checkpoint file suffix")
        try:
            if not synced:
                _fsync(temp_path)
            actual = _fs.size(temp_path)
            if crc is None or size != actual:
                crc, actual = file_crc32(temp_path)
            _fs.rename(temp_path, self.prefix + suffix)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(self.prefix, f"placing {self.prefix}{suffix}", exc) from exc
        self._files[suffix] = FileRecord(size=int(actual), crc=int(crc))

    def write_bytes(self, suffix: str, data: bytes) -> None:
        """Write a small file `{prefix}{suffix}` via a temporary."""
        temp = self.temp_prefix + suffix
        try:
            _write_bytes(temp, data)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(self.prefix, f"writing {self.prefix}{suffix}", exc) from exc
        self.place(temp, suffix, crc32c=crc32c(data), size=len(data), synced=True)

    def commit(self, meta: Mapping[str, Any]) -> CommitInfo:
        """Write the commit file atomically and remove `.pending`; the checkpoint is committed from here on."""
        record = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "files": {s: _record_json(r) for s, r in sorted(self._files.items())},
            "meta": dict(meta),
        }
        data = json.dumps(record, indent=1, sort_keys=True, allow_nan=False).encode()
        temp = self.temp_prefix + COMMIT_SUFFIX
        try:
            _fsync(self._directory, directory=True)  # the renamed files first
            fault_point("before_commit", self.prefix)
            _write_bytes(temp, data)
            _fs.rename(temp, self.prefix + COMMIT_SUFFIX)
            _fsync(self._directory, directory=True)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(self.prefix, "writing the commit file", exc) from exc
        fault_point("committed", self.prefix)
        _fs.remove(self.prefix + PENDING_SUFFIX)
        return CommitInfo(prefix=self.prefix, files=dict(self._files), meta=dict(meta))

    def abort(self) -> None:
        """Best effort: remove what this save wrote; what is left is cleaned by `cleanup_leftovers`."""
        try:
            if not has_commit(self.prefix):
                for name in _files_of(self.prefix):
                    _fs.remove(os.path.join(self._directory, name))
                _fs.remove(self.prefix + PENDING_SUFFIX)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass


def _bad(prefix: str, why: str) -> CheckpointError:
    return CheckpointError(f"commit file {prefix}{COMMIT_SUFFIX} is damaged or not ours: {why}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_commit(prefix: str) -> CommitInfo:
    """Read and validate `{prefix}.commit.json` (does not check the files; see `verify`). It must be a regular
    file in the checkpoint's directory (not a symlink out of it), strict JSON (no duplicate keys)."""
    path = prefix + COMMIT_SUFFIX
    try:
        length = _fs.regular_size(path, within=_split(prefix)[0])
        if length > MAX_COMMIT_BYTES:
            raise _bad(prefix, f"{length} bytes, more than the {MAX_COMMIT_BYTES} a commit file can have")
        raw = _fs.read_bytes(path, MAX_COMMIT_BYTES, within=_split(prefix)[0])
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {prefix} is not committed: cannot read {path}: {exc}") from exc
    obj = _jsonsafe.loads(raw, f"commit file {path}", CheckpointError)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise _bad(prefix, f"no 'format': {FORMAT!r}")
    version = obj.get("version")
    if not _is_int(version) or version < 1:
        raise _bad(prefix, f"bad 'version' {version!r:.50}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {prefix} has format version {version}; this transition reads up to {FORMAT_VERSION}: "
            "upgrade transition"
        )
    files, meta = obj.get("files"), obj.get("meta")
    if not isinstance(files, dict) or not files or not isinstance(meta, dict):
        raise _bad(prefix, "'files' must be a non-empty object and 'meta' an object")
    records = {}
    key = CHECKSUMS[version][0]
    for suffix, rec in files.items():
        if not is_checkpoint_file_suffix(suffix):
            raise _bad(prefix, f"file {suffix!r:.100} is not a checkpoint file suffix (like '.index')")
        if not isinstance(rec, dict) or set(rec) != {"size", key} or not _is_int(rec["size"]) \
                or not _is_int(rec[key]):
            raise _bad(prefix, f"file {suffix!r}: expected {{'size': int, {key!r}: int}}, got {rec!r:.100}")
        if not (0 <= rec["size"] < 1 << 50 and 0 <= rec[key] < 1 << 32):
            raise _bad(prefix, f"file {suffix!r}: size {rec['size']} or {key} {rec[key]} out of range")
        records[suffix] = FileRecord(size=rec["size"], crc=rec[key])
    return CommitInfo(prefix=prefix, files=records, meta=meta, version=version)


def _present_suffixes(prefix: str) -> set[str]:
    """The checkpoint file suffixes (index, data shards, state) of the files at `prefix`."""
    directory, base = _split(prefix)
    try:
        names = _fs.listdir(directory)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {prefix}: cannot list {directory}: {exc}") from exc
    return {n[len(base) :] for n in names if n.startswith(base + ".") and is_checkpoint_file_suffix(n[len(base) :])}


def verify(prefix: str, *, checksums: bool = True) -> CommitInfo:
    """Check the commit file, that it covers the checkpoint (`_naming.commit_coverage_problem`), and every file's
    size (and checksum); raises CheckpointError naming what is wrong. Every file must be a regular file inside the
    checkpoint's directory (a symlink out of it, a FIFO or a device is damage)."""
    info = read_commit(prefix)
    problem = commit_coverage_problem(set(info.files), _present_suffixes(prefix))
    if problem is not None:
        raise CheckpointError(f"checkpoint {prefix} is damaged: {problem}")
    directory = _split(prefix)[0]
    for suffix, rec in sorted(info.files.items()):
        path = prefix + suffix
        try:
            length = _fs.regular_size(path, within=directory)
        except FileNotFoundError as exc:
            raise CheckpointError(f"checkpoint {prefix} is damaged: file {path} is missing ({exc})") from exc
        except Exception as exc:  # noqa: BLE001 - NotRegularFile, OutsideDirectory, NotFoundError
            raise CheckpointError(f"checkpoint {prefix} is damaged: {exc}") from exc
        if length != rec.size:
            raise CheckpointError(
                f"checkpoint {prefix} is damaged: {path} has {length} bytes, the commit file says {rec.size}"
            )
        if checksums:
            try:
                crc, _ = file_crc32(path, within=directory, version=info.version)
            except Exception as exc:  # noqa: BLE001 - changed since the size check
                raise CheckpointError(f"checkpoint {prefix} is damaged: cannot read {path}: {exc}") from exc
            if crc != rec.crc:
                raise CheckpointError(
                    f"checkpoint {prefix} is damaged: checksum of {path} is {crc:#010x}, "
                    f"the commit file says {rec.crc:#010x}"
                )
    return info


def delete_checkpoint(prefix: str) -> None:
    """Delete a checkpoint so that a crash at any point leaves it either committed or cleanable (`.pending` first)."""
    directory, _ = _split(prefix)
    try:
        _write_bytes(prefix + PENDING_SUFFIX, b'{"deleting": true}')
        fault_point("deleting", prefix)
        _fs.remove(prefix + COMMIT_SUFFIX)
        _fsync(directory, directory=True)
        for name in _files_of(prefix):
            _fs.remove(os.path.join(directory, name))
        _fs.remove(prefix + PENDING_SUFFIX)
    except Exception as exc:  # noqa: BLE001
        raise _wrap(prefix, "deleting", exc) from exc


def cleanup_leftovers(model: str) -> list[str]:
    """Remove temporaries and uncommitted (`.pending` without commit file) prefixes of `model` left by a crash.

    Only call it while holding the model's lock: another live process may be saving. Returns the removed paths.
    """
    directory, base = _split(model)
    if not _fs.isdir(directory):
        return []
    try:
        names = _fs.listdir(directory)
    except Exception as exc:  # noqa: BLE001 - PermissionError, ...
        raise CheckpointError(f"cannot list the model directory {directory} of {model}: {exc}") from exc
    removed = []
    for name in names:
        if name.startswith(base + ".") and is_temp_rest(name[len(base) :]):
            if _fs.remove(os.path.join(directory, name)):
                removed.append(os.path.join(directory, name))
    for name in names:
        parsed = parse_name(base, name)
        if parsed is None or parsed.suffix != PENDING_SUFFIX:
            continue
        prefix = os.path.join(directory, parsed.prefix_name(base))
        if not has_commit(prefix):
            for other in _files_of(prefix, names):
                path = os.path.join(directory, other)
                if path not in removed and _fs.remove(path):
                    removed.append(path)
        if _fs.remove(prefix + PENDING_SUFFIX):
            removed.append(prefix + PENDING_SUFFIX)
    return removed
