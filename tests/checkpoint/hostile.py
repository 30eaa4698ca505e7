"""Hostile checkpoint files for tests: each maker writes one into a directory and returns its path, the start of
the message the reader must refuse it with, and the files outside it that must not be opened.

Used by `test_hostile_files.py` (the messages) and the fuzz runner (`fuzz_runner.py`: memory and opened files,
as seeds of the mutations)."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable

import numpy as np

SENTINEL_SECRET = "secret.bin"  # in the sentinel directory: a file nothing may read
SENTINEL_H5 = "outside.h5"  # in the sentinel directory: an HDF5 file nothing may open

Maker = Callable[[str, str], tuple[str, str]]  # (case directory, sentinel directory) -> (path, expected message)


def make_sentinels(directory: str) -> None:
    import h5py

    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, SENTINEL_SECRET), "wb") as f:
        f.write(b"root:x:0:0:secret\n" * 64)
    with h5py.File(os.path.join(directory, SENTINEL_H5), "w") as f:
        f.create_dataset("data", data=np.arange(64, dtype=np.float32))
        f.create_dataset("vars/0", data=np.arange(64, dtype=np.float32))


def _h5(directory: str, name: str = "m.weights.h5"):
    import h5py

    path = os.path.join(directory, name)
    return path, h5py.File(path, "w")


def h5_external_storage(directory: str, sentinel: str) -> tuple[str, str]:
    path, f = _h5(directory)
    with f:
        f.create_dataset("layers/dense/vars/0", data=np.ones((2, 2), np.float32))
        target = os.path.join(sentinel, SENTINEL_SECRET)
        f.create_dataset("layers/dense/vars/1", shape=(1152,), dtype="u1", external=[(target, 0, 1152)])
    return path, "keeps its values in external files"


def h5_external_link(directory: str, sentinel: str) -> tuple[str, str]:
    import h5py

    path, f = _h5(directory)
    with f:
        f.create_dataset("layers/dense/vars/0", data=np.ones((2, 2), np.float32))
        f["layers/other"] = h5py.ExternalLink(os.path.join(sentinel, SENTINEL_H5), "/vars")
    return path, "is an external link"


def h5_soft_link(directory: str, sentinel: str) -> tuple[str, str]:
    import h5py

    path, f = _h5(directory)
    with f:
        f.create_dataset("layers/dense/vars/0", data=np.ones((2, 2), np.float32))
        f["layers/alias"] = h5py.SoftLink("/layers/dense")
    return path, "is a soft link"


def h5_virtual(directory: str, sentinel: str) -> tuple[str, str]:
    import h5py

    path, f = _h5(directory)
    with f:
        layout = h5py.VirtualLayout(shape=(64,), dtype="f4")
        layout[:] = h5py.VirtualSource(os.path.join(sentinel, SENTINEL_H5), "data", shape=(64,))
        f.create_virtual_dataset("layers/dense/vars/0", layout)
    return path, "is a virtual dataset"


def h5_hard_link_alias(directory: str, sentinel: str) -> tuple[str, str]:
    path, f = _h5(directory)
    with f:
        f.create_dataset("layers/dense/vars/0", data=np.ones((64, 64), np.float32))
        f["layers/dense/vars/1"] = f["layers/dense/vars/0"]
    return path, "are the same object"


def h5_sparse_4gib(directory: str, sentinel: str) -> tuple[str, str]:
    """A few KB declaring 4 GiB: a chunked dataset none of whose chunks was ever written (read as its fill)."""
    path, f = _h5(directory)
    with f:
        f.create_dataset("layers/dense/vars/0", shape=(1 << 30,), dtype="f4", chunks=(1 << 20,))
    return path, "dataset /layers/dense/vars/0 declares 4294967296 bytes from 0 stored bytes"


def h5_unwritten_contiguous(directory: str, sentinel: str) -> tuple[str, str]:
    path, f = _h5(directory)
    with f:
        f.create_dataset("layers/dense/vars/0", shape=(1 << 29,), dtype="f8")
    return path, "never written: its fill value"


def h5_chunk_bomb(directory: str, sentinel: str) -> tuple[str, str]:
    """A deflated chunk declared as 256 MiB of a 2 GiB dataset, written directly (HDF5 does not check it)."""
    path, f = _h5(directory)
    with f:
        ds = f.create_dataset("layers/dense/vars/0", shape=(1 << 29,), dtype="f4", chunks=(1 << 26,),
                              compression="gzip")
        ds.id.write_direct_chunk((0,), zlib.compress(bytes(1 << 16)))
    return path, "declares"


def keras_zip_bomb(directory: str, sentinel: str) -> tuple[str, str]:
    """A .keras whose model.weights.h5 member declares 6 GiB (its stream is a few KB)."""
    path = os.path.join(directory, "m.keras")
    with open(path, "wb") as f:
        f.write(zip_bytes([("metadata.json", b"{}", None), ("model.weights.h5", bytes(1 << 16), 6 << 30)]))
    return path, "member 'model.weights.h5' declares 6442450944 bytes"


def npz_bomb(directory: str, sentinel: str) -> tuple[str, str]:
    path = os.path.join(directory, "m.npz")
    header = _npy_header((1 << 30,), "<f4")
    with open(path, "wb") as f:
        f.write(zip_bytes([("a.npy", header + bytes(1 << 16), len(header) + (4 << 30))]))
    return path, "member 'a.npy' declares"


def npz_dropped_members(directory: str, sentinel: str) -> tuple[str, str]:
    """Three of six central directory entries removed (the end record fixed to match): zipfile lists 3 arrays."""
    buf = io.BytesIO()
    np.savez(buf, **{f"a{i}": np.full(5, i, np.float32) for i in range(6)})
    data = buf.getvalue()
    path = os.path.join(directory, "m.npz")
    with open(path, "wb") as f:
        f.write(_drop_central_entries(data, keep=3))
    return path, "belong to no member"


def npz_overlapping_members(directory: str, sentinel: str) -> tuple[str, str]:
    """Two central directory entries for one local header (a name changed): the same bytes under two names."""
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(1000, np.float32), b=np.zeros(1, np.float32))
    data = bytearray(buf.getvalue())
    cd = data.rindex(b"PK\x01\x02")  # the second entry points at the first member's local header
    first_offset = struct.unpack_from("<I", data, data.index(b"PK\x01\x02") + 42)[0]
    struct.pack_into("<I", data, cd + 42, first_offset)
    path = os.path.join(directory, "m.npz")
    with open(path, "wb") as f:
        f.write(bytes(data))
    return path, "differs from its central directory entry"


def npz_header_larger_than_member(directory: str, sentinel: str) -> tuple[str, str]:
    path = os.path.join(directory, "m.npz")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.npy", _npy_header((1 << 28,), "<f8") + bytes(64))
    return path, "but its header declares"


def _npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    text = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def zip_bytes(members: list[tuple[str, bytes, int | None]]) -> bytes:
    """A zip of deflated members; a member's declared size (None: its real size) may lie, and its crc32 is then that
    of its real bytes."""
    out, central = bytearray(), bytearray()
    for name, data, declared in members:
        packed = zlib.compress(data)[2:-4]
        size = len(data) if declared is None else declared
        zip64 = size >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, len(packed)) if zip64 else b""
        sizes = (0xFFFFFFFF, 0xFFFFFFFF) if zip64 else (len(packed), size)
        fields = struct.pack("<HHHHHIII", 45, 0, 8, 0, 0, zlib.crc32(data), *sizes)
        offset = len(out)
        out += b"PK\x03\x04" + fields + struct.pack("<HH", len(name), len(extra)) + name.encode() + extra + packed
        central += (b"PK\x01\x02" + struct.pack("<H", 45) + fields + struct.pack("<HHHHHII", len(name), len(extra), 0,
                                                                                   0, 0, 0, offset)
                    + name.encode() + extra)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central) + end


def _drop_central_entries(data: bytes, keep: int) -> bytes:
    end = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<II", data, end + 12)
    entries, pos = [], cd_offset
    while pos < cd_offset + cd_size:
        nlen, elen, clen = struct.unpack_from("<HHH", data, pos + 28)
        entries.append(data[pos : pos + 46 + nlen + elen + clen])
        pos += 46 + nlen + elen + clen
    central = b"".join(entries[:keep])
    record = bytearray(data[end:])
    struct.pack_into("<HHII", record, 8, keep, keep, len(central), cd_offset)
    return data[:cd_offset] + central + bytes(record)


MAKERS: dict[str, Maker] = {
    "h5 external storage": h5_external_storage,
    "h5 external link": h5_external_link,
    "h5 soft link": h5_soft_link,
    "h5 virtual dataset": h5_virtual,
    "h5 hard link alias": h5_hard_link_alias,
    "h5 sparse 4 GiB": h5_sparse_4gib,
    "h5 unwritten contiguous": h5_unwritten_contiguous,
    "h5 chunk bomb": h5_chunk_bomb,
    ".keras zip bomb": keras_zip_bomb,
    "npz bomb": npz_bomb,
    "npz dropped members": npz_dropped_members,
    "npz overlapping members": npz_overlapping_members,
    "npz header larger than member": npz_header_larger_than_member,
}


class OpenWatch:
    """Reports every open or read of a file in `directory`, by any process (inotify; Linux only: `available`)."""

    IN_ACCESS, IN_OPEN = 0x1, 0x20

    def __init__(self, directory: str):
        import ctypes

        self._fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            mask = self.IN_ACCESS | self.IN_OPEN
            if self._fd >= 0 and libc.inotify_add_watch(self._fd, directory.encode(), mask) < 0:
                os.close(self._fd)
                self._fd = -1
        except (OSError, AttributeError):
            self._fd = -1
        self.available = self._fd >= 0

    def events(self) -> list[str]:
        """The names opened or read since the last call."""
        names = []
        while self.available:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            pos = 0
            while pos + 16 <= len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16 : pos + 16 + length].rstrip(b"\0").decode(errors="replace")
                names.append(f"{name or '.'} ({'open' if mask & self.IN_OPEN else 'read'})")
                pos += 16 + length
        return names

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
