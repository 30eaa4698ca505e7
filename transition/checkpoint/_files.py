"""Reading numpy (`.npz`, `.npy`) and Keras (`.weights.h5`) files as checkpoints. Nothing is ever unpickled.

Names:
- `.npz`: the member names, with a tensorpack-style `:0` suffix removed (`conv0/W:0` -> `conv0/W`).
- `.npy`: only a 0-d structured array (a record with one named field per array) is a dict without pickle; its field
  names are the names. A `.npy` holding a Python dict is a pickled object and is refused.
- Keras 3 `.weights.h5`: the HDF5 dataset path with the `layers` container groups dropped, e.g.
  `/layers/dense/vars/0` -> `dense/vars/0`, `/optimizer/vars/3` -> `optimizer/vars/3`. Keras 3 stores variables by
  index under the layer's class-derived path, not by the layer's own name.
- Keras 3 `.keras` archives: the `model.weights.h5` inside, named as above.
- Legacy Keras (`save_weights` of Keras 2, root attribute `layer_names`): each layer's `weight_names` without `:0`,
  e.g. `dense/kernel`.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from transition.checkpoint._reader_base import (
    CheckpointReader,
    Shape,
    first_line,
    strip_tensor_suffix,
)
from transition.errors import CheckpointError
from transition.internal import _fs

__all__ = ["NpzReader", "NpyReader", "KerasH5Reader"]


def _read_npy_header(fp) -> tuple[Shape, np.dtype]:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        shape, _, dtype = np.lib.format._read_array_header(fp, version)  # 3.0: no public reader
    return tuple(int(d) for d in shape), np.dtype(dtype)


def _scan_or_fail(path: str, what: str, expected: str, scan, release=lambda: None):
    """`scan(path)`; on failure release what it opened and raise a CheckpointError naming the path."""
    try:
        return scan(path)
    except Exception as exc:  # BadZipFile, OSError, ValueError (bad header), h5py errors, our CheckpointErrors
        release()
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"cannot read {path} as {what}: {first_line(exc)}. The file is damaged or not {expected}"
        ) from exc


_PICKLE_HINT = (
    "refusing to unpickle it (unpickling runs arbitrary code); save plain arrays instead, "
    "e.g. np.savez(path, **{name: array})"
)


class NpzReader(CheckpointReader):
    """An `.npz` archive of named arrays (`np.savez`, tensorpack's model zoo)."""

    kind = "npz"

    def __init__(self, path: str):
        self._zip: zipfile.ZipFile | None = None
        self._source: object = None
        entries = _scan_or_fail(path, "an .npz archive", "numpy's format; restore it or re-save it with np.savez",
                                self._scan, self._release)
        super().__init__(path, entries)

    def _scan(self, path: str) -> dict[str, tuple[Shape, np.dtype]]:
        self._source = _fs.readable(path)  # the local path, or an open file object for a URL
        self._zip = zipfile.ZipFile(self._source)
        self._members: dict[str, str] = {}
        entries: dict[str, tuple[Shape, np.dtype]] = {}
        for member in self._zip.namelist():
            raw = member[:-4] if member.endswith(".npy") else member
            name = strip_tensor_suffix(raw)
            if name in self._members:
                raise CheckpointError(
                    f"{path} holds both {self._members[name]!r} and {member!r}, which are the same name "
                    f"{name!r} (a ':0' suffix is ignored); keep only one of them"
                )
            with self._zip.open(member) as fp:
                shape, dtype = _read_npy_header(fp)
            if dtype.hasobject:
                raise CheckpointError(f"{path} holds a pickled object array under {raw!r}; {_PICKLE_HINT}")
            self._members[name] = member
            entries[name] = (shape, dtype)
        return entries

    def _read(self, name: str) -> np.ndarray:
        with self._zip.open(self._members[name]) as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)

    def _release(self) -> None:
        if self._zip is not None:
            self._zip.close()
        _close_source(self._source)


class NpyReader(CheckpointReader):
    """A `.npy` file holding a 0-d structured array: one field per named array."""

    kind = "npy"

    def __init__(self, path: str):
        shape, dtype = _scan_or_fail(path, "a .npy file", "numpy's format; restore it or re-save it with np.savez",
                                     _npy_file_header)
        if dtype.hasobject:
            raise CheckpointError(
                f"{path} holds a pickled Python object (e.g. a dict saved with np.save), not arrays; {_PICKLE_HINT}"
            )
        if dtype.names is None or shape != ():
            raise CheckpointError(
                f"{path} holds one unnamed {dtype}{list(shape)} array, not named arrays; a checkpoint needs "
                f"names: save it with np.savez(path, **{{name: array}})"
            )
        entries = {}
        for field in dtype.names:
            sub = dtype.fields[field][0]
            entries[strip_tensor_suffix(field)] = (tuple(sub.shape), np.dtype(sub.base))
        self._fields = {strip_tensor_suffix(f): f for f in dtype.names}
        super().__init__(path, entries)

    def _read(self, name: str) -> np.ndarray:
        if _fs.is_local(self.path):
            record = np.load(_fs.local_path(self.path), allow_pickle=False, mmap_mode="r")
            return np.array(record[self._fields[name]])
        with _fs.open_binary(self.path) as fp:
            return np.array(np.load(fp, allow_pickle=False)[self._fields[name]])


def _npy_file_header(path: str) -> tuple[Shape, np.dtype]:
    with _fs.open_binary(path) as fp:
        return _read_npy_header(fp)


def _close_source(source: object) -> None:
    """Close what `_fs.readable` opened (nothing for a local path)."""
    close = getattr(source, "close", None)
    if close is not None:
        close()


def _h5_datasets(group, prefix: str = ""):
    import h5py

    for key in group:
        item = group[key]
        path = f"{prefix}/{key}"
        if isinstance(item, h5py.Dataset):
            yield path, item
        elif isinstance(item, h5py.Group):
            yield from _h5_datasets(item, path)


def _as_str(x) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


class KerasH5Reader(CheckpointReader):
    """A Keras weights file: Keras 3 `.weights.h5`, or the legacy Keras 2 HDF5 format."""

    kind = "keras_h5"

    def __init__(self, path: str):
        self._file = None
        self._source: object = None
        entries = _scan_or_fail(path, "a Keras HDF5 weights file", "HDF5; restore it or re-save it with "
                                "model.save_weights", self._scan, self._release)
        super().__init__(path, entries)

    def _scan(self, path: str) -> dict[str, tuple[Shape, np.dtype]]:
        import h5py

        self._source = _fs.readable(path)  # the local path, or an open file object for a URL
        if path.endswith(".keras"):  # a zip holding model.weights.h5
            with zipfile.ZipFile(self._source) as zf:
                self._file = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
        else:
            self._file = h5py.File(self._source, "r")
        root = self._file
        if "layer_names" not in root.attrs and "model_weights" in root:
            root = root["model_weights"]  # legacy full-model .h5
        self._datasets: dict[str, object] = {}
        if "layer_names" in root.attrs:
            self.kind = "keras_legacy_h5"
            pairs = []
            for layer in root.attrs["layer_names"]:
                group = root[_as_str(layer)]
                for weight in group.attrs.get("weight_names", []):
                    pairs.append((strip_tensor_suffix(_as_str(weight)), group[_as_str(weight)]))
        else:
            pairs = [
                ("/".join(p for p in path_.strip("/").split("/") if p != "layers"), ds)
                for path_, ds in _h5_datasets(root)
            ]
        entries: dict[str, tuple[Shape, np.dtype]] = {}
        for name, ds in pairs:
            if name in entries:
                raise CheckpointError(
                    f"{path} has two datasets for the name {name!r} ({self._datasets[name].name!r} and "
                    f"{ds.name!r}); read it with h5py instead"
                )
            if ds.dtype.kind not in "biufc":
                continue  # strings / metadata, not params
            self._datasets[name] = ds
            entries[name] = (tuple(int(d) for d in ds.shape), np.dtype(ds.dtype))
        return entries

    def _read(self, name: str) -> np.ndarray:
        return np.asarray(self._datasets[name][()])

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()
        _close_source(self._source)
