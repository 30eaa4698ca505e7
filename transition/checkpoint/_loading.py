"""Load params from a checkpoint (or a dict) into a `Network`: RETURNN's CustomCheckpointLoader semantics, strict.

Network names are ``layer/param``. The planning step (`plan_load`) only looks at names, shapes and dtypes and
raises every error before anything is assigned; `execute_plan` then reads only the values it assigns.

A layer's `custom_param_importer` works as in RETURNN: a callable gets every checkpoint value under the layer's
name (keys relative to the layer) and does the assignment; a copy mode string ("reset", "ifpossible", "subset")
decides what happens to that layer's params when the checkpoint's shape differs (RETURNN's
`set_param_values_by_dict`), while names, dtypes and missing params are checked as for any other param.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import attrs
import numpy as np

from transition.errors import ConfigError, MissingParamsError, ShapeMismatchError, did_you_mean
from transition.params._copy_modes import check_copy_param_mode
from transition.checkpoint._reader import open_checkpoint

__all__ = [
    "LoadReport",
    "ParamLoadPlan",
    "DictSource",
    "load_checkpoint",
    "restore_from_dict",
    "chain_restore",
    "plan_load",
    "execute_plan",
    "network_param_specs",
]

Shape = tuple[int, ...]


class CheckpointSource(Protocol):
    """What loading needs from a checkpoint: names, shapes and dtypes without reading, and `read` per name."""

    def names(self) -> Iterable[str]:
        """All names in the checkpoint."""

    def shape(self, name: str) -> Shape:
        """The shape of `name`, without reading its value."""

    def dtype(self, name: str) -> np.dtype:
        """The dtype of `name`, without reading its value."""

    def read(self, name: str) -> np.ndarray:
        """The value of `name`."""


class DictSource:
    """A `CheckpointSource` over a dict {name: array}; tensorpack's ``:0`` suffixes are removed."""

    def __init__(self, values: Mapping[str, Any], path: str = "<dict>"):
        self.path = path
        self._values: dict[str, np.ndarray] = {}
        for name, value in values.items():
            key = name[:-2] if name.endswith(":0") else name
            if key in self._values:
                raise ConfigError(f"values dict has both {key!r} and {key + ':0'!r}; keep only one of them")
            self._values[key] = np.asarray(value)

    def names(self) -> list[str]:
        return list(self._values)

    def shape(self, name: str) -> Shape:
        return tuple(self._values[name].shape)

    def dtype(self, name: str) -> np.dtype:
        return self._values[name].dtype

    def read(self, name: str) -> np.ndarray:
        return self._values[name]


@attrs.frozen(eq=True, hash=False)
class LoadReport:
    """What a load did. Names in `loaded`, `missing`, `ignored`, `skipped`, `kept_init` are network names
    (``layer/param``); `unused` are checkpoint names; `mapped` is {network name: checkpoint name} where they differ;
    `converted` is {network name: how the value was converted}, a float cast ("float64 -> float32") or a partial
    copy by the layer's copy mode ("subset (4, 3) -> (4, 5)"); `custom_layers` are layers loaded through their
    callable custom_param_importer; `kept_init` are params that their layer's copy-mode custom_param_importer
    ("reset", or "ifpossible" with another shape) left at their init."""

    path: str
    loaded: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    missing: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    unused: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    mapped: Mapping[str, str] = attrs.field(factory=dict, converter=lambda d: MappingProxyType(dict(d)))
    converted: Mapping[str, str] = attrs.field(factory=dict, converter=lambda d: MappingProxyType(dict(d)))
    ignored: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    skipped: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    custom_layers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    kept_init: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __str__(self) -> str:
        lines = [f"load from {self.path}: {len(self.loaded)} loaded, {len(self.missing)} missing, "
                 f"{len(self.ignored)} ignored, {len(self.skipped)} skipped, "
                 + (f"{len(self.kept_init)} kept at init, " if self.kept_init else "")
                 + f"{len(self.unused)} unused in checkpoint"]
        for name in self.loaded:
            extra = []
            if name in self.mapped:
                extra.append(f"from {self.mapped[name]}")
            if name in self.converted:
                extra.append(f"cast {self.converted[name]}")
            lines.append(f"  loaded   {name}" + (f"  ({', '.join(extra)})" if extra else ""))
        for layer in self.custom_layers:
            lines.append(f"  custom   {layer}  (custom_param_importer)")
        for title, names in (("missing", self.missing), ("ignored", self.ignored), ("skipped", self.skipped),
                             ("kept", self.kept_init), ("unused", self.unused)):
            for name in names:
                lines.append(f"  {title:<8} {name}")
        return "\n".join(lines)

    @classmethod
    def combine(cls, reports: Sequence[LoadReport]) -> LoadReport:
        """One report for several loads into the same network (a later load overrides an earlier one)."""
        loaded: dict[str, None] = {}
        mapped: dict[str, str] = {}
        converted: dict[str, str] = {}
        for rep in reports:
            for name in rep.loaded:
                loaded[name] = None
                mapped.pop(name, None)
                converted.pop(name, None)
            mapped.update({k: f"{rep.path}:{v}" for k, v in rep.mapped.items()})
            converted.update(rep.converted)
        done = set(loaded)
        custom = tuple(dict.fromkeys(layer for rep in reports for layer in rep.custom_layers))
        custom_prefixes = tuple(layer + "/" for layer in custom)

        def not_done(names: Iterable[str]) -> tuple[str, ...]:
            return tuple(sorted({n for n in names if n not in done and not n.startswith(custom_prefixes)}))

        return cls(
            path=" + ".join(rep.path for rep in reports),
            loaded=tuple(sorted(done)),
            missing=not_done(n for rep in reports for n in rep.missing),
            unused=tuple(sorted({f"{rep.path}:{n}" for rep in reports for n in rep.unused})),
            mapped=mapped,
            converted=converted,
            ignored=not_done(n for rep in reports for n in rep.ignored),
            skipped=not_done(n for rep in reports for n in rep.skipped),
            custom_layers=custom,
            kept_init=not_done(n for rep in reports for n in rep.kept_init),
        )


@attrs.frozen(eq=False)
class ParamLoadPlan:
    """The checked decisions of one load; `execute_plan` carries them out."""

    path: str
    source: Any
    assign: Mapping[str, str]  # network name -> checkpoint name
    supplied: Mapping[str, np.ndarray]  # network name -> value from custom_missing_load_func
    cast: Mapping[str, np.dtype]  # network name -> target dtype
    custom: Mapping[str, Mapping[str, str]]  # layer -> {name relative to the layer: checkpoint name}
    custom_skipped: Mapping[str, tuple[str, ...]]  # layer -> params of it in skip_params (restored after import)
    partial: Mapping[str, str]  # network name -> checkpoint name, copied by its layer's "subset" copy mode
    report: LoadReport


def _np_dtype(dtype: Any) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:
        import tensorflow as tf

        return np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f" or dtype.name == "bfloat16"


def network_param_specs(
    network: Any,
) -> tuple[dict[str, tuple[Shape, np.dtype]], dict[str, tuple[str, ...]], dict[str, str]]:
    """({"layer/param": (shape, dtype)}, {layer: its params} for layers with a callable custom_param_importer,
    {"layer/param": copy mode} for params of layers whose custom_param_importer is a copy mode string)."""
    specs: dict[str, tuple[Shape, np.dtype]] = {}
    custom: dict[str, tuple[str, ...]] = {}
    copy_modes: dict[str, str] = {}
    for layer_name, layer in network.layers.items():
        for param, var in layer.params.items():
            specs[f"{layer_name}/{param}"] = (tuple(int(d) for d in var.shape), _np_dtype(var.dtype))
        importer = getattr(layer, "custom_param_importer", None)
        if callable(importer):
            custom[layer_name] = tuple(layer.params)
        elif importer is not None:
            mode = check_copy_param_mode(importer, f"custom_param_importer of layer {layer_name!r}")
            copy_modes.update({f"{layer_name}/{p}": mode for p in layer.params if mode is not None})
    return specs, custom, copy_modes


def _check_names(option: str, entries: Iterable[str], used: Collection[str], candidates: Iterable[str]) -> None:
    unmatched = [e for e in entries if e not in used]
    if unmatched:
        cands = sorted(set(candidates))
        details = "; ".join(f"{e!r}{did_you_mean(e, cands)}" for e in unmatched)
        raise ConfigError(f"{option} entries match no param that this load would touch: {details}. "
                          "Fix or remove them; entries are checkpoint-side names, as this load would read them: "
                          f"{cands[:5]!r}.")


def plan_load(
    specs: Mapping[str, tuple[Shape, np.dtype]],
    custom_layers: Mapping[str, Sequence[str]],
    source: CheckpointSource,
    *,
    path: str = "<checkpoint>",
    prefix: str = "",
    ignore_missing: bool = False,
    ignore_params: Iterable[str] = (),
    ignore_params_prefixes: Iterable[str] = (),
    var_name_mapping: Mapping[str, str] | None = None,
    custom_missing_load_func: Callable[..., np.ndarray | None] | None = None,
    cast: bool = False,
    skip_params: Collection[str] = frozenset(),
    copy_modes: Mapping[str, str] | None = None,
) -> ParamLoadPlan:
    """Decide, from names, shapes and dtypes only, what a load does; raise every error before anything is assigned.

    `specs` are the network's params {"layer/param": (shape, dtype)}; `custom_layers` the layers whose callable
    custom_param_importer takes their values; `copy_modes` {"layer/param": mode} the params whose layer's
    custom_param_importer is a copy mode ("reset": kept at init; "ifpossible": kept at init if the shape differs;
    "subset": a differing shape with the same number of dims is copied in part). See `load_checkpoint` for the
    other options.
    """
    copy_modes = dict(copy_modes or {})
    if isinstance(ignore_params, str) or isinstance(ignore_params_prefixes, str):
        raise ConfigError("ignore_params and ignore_params_prefixes must be lists of names, not a single string")
    ignore_params = list(ignore_params)
    ignore_params_prefixes = list(ignore_params_prefixes)
    mapping_in = dict(var_name_mapping or {})
    ckpt_names = list(source.names())
    ckpt_set = set(ckpt_names)

    selected = [n for n in specs if n.startswith(prefix)]
    if prefix and not selected:
        layers = sorted({n.split("/", 1)[0] for n in specs})
        raise ConfigError(f"prefix {prefix!r} matches no layer of the network{did_you_mean(prefix, layers)}; "
                          f"layers are {layers[:10]!r}")

    def strip(name: str) -> str:
        return name[len(prefix):]

    # var_name_mapping keys: full network names, or (RETURNN style) names without the prefix.
    mapping: dict[str, str] = {}
    for key, ckpt_name in mapping_in.items():
        if key in specs and key.startswith(prefix):
            net_name = key
        elif prefix and prefix + key in specs:
            net_name = prefix + key
        else:
            raise ConfigError(f"var_name_mapping key {key!r} is not a param of the network"
                              f"{did_you_mean(key, selected)}; keys are network names 'layer/param'")
        if ckpt_name not in ckpt_set:
            raise ConfigError(f"var_name_mapping[{key!r}] = {ckpt_name!r} is not in checkpoint {path}"
                              f"{did_you_mean(ckpt_name, ckpt_names)}")
        mapping[net_name] = ckpt_name

    custom_of = {f"{layer}/{p}": layer for layer, params in custom_layers.items() for p in params}
    used_ignores: set[str] = set()
    used_prefixes: set[str] = set()

    def is_ignored(*names: str) -> bool:
        hit = False
        for n in names:
            if n in ignore_params:
                used_ignores.add(n)
                hit = True
            for p in ignore_params_prefixes:
                if n.startswith(p):
                    used_prefixes.add(p)
                    hit = True
        return hit

    ignored: list[str] = []
    kept_init: list[str] = []
    candidates: list[str] = []  # network names to load (plain params)
    custom_sel: dict[str, list[str]] = {}
    resolved: dict[str, str] = {}
    for net_name in selected:
        if net_name in custom_of:
            custom_sel.setdefault(custom_of[net_name], []).append(net_name)
            continue
        default = strip(net_name)
        resolved[net_name] = mapping.get(net_name, default)
        if is_ignored(default, resolved[net_name]):
            ignored.append(net_name)
        elif copy_modes.get(net_name) == "reset":
            kept_init.append(net_name)
        else:
            candidates.append(net_name)

    # Custom importer layers: every checkpoint name under the layer's (prefix-stripped) scope, plus mapped params.
    custom: dict[str, dict[str, str]] = {}
    custom_skipped: dict[str, tuple[str, ...]] = {}
    skipped: list[str] = []
    missing: list[str] = []
    for layer, names in custom_sel.items():
        scope = strip(layer) + "/"
        values = {n[len(scope):]: n for n in ckpt_names if n.startswith(scope)}
        for net_name in names:
            if net_name in mapping:
                values[net_name[len(layer) + 1:]] = mapping[net_name]
        values = {rel: c for rel, c in values.items() if not is_ignored(c)}
        if not values and not is_ignored(*(strip(n) for n in names)):
            missing.extend(names)
            continue
        if not values:
            ignored.extend(names)
            continue
        if all(n in skip_params for n in names):
            skipped.extend(names)
            continue
        custom[layer] = values
        custom_skipped[layer] = tuple(n[len(layer) + 1:] for n in names if n in skip_params)

    _check_names("ignore_params", ignore_params, used_ignores, list(resolved.values()) + ckpt_names)
    _check_names("ignore_params_prefixes", ignore_params_prefixes, used_prefixes, list(resolved.values()))
    if not candidates and not custom and not skipped and not missing and not kept_init:
        raise ConfigError(f"nothing selected to load from {path}: the network has {len(specs)} params, "
                          f"prefix={prefix!r} selects {len(selected)}, ignore_params/ignore_params_prefixes "
                          f"leave none; check prefix and the ignore options")

    assign: dict[str, str] = {}
    partial: dict[str, str] = {}
    supplied: dict[str, np.ndarray] = {}
    cast_to: dict[str, np.dtype] = {}
    converted: dict[str, str] = {}
    for net_name in candidates:
        if net_name in skip_params:
            skipped.append(net_name)
            continue
        shape, dtype = specs[net_name]
        ckpt_name = resolved[net_name]
        mode = copy_modes.get(net_name)
        if ckpt_name in ckpt_set:
            c_shape, c_dtype = tuple(source.shape(ckpt_name)), _np_dtype(source.dtype(ckpt_name))
            origin = f"checkpoint {path} has {ckpt_name!r}"
        elif custom_missing_load_func is not None and (
            value := custom_missing_load_func(name=strip(net_name), shape=shape, reader=source)
        ) is not None:
            value = np.asarray(value)
            supplied[net_name] = value
            c_shape, c_dtype = tuple(value.shape), value.dtype
            origin = f"custom_missing_load_func returned a value for {strip(net_name)!r}"
        else:
            missing.append(net_name)
            continue
        target = assign
        if c_shape != shape:
            if mode == "ifpossible" and net_name not in supplied:
                kept_init.append(net_name)
                continue
            if mode == "subset" and net_name not in supplied and len(c_shape) == len(shape):
                target = partial
                converted[net_name] = f"subset {c_shape} -> {shape}"
            else:
                why = (" (its layer's custom_param_importer 'subset' needs the same number of dims)"
                       if mode == "subset" else "")
                raise ShapeMismatchError(f"param {net_name!r} has shape {shape} but {origin} with shape {c_shape}"
                                         f"{why}; fix the network or map/ignore this param")
        if c_dtype != dtype:
            if not (cast and _is_float(c_dtype) and _is_float(dtype)):
                hint = "pass cast=True to cast floats" if _is_float(c_dtype) and _is_float(dtype) else \
                    "dtypes must match"
                raise ShapeMismatchError(f"param {net_name!r} has dtype {dtype.name} but {origin} with dtype "
                                         f"{c_dtype.name}; {hint}")
            cast_to[net_name] = dtype
            converted[net_name] = "; ".join(filter(None, (converted.get(net_name), f"{c_dtype.name} -> {dtype.name}")))
        if net_name not in supplied:
            target[net_name] = ckpt_name

    used_ckpt = {*assign.values(), *partial.values(), *(c for values in custom.values() for c in values.values())}
    unused = [n for n in ckpt_names if n not in used_ckpt]
    if missing and not ignore_missing:
        details = "; ".join(f"{n!r} (looked for {resolved.get(n, strip(n))!r}"
                            f"{did_you_mean(resolved.get(n, strip(n)), unused)})" for n in missing)
        raise MissingParamsError(f"{len(missing)} params missing from {path}: {details}. Use var_name_mapping, "
                                 f"ignore_params, or ignore_missing=True if the checkpoint only partly covers the "
                                 f"network")
    if not assign and not partial and not supplied and not custom and missing:
        raise MissingParamsError(f"none of the {len(missing)} selected params is in {path} (prefix={prefix!r}); "
                                 f"wrong file or prefix? checkpoint names: {sorted(ckpt_names)[:8]!r}")

    custom_names = {n for layer in custom for n in custom_sel[layer]}
    mapped = {n: resolved[n] for n in assign if resolved[n] != n}
    mapped.update({n: f"custom_missing_load_func({strip(n)!r})" for n in supplied})
    report = LoadReport(
        path=path,
        loaded=tuple(n for n in selected if n in assign or n in partial or n in supplied
                     or (n in custom_names and n not in skip_params)),
        missing=tuple(missing),
        unused=tuple(unused),
        mapped=mapped,
        converted=converted,
        ignored=tuple(ignored),
        skipped=tuple(skipped) + tuple(f"{layer}/{p}" for layer, ps in custom_skipped.items() for p in ps),
        custom_layers=tuple(custom),
        kept_init=tuple(kept_init),
    )
    return ParamLoadPlan(path=path, source=source, assign=assign, supplied=supplied, cast=cast_to, custom=custom,
                         custom_skipped=custom_skipped, partial=partial, report=report)


def execute_plan(network: Any, plan: ParamLoadPlan) -> LoadReport:
    """Read the planned values (only those) and assign them to the network's variables."""

    def value_of(net_name: str, value: Any) -> Any:
        return np.asarray(value).astype(plan.cast[net_name]) if net_name in plan.cast else value

    read = getattr(plan.source, "read_for_assign", plan.source.read)  # a TF bundle: tensors, no numpy copy
    for net_name, ckpt_name in plan.assign.items():
        layer, param = _split(network, net_name)
        network.layers[layer].params[param].assign(value_of(net_name, read(ckpt_name)))
    for net_name, value in plan.supplied.items():
        layer, param = _split(network, net_name)
        network.layers[layer].params[param].assign(value_of(net_name, value))
    partial: dict[str, dict[str, np.ndarray]] = {}
    for net_name, ckpt_name in plan.partial.items():
        layer, param = _split(network, net_name)
        partial.setdefault(layer, {})[param] = value_of(net_name, plan.source.read(ckpt_name))
    for layer_name, values_dict in partial.items():  # the layer's copy mode ("subset") copies what fits
        network.layers[layer_name].set_param_values_by_dict(values_dict)
    for layer_name, names in plan.custom.items():
        layer = network.layers[layer_name]
        keep = {p: np.array(layer.params[p].numpy()) for p in plan.custom_skipped.get(layer_name, ())}
        values_dict = {rel: plan.source.read(ckpt_name) for rel, ckpt_name in names.items()}
        layer.set_param_values_by_dict(values_dict)
        for p, value in keep.items():  # params set by an earlier load win
            layer.params[p].assign(value)
    return plan.report


def _split(network: Any, net_name: str) -> tuple[str, str]:
    """Split "layer/param" where the layer name itself may contain '/' (longest layer name that matches)."""
    best = None
    for layer in network.layers:
        if net_name.startswith(layer + "/") and (best is None or len(layer) > len(best)):
            best = layer
    if best is None:
        raise ConfigError(f"{net_name!r} is not 'layer/param' of this network")
    return best, net_name[len(best) + 1:]


_OPTION_NAMES = ("prefix", "ignore_missing", "ignore_params", "ignore_params_prefixes", "var_name_mapping",
                 "custom_missing_load_func", "cast", "skip_params")


def _load_from_source(network: Any, source: CheckpointSource, path: str, options: Mapping[str, Any]) -> LoadReport:
    specs, custom, copy_modes = network_param_specs(network)
    return execute_plan(network, plan_load(specs, custom, source, path=path, copy_modes=copy_modes, **options))


def load_checkpoint(
    network: Any,
    filename: str | os.PathLike,
    *,
    prefix: str = "",
    ignore_missing: bool = False,
    ignore_params: Iterable[str] = (),
    ignore_params_prefixes: Iterable[str] = (),
    var_name_mapping: Mapping[str, str] | None = None,
    custom_missing_load_func: Callable[..., np.ndarray | None] | None = None,
    cast: bool = False,
    skip_params: Collection[str] = frozenset(),
) -> LoadReport:
    """Load params from a checkpoint into `network` (RETURNN's CustomCheckpointLoader, strict).

    Param W of layer l1 is ``l1/W``. `prefix` selects the network's params starting with it and loads them from
    the checkpoint name without it. `ignore_params` / `ignore_params_prefixes` name checkpoint-side names.
    `var_name_mapping` {network name: checkpoint name} wins over an equal name. Layers with a callable
    custom_param_importer get every checkpoint value under their name (relative to the layer) via
    `set_param_values_by_dict`, and the importer assigns; a copy-mode importer ("reset", "ifpossible", "subset")
    decides for its layer's params what a differing shape means (see `plan_load`).
    `custom_missing_load_func(name=, shape=, reader=)` may return a value for a param missing from the checkpoint
    (name is the checkpoint-side name). `cast` allows float casts. `skip_params` (network names) are left alone.
    Every error is raised before anything is assigned.
    """
    path = os.fspath(filename)
    with open_checkpoint(path) as source:
        return _load_from_source(network, source, path, dict(
            prefix=prefix, ignore_missing=ignore_missing, ignore_params=ignore_params,
            ignore_params_prefixes=ignore_params_prefixes, var_name_mapping=var_name_mapping,
            custom_missing_load_func=custom_missing_load_func, cast=cast, skip_params=skip_params))


def restore_from_dict(network: Any, values: Mapping[str, Any], **options: Any) -> LoadReport:
    """Tensorpack's DictRestore: load from {name: array} (``:0`` suffixes removed), same options as
    `load_checkpoint`."""
    _check_option_keys(options, "restore_from_dict")
    return _load_from_source(network, DictSource(values), "<dict>", options)


def _check_option_keys(options: Mapping[str, Any], where: str) -> None:
    for key in options:
        if key not in _OPTION_NAMES:
            raise ConfigError(f"{where}: unknown option {key!r}{did_you_mean(key, _OPTION_NAMES)}; "
                              f"options are {list(_OPTION_NAMES)}")


def chain_restore(
    network: Any,
    sources: Iterable[Any],
    *,
    ignore_missing: bool = False,
) -> LoadReport:
    """Tensorpack's ChainInit: load several sources in order, a later one overriding an earlier one.

    Each source is a checkpoint path, a dict {name: array}, or a pair (source, options) with the options of
    `load_checkpoint` except `ignore_missing`. A param is missing only if no source has it (an error unless
    `ignore_missing`); a source that loads nothing at all is an error. Everything is checked before anything is
    assigned.
    """
    with contextlib.ExitStack() as opened:
        return _chain(network, sources, opened, ignore_missing)


def _chain(network: Any, sources: Iterable[Any], opened: contextlib.ExitStack, ignore_missing: bool) -> LoadReport:
    specs, custom, copy_modes = network_param_specs(network)
    plans: list[ParamLoadPlan] = []
    for i, entry in enumerate(sources):
        src, options = (entry if isinstance(entry, tuple) else (entry, {}))
        _check_option_keys(options, f"chain_restore source {i}")
        if "ignore_missing" in options:
            raise ConfigError(f"chain_restore source {i}: 'ignore_missing' is not a per-source option (a param is "
                              f"missing only if no source has it); pass chain_restore(..., ignore_missing=True)")
        options = {**options, "ignore_missing": True}
        if isinstance(src, Mapping):
            source, path = DictSource(src, path=f"<dict {i}>"), f"<dict {i}>"
        else:
            path = os.fspath(src)
            source = opened.enter_context(open_checkpoint(path))
        plans.append(plan_load(specs, custom, source, path=path, copy_modes=copy_modes, **options))
    if not plans:
        raise ConfigError("chain_restore needs at least one source")
    # A later source overrides an earlier one: drop what later plans set from earlier plans (read nothing twice).
    later: set[str] = set()
    later_layers: set[str] = set()
    final: list[ParamLoadPlan] = []
    for plan in reversed(plans):
        assign = {n: c for n, c in plan.assign.items() if n not in later}
        supplied = {n: v for n, v in plan.supplied.items() if n not in later}
        partial = {n: c for n, c in plan.partial.items() if n not in later}
        custom_plan = {layer: v for layer, v in plan.custom.items() if layer not in later_layers}
        final.append(attrs.evolve(plan, assign=assign, supplied=supplied, partial=partial, custom=custom_plan))
        later |= set(plan.assign) | set(plan.supplied) | set(plan.partial)
        later_layers |= set(plan.custom)
    report = LoadReport.combine([p.report for p in plans])
    if report.missing and not ignore_missing:
        raise MissingParamsError(f"{len(report.missing)} params are in none of the sources {report.path}: "
                                 f"{list(report.missing)}; add a source or pass ignore_missing=True")
    for plan in reversed(final):
        execute_plan(network, plan)
    return report
