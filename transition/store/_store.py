"""`CheckpointStore`: the sequence of checkpoints of one model (save, list, latest good, restore, keep policy).

Each checkpoint is a TF bundle (`layer/param`, `optimizer/...`, `state/...`) plus `{prefix}.state.json`, committed
by `_atomic.PendingSave`; names follow docs/ARCHITECTURE.md ("On-disk naming"). The store holds the model's lock
(`_lock.DirectoryLock`) and cleans what a crashed save left behind when it opens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from transition.checkpoint._bundle_reader import TFBundleReader
from transition.checkpoint._bundle_writer import write_bundle
from transition.checkpoint._naming import (
    GLOBAL_STEP_TENSOR,
    INDEX_SUFFIX,
    SINGLE_DATA_SUFFIX,
    STATE_SUFFIX,
    checkpoint_prefix,
)
from transition.errors import CheckpointError, ConfigError, did_you_mean
from transition.internal import _jsonsafe
from transition.store import _atomic
from transition.store._host_buffers import HostBufferPool
from transition.store._info import CheckpointInfo, RestoredCheckpoint, info_from_commit
from transition.store._keep import KeepPolicy
from transition.store._listing import list_checkpoints
from transition.store._lock import DirectoryLock, is_lockable
from transition.store._resume import ResumeScan, scan_for_resume
from transition.store._state import (
    STATE_ARRAY_PREFIX,
    TrainingState,
    dumps_state,
    read_state_json,
)
from transition.store._writer import BackgroundWriter

__all__ = ["CheckpointStore", "OPTIMIZER_PREFIX", "STATE_PREFIX"]

log = logging.getLogger("transition")

OPTIMIZER_PREFIX = "optimizer/"
STATE_PREFIX = STATE_ARRAY_PREFIX


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _snapshot(value: Any, pool: HostBufferPool, pooled: list[np.ndarray], *, copy: bool) -> Any:
    """The value for the bundle writer: for background saves (`copy`) one host copy (into a pooled buffer);
    otherwise numpy as is and variables read as tensors.

    TF / Keras variables are read as a tensor first (on CPU that shares the variable's current buffer; TF copies on
    the next write to the variable), so a synchronous save of variables copies nothing, a background one once.
    """
    if not isinstance(value, np.ndarray):
        if hasattr(value, "dtype") and hasattr(value, "shape"):
            import tensorflow as tf

            value = tf.convert_to_tensor(value)
        else:
            value = np.asarray(value)
    if copy:
        value = pool.copy(value)
        pooled.append(value)
    return value


def _check_scores(scores: Any) -> dict[str, float]:
    if scores is None:
        return {}
    if not isinstance(scores, Mapping):
        raise ConfigError(f"scores must be a mapping {{name: number}}, got {type(scores).__name__}")
    out = {}
    for name, value in scores.items():
        if not isinstance(name, str) or not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
            raise ConfigError(f"score {name!r}: expected a str name and a number, got {value!r}")
        out[name] = float(value)
    return out


class CheckpointStore:
    """The checkpoints of `model` (a path prefix like RETURNN's `model` option, e.g. `/exp/net-model/network`).

    Opening a store locks the model (`lock=None`: when the path is local; remote paths run unlocked with a warning)
    and removes what an interrupted save left. Use as a context manager, or call `close()`: it waits for a background save and raises its error.
    """

    def __init__(
        self,
        model: str,
        *,
        keep: KeepPolicy | None = None,
        lock: bool | None = None,
        cleanup: bool = True,
    ):
        if not isinstance(model, str) or not model or model.endswith("/"):
            raise ConfigError(f"model must be a path prefix like '/exp/net-model/network', got {model!r}")
        self.model = model
        self.keep = keep if keep is not None else KeepPolicy()
        self._lock: DirectoryLock | None = None
        self._mutex = threading.Lock()  # writer thread vs. list()/restore() in the caller's thread
        if lock is None:
            lock = is_lockable(model)
            if not lock:
                log.warning("model %s is not on a local file system: no lock; make sure one job writes it", model)
        if lock:
            self._lock = DirectoryLock(model)
            self._lock.acquire()
        if cleanup:
            try:
                for path in _atomic.cleanup_leftovers(model):
                    log.info("removed leftover of an interrupted save: %s", path)
            except BaseException:
                if self._lock is not None:
                    self._lock.release()
                raise
        self._writer = BackgroundWriter()
        self._pool = HostBufferPool()

    # --- lifecycle ---
    def close(self) -> None:
        """Wait for a background save (raising its error), then release the lock."""
        try:
            self._writer.close()
        finally:
            self._pool.clear()
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # do not hide the original error; still report a failed background save
            try:
                self.close()
            except CheckpointError as err:
                log.error("%s", err)

    # --- saving ---
    def save(self, epoch: int, step_in_epoch: int, params: Mapping[str, Any],
             optimizer_vars: Mapping[str, Any] | None = None, state_json: Mapping[str, Any] | None = None,
             state_arrays: Mapping[str, Any] | None = None, *,
             epoch_finished: bool = True, scores: Mapping[str, float] | None = None, global_step: int | None = None,
             state: TrainingState | None = None, overwrite: bool = False) -> CheckpointInfo:
        """Save and commit a checkpoint now; returns its info. Raises the error of an earlier background save first.

        `state` (a TrainingState) may be given instead of `state_json`/`state_arrays`. Without either, a minimal
        TrainingState (epoch, step) is written. `overwrite`: replace a good checkpoint of the same name.
        """
        self._writer.wait()
        job = self._prepare(epoch, step_in_epoch, params, optimizer_vars, state_json, state_arrays, epoch_finished,
                            scores, global_step, state, overwrite, copy=False)
        return self._write(job)

    def save_async(self, epoch: int, step_in_epoch: int, params: Mapping[str, Any],
                   optimizer_vars: Mapping[str, Any] | None = None, state_json: Mapping[str, Any] | None = None,
                   state_arrays: Mapping[str, Any] | None = None, *, epoch_finished: bool = True,
                   scores: Mapping[str, float] | None = None, global_step: int | None = None,
                   state: TrainingState | None = None, overwrite: bool = False) -> None:
        """Copy the values to host memory and return; a background thread writes and commits.

        Waits for a previous background save first and raises its error (also raised by `wait()` / `close()`).
        """
        self._writer.wait()
        job = self._prepare(epoch, step_in_epoch, params, optimizer_vars, state_json, state_arrays, epoch_finished,
                            scores, global_step, state, overwrite, copy=True)
        self._writer.submit(lambda: self._write(job), job["prefix"])

    def wait(self) -> None:
        """Wait for a background save; raises CheckpointError if it failed."""
        self._writer.wait()

    def _prepare(self, epoch, step_in_epoch, params, optimizer_vars, state_json, state_arrays, epoch_finished, scores,
                 global_step, state, overwrite, *, copy: bool) -> dict[str, Any]:
        if not _is_int(epoch) or epoch < 0 or not _is_int(step_in_epoch) or step_in_epoch < 0:
            raise ConfigError(f"epoch and step_in_epoch must be ints >= 0, got {epoch!r}, {step_in_epoch!r}")
        if not isinstance(epoch_finished, bool):
            raise ConfigError(f"epoch_finished must be a bool, got {epoch_finished!r}")
        scores = _check_scores(scores)
        if self.keep.keep_best and epoch_finished and scores and self.keep.score not in scores:
            raise ConfigError(f"the keep policy's score {self.keep.score!r} is not among the scores {sorted(scores)}"
                              f"{did_you_mean(self.keep.score, scores)}")
        state_bytes, state_arrays = self._state_parts(epoch, step_in_epoch, epoch_finished, global_step, state,
                                                      state_json, state_arrays)
        arrays: dict[str, Any] = {}
        pooled: list[np.ndarray] = []
        for name, value in params.items():
            if not isinstance(name, str) or not name or name.startswith((OPTIMIZER_PREFIX, STATE_PREFIX)) or (
                    name == GLOBAL_STEP_TENSOR):
                raise ConfigError(f"param name {name!r}: use 'layer/param' (not starting with "
                                  f"{OPTIMIZER_PREFIX!r} or {STATE_PREFIX!r}, nor {GLOBAL_STEP_TENSOR!r}, which are "
                                  "reserved)")
            arrays[name] = _snapshot(value, self._pool, pooled, copy=copy)
        arrays[GLOBAL_STEP_TENSOR] = np.asarray(int(global_step or 0), np.int64)  # RETURNN needs it to load
        for group, prefix in ((optimizer_vars, OPTIMIZER_PREFIX), (state_arrays, STATE_PREFIX)):
            for name, value in (group or {}).items():
                if not isinstance(name, str) or not name:
                    raise ConfigError(f"bad variable name {name!r} under {prefix!r}")
                arrays[prefix + name] = _snapshot(value, self._pool, pooled, copy=copy)
        meta = {"epoch": int(epoch), "step_in_epoch": int(step_in_epoch), "epoch_finished": epoch_finished,
                "scores": _jsonsafe.encode_floats(scores),  # nan / inf as {"$float": ...}
                "global_step": None if global_step is None else int(global_step)}
        prefix = checkpoint_prefix(self.model, int(epoch), int(step_in_epoch), epoch_finished=epoch_finished)
        return {"prefix": prefix, "arrays": arrays, "state": state_bytes, "meta": meta, "overwrite": overwrite,
                "pooled": pooled}

    @staticmethod
    def _state_parts(epoch, step_in_epoch, epoch_finished, global_step, state, state_json, state_arrays):
        if state is not None:
            if state_json is not None or state_arrays is not None:
                raise ConfigError("give either state=TrainingState or state_json/state_arrays, not both")
            if state.epoch != epoch or state.epoch_finished != epoch_finished:
                raise ConfigError(f"the TrainingState is for epoch {state.epoch} (finished={state.epoch_finished}), "
                                  f"the save for epoch {epoch} (finished={epoch_finished})")
            return dumps_state(state)
        if state_json is None:
            if state_arrays:
                raise ConfigError("state_arrays given without state_json")
            minimal = TrainingState(epoch=epoch, epoch_finished=epoch_finished, step_in_epoch=step_in_epoch,
                                    global_step=global_step or 0)
            return dumps_state(minimal)
        if not isinstance(state_json, Mapping):
            raise ConfigError(f"state_json must be a JSON object (a dict), got {type(state_json).__name__}")
        return _jsonsafe.dumps(dict(state_json)), dict(state_arrays or {})

    def _write(self, job: dict[str, Any]) -> CheckpointInfo:
        try:
            return self._write_locked(job)
        except (CheckpointError, ConfigError):
            raise
        except Exception as exc:  # noqa: BLE001 - OSError (disk full), tf.errors.OpError, ...
            raise CheckpointError(f"saving checkpoint {job['prefix']} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            job["arrays"] = None  # nothing refers to the pooled buffers once the bundle is written
            self._pool.release(job.pop("pooled"))

    def _write_locked(self, job: dict[str, Any]) -> CheckpointInfo:
        prefix, arrays = job["prefix"], job["arrays"]
        with self._mutex:
            overwrite = job["overwrite"]
            if _atomic.has_commit(prefix) and not overwrite:
                try:
                    _atomic.verify(prefix, checksums=False)
                except CheckpointError as exc:
                    log.warning("replacing damaged checkpoint %s (%s)", prefix, exc)
                    overwrite = True
            with _atomic.PendingSave(prefix, overwrite=overwrite) as pending:
                written = write_bundle(pending.temp_prefix, arrays)  # each file's crc32c from memory: no re-read
                _atomic.fault_point("bundle_written", prefix)
                pending.write_bytes(STATE_SUFFIX, job["state"])
                for suffix, crc, size in ((INDEX_SUFFIX, written.index_crc32c, written.index_size),
                                          (SINGLE_DATA_SUFFIX, written.data_crc32c, written.data_size)):
                    pending.place(pending.temp_prefix + suffix, suffix, crc32c=crc, size=size)
                _atomic.fault_point("state_written", prefix)
                meta = dict(job["meta"], created=time.time())
                commit = pending.commit(meta)
            info = info_from_commit(self.model, prefix, commit, verified=True)
            self._apply_keep_policy()
        return info

    def _apply_keep_policy(self) -> None:
        for info in self.keep.select_to_delete(list_checkpoints(self.model, checksums=False)):
            log.info("keep policy: deleting checkpoint %s", info.prefix)
            _atomic.delete_checkpoint(info.prefix)

    def delete_all(self) -> list[str]:
        """Delete every committed checkpoint of the model (good or damaged) and what interrupted saves left, after
        a background save; returns the prefixes deleted. Files of other tools under the model are left alone."""
        self._writer.wait()
        with self._mutex:
            infos = [info for info in list_checkpoints(self.model, checksums=False) if info.committed]
            for info in infos:
                _atomic.delete_checkpoint(info.prefix)
            _atomic.cleanup_leftovers(self.model)
        return [info.prefix for info in infos]

    # --- listing ---
    def list(self, *, checksums: bool = False) -> list[CheckpointInfo]:
        """All checkpoints of the model, oldest first. Sizes are always checked; checksums with `checksums=True`."""
        with self._mutex:
            return list_checkpoints(self.model, checksums=checksums)

    def scan_for_resume(self) -> ResumeScan:
        """The resume decision (see `_resume`): newest first, checksums verified until one is good; never raises for
        damage and logs nothing (`latest_good` does both). Waits for a background save that is under way."""
        with self._mutex:
            return scan_for_resume(self.model, list_checkpoints(self.model, checksums=False))

    def latest_good(self) -> CheckpointInfo | None:
        """The newest committed checkpoint whose checksums verify; damaged newer ones are skipped with a warning.

        None when the model has no checkpoints; CheckpointError when it has some but none is good. Waits for a
        background save that is under way.
        """
        scan = self.scan_for_resume()
        for info in scan.skipped:
            log.warning("skipping damaged checkpoint %s: %s", info.prefix, info.damaged)
        if scan.error is not None:
            raise scan.error
        return scan.good

    # --- restoring ---
    def restore(self, info: CheckpointInfo | str) -> RestoredCheckpoint:
        """Read a committed checkpoint (checksums verified unless `info` says they were just checked)."""
        if isinstance(info, str):
            prefix, checksums = info, True
        else:
            prefix, checksums = info.prefix, not info.verified
        commit = _atomic.verify(prefix, checksums=checksums)
        info_from_commit(self.model, prefix, commit, verified=checksums)  # checks the metadata
        if STATE_SUFFIX not in commit.files:
            raise CheckpointError(f"checkpoint {prefix} has no {STATE_SUFFIX}; it was not written by transition's "
                                  "store: load its params with transition.read_checkpoint instead")
        state_json = read_state_json(prefix)
        if not isinstance(state_json, dict):
            raise CheckpointError(f"{prefix}{STATE_SUFFIX} is not a JSON object; the file is damaged, use another "
                                  "checkpoint")
        params, optimizer, state_arrays = {}, {}, {}
        with TFBundleReader(prefix) as reader:
            values = reader.read_all()
        for name, value in values.items():
            if name == GLOBAL_STEP_TENSOR:
                continue  # also in the commit's meta
            if name.startswith(OPTIMIZER_PREFIX):
                optimizer[name[len(OPTIMIZER_PREFIX) :]] = value
            elif name.startswith(STATE_PREFIX):
                state_arrays[name[len(STATE_PREFIX) :]] = value
            else:
                params[name] = value
        return RestoredCheckpoint(params, optimizer, state_json, state_arrays)

    def restore_state(self, info: CheckpointInfo | str) -> TrainingState:
        """The TrainingState of a checkpoint (verified like `restore`)."""
        restored = self.restore(info)
        prefix = info if isinstance(info, str) else info.prefix
        return TrainingState.from_json_and_arrays(restored.state_json, restored.state_arrays,
                                                  source=prefix + STATE_SUFFIX)

