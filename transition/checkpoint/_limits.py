"""The memory bound for reading untrusted checkpoints, the one home of it.

Reading a checkpoint allocates at most about twice the bytes its files hold, whatever their headers claim: every
declared size is checked against the real size of the file (or the range of it) that must hold it before anything
is allocated. Compressed data (deflated `.npz` / `.keras` members, compressed HDF5 chunks) and HDF5 datasets whose
storage was never written (read as their fill value) may legitimately need more than their stored bytes; together,
what they need beyond twice their stored bytes may not exceed `inflate_allowance()`: 1 GiB, or the environment
variable TRANSITION_MAX_INFLATE_BYTES. A checkpoint that needs more is refused before it is inflated, with a
message naming that variable.
"""

from __future__ import annotations

import os

from transition.errors import CheckpointError

__all__ = ["INFLATE_ENV", "DEFAULT_INFLATE_ALLOWANCE", "inflate_allowance", "InflateBudget"]

INFLATE_ENV = "TRANSITION_MAX_INFLATE_BYTES"
DEFAULT_INFLATE_ALLOWANCE = 1 << 30


def inflate_allowance() -> int:
    """Bytes that compressed or never-written data of one checkpoint may need beyond twice its stored bytes."""
    raw = os.environ.get(INFLATE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_INFLATE_ALLOWANCE
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise CheckpointError(f"environment variable {INFLATE_ENV}={raw!r} must be a number of bytes >= 0")
    return value


class InflateBudget:
    """Adds up, for one checkpoint, what its compressed / unwritten parts declare beyond twice their stored bytes;
    `add` raises a CheckpointError naming the path and the part once the total exceeds `inflate_allowance()`."""

    def __init__(self, path: str):
        self.path = path
        self.allowance = inflate_allowance()
        self.used = 0

    def add(self, what: str, declared: int, stored: int) -> None:
        self.used += max(0, declared - 2 * stored)
        if self.used > self.allowance:
            raise CheckpointError(
                f"{self.path}: {what} declares {declared} bytes from {stored} stored bytes; with the rest of the "
                f"checkpoint that is {self.used} bytes more than twice what its files hold, over the limit of "
                f"{self.allowance} (a decompression bomb, or damage). If you trust this file, raise the limit with the "
                f"environment variable {INFLATE_ENV}=<bytes>"
            )
