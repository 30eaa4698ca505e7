"""Function-preserving growth of one param (pure numpy): the copy modes "preserve" and "net2wider".

The network level (`network/_preserve.py`) reads the graph and gives, per axis of a param, where each new entry
comes from (`AxisMap`): the old index it copies (-1: none), the share it takes of a replicated input (net2wider)
and whether it is a replica of an old unit. Each axis has a role:

- "in": the features the layer reads from its sources; a new entry (a new feature of a source, or a new source)
  gets zero, so that nothing new flows into the old units ("zero outgoing" of the source's new units);
- "rec": the layer's own units read back (an LSTM's recurrent kernel rows); as "in";
- "out": the layer's own units (split by gates where it has them); a new unit gets the fresh init;
- "feature": a per-feature param of a layer that keeps its input features apart (batch norm); a new feature gets
  the param's identity value (scale 1, shift 0, mean 0, variance 1);
- "fixed": an axis that must keep its size (a conv filter, a GRU bias' two rows); "ids": vocabulary rows (a new id
  gets the fresh init).

An entry new on an "out" / "ids" / "fixed" axis is a new unit's own weight (the fresh init), else one new on a
"feature" axis gets the identity value, else (new only on "in" / "rec" axes) zero. A new layer inserted on a path
starts as the identity (`IdentityInit`): 1 where an input feature is passed to a unit, zero elsewhere, the fresh
init on its extra units.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from transition.errors import ShapeMismatchError

__all__ = ["ROLES", "AxisMap", "ParamGrowth", "IdentityInit", "grow_value", "identity_value", "slot_growth"]

ROLES = ("in", "rec", "out", "feature", "fixed", "ids")
_OUT_LIKE = ("out", "ids", "fixed")
_IN_LIKE = ("in", "rec")


def _check_roles(roles: Sequence[str]) -> None:
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown axis role {role!r}; use one of {ROLES}")


def _optional_array(values: Any, dtype: Any) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=dtype)


@attrs.frozen(eq=False)
class AxisMap:
    """Where each entry of one axis of the new param comes from (see the module docs)."""

    role: str
    index: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64))  # [new dim]: old index or -1
    scale: np.ndarray | None = attrs.field(default=None, converter=lambda a: _optional_array(a, np.float64))
    # [new dim]: the factor of a copied entry (net2wider: a replicated input's share)
    replica: np.ndarray | None = attrs.field(default=None, converter=lambda a: _optional_array(a, bool))
    # [new dim]: the entry copies an old unit as a new unit (net2wider)

    def __attrs_post_init__(self) -> None:
        _check_roles([self.role])

    @classmethod
    def identity(cls, role: str, n: int) -> AxisMap:
        """Every entry where it was (an axis that does not change)."""
        return cls(role, np.arange(n))

    @property
    def new_entries(self) -> int:
        """How many entries copy nothing."""
        return int((self.index < 0).sum())

    @property
    def replicas(self) -> int:
        return int(self.replica.sum()) if self.replica is not None else 0

    @property
    def divided(self) -> int:
        """How many entries take a share of a replicated input (a factor other than 1)."""
        return int((np.abs(self.scale - 1.0) > 1e-12).sum()) if self.scale is not None else 0

    def is_identity(self, old_dim: int) -> bool:
        return len(self.index) == old_dim and bool((self.index == np.arange(old_dim)).all()) and not self.divided


@attrs.frozen(eq=False)
class ParamGrowth:
    """How one param with an old value grows: one `AxisMap` per axis; `feature_value` is the identity value of new
    "feature" entries (None: the fresh init)."""

    axes: tuple[AxisMap, ...]
    feature_value: float | None = 0.0

    def is_trivial(self, old_shape: Sequence[int]) -> bool:
        """Whether the growth is a plain copy of the old value."""
        return len(old_shape) == len(self.axes) and all(m.is_identity(int(d)) for m, d in zip(self.axes, old_shape))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(m.index) for m in self.axes)


@attrs.frozen(eq=False)
class IdentityInit:
    """A new layer that starts as the identity: `pairs` (input feature, unit) get 1 (on the centre of "fixed" axes,
    e.g. a conv's filter), other entries zero; a unit in `fresh_units` (an extra unit, fed by no input feature)
    keeps its fresh init."""

    roles: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    fresh_units: tuple[int, ...] = ()

    def __attrs_post_init__(self) -> None:
        _check_roles(self.roles)


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def _check_fresh(fresh: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if tuple(fresh.shape) != shape:
        raise ShapeMismatchError(f"{what}: the fresh init has shape {tuple(fresh.shape)} but the param has shape {shape}")


def grow_value(growth: ParamGrowth, old: np.ndarray, fresh: np.ndarray, what: str = "param"
               ) -> tuple[np.ndarray, str]:
    """The new value of a param grown from `old` (the fresh init `fresh` where a new unit's own weight is), and how
    (for the import report)."""
    old, fresh = np.asarray(old), np.asarray(fresh)
    ndim = old.ndim
    if ndim != len(growth.axes):
        raise ShapeMismatchError(f"{what}: the growth has {len(growth.axes)} axes but the old value has shape "
                                 f"{tuple(old.shape)}")
    _check_fresh(fresh, growth.shape, what)
    out = old
    valid = []
    for axis, m in enumerate(growth.axes):
        if len(m.index) and int(m.index.max()) >= old.shape[axis]:
            raise ShapeMismatchError(f"{what}: axis {axis} copies old entry {int(m.index.max())}, but the old value "
                                     f"has {old.shape[axis]} there")
        ok = m.index >= 0
        out = np.take(out, np.where(ok, m.index, 0), axis=axis)
        if m.scale is not None:
            out = out * _along(np.asarray(m.scale, dtype=out.dtype), axis, ndim)
        valid.append(_along(ok, axis, ndim))
    if not valid:
        return np.array(old, copy=True), ""
    all_valid = functools.reduce(np.logical_and, valid)
    new_unit = _any_new(valid, growth.axes, _OUT_LIKE)
    new_feature = _any_new(valid, growth.axes, ("feature",))
    if growth.feature_value is None:
        filler = np.where(new_unit | new_feature, fresh, 0)
    else:
        filler = np.where(new_unit, fresh, np.where(new_feature, growth.feature_value, 0))
    value = np.where(all_valid, out, filler).astype(old.dtype, copy=False)
    return value, _how(growth)


def _any_new(valid: list[np.ndarray], axes: Sequence[AxisMap], roles: Sequence[str]) -> np.ndarray:
    masks = [~v for v, m in zip(valid, axes) if m.role in roles]
    return functools.reduce(np.logical_or, masks) if masks else np.zeros((1,) * len(axes), dtype=bool)


def _how(growth: ParamGrowth) -> str:
    """E.g. "zero outgoing of 16 new inputs; fresh init on 8 new units"."""
    parts = []
    for m in growth.axes:
        new = m.new_entries
        if m.role == "in" and new:
            parts.append(f"zero outgoing of {_count(new, 'new input')}")
        elif m.role == "rec" and new:
            parts.append(f"zero recurrent weights of {_count(new, 'new unit')}")
        if m.role in _IN_LIKE and m.divided:
            parts.append(f"divided among {m.divided} replicated inputs")
        if m.role in ("out", "feature") and m.replicas:
            parts.append(f"replicated {_count(m.replicas, 'unit' if m.role == 'out' else 'feature')}")
        if m.role in ("out", "ids") and new:
            parts.append(f"fresh init on {_count(new, 'new unit' if m.role == 'out' else 'new id')}")
        if m.role == "feature" and new:
            parts.append(f"identity on {_count(new, 'new feature')}")
    return "; ".join(dict.fromkeys(parts))


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def identity_value(init: IdentityInit, fresh: np.ndarray, what: str = "param") -> tuple[np.ndarray, str]:
    """The value of a param of a new layer that starts as the identity (see `IdentityInit`), and how."""
    fresh = np.asarray(fresh)
    roles = init.roles
    if len(roles) != fresh.ndim:
        raise ShapeMismatchError(f"{what}: the identity init has {len(roles)} axes but the param has shape "
                                 f"{tuple(fresh.shape)}")
    value = np.zeros_like(fresh)
    out_axes = [i for i, r in enumerate(roles) if r == "out"]
    in_axes = [i for i, r in enumerate(roles) if r == "in"]
    if len(out_axes) != 1 or len(in_axes) > 1:
        raise ShapeMismatchError(f"{what}: an identity init needs one 'out' axis and at most one 'in' axis, got "
                                 f"roles {roles}")
    out_axis = out_axes[0]
    if in_axes:
        centre = [fresh.shape[i] // 2 if r == "fixed" else slice(None) for i, r in enumerate(roles)]
        for p, q in init.pairs:
            index = list(centre)
            index[in_axes[0]], index[out_axis] = p, q
            value[tuple(index)] = 1
    if init.fresh_units:
        units = np.asarray(init.fresh_units, dtype=np.int64)
        taken = np.take(fresh, units, axis=out_axis)
        index = [slice(None)] * fresh.ndim
        index[out_axis] = units
        value[tuple(index)] = taken
    how = "identity" if in_axes else "zero (identity)"
    if init.fresh_units:
        how += f"; fresh init on {_count(len(init.fresh_units), 'new unit')}"
    return value, how


def slot_growth(growth: ParamGrowth) -> ParamGrowth:
    """The growth of an optimizer slot (e.g. Adam's moments) of a param grown by `growth`: the old slot values where
    the param's old values went (not divided), the fresh slot (the optimizer's init, zeros) for the new parts,
    replicated units included."""
    axes = []
    for m in growth.axes:
        index = m.index
        if m.role in _OUT_LIKE and m.replica is not None:
            index = np.where(m.replica, -1, index)
        axes.append(AxisMap("out" if m.role in _OUT_LIKE or m.role == "feature" else m.role, index))
    return ParamGrowth(tuple(axes), feature_value=None)
