"""Read any checkpoint to numpy: `open_checkpoint` (lazy) and `read_checkpoint` (everything).

Sources (names per format: see `_reader_tf.py` and `_reader_files.py`):
- TF bundles (TF1 name-based savers, TF2 `tf.train.Checkpoint`, this project's own), given as the prefix, with
  `.index` / `.meta` / `.data-NNNNN-of-NNNNN` appended, as a directory with a `checkpoint` state file (its latest
  checkpoint), or as that `checkpoint` state file. This project's checkpoints that were not committed
  (`{prefix}.pending` and no `{prefix}.commit.json`) are refused.
- `.npz` archives, `.npy` files holding a structured record (never a pickled dict), Keras `.weights.h5` / legacy
  `.h5`, `.keras` archives. A file with another extension is recognised by its magic bytes.
Every failure is a CheckpointError naming the path and what to do.
"""

from __future__ import annotations

import codecs
import os
import re

import numpy as np

from transition.checkpoint._epochs import (
    find_epoch_model,
    is_uncommitted,
    list_epoch_models,
)
from transition.checkpoint._naming import INDEX_SUFFIX, META_SUFFIX, strip_tf_suffix
from transition.checkpoint._reader_base import CheckpointReader
from transition.errors import CheckpointError, close_matches, listed
from transition.internal import _fs

__all__ = [
    "CheckpointReader",
    "open_checkpoint",
    "read_checkpoint",
    "resolve_checkpoint",
    "find_epoch_model",
    "list_epoch_models",
]

_MAGIC = {b"PK\x03\x04": "npz", b"PK\x05\x06": "npz", b"\x93NUMPY": "npy", b"\x89HDF\r\n\x1a\n": "h5"}
_EXT = {".npz": "npz", ".npy": "npy", ".h5": "h5", ".hdf5": "h5", ".keras": "h5"}


_STATE_LINE = re.compile(r"""\s*model_checkpoint_path\s*:\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*""")


def _latest_in_state_file(state_file: str) -> str | None:
    """`model_checkpoint_path` of TF's checkpoint state file (a text-format CheckpointState), as
    `tf.train.latest_checkpoint` reads it but without TensorFlow; None where the file names none."""
    text = _fs.read_text(state_file)
    latest = None
    for line in text.splitlines():
        if not line.strip() or not line.lstrip().startswith("model_checkpoint_path"):
            continue
        m = _STATE_LINE.fullmatch(line)
        if m is None:
            raise ValueError(f"cannot parse the line {line.strip()[:200]!r}")
        raw = m.group(1) if m.group(1) is not None else m.group(2)
        latest = codecs.escape_decode(raw.encode("utf-8"))[0].decode("utf-8")
    return latest


def _from_state_file(directory: str) -> str:
    state_file = os.path.join(directory, "checkpoint")
    try:
        latest = _latest_in_state_file(state_file)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot parse the checkpoint state file {state_file}: {exc}; fix or delete it and give the checkpoint "
            f"prefix instead"
        ) from exc
    if latest and not os.path.isabs(latest) and "://" not in latest:
        latest = os.path.join(directory, latest)
    if not latest or not any(_fs.isfile(latest + s) for s in (INDEX_SUFFIX, META_SUFFIX, "")):
        named = f" ({latest} has no {INDEX_SUFFIX} file)" if latest else ""
        raise CheckpointError(
            f"the checkpoint state file {state_file} names no existing checkpoint{named}; give the checkpoint "
            f"prefix instead"
        )
    return latest


def _not_found(path: str) -> CheckpointError:
    hint = ""
    epochs = list_epoch_models(path)
    if epochs:
        hint = (
            f"; {path} is a model name with epochs {sorted(epochs)}: give one checkpoint, e.g. "
            f"the latest, {epochs[max(epochs)]}"
        )
    else:
        directory, base = os.path.split(path)
        try:
            names = _fs.listdir(directory or ".")
        except OSError:
            names = []
        similar = close_matches(base, names)
        if similar:
            hint = f"; similar files there: {similar}"
    return CheckpointError(f"no checkpoint at {path}: neither that file nor {path}.index exists{hint}")


def resolve_checkpoint(path: str | os.PathLike) -> tuple[str, str]:
    """(kind, resolved path) of a checkpoint.

    kind: "tf" (path = the bundle prefix), "npz", "npy" or "h5" (Keras .h5 or .keras).
    """
    path = os.path.expanduser(os.fspath(path))
    # a bundle prefix first: on TF's in-memory file system (ram://) every prefix of a file name is a "directory"
    if _fs.isdir(path) and not _fs.isfile(strip_tf_suffix(path) + INDEX_SUFFIX):
        if _fs.isfile(os.path.join(path, "checkpoint")):
            path = _from_state_file(path)
        else:
            bundles = sorted(f[: -len(INDEX_SUFFIX)] for f in _fs.listdir(path) if f.endswith(INDEX_SUFFIX))
            raise CheckpointError(
                f"{path} is a directory without a 'checkpoint' state file; give a checkpoint prefix"
                + (f", one of {listed([os.path.join(path, b) for b in bundles])}" if bundles else "")
            )
    elif os.path.basename(path) == "checkpoint" and _fs.isfile(path):
        path = _from_state_file(os.path.dirname(path) or ".")
    ext_kind = next((k for ext, k in _EXT.items() if path.endswith(ext)), None)
    if ext_kind is not None:
        if not _fs.isfile(path):
            raise _not_found(path)
        return ext_kind, path
    prefix = strip_tf_suffix(path)
    if _fs.isfile(prefix + INDEX_SUFFIX):
        if is_uncommitted(prefix):
            raise CheckpointError(
                f"checkpoint {prefix} was not committed ({prefix}.pending exists, {prefix}.commit.json does not): "
                f"its save was interrupted; use an earlier checkpoint, or delete its files"
            )
        return "tf", prefix
    if _fs.isfile(prefix + META_SUFFIX):
        raise CheckpointError(
            f"checkpoint {prefix} has a graph ({prefix}.meta) but no {prefix}.index: its values are missing "
            f"(an incomplete copy, or an old TF V1 checkpoint); copy the .index and .data-* files next to it"
        )
    if _fs.isfile(path):
        try:
            with _fs.open_binary(path) as fp:
                head = fp.read(8)
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
        for magic, kind in _MAGIC.items():
            if head.startswith(magic):
                return kind, path
        raise CheckpointError(
            f"{path} is not a checkpoint this library reads (a TF bundle prefix, .npz, .npy or Keras .h5); "
            f"for a TF bundle give the prefix, not a file inside it"
        )
    raise _not_found(path)


def open_checkpoint(path: str | os.PathLike) -> CheckpointReader:
    """Open a checkpoint lazily: names, shapes and dtypes without reading values; `read(name)` reads one array."""
    kind, resolved = resolve_checkpoint(path)
    if kind == "tf":
        from transition.checkpoint._bundle_reader import TFBundleReader

        return TFBundleReader(resolved)
    from transition.checkpoint._files import KerasH5Reader, NpyReader, NpzReader

    return {"npz": NpzReader, "npy": NpyReader, "h5": KerasH5Reader}[kind](resolved)


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of a checkpoint into {name: array}."""
    with open_checkpoint(path) as reader:
        return reader.read_all()
