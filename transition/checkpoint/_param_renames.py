"""Names a checkpoint may hold a param under besides its current one, and the layouts loading converts (the one
home of these rules; `_load_plan` applies them when a param's own name is missing from the checkpoint).

- Old names of this project: the rec layer's params were `<layer>/W`, `<layer>/W_re`, `<layer>/b`; they are
  `<layer>/rec/W`, `<layer>/rec/W_re`, `<layer>/rec/b` now, RETURNN's names (`OLD_NAMES`).
- RETURNN's "standardlstm" unit (TF's LSTMCell, also a plain TF `rnn/lstm_cell`): `<layer>/rec/lstm_cell/kernel`
  [n_in + n, 4n] and `<layer>/rec/lstm_cell/bias` [4n] (or under `rec/rnn/lstm_cell/`), gates i, j, f, o, give
  `rec/W`, `rec/W_re` and `rec/b` (gates j, i, f, o) as RETURNN's CustomCheckpointLoader converts them when a
  net changes the unit to a native LSTM. As there, only the layout is converted: TF's LSTMCell adds `forget_bias`
  (default 1) to the forget gate at run time, so a net trained with it computes the same only with
  `unit_opts={"forget_bias": 0}` (or with 1 added to the forget part of `rec/b`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import attrs
import numpy as np

__all__ = ["OLD_NAMES", "Conversion", "find_conversion", "with_current_names"]

Shape = tuple[int, ...]
V = TypeVar("V")

#: current name suffix -> the suffix it had in checkpoints of this project before
OLD_NAMES: tuple[tuple[str, str], ...] = (("/rec/W", "/W"), ("/rec/W_re", "/W_re"), ("/rec/b", "/b"))

_LSTM_CELL_SCOPES = ("/rec/rnn/lstm_cell/", "/rec/lstm_cell/")
_NATIVE_LSTM = {"/rec/W": "W", "/rec/W_re": "W_re", "/rec/b": "b"}


class _Source(Protocol):
    def shape(self, name: str) -> Shape: ...

    def dtype(self, name: str) -> Any: ...

    def read(self, name: str) -> np.ndarray: ...


@attrs.frozen
class Conversion:
    """How to get the value of checkpoint-side name `target` from other names of the checkpoint (`sources`)."""

    target: str
    sources: tuple[str, ...]
    shape: Shape
    dtype: Any
    how: str  # for people, e.g. "old name 'l/W'"
    compute: Callable[[list[np.ndarray]], np.ndarray] = attrs.field(repr=False)

    def read(self, source: _Source) -> np.ndarray:
        """The converted value, read from `source`."""
        return self.compute([np.asarray(source.read(n)) for n in self.sources])


def _old_name(name: str, present: Collection[str]) -> str | None:
    for new, old in OLD_NAMES:
        if name.endswith(new) and name[: -len(new)] + old in present:
            return name[: -len(new)] + old
    return None


def _split_gates(value: np.ndarray, axis: int) -> list[np.ndarray]:
    return np.split(value, 4, axis=axis)


def _native_from_basic(part: str, n_in: int) -> Callable[[list[np.ndarray]], np.ndarray]:
    """RETURNN's BasicLSTM -> NativeLSTM conversion: gates i, j, f, o -> j, i, f, o; kernel rows [inputs, h]."""

    def convert(values: list[np.ndarray]) -> np.ndarray:
        kernel, bias = values
        i, j, f, o = _split_gates(kernel, 1)
        w = np.concatenate([j, i, f, o], axis=1)
        if part == "W":
            return w[:n_in]
        if part == "W_re":
            return w[n_in:]
        b_i, b_j, b_f, b_o = _split_gates(bias, 0)
        return np.concatenate([b_j, b_i, b_f, b_o], axis=0)

    return convert


def _lstm_cell_conversion(name: str, present: Collection[str], source: _Source) -> Conversion | None:
    suffix = next((s for s in _NATIVE_LSTM if name.endswith(s)), None)
    if suffix is None:
        return None
    layer = name[: -len(suffix)]
    if any(layer + s in present for s in _NATIVE_LSTM):
        return None  # some native params are there: no mix of layouts
    for scope in _LSTM_CELL_SCOPES:
        kernel, bias = layer + scope + "kernel", layer + scope + "bias"
        if kernel not in present or bias not in present:
            continue
        k_shape, b_shape = tuple(source.shape(kernel)), tuple(source.shape(bias))
        if len(k_shape) != 2 or len(b_shape) != 1 or b_shape[0] % 4 or k_shape[1] != b_shape[0] or (
                k_shape[0] <= b_shape[0] // 4):
            return None
        n = b_shape[0] // 4
        n_in = k_shape[0] - n
        part = _NATIVE_LSTM[suffix]
        shape = {"W": (n_in, 4 * n), "W_re": (n, 4 * n), "b": (4 * n,)}[part]
        how = f"RETURNN's LSTM layout conversion from {kernel!r}, {bias!r}"
        return Conversion(name, (kernel, bias), shape, source.dtype(kernel), how, _native_from_basic(part, n_in))
    return None


def find_conversion(name: str, present: Collection[str], source: _Source) -> Conversion | None:
    """How checkpoint-side `name`, missing from the checkpoint (whose names are `present`), can be got from it:
    under its old name, or converted from RETURNN's standard LSTM layout; None if neither applies."""
    old = _old_name(name, present)
    if old is not None:
        return Conversion(name, (old,), tuple(source.shape(old)), source.dtype(old), f"old name {old!r}",
                          lambda values: values[0])
    return _lstm_cell_conversion(name, present, source)


def with_current_names(values: Mapping[str, V], wanted: Iterable[str]) -> dict[str, V]:
    """`values` with the entries stored under an old name (`OLD_NAMES`) renamed to the wanted current name, for
    the wanted names that `values` lacks (e.g. a checkpoint of this project written before the rename)."""
    out = dict(values)
    for name in wanted:
        if name not in out:
            old = _old_name(name, out)
            if old is not None:
                out[name] = out.pop(old)
    return out
