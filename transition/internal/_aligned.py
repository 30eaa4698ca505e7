"""64-byte aligned host buffers that TF adopts without a copy (DLPack); TF is imported only when adopting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ALIGN", "HUGE_PAGE", "ADOPT_MIN_SIZE", "aligned_empty", "aligned_array", "aligned_copy", "adopt"]

ALIGN = 64  # EIGEN_MAX_ALIGN_BYTES: TF adopts a buffer this aligned without copying it
ADOPT_MIN_SIZE = 65536  # elements; below this TF's own conversion (one small copy) is as fast
HUGE_PAGE = 2 << 20  # the size of a transparent huge page (x86-64, arm64 with 4 KiB pages)
HUGE_MIN_BYTES = 8 * HUGE_PAGE  # buffers from this size on are aligned to HUGE_PAGE


def aligned_empty(nbytes: int, *, zeros: bool = False) -> np.ndarray:
    """An uninitialised (or zeroed: lazily, calloc) uint8 array of `nbytes`; its data (if any) is `ALIGN`-aligned,
    and from `HUGE_MIN_BYTES` on aligned to `HUGE_PAGE`, so that all of it can be backed by transparent huge pages
    (numpy asks for them): filling a fresh buffer then takes far fewer page faults. The unused head (under
    `HUGE_PAGE`, at most 1/8 of the buffer) is never touched: address space only."""
    align = HUGE_PAGE if nbytes >= HUGE_MIN_BYTES else ALIGN
    buf = (np.zeros if zeros else np.empty)(nbytes + align, np.uint8)
    start = (-buf.ctypes.data) % align
    return buf[start : start + nbytes]


def aligned_array(shape: Sequence[int], dtype: Any, *, zeros: bool = False) -> np.ndarray:
    """An uninitialised (or zeroed) C-contiguous aligned array of that shape and dtype (so TF can adopt it)."""
    np_dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    size = int(np.prod(shape, dtype=np.int64))
    return aligned_empty(size * np_dtype.itemsize, zeros=zeros).view(np_dtype).reshape(shape)


def aligned_copy(value: Any, buffer: np.ndarray | None = None) -> np.ndarray:
    """A C-contiguous copy of `value` (numpy array or CPU TF tensor) in an aligned host buffer: one memcpy (into
    `buffer`, an aligned uint8 array of the right size, when given), which TF then adopts without a second copy."""
    source = np.asarray(value)  # a CPU tensor: a view of its buffer
    if buffer is None or buffer.nbytes != source.nbytes:
        buffer = aligned_empty(source.nbytes)
    out = buffer.view(source.dtype).reshape(source.shape)
    np.copyto(out, source, casting="no")
    return out


def adopt(arr: np.ndarray) -> Any:
    """A TF tensor sharing `arr`'s memory (from `aligned_array`; the caller must not write to it afterwards).

    Small arrays, and dtypes DLPack does not take, are converted by TF (one copy)."""
    import tensorflow as tf

    if arr.size < ADOPT_MIN_SIZE:
        return tf.convert_to_tensor(arr)
    try:
        return tf.experimental.dlpack.from_dlpack(arr.__dlpack__())
    except Exception:  # noqa: BLE001 - DLPack does not take it: TF's own (slower) conversion
        return tf.convert_to_tensor(arr)
