"""Listing the checkpoints of a model from its directory: every prefix with a bundle, commit or pending file, and
`check_checkpoint`, what makes a committed checkpoint good."""

from __future__ import annotations

import os

import attrs

from transition.checkpoint._naming import (
    COMMIT_SUFFIX,
    INDEX_SUFFIX,
    PENDING_SUFFIX,
    CommitState,
    commit_state_of,
    parse_name,
)
from transition.errors import CheckpointError
from transition.internal import _fs
from transition.store import _atomic
from transition.store._info import CheckpointInfo, info_from_commit
from transition.store._state import check_state_contents

__all__ = ["list_checkpoints", "check_checkpoint", "has_checkpoint_files", "NOT_COMMITTED_FOREIGN"]

NOT_COMMITTED_FOREIGN = "not committed: no commit file (not written by transition's store)"
_NOT_COMMITTED_PENDING = "not committed: a save was interrupted or is under way (.pending)"
_LISTED = frozenset({INDEX_SUFFIX, COMMIT_SUFFIX, PENDING_SUFFIX})


def _candidates(model: str) -> dict[str, tuple[int, int, bool, set[str]]]:
    """{prefix: (epoch, step, epoch finished, suffixes present)} of the model's checkpoint files."""
    directory, base = os.path.split(model)
    directory = directory or "."
    if not _fs.isdir(directory):
        return {}
    found: dict[str, tuple[int, int, bool, set[str]]] = {}
    for name in _fs.listdir(directory):
        parsed = parse_name(base, name)
        if parsed is None or parsed.suffix not in _LISTED:
            continue
        prefix = os.path.join(directory, parsed.prefix_name(base))
        kinds = found.setdefault(prefix, (parsed.epoch, parsed.step or 0, parsed.step is None, set()))[3]
        kinds.add("legacy" if parsed.pretrain else parsed.suffix)  # RETURNN's pretrain files are never ours
    return found


def has_checkpoint_files(model: str) -> bool:
    """Whether `model` has any checkpoint file (a bundle index, a commit or a pending file; good or not)."""
    return bool(_candidates(model))


def check_checkpoint(model: str, prefix: str, *, checksums: bool) -> CheckpointInfo:
    """The info of the committed checkpoint at `prefix`, or a CheckpointError saying why it is damaged: its commit
    file (strict, covering every file, metadata describing this checkpoint) and every file's size; with `checksums`
    also every checksum and what the files hold (the bundle's index, the training state with its RNG arrays)."""
    commit = _atomic.verify(prefix, checksums=checksums)
    info = info_from_commit(model, prefix, commit, verified=checksums)
    if checksums:
        check_state_contents(prefix)
    return info


def list_checkpoints(model: str, *, checksums: bool) -> list[CheckpointInfo]:
    """All checkpoints of `model`, oldest first; committed ones checked (`check_checkpoint`), the others marked
    with why they are not usable."""
    infos = []
    for prefix, (epoch, step, finished, kinds) in _candidates(model).items():
        base = CheckpointInfo(prefix=prefix, epoch=epoch, step=step, epoch_finished=finished)
        state = commit_state_of(kinds)
        if state is CommitState.COMMITTED:
            try:
                info = check_checkpoint(model, prefix, checksums=checksums)
            except CheckpointError as exc:
                info = attrs.evolve(base, committed=True, damaged=str(exc))
        elif state is CommitState.PENDING:
            info = attrs.evolve(base, damaged=_NOT_COMMITTED_PENDING)
        else:
            info = attrs.evolve(base, damaged=NOT_COMMITTED_FOREIGN)
        infos.append(info)
    return sorted(infos, key=lambda i: (i.order, i.prefix))
