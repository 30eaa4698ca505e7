"""Checkpoint tools: inspect (names, shapes, dtypes, sizes), convert between a TF bundle and .npz, average.

Written checkpoints: a `dst` ending in `.npz` is an npz archive (names as given, no `:0`); anything else is a TF
name-based bundle at the prefix `dst` (written with `tf.raw_ops.SaveV2`, so `tf.train.load_checkpoint(dst)` and
RETURNN see the same names). Files are written under a temporary name in the same directory, then renamed.
"""

from __future__ import annotations

import os
import uuid
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from transition.checkpoint._bundle_writer import write_bundle
from transition.checkpoint._naming import (
    INDEX_SUFFIX,
    parse_data_suffix,
    strip_tf_suffix,
)
from transition.checkpoint._reader import open_checkpoint
from transition.checkpoint._reader_base import CheckpointReader, strip_tensor_suffix
from transition.errors import (
    CheckpointError,
    ConfigError,
    MissingParamsError,
    ShapeMismatchError,
    counted,
    did_you_mean,
    listed,
)
from transition.internal import _fs

__all__ = [
    "CheckpointEntry",
    "DestinationExistsError",
    "inspect_checkpoint",
    "format_inspection",
    "select_names",
    "write_checkpoint",
    "convert_checkpoint",
    "average_checkpoints",
]


class DestinationExistsError(CheckpointError):
    """The checkpoint to write exists already; `advice` is how to overwrite it (`overwrite=True`, or the command
    line's `--force`: `with_advice` gives the message for it)."""

    def __init__(self, path: str, advice: str):
        super().__init__(f"{path} exists already; delete it or pass {advice}")
        self.path = path

    def with_advice(self, advice: str) -> DestinationExistsError:
        return DestinationExistsError(self.path, advice)


class CheckpointEntry(NamedTuple):
    """One array of a checkpoint (a tuple, so `name, shape, dtype, nbytes = entry` works)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


def inspect_checkpoint(path: str | os.PathLike | CheckpointReader) -> list[CheckpointEntry]:
    """Names, shapes, dtypes and sizes of every array in a checkpoint (a path or an open reader), sorted by name,
    without reading values."""
    if isinstance(path, CheckpointReader):
        return [CheckpointEntry(n, path.shape(n), path.dtype(n), path.nbytes(n)) for n in path.names()]
    with open_checkpoint(path) as reader:
        return inspect_checkpoint(reader)


def human_size(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_inspection(entries: Sequence[CheckpointEntry], *, path: str | None = None) -> str:
    """A table for people: one row per array, then the total count, elements and bytes."""
    rows = [(e.name, "x".join(map(str, e.shape)) or "scalar", str(e.dtype), human_size(e.nbytes)) for e in entries]
    header = ("name", "shape", "dtype", "size")
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(4)]
    lines = [f"checkpoint {path}"] if path else []
    fmt = "{:<%d}  {:<%d}  {:<%d}  {:>%d}" % tuple(widths)
    lines.append(fmt.format(*header))
    lines.extend(fmt.format(*r) for r in rows)
    total = sum(e.nbytes for e in entries)
    elements = sum(int(np.prod(e.shape, dtype=np.int64)) for e in entries)
    lines.append(f"total: {counted(len(entries), 'array')}, {counted(elements, 'element')}, {human_size(total)} "
                 f"({counted(total, 'byte')})")
    return "\n".join(lines)


def select_names(names: Iterable[str], only: Iterable[str]) -> list[str]:
    """The names that `only` selects: an entry selects the name equal to it and every name under it (`entry/...`);
    an entry ending in '/' selects only the names under it. An entry that selects nothing is a ConfigError."""
    names = list(names)
    selected: set[str] = set()
    for entry in only:
        key = strip_tensor_suffix(entry)
        under = key if key.endswith("/") else key + "/"
        hits = [n for n in names if (n == key and not key.endswith("/")) or n.startswith(under)]
        if not hits:
            raise ConfigError(
                f"--only / only_names entry {entry!r} matches no name in the checkpoint{did_you_mean(key, names)}; "
                f"`transition inspect` lists the names"
            )
        selected.update(hits)
    return sorted(selected)


def _tmp_name(path: str) -> str:
    directory, base = os.path.split(path)
    return os.path.join(directory, f".{base}.tmp-{uuid.uuid4().hex[:12]}")


def _npz_safe(name: str, value: np.ndarray, dst: str) -> None:
    if value.dtype.hasobject or value.dtype.kind not in "biufc":
        raise CheckpointError(
            f"cannot write {name!r} ({value.dtype}) to the .npz {dst}: numpy's format has no such dtype; write a TF "
            f"bundle instead (a dst without .npz)"
        )


def _write_npz(values: Mapping[str, np.ndarray], dst: str) -> None:
    for name, value in values.items():
        _npz_safe(name, value, dst)
    tmp = _tmp_name(dst)
    try:
        with _fs.open_binary(tmp, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, value in values.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as fp:
                    np.lib.format.write_array(fp, np.require(value, requirements='C'), allow_pickle=False)
        _fs.rename(tmp, dst)
    except Exception as exc:  # noqa: BLE001 - OSError, tf.errors.OpError for URLs
        raise CheckpointError(f"cannot write {dst}: {exc}; check the directory and free space") from exc
    finally:
        if _fs.exists(tmp):
            _fs.remove(tmp)


def _tf_files(prefix: str) -> list[str]:
    """The `.index` and `.data-*` files of the bundle at `prefix` (none where its directory cannot be listed)."""
    directory, base = os.path.split(prefix)
    try:
        listing = _fs.listdir(directory or ".")
    except OSError:
        return []
    return [os.path.join(directory, f) for f in listing
            if f == base + INDEX_SUFFIX or (f.startswith(base + ".data-") and parse_data_suffix(f) is not None)]


def _write_tf(values: Mapping[str, np.ndarray], dst: str) -> None:
    tmp = _tmp_name(dst)
    try:
        write_bundle(tmp, {n: np.require(v, requirements="C") for n, v in values.items()})
        old = _tf_files(dst)
        written = sorted(_tf_files(tmp), key=lambda f: f.endswith(INDEX_SUFFIX))  # data first, index last
        for f in written:
            final = dst + f[len(tmp) :]
            _fs.rename(f, final)
            if final in old:
                old.remove(final)
        for f in old:  # stale shards of an overwritten checkpoint
            _fs.remove(f)
    except CheckpointError:  # already says what is wrong (e.g. an array of a dtype a bundle cannot hold)
        raise
    except Exception as exc:
        raise CheckpointError(
            f"cannot write the TF checkpoint {dst}: {exc}; check the directory and free space"
        ) from exc
    finally:
        for f in _tf_files(tmp):
            _fs.remove(f)


def write_checkpoint(values: Mapping[str, np.ndarray], dst: str | os.PathLike, *, overwrite: bool = False) -> str:
    """Write {name: array} as .npz (dst ending in .npz) or as a TF bundle at the prefix dst; returns dst."""
    dst = os.path.expanduser(os.fspath(dst))
    if not values:
        raise CheckpointError(f"nothing to write to {dst}: no arrays selected")
    is_npz = dst.endswith(".npz")
    if strip_tf_suffix(dst) != dst:
        raise ConfigError(f"give the destination TF checkpoint as a prefix, not a file inside it: {dst}")
    exists = _fs.exists(dst) if is_npz else _fs.exists(dst + INDEX_SUFFIX)
    if exists and not overwrite:
        raise DestinationExistsError(dst, "overwrite=True")
    _fs.makedirs(os.path.dirname(dst) or ".")
    values = {k: np.asarray(v) for k, v in values.items()}
    (_write_npz if is_npz else _write_tf)(values, dst)
    return dst


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    only_names: Iterable[str] | None = None,
    exact_names: Iterable[str] | Mapping[str, Sequence[int]] | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Copy a checkpoint (any format `open_checkpoint` reads) to .npz or a TF bundle; returns the names written.

    `only_names`: names or prefixes to keep (see `select_names`); each must match something. `exact_names`: names
    to keep as they are (e.g. the `layer/param` names a network needs, `Network.param_variables()`, without the
    optimizer's `layer/param/Adam`); each must be in the checkpoint, and where `exact_names` maps names to shapes
    (e.g. {name: v.shape for name, v in network.param_variables().items()}) have that shape. Given both, the union
    is kept.
    """
    with open_checkpoint(src) as reader:
        if only_names is None and exact_names is None:
            names = reader.names()
        else:
            names = select_names(reader.names(), list(only_names or ()))
            if exact_names is not None:
                exact = list(exact_names)
                _require_names(reader.names(), exact, reader.path)
                if isinstance(exact_names, Mapping):
                    _require_shapes(reader, exact_names)
                names = sorted(set(names) | {strip_tensor_suffix(n) for n in exact})
        values = {n: reader.read(n) for n in names}
    write_checkpoint(values, dst, overwrite=overwrite)
    return names


def _require_names(reader_names: Iterable[str], needed: Iterable[str], src: str) -> None:
    """Raise MissingParamsError listing every needed name not in the checkpoint (with close matches)."""
    have = set(reader_names)
    missing = [n for n in needed if strip_tensor_suffix(n) not in have]
    if missing:
        hints = listed((f"{n!r}{did_you_mean(n, have)}" for n in missing), sep="; ")
        raise MissingParamsError(f"checkpoint {src} lacks {len(missing)} of the {counted(len(set(needed)), 'variable')} "
                                 f"asked for: {hints}; convert from a checkpoint of "
                                 f"this network, or check the network description")


def _require_shapes(reader: CheckpointReader, shapes: Mapping[str, Sequence[int]]) -> None:
    """Raise ShapeMismatchError listing every name whose shape in the checkpoint differs from the one asked for."""
    wrong = [(n, tuple(int(d) for d in shape), reader.shape(strip_tensor_suffix(n))) for n, shape in shapes.items()
             if tuple(int(d) for d in shape) != tuple(reader.shape(strip_tensor_suffix(n)))]
    if wrong:
        details = listed((f"{n!r} is {list(have)} there, the network needs {list(want)}" for n, want, have in wrong),
                         sep="; ")
        raise ShapeMismatchError(f"checkpoint {reader.path} does not fit the network: {counted(len(wrong), 'variable')} "
                                 f"of another shape: {details}; convert from a checkpoint of this network, or "
                                 "check the network description")


def average_checkpoints(
    paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, overwrite: bool = False
) -> list[str]:
    """Write the element-wise mean of checkpoints with the same variables to `out`; returns the names.

    Floating (and complex) arrays are averaged in float64 and cast back; integer and bool arrays (step counters)
    are taken from the last checkpoint. Differing names, shapes or dtypes are an error naming them.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ConfigError("average_checkpoints needs at least one checkpoint")
    readers = [open_checkpoint(p) for p in paths]
    try:
        first = readers[0]
        names = first.names()
        for reader in readers[1:]:
            only_first = sorted(set(names) - set(reader.names()))
            only_this = sorted(set(reader.names()) - set(names))
            if only_first or only_this:
                raise CheckpointError(
                    f"checkpoints {first.path} and {reader.path} differ in variables: only in the first "
                    f"{listed(only_first)}, only in the second {listed(only_this)}; average checkpoints of one model "
                    "only"
                )
            for n in names:
                if reader.shape(n) != first.shape(n) or reader.dtype(n) != first.dtype(n):
                    raise ShapeMismatchError(
                        f"variable {n!r} is {first.dtype(n)}{list(first.shape(n))} in {first.path} but "
                        f"{reader.dtype(n)}{list(reader.shape(n))} in {reader.path}; "
                        f"average checkpoints of one model only"
                    )
        values: dict[str, np.ndarray] = {}
        for n in names:
            dtype = first.dtype(n)
            if dtype.kind in "iub":
                values[n] = readers[-1].read(n)
                continue
            acc_dtype = np.complex128 if dtype.kind == "c" else np.float64
            acc = np.zeros(first.shape(n), dtype=acc_dtype)
            for reader in readers:
                acc += reader.read(n).astype(acc_dtype)
            values[n] = (acc / len(readers)).astype(dtype)
    finally:
        for reader in readers:
            reader.close()
    write_checkpoint(values, out, overwrite=overwrite)
    return names
