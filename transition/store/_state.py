"""`TrainingState`: everything besides the params that an exact resume needs, stored as JSON plus int64 arrays.

On disk (see docs/ARCHITECTURE.md, "TrainingState on disk"): ``{prefix}.state.json`` holds the JSON; the RNG arrays
live in the checkpoint's TF bundle under ``state/{name}``. Never pickle.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from transition.checkpoint._bundle_reader import TFBundleReader
from transition.checkpoint._naming import (
    COMMIT_SUFFIX,
    INDEX_SUFFIX,
    STATE_SUFFIX,
    CommitState,
    commit_state,
)
from transition.errors import (
    CheckpointError,
    ConfigError,
    MissingParamsError,
    did_you_mean,
)
from transition.internal import _fs, _jsonsafe
from transition.store._rng import RngState

__all__ = [
    "EpochRecord",
    "TrainingState",
    "STATE_FORMAT",
    "STATE_VERSION",
    "STATE_ARRAY_PREFIX",
    "dumps_state",
    "loads_state",
    "read_training_state",
    "read_state_arrays",
    "read_state_json",
    "state_json_path",
    "check_state_contents",
]

STATE_FORMAT = "transition.TrainingState"
STATE_VERSION = 1
STATE_ARRAY_PREFIX = "state/"  # bundle names of the arrays: STATE_ARRAY_PREFIX + array name
MAX_EPOCH = 10**9
MAX_STEP = 2**62
MAX_PRETRAIN_STEP = 10**6
_MAX_STATE_ARRAYS = 10_000
_EPOCH_KEY = re.compile(r"[0-9]{1,10}")
_MAX_ARRAY_ELEMENTS = 1 << 20


def _count(name: str, value: Any, hi: int, error: type[Exception] = ConfigError, source: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= hi:
        where = f"{source}: " if source else ""
        raise error(f"{where}{name} must be an int in [0, {hi}], got {value!r}")
    return int(value)


def _jsonable_dict(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a dict, got a {type(value).__name__}")
    _jsonsafe.check_jsonable(value, name, ConfigError)
    return dict(value)


@attrs.frozen
class EpochRecord:
    """Learning-rate control record of one epoch: the learning rate used and the scores (e.g. dev_score) it got."""

    learning_rate: float = attrs.field(converter=float)
    scores: Mapping[str, float] = attrs.field(factory=dict)

    @learning_rate.validator
    def _check_lr(self, _attr: Any, value: float) -> None:
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"learning_rate must be a finite number >= 0, got {value!r}")

    @scores.validator
    def _check_scores(self, _attr: Any, value: Mapping[str, float]) -> None:
        for key, score in value.items():
            if not isinstance(key, str) or isinstance(score, bool) or not isinstance(score, (int, float)):
                raise ConfigError(f"scores[{key!r}] must map a str to a float, got {score!r}")


def _history(value: Mapping[int, EpochRecord | Mapping[str, Any]]) -> dict[int, EpochRecord]:
    out = {}
    for epoch, rec in value.items():
        epoch = _count("learning_rate_history epoch", epoch, MAX_EPOCH)
        if isinstance(rec, Mapping):
            unknown = set(rec) - {"learning_rate", "scores"}
            if unknown or "learning_rate" not in rec:
                raise ConfigError(f"learning_rate_history[{epoch}] must have 'learning_rate' and optionally 'scores', "
                                  f"got keys {sorted(map(str, rec))}")
            rec = EpochRecord(**rec)
        if not isinstance(rec, EpochRecord):
            raise ConfigError(f"learning_rate_history[{epoch}] must be an EpochRecord, got {type(rec).__name__}")
        out[epoch] = rec
    return dict(sorted(out.items()))


@attrs.frozen
class TrainingState:
    """The state of a training job at a checkpoint (besides params and optimizer variables).

    epoch: the epoch this state belongs to (1-based, as in RETURNN). With ``epoch_finished=True`` it is the last
      finished epoch and the next one to run is ``epoch + 1``; with False the epoch is in progress and
      `step_in_epoch` steps of it are done. ``epoch=0, epoch_finished=True`` is the state before any training.
    global_step: optimizer steps done in total. step_in_epoch: steps done in `epoch`.
    pretrain_step: the pretrain construction step of the net in use (None: no pretraining).
    net_dict: the net dict in use (JSON-able; tuples come back as lists).
    learning_rate_history: epoch -> EpochRecord(learning_rate, scores).
    rng: the RNG states (None: not captured). data_position: where the data pipeline is, e.g.
      {"epoch_seed": 3, "batch_index": 120}. callbacks: state_key -> callback state (see `collect_callback_states`).
    extra: free JSON-able dict for users; keys starting with "transition." are reserved for this library.
    Every dict must be JSON-able (floats may be inf / nan: they are encoded explicitly).
    """

    epoch: int = attrs.field(default=0, converter=lambda v: _count("epoch", v, MAX_EPOCH))
    epoch_finished: bool = attrs.field(default=True)
    global_step: int = attrs.field(default=0, converter=lambda v: _count("global_step", v, MAX_STEP))
    step_in_epoch: int = attrs.field(default=0, converter=lambda v: _count("step_in_epoch", v, MAX_STEP))
    pretrain_step: int | None = attrs.field(
        default=None, converter=lambda v: None if v is None else _count("pretrain_step", v, MAX_PRETRAIN_STEP))
    net_dict: dict[str, Any] | None = attrs.field(
        default=None, converter=lambda v: None if v is None else _jsonable_dict("net_dict", v))
    learning_rate_history: Mapping[int, EpochRecord] = attrs.field(factory=dict, converter=_history)
    rng: RngState | None = attrs.field(default=None)
    data_position: dict[str, Any] = attrs.field(factory=dict, converter=lambda v: _jsonable_dict("data_position", v))
    callbacks: dict[str, dict[str, Any]] = attrs.field(
        factory=dict, converter=lambda v: _jsonable_dict("callbacks", v))
    extra: dict[str, Any] = attrs.field(factory=dict, converter=lambda v: _jsonable_dict("extra", v))

    @epoch_finished.validator
    def _check_finished(self, _attr: Any, value: Any) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"epoch_finished must be a bool, got {value!r}")

    @rng.validator
    def _check_rng(self, _attr: Any, value: Any) -> None:
        if value is not None and not isinstance(value, RngState):
            raise ConfigError(f"rng must be an RngState or None, got a {type(value).__name__}")

    @callbacks.validator
    def _check_callbacks(self, _attr: Any, value: dict[str, Any]) -> None:
        for key, st in value.items():
            if not isinstance(st, Mapping):
                raise ConfigError(f"callbacks[{key!r}] must be a dict, got a {type(st).__name__}")

    def evolve(self, **changes: Any) -> TrainingState:
        """Return a copy with `changes` applied (attrs.evolve)."""
        return attrs.evolve(self, **changes)

    @property
    def next_epoch(self) -> int:
        """The epoch a resume continues with (`epoch` + 1 when finished, else `epoch`)."""
        return self.epoch + 1 if self.epoch_finished else self.epoch

    def to_json_and_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return (JSON-able dict, {array name: 1-D int64 array}). Store each array under
        ``STATE_ARRAY_PREFIX + name`` in the checkpoint bundle; the dict lists the names under "arrays"."""
        enc = _jsonsafe.encode_floats
        arrays: dict[str, np.ndarray] = {}
        rng_obj = None
        if self.rng is not None:
            rng_obj, arrays = self.rng.to_json_and_arrays(prefix="rng")
        obj = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "epoch_finished": self.epoch_finished,
            "global_step": self.global_step,
            "step_in_epoch": self.step_in_epoch,
            "pretrain_step": self.pretrain_step,
            "net_dict": enc(self.net_dict),
            "learning_rate_history": {
                str(ep): {"learning_rate": rec.learning_rate, "scores": enc(dict(rec.scores))}
                for ep, rec in self.learning_rate_history.items()},
            "rng": rng_obj,
            "data_position": enc(self.data_position),
            "callbacks": enc(self.callbacks),
            "extra": enc(self.extra),
            "arrays": sorted(arrays),
        }
        return obj, arrays

    @classmethod
    def from_json_and_arrays(cls, obj: Any, arrays: Mapping[str, np.ndarray] | None,
                             *, source: str = "training state") -> TrainingState:
        """Inverse of `to_json_and_arrays`, validating strictly: a wrong type, missing or unknown key, unknown
        version or out-of-range number is a CheckpointError naming `source` and the field. With arrays=None the
        RNG state is not loaded (rng=None)."""
        check = _JsonChecker(source)
        check.header(obj)
        pretrain = obj["pretrain_step"]
        if pretrain is not None:
            pretrain = check.count(obj, "pretrain_step", MAX_PRETRAIN_STEP)
        callbacks = check.json_dict("callbacks", obj["callbacks"])
        for key, st in callbacks.items():
            if not isinstance(st, dict):
                raise check.fail(f"callbacks[{key!r}] must be an object, got {type(st).__name__}")
        try:
            return cls(
                epoch=check.count(obj, "epoch", MAX_EPOCH),
                epoch_finished=obj["epoch_finished"],
                global_step=check.count(obj, "global_step", MAX_STEP),
                step_in_epoch=check.count(obj, "step_in_epoch", MAX_STEP),
                pretrain_step=pretrain,
                net_dict=check.json_dict("net_dict", obj["net_dict"], optional=True),
                learning_rate_history=check.history(obj["learning_rate_history"]),
                rng=check.rng(obj, arrays),
                data_position=check.json_dict("data_position", obj["data_position"]),
                callbacks=callbacks,
                extra=check.json_dict("extra", obj["extra"]),
            )
        except ConfigError as exc:  # pragma: no cover - the checks above should catch everything first
            raise check.fail(str(exc)) from None


_FIELDS = frozenset({"format", "version", "epoch", "epoch_finished", "global_step", "step_in_epoch", "pretrain_step",
                     "net_dict", "learning_rate_history", "rng", "data_position", "callbacks", "extra", "arrays"})


class _JsonChecker:
    """The strict checks of `TrainingState.from_json_and_arrays`; errors are CheckpointErrors naming the source."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, msg: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: {msg}; the file is damaged or was not written by transition")

    def header(self, obj: Any) -> None:
        """The top level: an object with the format, a known version and exactly the known fields."""
        if not isinstance(obj, dict):
            raise self.fail(f"the top level must be a JSON object, got {type(obj).__name__}")
        if obj.get("format") != STATE_FORMAT:
            raise self.fail(f"field 'format' is {obj.get('format')!r}, expected {STATE_FORMAT!r}")
        version = obj.get("version")
        if version != STATE_VERSION or isinstance(version, bool):
            raise self.fail(f"unknown version {version!r} (this transition reads version {STATE_VERSION}); "
                            "upgrade transition")
        for key in obj:
            if key not in _FIELDS:
                raise self.fail(f"unknown field {key!r}{did_you_mean(key, _FIELDS)}")
        for key in sorted(_FIELDS - set(obj)):
            raise self.fail(f"missing field {key!r}")
        if not isinstance(obj["epoch_finished"], bool):
            raise self.fail(f"field 'epoch_finished' must be true or false, got {obj['epoch_finished']!r}")

    def count(self, obj: dict, key: str, hi: int) -> int:
        return _count(key, obj[key], hi, CheckpointError, self.source)

    def json_dict(self, key: str, value: Any, optional: bool = False) -> Any:
        if optional and value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(f"field {key!r} must be an object, got {type(value).__name__}")
        return _jsonsafe.decode_floats(value)

    def history(self, history_obj: Any) -> dict[int, EpochRecord]:
        if not isinstance(history_obj, dict):
            raise self.fail("field 'learning_rate_history' must be an object")
        history = {}
        for ep_str, rec in history_obj.items():
            where = f"learning_rate_history[{ep_str!r}]"
            if not _EPOCH_KEY.fullmatch(ep_str) or int(ep_str) > MAX_EPOCH:
                raise self.fail(f"{where}: the key must be an epoch number in [0, {MAX_EPOCH}]")
            if not isinstance(rec, dict) or set(rec) != {"learning_rate", "scores"}:
                raise self.fail(f"{where} must be an object with exactly 'learning_rate' and 'scores'")
            lr = rec["learning_rate"]
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
                raise self.fail(f"{where}.learning_rate must be a finite number >= 0, got {lr!r}")
            scores = _jsonsafe.decode_floats(rec["scores"]) if isinstance(rec["scores"], dict) else None
            if scores is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                         for v in scores.values()):
                raise self.fail(f"{where}.scores must map names to numbers, got {rec['scores']!r}")
            history[int(ep_str)] = EpochRecord(float(lr), {k: float(v) for k, v in scores.items()})
        return history

    def rng(self, obj: dict, arrays: Mapping[str, np.ndarray] | None) -> RngState | None:
        names = obj["arrays"]
        if not isinstance(names, list) or len(names) > _MAX_STATE_ARRAYS or not all(isinstance(n, str)
                                                                                     for n in names):
            raise self.fail("field 'arrays' must be a list of array names")
        if obj["rng"] is not None and arrays is not None:
            for name in names:
                if name not in arrays:
                    raise self.fail(f"array {name!r} listed in 'arrays' is missing")
            return RngState.from_json_and_arrays(obj["rng"], arrays, where="rng", source=self.source)
        if obj["rng"] is not None and not isinstance(obj["rng"], dict):
            raise self.fail("field 'rng' must be an object or null")
        return None


def dumps_state(state: TrainingState) -> tuple[bytes, dict[str, np.ndarray]]:
    """Return (the bytes of ``{prefix}.state.json``, {array name: int64 array}) for `state`."""
    obj, arrays = state.to_json_and_arrays()
    return _jsonsafe.dumps(obj), arrays


def loads_state(data: bytes, arrays: Mapping[str, np.ndarray] | None,
                *, source: str = "training state") -> TrainingState:
    """Parse the bytes of a ``.state.json`` (strictly; see `TrainingState.from_json_and_arrays`)."""
    obj = _jsonsafe.loads(data, source, CheckpointError)
    return TrainingState.from_json_and_arrays(obj, arrays, source=source)


def state_json_path(prefix: str) -> str:
    """``{prefix}.state.json``."""
    return prefix + STATE_SUFFIX


def _strip_prefix(path: str) -> str:
    for suffix in (STATE_SUFFIX, COMMIT_SUFFIX, INDEX_SUFFIX):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def read_state_arrays(prefix: str, names: list[str]) -> dict[str, np.ndarray]:
    """Read the named state arrays (``state/{name}``) from the TF bundle at `prefix`."""
    if not names:
        return {}
    try:
        with TFBundleReader(prefix) as reader:
            arrays = reader.read_all([STATE_ARRAY_PREFIX + name for name in names])
    except (CheckpointError, MissingParamsError) as exc:
        raise CheckpointError(f"{prefix}: cannot read the arrays that {prefix}{STATE_SUFFIX} needs ({exc}); the "
                              "checkpoint is incomplete or damaged, use another one") from None
    out = {}
    for name in names:
        array = arrays[STATE_ARRAY_PREFIX + name]
        if array.ndim != 1 or array.size > _MAX_ARRAY_ELEMENTS:
            raise CheckpointError(f"{prefix}: tensor {STATE_ARRAY_PREFIX + name!r} has shape {list(array.shape)}; "
                                  f"expected a 1-D state array of at most {_MAX_ARRAY_ELEMENTS} elements")
        out[name] = array
    return out


def read_state_json(prefix: str) -> Any:
    """The parsed ``{prefix}.state.json`` (strict JSON, at most `_jsonsafe.MAX_JSON_BYTES`), not yet validated."""
    json_path = state_json_path(prefix)
    try:
        data = _fs.read_bytes(json_path, _jsonsafe.MAX_JSON_BYTES, within=os.path.dirname(prefix) or ".")
    except FileNotFoundError:
        raise CheckpointError(f"{json_path}: no training state here; is {prefix!r} a checkpoint written by "
                              "transition?") from None
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{json_path}: cannot read ({exc})") from None
    return _jsonsafe.loads(data, json_path, CheckpointError)


def read_training_state(path: str, *, with_rng: bool = True, verify: bool = True) -> TrainingState:
    """Read the TrainingState of the checkpoint at `path` (its prefix, or its ``.state.json`` / ``.index`` file).

    Reads ``{prefix}.state.json`` and, with `with_rng`, the RNG arrays from the bundle (``state/...``).
    A committed checkpoint (``{prefix}.commit.json``) is verified first: every file's size, and with `verify` its
    checksum. A prefix that is still pending (``.pending`` without ``.commit.json``) is refused; one with neither
    (written by other tools) is read as it is.
    """
    from transition.store import _atomic

    prefix = _strip_prefix(str(path))
    state = commit_state(prefix)
    if state is CommitState.COMMITTED:
        _atomic.verify(prefix, checksums=verify)
    elif state is CommitState.PENDING:
        raise CheckpointError(f"{prefix}: this checkpoint was never committed (a save was interrupted); "
                              "use an earlier checkpoint")
    return _load_state(prefix, with_rng=with_rng)


def _load_state(prefix: str, *, with_rng: bool) -> TrainingState:
    json_path = state_json_path(prefix)
    obj = read_state_json(prefix)
    state = TrainingState.from_json_and_arrays(obj, None, source=json_path)  # everything but the RNG arrays
    if not with_rng:
        return state
    return TrainingState.from_json_and_arrays(obj, read_state_arrays(prefix, obj["arrays"]), source=json_path)


def check_state_contents(prefix: str) -> None:
    """Check what a checkpoint's files hold (its commit file is checked by `_atomic.verify`): the bundle's index,
    every entry (`read_bundle_index`), and the training state, strictly, with its RNG arrays; CheckpointError
    naming what is wrong."""
    TFBundleReader(prefix).close()
    _load_state(prefix, with_rng=True)
