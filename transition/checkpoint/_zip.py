"""A strict reader of zip archives (`.npz`, `.keras`), written for untrusted files.

`ZipArchive(path)` parses the end record (zip64 too) and the central directory itself and checks every member
against its local header before anything is inflated: the central directory holds exactly the number of entries the
end record says and ends where it should, names are unique, each member's local header agrees with its directory
entry (name, method, sizes, crc32), and the members (local header, data, data descriptor) tile the archive from
byte 0 to the central directory without gap or overlap, so that no member can be dropped, hidden or shared. Only
stored and deflated members, unencrypted, on one disk. Deflated members count against the inflate allowance
(`_limits`) by their declared sizes, at open time.

Members are read by their header sizes: `read_head` inflates at most the bytes asked for; `read_into` fills a
caller's buffer (stored members straight from the file, deflated ones inflated in bounded steps) and checks the
member's crc32 and size over all of its bytes. Any problem is `BadZip` (a ValueError) saying what is wrong.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import attrs

from transition.checkpoint._limits import InflateBudget
from transition.internal import _fs

__all__ = ["BadZip", "ZipMember", "ZipArchive", "STORED", "DEFLATED"]

STORED, DEFLATED = 0, 8
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
_MAX_COMMENT = 0xFFFF
_MAX_MEMBERS = 1 << 20
_STEP = 1 << 20  # bytes of compressed input per inflate step
_U32 = 0xFFFFFFFF


class BadZip(ValueError):
    """The archive is damaged or not a zip this reader accepts."""


@attrs.frozen
class ZipMember:
    name: str
    method: int
    crc32: int
    compressed_size: int
    size: int
    header_offset: int
    flags: int
    data_offset: int = 0  # set once the local header is read
    end: int = 0  # where the member (with its data descriptor) ends


def _zip64_extra(extra: bytes, wanted: list[str], values: dict[str, int]) -> None:
    """Replace the fields in `wanted` (in zip64 order) by the values of the zip64 extra field of `extra`."""
    pos = 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise BadZip("a truncated extra field")
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if len(body) != length:
            raise BadZip("an extra field runs past its header")
        if tag == 1 and wanted:
            sizes = {"disk": 4}
            at = 0
            for field in wanted:
                width = sizes.get(field, 8)
                if at + width > length:
                    raise BadZip("a zip64 extra field is too short")
                values[field] = int.from_bytes(body[at : at + width], "little")
                at += width
            wanted = []
        pos += 4 + length
    if wanted:
        raise BadZip("sizes of 0xFFFFFFFF without a zip64 extra field")


def _check_whole(m: ZipMember, done: int, crc: int) -> None:
    if done != m.size:
        raise BadZip(f"member {m.name!r} holds {done} bytes, its header says {m.size}")
    if crc != m.crc32:
        raise BadZip(f"member {m.name!r}: crc32 mismatch, its bytes changed")


class ZipArchive:
    """The checked members of the zip archive at `path` (see the module docstring)."""

    def __init__(self, path: str, *, budget: InflateBudget | None = None):
        self.path = path
        self._file = _fs.open_random(path)
        try:
            self.members = self._scan(budget if budget is not None else InflateBudget(path))
        except BaseException:
            self._file.close()
            raise

    @property
    def file(self) -> _fs.RandomAccessFile:
        """The open archive (members are read at their `data_offset`)."""
        return self._file

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ZipArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- structure ---
    def _end_record(self) -> tuple[int, int, int, int]:
        """(entries, central directory offset, its size, where it must end) from the (zip64) end record."""
        size = self._file.size
        tail_at = max(0, size - (22 + _MAX_COMMENT))
        tail = self._file.read(tail_at, size - tail_at)
        pos = tail.rfind(_EOCD)
        while pos >= 0 and (len(tail) - pos < 22 or pos + 22 + struct.unpack_from("<H", tail, pos + 20)[0]
                            != len(tail)):
            pos = tail.rfind(_EOCD, 0, pos)
        if pos < 0:
            raise BadZip("no end of central directory record (not a zip archive, or truncated)")
        disk, cd_disk, on_disk, entries, cd_size, cd_offset = struct.unpack_from("<HHHHII", tail, pos + 4)
        end_at = tail_at + pos
        if pos >= 20 and tail[pos - 20 : pos - 16] == _ZIP64_LOCATOR:
            _, zip64_at, _ = struct.unpack_from("<IQI", tail, pos - 16)
            record = self._file.read(zip64_at, 56) if zip64_at + 56 <= end_at - 20 else b""
            if record[:4] != _ZIP64_EOCD:
                raise BadZip("a zip64 end record locator points at no zip64 end record")
            disk, cd_disk, on_disk, entries, cd_size, cd_offset = struct.unpack_from("<IIQQQQ", record, 16)
            end_at = zip64_at
        if disk or cd_disk or on_disk != entries:
            raise BadZip("a multi-disk archive")
        if cd_offset + cd_size != end_at:
            raise BadZip(f"the central directory (bytes {cd_offset}..{cd_offset + cd_size}) does not end where the "
                         f"end record is (byte {end_at})")
        if entries > _MAX_MEMBERS:
            raise BadZip(f"{entries} members")
        return entries, cd_offset, cd_size, end_at

    def _scan(self, budget: InflateBudget) -> dict[str, ZipMember]:
        entries, cd_offset, cd_size, _ = self._end_record()
        directory = self._file.read(cd_offset, cd_size)
        members: dict[str, ZipMember] = {}
        pos = 0
        for _ in range(entries):
            member, pos = self._central_entry(directory, pos)
            if member.name in members:
                raise BadZip(f"member {member.name!r} appears twice")
            members[member.name] = member
        if pos != len(directory):
            raise BadZip(f"the central directory holds more than the {entries} entries its end record counts")
        checked = {name: self._local(m) for name, m in members.items()}
        at = 0
        for m in sorted(checked.values(), key=lambda m: m.header_offset):
            if m.header_offset != at:
                raise BadZip(f"bytes {min(at, m.header_offset)}..{max(at, m.header_offset)} before member "
                             f"{m.name!r} belong to no member (or to two)")
            at = m.end
        if at != cd_offset:
            raise BadZip(f"bytes {at}..{cd_offset} before the central directory belong to no member")
        for m in checked.values():
            if m.method == DEFLATED:
                budget.add(f"member {m.name!r}", m.size, m.compressed_size)
        return checked

    @staticmethod
    def _central_entry(directory: bytes, pos: int) -> tuple[ZipMember, int]:
        if directory[pos : pos + 4] != _CENTRAL or pos + 46 > len(directory):
            raise BadZip("a central directory entry is damaged")
        (flags, method, crc, csize, usize, nlen, elen, clen, disk,
         offset) = struct.unpack_from("<xxxxxxxxHHxxxxIIIHHHHxxxxxxI", directory, pos)
        name_raw = directory[pos + 46 : pos + 46 + nlen]
        extra = directory[pos + 46 + nlen : pos + 46 + nlen + elen]
        end = pos + 46 + nlen + elen + clen
        if end > len(directory):
            raise BadZip("a central directory entry runs past the directory")
        values = {"usize": usize, "csize": csize, "offset": offset, "disk": disk}
        wanted = [f for f, limit in (("usize", _U32), ("csize", _U32), ("offset", _U32), ("disk", 0xFFFF))
                  if values[f] == limit]
        _zip64_extra(extra, wanted, values)
        try:
            name = name_raw.decode("utf-8" if flags & 0x800 else "cp437")
        except UnicodeDecodeError:
            raise BadZip(f"member name {name_raw[:80]!r} is not UTF-8") from None
        if flags & 0x1:
            raise BadZip(f"member {name!r} is encrypted")
        if method not in (STORED, DEFLATED):
            raise BadZip(f"member {name!r} uses compression method {method} (only stored and deflated are read)")
        if values["disk"]:
            raise BadZip("a multi-disk archive")
        if method == STORED and values["csize"] != values["usize"]:
            raise BadZip(f"stored member {name!r} has a compressed size unlike its size")
        member = ZipMember(name, method, crc, values["csize"], values["usize"], values["offset"], flags)
        return member, end

    def _local(self, m: ZipMember) -> ZipMember:
        head = self._file.read(m.header_offset, 30) if m.header_offset + 30 <= self._file.size else b""
        if head[:4] != _LOCAL:
            raise BadZip(f"member {m.name!r}: no local header at byte {m.header_offset}")
        flags, method, crc, csize, usize, nlen, elen = struct.unpack_from("<xxxxxxHHxxxxIIIHH", head)
        name_at = m.header_offset + 30
        if name_at + nlen + elen > self._file.size:
            raise BadZip(f"member {m.name!r}: its local header runs past the end of the archive")
        rest = self._file.read(name_at, nlen + elen)
        if rest[:nlen].decode("utf-8" if flags & 0x800 else "cp437", "replace") != m.name or method != m.method \
                or (flags ^ m.flags) & 0x809:
            raise BadZip(f"member {m.name!r}: its local header differs from its central directory entry")
        data_offset = name_at + nlen + elen
        end = data_offset + m.compressed_size
        if m.flags & 0x8:
            end = self._descriptor(m, end)
        else:
            values = {"usize": usize, "csize": csize}
            _zip64_extra(rest[nlen:], [f for f in ("usize", "csize") if values[f] == _U32], values)
            if (crc, values["csize"], values["usize"]) != (m.crc32, m.compressed_size, m.size):
                raise BadZip(f"member {m.name!r}: its local header's sizes or crc32 differ from its central "
                             "directory entry")
        if end > self._file.size:
            raise BadZip(f"member {m.name!r} runs past the end of the archive (truncated?)")
        return attrs.evolve(m, data_offset=data_offset, end=end)

    def _descriptor(self, m: ZipMember, at: int) -> int:
        raw = self._file.read(at, min(24, max(0, self._file.size - at)))
        body = raw[4:] if raw[:4] == _DESCRIPTOR else raw
        skip = len(raw) - len(body)
        for width in (8, 4):
            if len(body) >= 4 + 2 * width:
                crc = int.from_bytes(body[:4], "little")
                csize = int.from_bytes(body[4 : 4 + width], "little")
                usize = int.from_bytes(body[4 + width : 4 + 2 * width], "little")
                if (crc, csize, usize) == (m.crc32, m.compressed_size, m.size):
                    return at + skip + 4 + 2 * width
        raise BadZip(f"member {m.name!r}: its data descriptor differs from its central directory entry")

    # --- reading ---
    def _inflate(self, m: ZipMember, limit: int, step: int = _STEP) -> Any:
        """Yield the member's bytes in pieces, at most about `limit` of them (all of them: `limit` = its size),
        reading at most `step` bytes of the archive at a time."""
        if m.method == STORED:
            limit = min(limit, m.size)
            for at in range(0, limit, step):
                yield self._file.read(m.data_offset + at, min(step, limit - at))
            return
        inflater = zlib.decompressobj(-15)
        done = read = 0
        while done < limit and not inflater.eof:
            if inflater.unconsumed_tail:
                data = inflater.unconsumed_tail
            elif read < m.compressed_size:
                n = min(step, m.compressed_size - read)
                data = self._file.read(m.data_offset + read, n)
                read += n
            else:
                data = b""
            piece = inflater.decompress(data, min(_STEP, limit - done + 1))
            if not piece and not data:
                return  # the stream ends early: the caller sees too few bytes
            done += len(piece)
            if done > m.size:
                raise BadZip(f"member {m.name!r} inflates to more than its declared {m.size} bytes")
            yield piece

    def read_head(self, m: ZipMember, n: int) -> bytes:
        """The first (at most) `n` bytes of the member (no crc check: the member is not read whole)."""
        out = bytearray()
        try:
            for piece in self._inflate(m, n, step=1 << 14):
                out += piece
                if len(out) >= n:
                    break
        except zlib.error as exc:
            raise BadZip(f"member {m.name!r}: {exc}") from None
        return bytes(out[:n])

    def read_into(self, m: ZipMember, head: int, out: Any) -> bytes:
        """Read the whole member: its first `head` bytes are returned, the rest fills `out` (a writable buffer of
        exactly the rest's size); its crc32 and size are checked."""
        view = memoryview(out).cast("B")
        if head + len(view) != m.size:
            raise BadZip(f"member {m.name!r} has {m.size} bytes, not {head} + {len(view)}")
        if m.method == STORED:  # straight from the file into `out`
            first = self._file.read(m.data_offset, head)
            self._file.read_into(view, m.data_offset + head)
            crc, done = zlib.crc32(view, zlib.crc32(first)), m.size
        else:
            first, crc, done = self._inflate_into(m, head, view)
        _check_whole(m, done, crc)
        return bytes(first)

    def check_crc(self, m: ZipMember) -> None:
        """Read the whole member (in bounded steps, keeping nothing) and check its size and crc32."""
        crc = done = 0
        try:
            for piece in self._inflate(m, m.size):
                crc = zlib.crc32(piece, crc)
                done += len(piece)
        except zlib.error as exc:
            raise BadZip(f"member {m.name!r}: {exc}") from None
        _check_whole(m, done, crc)

    def _inflate_into(self, m: ZipMember, head: int, view: memoryview) -> tuple[bytes, int, int]:
        first = bytearray()
        crc = done = 0
        try:
            for piece in self._inflate(m, m.size):
                crc = zlib.crc32(piece, crc)
                take = min(len(piece), max(0, head - done))
                first += piece[:take]
                at = done + take - head
                view[at : at + len(piece) - take] = piece[take:]
                done += len(piece)
        except zlib.error as exc:
            raise BadZip(f"member {m.name!r}: {exc}") from None
        return bytes(first), crc, done
