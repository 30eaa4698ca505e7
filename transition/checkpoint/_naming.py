"""On-disk names of checkpoints, the one home of them: RETURNN's epoch files and the files of this project's
checkpoints (used by the readers, the store, `status` and the lock).

A checkpoint is a TF bundle at a prefix that follows RETURNN's naming: epoch ends at `{model}.{epoch:03d}`
(`{model}.pretrain.{epoch:03d}` is RETURNN's pretrain variant), mid-epoch checkpoints at
`{model}.{epoch:03d}.step{step_in_epoch:08d}`. Beside the bundle (`{prefix}.index`, `{prefix}.data-NNNNN-of-NNNNN`):
`{prefix}.state.json`, `{prefix}.commit.json` (written last), `{prefix}.pending` while a save is under way, and
temporaries `{prefix}.tmp-<16 hex>...`. The model's lock is `{model}.lock`. In the bundle, the global train step is
the int64 scalar `global_step` (RETURNN's name, which RETURNN needs to load a checkpoint).
"""

from __future__ import annotations

import enum
import os
import re
import secrets

import attrs

from transition.internal import _fs

__all__ = [
    "INDEX_SUFFIX",
    "META_SUFFIX",
    "STATE_SUFFIX",
    "COMMIT_SUFFIX",
    "PENDING_SUFFIX",
    "LOCK_SUFFIX",
    "SINGLE_DATA_SUFFIX",
    "GLOBAL_STEP_TENSOR",
    "CommitState",
    "ParsedName",
    "epoch_prefix",
    "checkpoint_prefix",
    "parse_name",
    "epoch_from_filename",
    "model_of_file",
    "strip_tf_suffix",
    "data_suffix",
    "parse_data_suffix",
    "is_checkpoint_file_suffix",
    "temp_prefix",
    "is_temp_rest",
    "commit_state",
    "commit_state_of",
    "commit_coverage_problem",
]

INDEX_SUFFIX = ".index"
META_SUFFIX = ".meta"
STATE_SUFFIX = ".state.json"
COMMIT_SUFFIX = ".commit.json"
PENDING_SUFFIX = ".pending"
LOCK_SUFFIX = ".lock"
SINGLE_DATA_SUFFIX = ".data-00000-of-00001"  # what a single-shard SaveV2 writes
GLOBAL_STEP_TENSOR = "global_step"  # the global train step in a bundle, as RETURNN names it

_DATA = r"\.data-(?P<shard>\d{5})-of-(?P<shards>\d{5})"
_DATA_RE = re.compile(_DATA + "$", re.ASCII)
_FILE_SUFFIX_RE = re.compile(r"\.(?:index|state\.json|data-\d{5}-of-\d{5})", re.ASCII)
_TMP_RE = re.compile(r"\.tmp-[0-9a-f]{16}(?:\.|$)")
_NAME_RE = re.compile(
    r"(?P<pretrain>pretrain\.)?(?P<epoch>\d{3,})(?:\.step(?P<step>\d{8,}))?"
    r"(?P<suffix>\.index|\.meta|\.commit\.json|\.pending|\.state\.json|" + _DATA.replace("?P<shard>", "?:")
    .replace("?P<shards>", "?:") + r")?", re.ASCII
)


def epoch_prefix(model: str, epoch: int, *, pretrain: bool = False, step_in_epoch: int | None = None) -> str:
    """The prefix of an epoch (or mid-epoch) checkpoint: `model[.pretrain].%03d[.step%08d]`."""
    path = f"{model}{'.pretrain' if pretrain else ''}.{int(epoch):03d}"
    return path if step_in_epoch is None else f"{path}.step{int(step_in_epoch):08d}"


def checkpoint_prefix(model: str, epoch: int, step_in_epoch: int = 0, *, epoch_finished: bool = True) -> str:
    """`{model}.{epoch:03d}` at an epoch end, `{model}.{epoch:03d}.step{step_in_epoch:08d}` within an epoch."""
    return epoch_prefix(model, epoch, step_in_epoch=None if epoch_finished else step_in_epoch)


@attrs.frozen
class ParsedName:
    """A file name of a model's checkpoint: its epoch, step within the epoch (None: an epoch end), whether it is
    RETURNN's pretrain variant, and the suffix after the prefix ("" for the prefix itself)."""

    epoch: int
    step: int | None
    pretrain: bool
    suffix: str

    def prefix_name(self, base: str) -> str:
        """The checkpoint's prefix (file name, no directory) of model `base`."""
        return epoch_prefix(base, self.epoch, pretrain=self.pretrain, step_in_epoch=self.step)


def parse_name(base: str, name: str) -> ParsedName | None:
    """Parse the file `name` (in the model's directory) of model `base` (the model path's last part), e.g.
    `network.007.step00000020.commit.json`; None for other names. Epochs are written with 3 digits at least and
    no other leading zeros, steps with 8."""
    if not name.startswith(base + "."):
        return None
    m = _NAME_RE.fullmatch(name[len(base) + 1 :])
    if not m or f"{int(m['epoch']):03d}" != m["epoch"] or (m["step"] and f"{int(m['step']):08d}" != m["step"]):
        return None
    step = int(m["step"]) if m["step"] else None
    return ParsedName(int(m["epoch"]), step, bool(m["pretrain"]), m["suffix"] or "")


def epoch_from_filename(path: str | os.PathLike) -> int | None:
    """The epoch of `.../network.080` (or `.pretrain.080`, with `.index` / `.meta` / `.data-...` appended), else
    None (mid-epoch checkpoints are not epoch files)."""
    name = os.path.basename(strip_tf_suffix(os.fspath(path)))
    m = re.fullmatch(r"(?P<base>.+?)\.(?:pretrain\.)?(?P<epoch>\d{3,})", name, re.ASCII)
    if not m or f"{int(m['epoch']):03d}" != m["epoch"]:
        return None
    return int(m["epoch"])


def model_of_file(path: str | os.PathLike) -> str | None:
    """The model of a checkpoint's file or prefix (`runs/network.024`, `runs/network.024.index`,
    `runs/network.003.step00000020.commit.json` -> `runs/network`), else None."""
    directory, name = os.path.split(os.fspath(path))
    for i, char in enumerate(name):  # the shortest base whose checkpoint this name is
        if char == "." and i and parse_name(name[:i], name) is not None:
            return os.path.join(directory, name[:i])
    return None


def strip_tf_suffix(path: str) -> str:
    """The bundle prefix of a path given with `.index`, `.meta` or `.data-NNNNN-of-NNNNN` appended (else the path)."""
    for suffix in (INDEX_SUFFIX, META_SUFFIX):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return _DATA_RE.sub("", path)


def data_suffix(shard: int, num_shards: int) -> str:
    """`.data-{shard:05d}-of-{num_shards:05d}`."""
    return f".data-{int(shard):05d}-of-{int(num_shards):05d}"


def parse_data_suffix(name: str) -> tuple[int, int] | None:
    """(shard, number of shards) of a name ending in `.data-NNNNN-of-NNNNN`, else None."""
    m = _DATA_RE.search(name)
    return (int(m["shard"]), int(m["shards"])) if m else None


def is_checkpoint_file_suffix(suffix: str) -> bool:
    """Whether `suffix` names a file of a committed checkpoint: `.index`, `.data-NNNNN-of-NNNNN`, `.state.json`."""
    return bool(_FILE_SUFFIX_RE.fullmatch(suffix))


def temp_prefix(prefix: str) -> str:
    """A fresh temporary prefix for the files of a save at `prefix`: `{prefix}.tmp-<16 hex>`."""
    return f"{prefix}.tmp-{secrets.token_hex(8)}"


def is_temp_rest(rest: str) -> bool:
    """Whether `rest` (a file name after the model's base name) is a save's temporary (`.tmp-<16 hex>...`)."""
    return bool(_TMP_RE.search(rest))


class CommitState(enum.Enum):
    """Whether a checkpoint prefix is usable: COMMITTED (its commit file exists), PENDING (a save was interrupted
    or is under way: `.pending` and no commit file) or FOREIGN (neither: written by another tool, e.g. RETURNN)."""

    COMMITTED = "committed"
    PENDING = "pending"
    FOREIGN = "foreign"


def commit_state_of(suffixes: set[str] | frozenset[str]) -> CommitState:
    """The rule, from the suffixes present at a prefix: the commit file decides; `.pending` without it is not
    committed (also on file systems whose rename is not atomic); neither is another tool's checkpoint."""
    if COMMIT_SUFFIX in suffixes:
        return CommitState.COMMITTED
    if PENDING_SUFFIX in suffixes:
        return CommitState.PENDING
    return CommitState.FOREIGN


def commit_state(prefix: str) -> CommitState:
    """`commit_state_of` for the files at `prefix`."""
    present = {s for s in (COMMIT_SUFFIX, PENDING_SUFFIX) if _fs.exists(prefix + s)}
    return commit_state_of(present)


def commit_coverage_problem(listed: set[str] | frozenset[str], present: set[str] | frozenset[str]) -> str | None:
    """Why a commit file listing the suffixes `listed` does not cover its checkpoint, whose files at the prefix have
    the suffixes `present` (checkpoint file suffixes only, see `is_checkpoint_file_suffix`); None when it does. It
    must list every file present, and a whole checkpoint: the index, every data shard of one count, the state."""
    uncovered = sorted(set(present) - set(listed))
    if uncovered:
        return f"the commit file does not cover its file(s) {uncovered}"
    missing = sorted({INDEX_SUFFIX, STATE_SUFFIX} - set(listed))
    if missing:
        return f"the commit file does not list {missing}"
    shards = {parsed for s in listed if (parsed := parse_data_suffix(s)) is not None}
    counts = {n for _, n in shards}
    if len(counts) != 1 or {i for i, _ in shards} != set(range(next(iter(counts)))):
        return f"the commit file lists data shards {sorted(s for s in listed if parse_data_suffix(s))}, not one " \
               "complete set"
    return None
