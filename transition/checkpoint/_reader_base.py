"""`CheckpointReader`: lazy read access to one checkpoint (names, shapes, dtypes without reading values).

The format-specific readers (`_reader_tf.py`, `_reader_files.py`) subclass it; `_reader.open_checkpoint` picks one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from transition.errors import (
    CheckpointError,
    MissingParamsError,
    TransitionError,
    did_you_mean,
)

__all__ = ["CheckpointReader", "Shape", "strip_tensor_suffix", "first_line"]

Shape = tuple[int, ...]


def strip_tensor_suffix(name: str) -> str:
    """`'conv0/W:0'` -> `'conv0/W'` (tensorpack / TF1 tensor names); other names are returned unchanged."""
    return name[:-2] if name.endswith(":0") else name


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can be long), or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class CheckpointReader:
    """Lazy reader of one checkpoint: `names()`, `shape(name)`, `dtype(name)` come from the file's index / headers;
    `read(name)` reads one array. Names never carry a `:0` suffix; lookups accept one.

    Use as a context manager (or call `close()`) to release the open file.
    """

    kind: str = "?"  # "tf" (TF bundle), "npz", "npy", "keras_h5", "keras_legacy_h5"

    def __init__(self, path: str, entries: Mapping[str, tuple[Shape, np.dtype]]):
        self.path = path  # the resolved path: a TF bundle's prefix or the file
        self._entries = dict(entries)
        self._closed = False

    # --- subclasses implement ---
    def _read(self, name: str) -> np.ndarray:  # pragma: no cover - abstract
        """Read one array (`name` is a listed name); any exception other than a TransitionError is reported by
        `read` as a damaged file."""
        raise NotImplementedError

    def _release(self) -> None:
        """Release the open file (a no-op where nothing is held open)."""

    def close(self) -> None:
        """Release the open file; `read` fails afterwards (names, shapes and dtypes stay available)."""
        if not self._closed:
            self._closed = True
            self._release()

    # --- public ---
    def names(self) -> list[str]:
        """All names, sorted."""
        return sorted(self._entries)

    def has(self, name: str) -> bool:
        """Whether the checkpoint has `name` (a `:0` suffix is ignored)."""
        return strip_tensor_suffix(name) in self._entries

    __contains__ = has

    def __len__(self) -> int:
        return len(self._entries)

    def _lookup(self, name: str) -> str:
        key = strip_tensor_suffix(name)
        if key not in self._entries:
            raise MissingParamsError(
                f"{name!r} is not in checkpoint {self.path}{did_you_mean(key, self._entries)}; "
                f"`transition inspect {self.path}` lists its {len(self._entries)} names"
            )
        return key

    def shape(self, name: str) -> Shape:
        """The shape of `name` (read from the index, not the values)."""
        return self._entries[self._lookup(name)][0]

    def dtype(self, name: str) -> np.dtype:
        """The numpy dtype of `name`."""
        return self._entries[self._lookup(name)][1]

    def nbytes(self, name: str) -> int:
        """The size of `name`'s value in bytes."""
        shape, dtype = self._entries[self._lookup(name)]
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    def read(self, name: str) -> np.ndarray:
        """Read one array; a damaged file raises CheckpointError naming the path and the name."""
        return self._checked_read(name, self._read)

    def read_for_assign(self, name: str) -> Any:
        """Read one value in the form that is cheapest to `assign` to a variable: a numpy array, or for a TF bundle
        a TF tensor in a fresh buffer that the variable adopts (no copy in the assign). Errors as `read`."""
        return self._checked_read(name, self._read_for_assign)

    def _read_for_assign(self, name: str) -> Any:
        return self._read(name)

    def _checked_read(self, name: str, read: Callable[[str], Any]) -> Any:
        key = self._lookup(name)
        if self._closed:
            raise CheckpointError(f"the reader of checkpoint {self.path} is closed; open it again with open_checkpoint")
        try:
            value = read(key)
        except TransitionError:
            raise
        except Exception as exc:  # bad CRC, truncated member / shard, closed file, ...
            raise CheckpointError(
                f"cannot read {key!r} from checkpoint {self.path}: {first_line(exc)}. The file is damaged or "
                f"incomplete (truncated or overwritten?); restore it from a backup or use an earlier checkpoint"
            ) from exc
        shape, dtype = self._entries[key]
        got_shape = tuple(int(d) for d in value.shape)
        got_dtype = np.dtype(getattr(value.dtype, "as_numpy_dtype", value.dtype))
        if got_shape != shape or got_dtype != dtype:
            raise CheckpointError(
                f"checkpoint {self.path} is inconsistent: {key!r} is listed as {dtype}{list(shape)} but reads as "
                f"{got_dtype}{list(got_shape)}; the file is damaged, restore it or re-save it"
            )
        return value

    def read_all(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Read the given names (default: all) into a dict."""
        return {self._lookup(n): self.read(n) for n in (self.names() if names is None else names)}

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.path!r}: {len(self._entries)} arrays>"
