"""`CheckpointInfo` (one checkpoint of a model, as the store lists it) and `RestoredCheckpoint` (its contents)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import attrs
import numpy as np

from transition.checkpoint._naming import COMMIT_SUFFIX, checkpoint_prefix
from transition.errors import CheckpointError
from transition.internal import _jsonsafe
from transition.store._atomic import CommitInfo

__all__ = ["CheckpointInfo", "RestoredCheckpoint", "info_from_commit"]


@attrs.frozen
class CheckpointInfo:
    """One checkpoint of a model. `damaged` says why it cannot be used (None when it is good or not checked)."""

    prefix: str
    epoch: int
    step: int  # steps done within `epoch`
    epoch_finished: bool
    scores: Mapping[str, float] = attrs.field(factory=dict)
    global_step: int | None = None
    size: int = 0
    committed: bool = False
    damaged: str | None = None
    verified: bool = False  # checksums were checked (not only sizes)

    @property
    def good(self) -> bool:
        return self.committed and self.damaged is None

    @property
    def order(self) -> tuple[int, int, int]:
        """Sort key, oldest first: within an epoch the mid-epoch checkpoints come before the epoch end."""
        return (self.epoch, int(self.epoch_finished), self.step)


class RestoredCheckpoint(NamedTuple):
    params: dict[str, np.ndarray]  # "layer/param" -> array (read-only)
    optimizer: dict[str, np.ndarray]  # names without the "optimizer/" prefix
    state_json: dict[str, Any]  # the parsed {prefix}.state.json
    state_arrays: dict[str, np.ndarray]  # names without the "state/" prefix


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


_META_CHECKS = (
    ("epoch", _is_int),
    ("step_in_epoch", _is_int),
    ("epoch_finished", lambda v: isinstance(v, bool)),
    ("scores", lambda v: isinstance(v, dict)),
    ("global_step", lambda v: v is None or _is_int(v)),
)


def info_from_commit(model: str, prefix: str, commit: CommitInfo, *, verified: bool) -> CheckpointInfo:
    """The info of a committed checkpoint of `model` from its commit file; CheckpointError when the metadata is
    malformed or describes another checkpoint (a copied or renamed commit file)."""
    meta = commit.meta
    for key, ok in _META_CHECKS:
        if key not in meta or not ok(meta[key]):
            raise CheckpointError(f"commit file {prefix}{COMMIT_SUFFIX}: field meta.{key} is missing or of the wrong "
                                  f"type ({meta.get(key)!r:.50})")
    scores = {}
    for name, value in _jsonsafe.decode_floats(meta["scores"]).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise CheckpointError(f"commit file {prefix}{COMMIT_SUFFIX}: score {name!r} is not a number")
        scores[name] = float(value)
    expected = checkpoint_prefix(model, meta["epoch"], meta["step_in_epoch"], epoch_finished=meta["epoch_finished"])
    if os.path.basename(expected) != os.path.basename(prefix):
        raise CheckpointError(f"commit file {prefix}{COMMIT_SUFFIX} describes {os.path.basename(expected)!r}, "
                              "not this checkpoint (copied or renamed?)")
    return CheckpointInfo(prefix=prefix, epoch=meta["epoch"], step=meta["step_in_epoch"],
                          epoch_finished=meta["epoch_finished"], scores=scores, global_step=meta["global_step"],
                          size=commit.size, committed=True, verified=verified)
