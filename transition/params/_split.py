"""Copy a param's values between two layouts of split axes (pure numpy).

An axis of a param can be the concatenation of parts, e.g. the input axis of an output layer reading
["a", "b"] is [dim_a, dim_b]; an LSTM kernel's output axis is four gates [n, n, n, n]. When a part grows or
shrinks, each part's overlap must be copied to that part's new offset, not to the old one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from transition.errors import ConfigError, ShapeMismatchError

__all__ = ["copy_with_new_split_axes", "whole_axis_splits", "check_axis_splits", "transform_split_info_to_shape"]

AxisSplits = Sequence[Sequence[int]]


def whole_axis_splits(shape: Sequence[int]) -> list[list[int]]:
    """One part per axis, covering the whole dim: the split info of a param that is not concatenated."""
    return [[int(d)] for d in shape]


def check_axis_splits(axis_splits: AxisSplits, shape: Sequence[int], what: str) -> None:
    """Raise ShapeMismatchError unless `axis_splits` has one entry per axis and each sums to that axis' dim."""
    shape = tuple(int(d) for d in shape)
    if len(axis_splits) != len(shape):
        raise ShapeMismatchError(
            f"{what}: split info {_fmt(axis_splits)} has {len(axis_splits)} axes but the shape {shape} has "
            f"{len(shape)}; give one list of parts per axis"
        )
    for axis, (parts, dim) in enumerate(zip(axis_splits, shape)):
        if len(parts) == 0 or any(int(p) < 0 for p in parts) or sum(int(p) for p in parts) != dim:
            raise ShapeMismatchError(
                f"{what}: split info {_fmt(axis_splits)} of axis {axis} sums to "
                f"{sum(int(p) for p in parts)} but the shape {shape} has {dim} there; the parts must be "
                "non-negative and add up to the dim"
            )


def copy_with_new_split_axes(
    old_axis_splits: AxisSplits,
    new_axis_splits: AxisSplits,
    old_values: np.ndarray,
    new_values: np.ndarray | None = None,
) -> np.ndarray:
    """Copy the overlap of every split part of `old_values` into the same part of `new_values`.

    `old_axis_splits[i]` lists the sizes of the parts of axis i of `old_values`, `new_axis_splits[i]` those of
    the new array; both have the same number of parts per axis. For each combination of parts, the leading
    min(old, new) entries of each axis of that part are copied, at the part's new offset. Entries of
    `new_values` outside the overlap keep their value; `new_values` (zeros of the old dtype when None) is
    written in place and returned.
    """
    old_values = np.asarray(old_values)
    if len(old_axis_splits) != len(new_axis_splits):
        raise ShapeMismatchError(
            f"copy_with_new_split_axes: the old split info {_fmt(old_axis_splits)} has {len(old_axis_splits)} axes "
            f"but the new one {_fmt(new_axis_splits)} has {len(new_axis_splits)}; both need one entry per axis"
        )
    for axis, (old_parts, new_parts) in enumerate(zip(old_axis_splits, new_axis_splits)):
        if len(old_parts) != len(new_parts):
            raise ConfigError(
                f"copy_with_new_split_axes: axis {axis} has {len(old_parts)} old parts {list(old_parts)} but "
                f"{len(new_parts)} new parts {list(new_parts)}; give the same number of parts on both sides"
            )
    check_axis_splits(old_axis_splits, old_values.shape, "copy_with_new_split_axes: old values")
    new_shape = tuple(sum(int(p) for p in parts) for parts in new_axis_splits)
    if new_values is None:
        new_values = np.zeros(new_shape, dtype=old_values.dtype)
    elif tuple(new_values.shape) != new_shape:
        raise ShapeMismatchError(
            f"copy_with_new_split_axes: new values have shape {tuple(new_values.shape)} but the new split info "
            f"{_fmt(new_axis_splits)} describes {new_shape}"
        )
    # Per axis: the (old slice, new slice) pair of every part; then copy every combination of parts.
    per_axis = []
    for old_parts, new_parts in zip(old_axis_splits, new_axis_splits):
        pairs = []
        old_off = new_off = 0
        for old_dim, new_dim in zip(old_parts, new_parts):
            n = min(int(old_dim), int(new_dim))
            if n > 0:
                pairs.append((slice(old_off, old_off + n), slice(new_off, new_off + n)))
            old_off += int(old_dim)
            new_off += int(new_dim)
        per_axis.append(_merge_adjacent(pairs))
    for combo in itertools.product(*per_axis):
        old_idx = tuple(p[0] for p in combo)
        new_idx = tuple(p[1] for p in combo)
        new_values[new_idx] = old_values[old_idx]
    return new_values


def transform_split_info_to_shape(axis_splits: AxisSplits, shape: Sequence[int], what: str = "param"
                                  ) -> list[list[int]]:
    """The parts of each axis for another `shape` of the same param, as RETURNN infers the old parts of a param
    from its new split info (`transform_param_axes_split_info_to_new_shape`).

    An axis of one part takes the new dim. A dim that is a whole axis elsewhere, or all equal parts (e.g. gates
    [n, n, n, n] of a dim 4m: m each), scales the same everywhere; of the parts left unknown all but the last keep
    their size (up to what is left) and the last takes the rest; if the known parts do not add up, the first part
    takes the difference. ShapeMismatchError if no such parts exist.
    """
    shape = tuple(int(d) for d in shape)
    if len(axis_splits) != len(shape):
        raise ShapeMismatchError(f"{what}: split info {_fmt(axis_splits)} has {len(axis_splits)} axes but the shape "
                                 f"{shape} has {len(shape)}")
    dim_map: dict[int, int] = {}  # old part dim -> new part dim
    for new_dim, parts in zip(shape, axis_splits):
        parts = [int(p) for p in parts]
        if len(parts) == 1:
            dim_map[parts[0]] = new_dim
        elif len(set(parts)) == 1 and new_dim % len(parts) == 0:
            dim_map[parts[0]] = new_dim // len(parts)
    out = []
    for new_dim, parts in zip(shape, axis_splits):
        parts = [int(p) for p in parts]
        if len(parts) == 1:
            out.append([new_dim])
            continue
        new_parts: list[int | None] = [dim_map.get(d) for d in parts]
        if None in new_parts:
            while sum(d is None for d in new_parts) > 1:
                j = new_parts.index(None)
                new_parts[j] = min(parts[j], new_dim - sum(d for d in new_parts if d is not None))
            j = new_parts.index(None)
            new_parts[j] = new_dim - sum(d for d in new_parts if d is not None)
        elif sum(new_parts) != new_dim:  # type: ignore[arg-type]
            new_parts[0] = new_dim - sum(new_parts[1:])  # type: ignore[arg-type]
        if any(d is None or d < 0 for d in new_parts):
            raise ShapeMismatchError(f"{what}: cannot infer the parts {_fmt(axis_splits)} for shape {shape}; give "
                                     "the old split info")
        out.append([int(d) for d in new_parts])  # type: ignore[arg-type]
    return out


def _merge_adjacent(pairs: list[tuple[slice, slice]]) -> list[tuple[slice, slice]]:
    """Merge consecutive part pairs that are contiguous on both sides (fewer, larger copies)."""
    merged: list[tuple[slice, slice]] = []
    for old_s, new_s in pairs:
        if merged and merged[-1][0].stop == old_s.start and merged[-1][1].stop == new_s.start:
            prev_old, prev_new = merged[-1]
            merged[-1] = (slice(prev_old.start, old_s.stop), slice(prev_new.start, new_s.stop))
        else:
            merged.append((old_s, new_s))
    return merged


def _fmt(axis_splits: AxisSplits) -> str:
    return repr([[int(p) for p in parts] for parts in axis_splits])
