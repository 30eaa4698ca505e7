"""RETURNN's epoch checkpoints of a model: `{model}.{epoch:03d}` and `{model}.pretrain.{epoch:03d}` (names: `_naming`).

A checkpoint exists at a prefix when `{prefix}.index` (TF bundle) or `{prefix}.meta` is there. Mid-epoch
checkpoints are not epoch checkpoints, and a prefix of this project that was not committed is skipped. When both a
plain and a pretrain file exist for one epoch, the plain one wins (as in RETURNN).
"""

from __future__ import annotations

import os

from transition.checkpoint._naming import (
    INDEX_SUFFIX,
    META_SUFFIX,
    CommitState,
    commit_state,
    epoch_from_filename,
    parse_name,
    strip_tf_suffix,
)
from transition.errors import CheckpointError, ConfigError
from transition.internal import _fs

__all__ = ["find_epoch_model", "list_epoch_models", "is_uncommitted", "bundle_exists"]


def is_uncommitted(prefix: str) -> bool:
    """True for a prefix of ours whose save did not finish (see `_naming.commit_state`)."""
    return commit_state(prefix) is CommitState.PENDING


def bundle_exists(prefix: str) -> bool:
    """Whether a TF checkpoint's `.index` or `.meta` file exists at `prefix`."""
    return any(_fs.isfile(prefix + s) for s in (INDEX_SUFFIX, META_SUFFIX))


def _scan(model: str) -> tuple[dict[int, str], list[str]]:
    directory, base = os.path.split(model)
    try:
        files = _fs.listdir(directory or ".")
    except (FileNotFoundError, NotADirectoryError):
        return {}, []
    except OSError as exc:
        raise CheckpointError(f"cannot list {directory or '.'} to find the epochs of model {model!r}: {exc}") from exc
    found: dict[int, str] = {}
    skipped: list[str] = []
    for fn in sorted(files):
        parsed = parse_name(base, fn)
        if parsed is None or parsed.step is not None or parsed.suffix not in (INDEX_SUFFIX, META_SUFFIX):
            continue
        prefix = os.path.join(directory, parsed.prefix_name(base))
        if is_uncommitted(prefix):
            if prefix not in skipped:
                skipped.append(prefix)
            continue
        if parsed.epoch in found and not parsed.pretrain and ".pretrain." in found[parsed.epoch]:
            found[parsed.epoch] = prefix  # the plain file wins over the pretrain one
        found.setdefault(parsed.epoch, prefix)
    return dict(sorted(found.items())), skipped


def list_epoch_models(model: str | os.PathLike) -> dict[int, str]:
    """{epoch: prefix} of the committed epoch checkpoints of `model`, sorted by epoch."""
    return _scan(os.fspath(model))[0]


def _check_epoch(load_epoch: object) -> int:
    if isinstance(load_epoch, bool) or not isinstance(load_epoch, int) or load_epoch < 1:
        raise ConfigError(f"load_epoch must be an int >= 1, got {load_epoch!r}")
    return load_epoch


def find_epoch_model(model: str | os.PathLike, load_epoch: int | None = None) -> tuple[int, str]:
    """(epoch, prefix) of `model`'s highest epoch checkpoint, or of `load_epoch`.

    `model` is the model name (`.../network`), or one checkpoint's filename (`.../network.080`, optionally with
    `.index` / `.meta` / `.data-...`), whose epoch is parsed from it.
    """
    model = os.fspath(model)
    if load_epoch is not None:
        load_epoch = _check_epoch(load_epoch)
    as_file = strip_tf_suffix(model)
    file_epoch = epoch_from_filename(as_file)
    if file_epoch is not None and (bundle_exists(as_file) or model != as_file or not list_epoch_models(model)):
        if not bundle_exists(as_file):
            raise CheckpointError(
                f"no checkpoint at {as_file}: neither {as_file}.index nor {as_file}.meta exists; check the path"
            )
        if is_uncommitted(as_file):
            raise CheckpointError(
                f"checkpoint {as_file} was not committed ({as_file}.pending exists, {as_file}.commit.json does not): "
                f"its save was interrupted; use an earlier epoch"
            )
        if load_epoch is not None and load_epoch != file_epoch:
            raise ConfigError(
                f"load_epoch={load_epoch} contradicts the filename {model}, which is epoch {file_epoch}; give the "
                f"model name without an epoch, or drop load_epoch"
            )
        return file_epoch, as_file
    found, skipped = _scan(model)
    note = f" (skipped uncommitted: {', '.join(skipped)})" if skipped else ""
    if not found:
        raise CheckpointError(
            f"no epoch checkpoints of model {model!r}: found no {model}.NNN.index / .meta "
            f"(nor {model}.pretrain.NNN){note}; check the model path, or train first"
        )
    if load_epoch is None:
        return max(found), found[max(found)]
    if load_epoch not in found:
        raise CheckpointError(
            f"no checkpoint of epoch {load_epoch} for model {model!r}; epochs present: {sorted(found)}{note}"
        )
    return load_epoch, found[load_epoch]
