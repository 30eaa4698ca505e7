"""Reading numpy (`.npz`, `.npy`) and Keras (`.weights.h5`, `.keras`) files as checkpoints. Nothing is ever
unpickled, and every size a header declares is checked against the file before anything is allocated.

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

Reading: zip archives through `_zip.ZipArchive` (strict central directory, members by their header sizes, crc32
checked), each `.npy` member's header parsed from its first bytes and its size required to be exactly header +
shape x itemsize; a `.npy` file likewise; HDF5 through `_h5` (structure in a child process, values read with
bounds). `inspect` reads no values of any of them (a deflated `model.weights.h5` in a `.keras` is inflated once,
within the inflate allowance, to read its structure).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from transition.checkpoint._h5 import H5Image, read_h5_dataset, scan_h5
from transition.checkpoint._limits import InflateBudget
from transition.checkpoint._reader_base import (
    CheckpointReader,
    Shape,
    first_line,
    strip_tensor_suffix,
)
from transition.checkpoint._zip import STORED, BadZip, ZipArchive
from transition.errors import CheckpointError, listed
from transition.internal import _fs
from transition.internal._aligned import aligned_empty

__all__ = ["NpzReader", "NpyReader", "KerasH5Reader"]

_NPY_HEAD = 10_000 + 12  # numpy's max_header_size for safe loading, plus magic, version and length
_MAX_ELEMENTS = 1 << 62
_KERAS_WEIGHTS = "model.weights.h5"


def _npy_header(head: bytes) -> tuple[Shape, np.dtype, bool, int]:
    """(shape, dtype, fortran order, header length) of the bytes that start a `.npy` file."""
    fp = io.BytesIO(head)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        shape, fortran, dtype = np.lib.format._read_array_header(fp, version)  # 3.0: no public reader
    shape = tuple(int(d) for d in shape)
    if math.prod(shape) > _MAX_ELEMENTS or np.dtype(dtype).itemsize == 0 and math.prod(shape):
        raise ValueError(f"a bad shape {list(shape)} for dtype {dtype}")
    return shape, np.dtype(dtype), bool(fortran), fp.tell()


def _scan_or_fail(path: str, what: str, expected: str, scan, release=lambda: None):
    """`scan(path)`; on failure release what it opened and raise a CheckpointError naming the path."""
    try:
        return scan(path)
    except Exception as exc:  # BadZip, OSError, ValueError (bad header), our CheckpointErrors
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
_NUMPY_HINT = "numpy's format; restore it or re-save it with np.savez"


def _check_no_pickle(path: str, what: str, dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise CheckpointError(f"{path} holds a pickled object array under {what}; {_PICKLE_HINT}")


class NpzReader(CheckpointReader):
    """An `.npz` archive of named arrays (`np.savez`, `np.savez_compressed`, tensorpack's model zoo)."""

    kind = "npz"

    def __init__(self, path: str):
        self._zip: ZipArchive | None = None
        entries = _scan_or_fail(path, "an .npz archive", _NUMPY_HINT, self._scan, self._release)
        super().__init__(path, entries)

    def _scan(self, path: str) -> dict[str, tuple[Shape, np.dtype]]:
        self._zip = ZipArchive(path)
        self._members: dict[str, tuple[Any, int, bool]] = {}  # name -> (member, header length, fortran order)
        entries: dict[str, tuple[Shape, np.dtype]] = {}
        for member_name, member in self._zip.members.items():
            raw = member_name[:-4] if member_name.endswith(".npy") else member_name
            name = strip_tensor_suffix(raw)
            if name in entries:
                raise CheckpointError(
                    f"{path} holds two members for the name {name!r} (a ':0' suffix is ignored), one of them "
                    f"{member_name!r}; keep only one of them"
                )
            try:
                shape, dtype, fortran, head = _npy_header(self._zip.read_head(member, _NPY_HEAD))
            except BadZip:
                raise
            except (ValueError, EOFError) as exc:
                raise ValueError(f"member {member_name!r}: {first_line(exc)}") from None
            _check_no_pickle(path, repr(raw), dtype)
            if head + math.prod(shape) * dtype.itemsize != member.size:
                raise ValueError(f"member {member_name!r} holds {member.size} bytes, but its header declares "
                                 f"{dtype}{list(shape)} ({head} + {math.prod(shape) * dtype.itemsize} bytes)")
            self._members[name] = (member, head, fortran)
            entries[name] = (shape, dtype)
        return entries

    def _read(self, name: str) -> np.ndarray:
        member, head, fortran = self._members[name]
        shape, dtype = self._entries[name]
        buf = aligned_empty(member.size - head)
        self._zip.read_into(member, head, buf)
        return buf.view(dtype).reshape(shape, order="F" if fortran else "C")

    def _release(self) -> None:
        if self._zip is not None:
            self._zip.close()


class NpyReader(CheckpointReader):
    """A `.npy` file holding a 0-d structured array: one field per named array."""

    kind = "npy"

    def __init__(self, path: str):
        self._file: _fs.RandomAccessFile | None = None
        shape, dtype, head = _scan_or_fail(path, "a .npy file", _NUMPY_HINT, self._scan, self._release)
        if dtype.names is None or shape != ():
            self._release()
            raise CheckpointError(
                f"{path} holds one unnamed {dtype}{list(shape)} array, not named arrays; a checkpoint needs "
                f"names: save it with np.savez(path, **{{name: array}})"
            )
        entries = {}
        self._fields: dict[str, tuple[np.dtype, int]] = {}  # name -> (field dtype, byte offset in the file)
        for field in dtype.names:
            sub, offset = dtype.fields[field][:2]
            name = strip_tensor_suffix(field)
            if name in entries:
                self._release()
                raise CheckpointError(f"{path} has two fields for the name {name!r} (a ':0' suffix is ignored); "
                                      "keep only one of them")
            entries[name] = (tuple(sub.shape), np.dtype(sub.base))
            self._fields[name] = (sub, head + offset)
        super().__init__(path, entries)

    def _scan(self, path: str) -> tuple[Shape, np.dtype, int]:
        self._file = _fs.open_random(path)
        shape, dtype, _, head = _npy_header(self._file.read(0, min(_NPY_HEAD, self._file.size)))
        if dtype.hasobject:
            raise CheckpointError(
                f"{path} holds a pickled Python object (e.g. a dict saved with np.save), not arrays; {_PICKLE_HINT}"
            )
        if head + math.prod(shape) * dtype.itemsize != self._file.size:
            raise ValueError(f"the file holds {self._file.size} bytes, but its header declares {dtype}{list(shape)} "
                             f"({head} + {math.prod(shape) * dtype.itemsize} bytes)")
        return shape, dtype, head

    def _read(self, name: str) -> np.ndarray:
        sub, offset = self._fields[name]
        buf = aligned_empty(sub.itemsize)
        self._file.read_into(buf, offset)
        return buf.view(sub.base).reshape(sub.shape)

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()


class KerasH5Reader(CheckpointReader):
    """A Keras weights file: Keras 3 `.weights.h5` (or the one in a `.keras` archive), or legacy Keras 2 HDF5."""

    kind = "keras_h5"

    def __init__(self, path: str):
        self._closers: list[Any] = []
        self._crc_pending: Any = None  # a stored .keras member whose crc32 is checked on the first read
        entries = _scan_or_fail(path, "a Keras HDF5 weights file", "HDF5; restore it or re-save it with "
                                "model.save_weights", self._scan, self._release)
        super().__init__(path, entries)

    def _image(self, path: str, budget: InflateBudget) -> H5Image:
        if not path.endswith(".keras"):
            source = _fs.open_random(path)
            self._closers.append(source)
            return H5Image(path, source=source)
        archive = ZipArchive(path, budget=budget)
        self._closers.append(archive)
        member = archive.members.get(_KERAS_WEIGHTS)
        if member is None:
            raise CheckpointError(f"{path} is a .keras archive without {_KERAS_WEIGHTS} (members: "
                                  f"{listed(sorted(archive.members))}); save the model with model.save")
        where = f"{path} (its {_KERAS_WEIGHTS})"
        if member.method == STORED:
            self._crc_pending = (archive, member)
            return H5Image(where, source=archive.file, start=member.data_offset, length=member.size)
        data = bytearray(member.size)
        archive.read_into(member, 0, data)
        return H5Image(where, data=data)

    def _scan(self, path: str) -> dict[str, tuple[Shape, np.dtype]]:
        budget = InflateBudget(path)
        self._h5 = self._image(path, budget)
        legacy, datasets = scan_h5(self._h5, budget)
        if legacy:
            self.kind = "keras_legacy_h5"
        self._datasets = {}
        entries: dict[str, tuple[Shape, np.dtype]] = {}
        for ds in datasets:
            if ds.name in entries:
                raise CheckpointError(
                    f"{path} has two datasets for the name {ds.name!r} ({self._datasets[ds.name].path!r} and "
                    f"{ds.path!r}); read it with h5py instead"
                )
            self._datasets[ds.name] = ds
            entries[ds.name] = (ds.shape, ds.dtype.newbyteorder("="))
        return entries

    def _read(self, name: str) -> np.ndarray:
        if self._crc_pending is not None:
            archive, member = self._crc_pending
            archive.check_crc(member)
            self._crc_pending = None
        return read_h5_dataset(self._h5, self._datasets[name])

    def _release(self) -> None:
        closers, self._closers = self._closers, []
        for c in closers:
            c.close()
