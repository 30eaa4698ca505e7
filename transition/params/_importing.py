"""The rules that import old param values into a (re)built layer, and the report of what happened (pure numpy).

Copy modes follow RETURNN: None (shapes must match), "ifpossible" (copy where the shape matches, keep the fresh
init elsewhere), "subset" (copy the overlap of each split part, keep the init for the rest), "reset" (keep the
fresh init everywhere).
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs
import numpy as np

from transition.errors import ConfigError, ShapeMismatchError, TransitionError, did_you_mean
from transition.params._split import check_axis_splits, copy_with_new_split_axes, whole_axis_splits

__all__ = [
    "COPY_PARAM_MODES",
    "ParamsSnapshot",
    "ParamStatus",
    "ParamRecord",
    "ImportReport",
    "check_copy_param_mode",
    "import_layer_values",
    "call_custom_importer",
    "custom_import_records",
]

COPY_PARAM_MODES = (None, "ifpossible", "subset", "reset")

SplitInfo = Mapping[str, list[list[int]]]


@attrs.frozen
class ParamsSnapshot:
    """The params of a network as numpy arrays, with the split info of each param and the global train step."""

    values_dict: Mapping[str, Mapping[str, np.ndarray]]  # {layer: {param: array}}
    split_info: Mapping[str, Mapping[str, list[list[int]]]] = attrs.field(factory=dict)  # {layer: {param: parts}}
    global_train_step: int = 0

    @property
    def nbytes(self) -> int:
        """Total bytes of all arrays."""
        return sum(int(v.nbytes) for layer in self.values_dict.values() for v in layer.values())

    def param_names(self) -> list[str]:
        """All params as "layer/param"."""
        return [f"{layer}/{param}" for layer, params in self.values_dict.items() for param in params]


class ParamStatus(enum.Enum):
    """What an import did to one param."""

    COPIED = "copied"
    PARTLY_COPIED = "partly copied"
    KEPT_INIT = "kept init"
    CUSTOM = "custom importer"
    IGNORED = "ignored"


@attrs.frozen
class ParamRecord:
    """The outcome of importing one param."""

    layer: str
    param: str
    status: ParamStatus
    old_shape: tuple[int, ...] | None
    new_shape: tuple[int, ...] | None
    reason: str = ""

    @property
    def name(self) -> str:
        """The full param name `layer/param`."""
        return f"{self.layer}/{self.param}"


@attrs.frozen
class ImportReport:
    """Per param: copied, partly copied, kept its init (and why), custom-imported or ignored."""

    records: tuple[ParamRecord, ...] = ()

    def __add__(self, other: ImportReport) -> ImportReport:
        if not isinstance(other, ImportReport):
            return NotImplemented
        return ImportReport(self.records + other.records)

    def __len__(self) -> int:
        return len(self.records)

    def by_status(self, status: ParamStatus) -> tuple[ParamRecord, ...]:
        """The records with that status."""
        return tuple(r for r in self.records if r.status is status)

    def status_of(self, name: str) -> ParamStatus:
        """The status of param "layer/param"; ConfigError when the report has no such param."""
        for r in self.records:
            if r.name == name:
                return r.status
        raise ConfigError(
            f"the import report has no param {name!r}{did_you_mean(name, [r.name for r in self.records])}; "
            "use a name of the form 'layer/param'"
        )

    def __str__(self) -> str:
        if not self.records:
            return "import report: no params"
        rows = [("param", "status", "old shape", "new shape", "reason")]
        for r in self.records:
            rows.append((r.name, r.status.value, _shape_str(r.old_shape), _shape_str(r.new_shape), r.reason))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for i, row in enumerate(rows):
            cells = [row[j].ljust(widths[j]) for j in range(4)] + [row[4]]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
        counts = ", ".join(
            f"{len(self.by_status(s))} {s.value}" for s in ParamStatus if self.by_status(s)
        )
        lines.append(f"({len(self.records)} params: {counts})")
        return "\n".join(lines)


def _shape_str(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "x".join(str(d) for d in shape) or "scalar"


def check_copy_param_mode(copy_param_mode: Any, where: str = "copy_param_mode") -> str | None:
    """Return the mode if it is one of None, "ifpossible", "subset", "reset"; else raise ConfigError."""
    if copy_param_mode in COPY_PARAM_MODES:
        return copy_param_mode
    hint = did_you_mean(copy_param_mode, [m for m in COPY_PARAM_MODES if m]) if isinstance(copy_param_mode, str) else ""
    raise ConfigError(
        f"unknown {where} {copy_param_mode!r}{hint}; use one of None, 'ifpossible', 'subset', 'reset'"
    )


def import_layer_values(
    layer_name: str,
    values: Mapping[str, np.ndarray],
    *,
    new_shapes: Mapping[str, tuple[int, ...]],
    get_new_value: Callable[[str], np.ndarray],
    copy_param_mode: str | None = None,
    ignore_wrong_shape: bool = False,
    old_split_info: SplitInfo | None = None,
    new_split_info: SplitInfo | None = None,
    already_initialized: Collection[str] = frozenset(),
    ignore_unknown: bool = False,
) -> tuple[dict[str, np.ndarray], list[ParamRecord]]:
    """Decide, for one layer, which arrays to assign to its params.

    `values`: the old values {param: array}; `new_shapes`: the new params' shapes; `get_new_value(param)`: the
    fresh init (called only when needed); `already_initialized`: params whose variable was created from the old
    value (not assigned again). Old params unknown to the layer are an error naming them, unless
    `ignore_unknown` (then recorded as ignored). New params without an old value keep their init.
    Returns ({param: array to assign}, records in the order of `new_shapes`, then the ignored ones).
    """
    mode = check_copy_param_mode(copy_param_mode)
    new_shapes = {p: tuple(int(d) for d in s) for p, s in new_shapes.items()}
    old_split_info = old_split_info or {}
    new_split_info = new_split_info or {}
    to_assign: dict[str, np.ndarray] = {}
    records: list[ParamRecord] = []
    ignored: list[ParamRecord] = []

    for param, old in values.items():
        if param not in new_shapes:
            if ignore_unknown:
                ignored.append(
                    ParamRecord(layer_name, param, ParamStatus.IGNORED, tuple(np.shape(old)), None,
                                "not a param of the new layer")
                )
                continue
            raise ConfigError(
                f"layer {layer_name!r}: the old values have param {param!r}, which the new layer does not have "
                f"(its params: {sorted(new_shapes)}){did_you_mean(param, new_shapes)}; remove it from the values "
                "or pass ignore_non_existing=True"
            )

    def record(param: str, status: ParamStatus, old_shape, reason: str = "") -> None:
        records.append(ParamRecord(layer_name, param, status, old_shape, new_shapes[param], reason))

    for param, new_shape in new_shapes.items():
        if param not in values:
            record(param, ParamStatus.KEPT_INIT, None, "new param (no old value)")
            continue
        old = values[param]
        old_shape = tuple(int(d) for d in np.shape(old))
        if param in already_initialized:
            if old_shape != new_shape:
                raise TransitionError(
                    f"layer {layer_name!r}, param {param!r}: listed as created from the old value, but the old "
                    f"shape {old_shape} differs from the new shape {new_shape}; this is a bug in the caller"
                )
            if mode == "reset":
                to_assign[param] = get_new_value(param)
                record(param, ParamStatus.KEPT_INIT, old_shape, "copy_param_mode='reset' (re-initialised)")
            else:
                record(param, ParamStatus.COPIED, old_shape, "created from the old value")
            continue
        if mode == "reset":
            record(param, ParamStatus.KEPT_INIT, old_shape, "copy_param_mode='reset'")
            continue
        if old_shape == new_shape:
            to_assign[param] = np.asarray(old)
            record(param, ParamStatus.COPIED, old_shape)
            continue
        # Shapes differ.
        if mode == "subset" and len(old_shape) == len(new_shape):
            old_splits, new_splits, how = _pair_splits(
                layer_name, param, old_shape, new_shape, old_split_info.get(param), new_split_info.get(param)
            )
            fresh = np.array(get_new_value(param), copy=True)
            if tuple(fresh.shape) != new_shape:
                raise ShapeMismatchError(
                    f"layer {layer_name!r}, param {param!r}: the fresh init has shape {tuple(fresh.shape)} but "
                    f"the param has shape {new_shape}"
                )
            to_assign[param] = copy_with_new_split_axes(old_splits, new_splits, np.asarray(old), fresh)
            record(param, ParamStatus.PARTLY_COPIED, old_shape, f"subset {how}")
            continue
        if mode == "subset":
            why = f"copy_param_mode='subset' needs the same number of dims, got {old_shape} -> {new_shape}"
        elif mode == "ifpossible":
            record(param, ParamStatus.KEPT_INIT, old_shape, "shape differs, copy_param_mode='ifpossible'")
            continue
        else:
            why = f"shape mismatch {old_shape} -> {new_shape}"
        if ignore_wrong_shape:
            record(param, ParamStatus.KEPT_INIT, old_shape, why + ", ignore_wrong_shape=True")
            continue
        hint = (
            'use copy_param_mode="ifpossible" to keep the fresh init, or "subset" to copy the overlapping part'
            if mode is None
            else "reshape the old value or use copy_param_mode='ifpossible' / ignore_wrong_shape=True"
        )
        raise ShapeMismatchError(
            f"layer {layer_name!r}, param {param!r}: old shape {old_shape} != new shape {new_shape}"
            f" (copy_param_mode={mode!r}); {hint}"
        )
    return to_assign, records + ignored


def _pair_splits(layer_name, param, old_shape, new_shape, old_info, new_info):
    """Return (old splits, new splits, description) with the same number of parts on every axis.

    An axis whose split info is missing on one side, or whose number of parts differs, is treated as one part.
    """
    what = f"layer {layer_name!r}, param {param!r}"
    if old_info is not None:
        check_axis_splits(old_info, old_shape, what + " (old split info)")
    if new_info is not None:
        check_axis_splits(new_info, new_shape, what + " (new split info)")
    old_info = old_info if old_info is not None else whole_axis_splits(old_shape)
    new_info = new_info if new_info is not None else whole_axis_splits(new_shape)
    old_splits, new_splits, merged = [], [], []
    for axis, (o, n) in enumerate(zip(old_info, new_info)):
        if len(o) == len(n):
            old_splits.append([int(p) for p in o])
            new_splits.append([int(p) for p in n])
        else:
            old_splits.append([old_shape[axis]])
            new_splits.append([new_shape[axis]])
            merged.append(axis)
    how = f"parts {old_splits} -> {new_splits}"
    if merged:
        how += f" (axes {merged}: part counts differ, copied as a whole)"
    return old_splits, new_splits, how


def custom_import_records(
    layer_name: str, values: Mapping[str, np.ndarray], new_shapes: Mapping[str, tuple[int, ...]]
) -> list[ParamRecord]:
    """Records for a layer whose custom importer ran: every new param is CUSTOM."""
    return [
        ParamRecord(
            layer_name,
            param,
            ParamStatus.CUSTOM,
            tuple(np.shape(values[param])) if param in values else None,
            tuple(int(d) for d in shape),
            "custom_param_importer",
        )
        for param, shape in new_shapes.items()
    ]


def call_custom_importer(
    importer: Callable[..., Any],
    *,
    layer: Any,
    values_dict: Mapping[str, np.ndarray],
    split_info: Any = None,
    epoch: int | None = None,
    old_layer_dict: Mapping[str, Any] | None = None,
    new_layer_dict: Mapping[str, Any] | None = None,
) -> Any:
    """Call a user `custom_param_importer` as RETURNN does: `importer(layer=, values_dict=, session=None)`.

    `split_info`, `epoch`, `old_layer_dict` and `new_layer_dict` are passed only where the importer's signature
    accepts them (by name or via **kwargs), so importers written for RETURNN keep working. `session` is passed
    unless the signature is known not to accept it. Returns what the importer returns.
    """
    if not callable(importer):
        raise ConfigError(f"custom_param_importer {importer!r} is not callable; give a function or a copy mode string")
    kwargs: dict[str, Any] = {"layer": layer, "values_dict": values_dict}
    optional = {
        "session": None,
        "split_info": split_info,
        "epoch": epoch,
        "old_layer_dict": old_layer_dict,
        "new_layer_dict": new_layer_dict,
    }
    try:
        sig = inspect.signature(importer)
    except (TypeError, ValueError):  # e.g. some builtins: pass what RETURNN passes
        kwargs["session"] = None
        return importer(**kwargs)
    params = sig.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, value in optional.items():
        p = params.get(key)
        by_name = p is not None and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if var_kw or by_name:
            kwargs[key] = value
    return importer(**kwargs)
