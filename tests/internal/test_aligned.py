"""`aligned_empty`: 64-byte aligned buffers; large ones aligned to huge pages with a bounded unused head."""

from __future__ import annotations

import pytest

from transition.internal._aligned import ALIGN, HUGE_MIN_BYTES, HUGE_PAGE, aligned_empty


@pytest.mark.parametrize("nbytes, align", [(1, ALIGN), (HUGE_MIN_BYTES - 1, ALIGN), (HUGE_MIN_BYTES, HUGE_PAGE),
                                           (HUGE_MIN_BYTES + 12345, HUGE_PAGE)])
def test_alignment_and_what_is_allocated(nbytes, align):
    buf = aligned_empty(nbytes)
    assert buf.nbytes == nbytes and buf.ctypes.data % align == 0
    assert buf.base.nbytes == nbytes + align and buf.base.nbytes <= nbytes * 9 // 8 + ALIGN  # the head: <= 1/8
