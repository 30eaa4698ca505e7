"""Aligned host buffers kept from one save to the next (for the store's background saves)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from transition.internal._aligned import aligned_copy

__all__ = ["HostBufferPool"]


class HostBufferPool:
    """Aligned host buffers kept from one save to the next, so that repeated saves copy into memory that is already
    mapped (a fresh gigabyte costs more in page faults than the copy itself). Holds at most one save's buffers.
    """

    def __init__(self) -> None:
        self._free: dict[int, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def copy(self, value: Any) -> np.ndarray:
        """`aligned_copy(value)` into a pooled buffer; hand it back with `release` once the save is done."""
        nbytes = np.asarray(value).nbytes
        with self._lock:
            free = self._free.get(nbytes)
            buffer = free.pop() if free else None
        return aligned_copy(value, buffer)

    def release(self, arrays: Iterable[np.ndarray]) -> None:
        """Keep the buffers of `arrays` (results of `copy`) for the next save, dropping older ones."""
        kept: dict[int, list[np.ndarray]] = {}
        for array in arrays:
            kept.setdefault(array.nbytes, []).append(array.reshape(-1).view(np.uint8))
        with self._lock:
            self._free = kept

    def clear(self) -> None:
        with self._lock:
            self._free = {}
