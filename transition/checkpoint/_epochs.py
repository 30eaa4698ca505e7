"""RETURNN's naming of epoch checkpoints: `{model}.{epoch:03d}` and `{model}.pretrain.{epoch:03d}`.

A checkpoint exists at a prefix when `{prefix}.index` (TF bundle) or `{prefix}.meta` is there. Mid-epoch
checkpoints (`{model}.{epoch:03d}.step{step:08d}`) are not epoch checkpoints, and a prefix of this project that was
not committed (`{prefix}.pending` present, `{prefix}.commit.json` absent) is skipped. When both a plain and a
pretrain file exist for one epoch, the plain one wins (as in RETURNN).
"""

from __future__ import annotations

import os
import re

from transition.errors import CheckpointError, ConfigError

__all__ = [
    "find_epoch_model",
    "list_epoch_models",
    "epoch_model_path",
    "epoch_from_filename",
    "is_uncommitted",
    "bundle_exists",
    "strip_tf_suffix",
]

_EPOCH_RE = re.compile(r"^(?P<base>.+?)\.(?P<pretrain>pretrain\.)?(?P<epoch>\d{3,})$")
_TF_SUFFIXES = (".index", ".meta")
_DATA_RE = re.compile(r"\.data-\d{5}-of-\d{5}$")


def epoch_model_path(model: str, epoch: int, *, pretrain: bool = False, step_in_epoch: int | None = None) -> str:
    """The prefix of an epoch (or mid-epoch) checkpoint: `model[.pretrain].%03d[.step%08d]`."""
    path = f"{model}{'.pretrain' if pretrain else ''}.{int(epoch):03d}"
    return path if step_in_epoch is None else f"{path}.step{int(step_in_epoch):08d}"


def is_uncommitted(prefix: str) -> bool:
    """True for a prefix of ours whose save did not finish: `.pending` present and no `.commit.json`."""
    return os.path.exists(prefix + ".pending") and not os.path.exists(prefix + ".commit.json")


def bundle_exists(prefix: str) -> bool:
    """Whether a TF checkpoint's `.index` or `.meta` file exists at `prefix`."""
    return any(os.path.isfile(prefix + s) for s in _TF_SUFFIXES)


def strip_tf_suffix(path: str) -> str:
    """The bundle prefix of a path given with `.index`, `.meta` or `.data-NNNNN-of-NNNNN` appended (else the path)."""
    for suffix in _TF_SUFFIXES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return _DATA_RE.sub("", path)


def epoch_from_filename(path: str) -> int | None:
    """The epoch of `.../network.080` (or `.pretrain.080`, with `.index` / `.meta` / `.data-...` appended), else
    None."""
    m = _EPOCH_RE.match(os.path.basename(strip_tf_suffix(os.fspath(path))))
    if not m or f"{int(m.group('epoch')):03d}" != m.group("epoch"):
        return None
    return int(m.group("epoch"))


def _scan(model: str) -> tuple[dict[int, str], list[str]]:
    directory, base = os.path.split(model)
    directory = directory or "."
    try:
        files = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return {}, []
    except OSError as exc:
        raise CheckpointError(f"cannot list {directory} to find the epochs of model {model!r}: {exc}") from exc
    pattern = re.compile(re.escape(base) + r"\.(pretrain\.)?(\d{3,})(\.index|\.meta)$")
    found: dict[int, str] = {}
    skipped: list[str] = []
    for fn in sorted(files):
        m = pattern.match(fn)
        if not m or f"{int(m.group(2)):03d}" != m.group(2):
            continue
        epoch = int(m.group(2))
        prefix = os.path.join(os.path.dirname(model), fn[: -len(m.group(3))])
        if is_uncommitted(prefix):
            if prefix not in skipped:
                skipped.append(prefix)
            continue
        if epoch in found and not m.group(1) and ".pretrain." in found[epoch]:
            found[epoch] = prefix  # the plain file wins over the pretrain one
        found.setdefault(epoch, prefix)
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
