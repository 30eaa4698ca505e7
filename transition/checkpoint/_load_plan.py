"""Planning a load into a `Network`: from names, shapes and dtypes only, decide what a load does and raise every
error before anything is assigned (RETURNN's CustomCheckpointLoader semantics, strict). `_loading.execute_plan`
carries the plan out.

A layer's `custom_param_importer` works as in RETURNN: a callable gets every checkpoint value under the layer's
name (keys relative to the layer) and does the assignment; a copy mode string ("reset", "ifpossible", "subset")
decides, with the rules of `transition.params`, what happens to that layer's params when the checkpoint's shape
differs, while names, dtypes and missing params are checked as for any other param.

A param whose name the checkpoint lacks is looked for under its old names and in the layouts that `_param_renames`
converts (e.g. RETURNN's standard LSTM). Names given with TF's ``:0`` suffix (``ignore_params``,
``ignore_params_prefixes``, ``var_name_mapping``) mean the name without it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import numpy as np

from transition.checkpoint._load_report import LoadReport
from transition.checkpoint._param_renames import Conversion, find_conversion
from transition.errors import (
    ConfigError,
    MissingParamsError,
    ShapeMismatchError,
    did_you_mean,
    listed,
)
from transition.params._copy_modes import Action, decide_copy, layer_import, resets

__all__ = ["CheckpointSource", "DictSource", "LoadOptions", "ParamLoadPlan", "network_param_specs", "plan_load",
           "np_dtype"]

Shape = tuple[int, ...]
Specs = Mapping[str, tuple[Shape, np.dtype]]


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


@attrs.frozen(kw_only=True)
class LoadOptions:
    """The options of a load (`load_checkpoint`, `restore_from_dict`, `plan_load`, preload entries), declared once.

    `prefix` selects the network's params starting with it and loads them from the checkpoint name without it.
    `ignore_params` / `ignore_params_prefixes` name checkpoint-side names. `var_name_mapping` {network name:
    checkpoint name} wins over an equal name. `custom_missing_load_func(name=, shape=, reader=)` may return a value
    for a param missing from the checkpoint (name is the checkpoint-side name). `cast` allows float casts.
    `skip_params` (network names) are left alone. `ignore_missing`: params the checkpoint lacks keep their value.
    """

    prefix: str = ""
    ignore_missing: bool = False
    ignore_params: Iterable[str] = ()
    ignore_params_prefixes: Iterable[str] = ()
    var_name_mapping: Mapping[str, str] | None = None
    custom_missing_load_func: Callable[..., np.ndarray | None] | None = None
    cast: bool = False
    skip_params: Collection[str] = frozenset()

    @classmethod
    def make(cls, where: str, **options: Any) -> LoadOptions:
        """`LoadOptions(**options)`; an unknown option is a ConfigError naming it and `where` it was given."""
        names = [f.name for f in attrs.fields(cls)]
        for key in options:
            if key not in names:
                raise ConfigError(f"{where}: unknown option {key!r}{did_you_mean(key, names)}; options are {names}")
        return cls(**options)

    def evolve(self, **changes: Any) -> LoadOptions:
        return attrs.evolve(self, **changes)


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
    conversions: Mapping[str, Conversion] = attrs.field(factory=dict)  # checkpoint-side name -> how to get it

    def read(self, ckpt_name: str) -> np.ndarray:
        """The value of a checkpoint-side name of this plan (converted where the plan converts it)."""
        if ckpt_name in self.conversions:
            return self.conversions[ckpt_name].read(self.source)
        return self.source.read(ckpt_name)


def np_dtype(dtype: Any) -> np.dtype:
    """A numpy dtype from a numpy, TF or Keras dtype (or its name)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        import tensorflow as tf

        return np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f" or dtype.name == "bfloat16"


def network_param_specs(network: Any) -> tuple[dict[str, tuple[Shape, np.dtype]], dict[str, tuple[str, ...]],
                                                dict[str, str]]:
    """({"layer/param": (shape, dtype)}, {layer: its params} for layers with a callable custom_param_importer,
    {"layer/param": copy mode} for params of layers whose custom_param_importer is a copy mode string)."""
    specs: dict[str, tuple[Shape, np.dtype]] = {}
    custom: dict[str, tuple[str, ...]] = {}
    copy_modes: dict[str, str] = {}
    for layer_name, layer in network.layers.items():
        for param, var in layer.params.items():
            specs[f"{layer_name}/{param}"] = (tuple(int(d) for d in var.shape), np_dtype(var.dtype))
        how = layer_import(getattr(layer, "custom_param_importer", None), None, layer_name)
        if how.importer is not None:
            custom[layer_name] = tuple(layer.params)
        elif how.mode is not None:
            copy_modes.update({f"{layer_name}/{p}": how.mode for p in layer.params})
    return specs, custom, copy_modes


def _check_names(option: str, entries: Iterable[str], used: Collection[str], candidates: Iterable[str]) -> None:
    unmatched = [e for e in entries if e not in used]
    if unmatched:
        cands = sorted(set(candidates))
        details = "; ".join(f"{e!r}{did_you_mean(e, cands)}" for e in unmatched)
        raise ConfigError(f"{option} entries match no param that this load would touch: {details}. "
                          "Fix or remove them; entries are checkpoint-side names, as this load would read them: "
                          f"{listed(cands, 5)}.")


class _Ignores:
    """`ignore_params` / `ignore_params_prefixes`, remembering which entries matched (unmatched ones are errors)."""

    def __init__(self, ignore_params: Iterable[str], ignore_params_prefixes: Iterable[str]):
        if isinstance(ignore_params, str) or isinstance(ignore_params_prefixes, str):
            raise ConfigError("ignore_params and ignore_params_prefixes must be lists of names, not a single string")
        self.params = list(ignore_params)
        self.prefixes = list(ignore_params_prefixes)
        self.used_params: set[str] = set()
        self.used_prefixes: set[str] = set()

    def __call__(self, *names: str) -> bool:
        hit = False
        for n in names:
            if n in self.params:
                self.used_params.add(n)
                hit = True
            for p in self.prefixes:
                if n.startswith(p):
                    self.used_prefixes.add(p)
                    hit = True
        return hit

    def check(self, resolved: Iterable[str], ckpt_names: Sequence[str]) -> None:
        resolved = list(resolved)
        _check_names("ignore_params", self.params, self.used_params, resolved + list(ckpt_names))
        _check_names("ignore_params_prefixes", self.prefixes, self.used_prefixes, resolved)


@attrs.define
class _Outcome:
    """What the planning steps decide, per network name (filled in step by step)."""

    ignored: list[str] = attrs.Factory(list)
    kept_init: list[str] = attrs.Factory(list)
    skipped: list[str] = attrs.Factory(list)
    missing: list[str] = attrs.Factory(list)
    assign: dict[str, str] = attrs.Factory(dict)
    partial: dict[str, str] = attrs.Factory(dict)
    supplied: dict[str, np.ndarray] = attrs.Factory(dict)
    cast: dict[str, np.dtype] = attrs.Factory(dict)
    converted: dict[str, str] = attrs.Factory(dict)
    conversions: dict[str, Conversion] = attrs.Factory(dict)  # network name -> its conversion
    custom: dict[str, dict[str, str]] = attrs.Factory(dict)
    custom_skipped: dict[str, tuple[str, ...]] = attrs.Factory(dict)


class _Planner:
    """The steps of `plan_load` over one network and one checkpoint."""

    def __init__(self, specs: Specs, source: CheckpointSource, path: str, prefix: str,
                 copy_modes: Mapping[str, str], skip_params: Collection[str], ignores: _Ignores):
        self.specs, self.source, self.path, self.prefix = specs, source, path, prefix
        self.copy_modes, self.skip_params, self.ignores = dict(copy_modes), skip_params, ignores
        self.ckpt_names = list(source.names())
        self.ckpt_set = set(self.ckpt_names)
        self.selected = [n for n in specs if n.startswith(prefix)]
        self.resolved: dict[str, str] = {}  # network name -> checkpoint name (plain params)
        self.out = _Outcome()

    def strip(self, name: str) -> str:
        return name[len(self.prefix):]

    def check_prefix(self) -> None:
        if self.prefix and not self.selected:
            layers = sorted({n.split("/", 1)[0] for n in self.specs})
            raise ConfigError(f"prefix {self.prefix!r} matches no layer of the network"
                              f"{did_you_mean(self.prefix, layers)}; layers are {listed(layers)}")

    def resolve_mapping(self, mapping_in: Mapping[str, str]) -> dict[str, str]:
        """var_name_mapping keys: full network names, or (RETURNN style) names without the prefix."""
        mapping: dict[str, str] = {}
        for key, ckpt_name in mapping_in.items():
            if key in self.specs and key.startswith(self.prefix):
                net_name = key
            elif self.prefix and self.prefix + key in self.specs:
                net_name = self.prefix + key
            else:
                raise ConfigError(f"var_name_mapping key {key!r} is not a param of the network"
                                  f"{did_you_mean(key, self.selected)}; keys are network names 'layer/param'")
            if ckpt_name not in self.ckpt_set and _strip_tensor_suffix(ckpt_name) in self.ckpt_set:
                ckpt_name = _strip_tensor_suffix(ckpt_name)
            if ckpt_name not in self.ckpt_set:
                raise ConfigError(f"var_name_mapping[{key!r}] = {ckpt_name!r} is not in checkpoint {self.path}"
                                  f"{did_you_mean(ckpt_name, self.ckpt_names)}")
            mapping[net_name] = ckpt_name
        return mapping

    def classify(self, mapping: Mapping[str, str], custom_layers: Mapping[str, Sequence[str]]
                 ) -> tuple[list[str], dict[str, list[str]]]:
        """(plain params to load, {custom importer layer: its selected params}); ignored and reset ones recorded."""
        custom_of = {f"{layer}/{p}": layer for layer, params in custom_layers.items() for p in params}
        candidates: list[str] = []
        custom_sel: dict[str, list[str]] = {}
        for net_name in self.selected:
            if net_name in custom_of:
                custom_sel.setdefault(custom_of[net_name], []).append(net_name)
                continue
            default = self.strip(net_name)
            self.resolved[net_name] = ckpt_name = mapping.get(net_name, default)
            conversion = find_conversion(ckpt_name, self.ckpt_set, self.source) if (
                ckpt_name not in self.ckpt_set) else None
            if conversion is not None:
                self.out.conversions[net_name] = conversion
            if self.ignores(default, ckpt_name, *(conversion.sources if conversion else ())):
                self.out.ignored.append(net_name)
            elif resets(self.copy_modes.get(net_name)):
                self.out.kept_init.append(net_name)
            else:
                candidates.append(net_name)
        return candidates, custom_sel

    def plan_custom(self, custom_sel: Mapping[str, list[str]], mapping: Mapping[str, str]) -> None:
        """Custom importer layers: every checkpoint name under the layer's (prefix-stripped) scope, plus mapped
        params."""
        for layer, names in custom_sel.items():
            scope = self.strip(layer) + "/"
            values = {n[len(scope):]: n for n in self.ckpt_names if n.startswith(scope)}
            for net_name in names:
                if net_name in mapping:
                    values[net_name[len(layer) + 1:]] = mapping[net_name]
            values = {rel: c for rel, c in values.items() if not self.ignores(c)}
            if not values and not self.ignores(*(self.strip(n) for n in names)):
                self.out.missing.extend(names)
            elif not values:
                self.out.ignored.extend(names)
            elif all(n in self.skip_params for n in names):
                self.out.skipped.extend(names)
            else:
                self.out.custom[layer] = values
                self.out.custom_skipped[layer] = tuple(n[len(layer) + 1:] for n in names if n in self.skip_params)

    def plan_param(self, net_name: str, custom_missing_load_func: Callable[..., Any] | None, cast: bool) -> None:
        """Decide one plain param: assigned, partly copied, supplied, kept at init, skipped or missing."""
        if net_name in self.skip_params:
            self.out.skipped.append(net_name)
            return
        shape, dtype = self.specs[net_name]
        ckpt_name = self.resolved[net_name]
        mode = self.copy_modes.get(net_name)
        conversion = self.out.conversions.get(net_name)
        if ckpt_name in self.ckpt_set:
            c_shape, c_dtype = tuple(self.source.shape(ckpt_name)), np_dtype(self.source.dtype(ckpt_name))
            origin = f"checkpoint {self.path} has {ckpt_name!r}"
        elif conversion is not None:
            c_shape, c_dtype = conversion.shape, np_dtype(conversion.dtype)
            origin = f"checkpoint {self.path} gives {ckpt_name!r} by {conversion.how}"
            self.out.converted[net_name] = conversion.how
        elif custom_missing_load_func is not None and (
            value := custom_missing_load_func(name=self.strip(net_name), shape=shape, reader=self.source)
        ) is not None:
            value = np.asarray(value)
            self.out.supplied[net_name] = value
            c_shape, c_dtype, mode = tuple(value.shape), value.dtype, None  # a supplied value must fit exactly
            origin = f"custom_missing_load_func returned a value for {self.strip(net_name)!r}"
        else:
            self.out.missing.append(net_name)
            return
        decision = decide_copy(c_shape, shape, mode)
        if decision.action is Action.KEEP_INIT:  # "ifpossible" with another shape
            self.out.kept_init.append(net_name)
            self.out.converted.pop(net_name, None)
            return
        if decision.action is Action.MISMATCH:
            why = (" (its layer's custom_param_importer 'subset' needs the same number of dims)"
                   if self.copy_modes.get(net_name) == "subset" else "")
            raise ShapeMismatchError(f"param {net_name!r} has shape {shape} but {origin} with shape {c_shape}"
                                     f"{why}; fix the network or map/ignore this param")
        if decision.action is Action.PARTIAL:
            self.out.converted[net_name] = "; ".join(
                filter(None, (self.out.converted.get(net_name), f"subset {c_shape} -> {shape}")))
        self.plan_cast(net_name, dtype, c_dtype, origin, cast)
        if net_name not in self.out.supplied:
            target = self.out.partial if decision.action is Action.PARTIAL else self.out.assign
            target[net_name] = ckpt_name

    def plan_cast(self, net_name: str, dtype: np.dtype, c_dtype: np.dtype, origin: str, cast: bool) -> None:
        if c_dtype == dtype:
            return
        if not (cast and _is_float(c_dtype) and _is_float(dtype)):
            hint = "pass cast=True to cast floats" if _is_float(c_dtype) and _is_float(dtype) else "dtypes must match"
            raise ShapeMismatchError(f"param {net_name!r} has dtype {dtype.name} but {origin} with dtype "
                                     f"{c_dtype.name}; {hint}")
        self.out.cast[net_name] = dtype
        self.out.converted[net_name] = "; ".join(
            filter(None, (self.out.converted.get(net_name), f"{c_dtype.name} -> {dtype.name}")))

    def unused(self) -> list[str]:
        out = self.out
        used = {*out.assign.values(), *out.partial.values(), *(c for v in out.custom.values() for c in v.values())}
        used.update(s for n, conv in out.conversions.items() if n in out.assign or n in out.partial
                    for s in conv.sources)
        return [n for n in self.ckpt_names if n not in used]

    def check_missing(self, ignore_missing: bool) -> None:
        out = self.out
        if out.missing and not ignore_missing:
            unused = self.unused()
            details = "; ".join(f"{n!r} (looked for {self.resolved.get(n, self.strip(n))!r}"
                                f"{did_you_mean(self.resolved.get(n, self.strip(n)), unused)})" for n in out.missing)
            raise MissingParamsError(f"{len(out.missing)} params missing from {self.path}: {details}. Use "
                                     "var_name_mapping, ignore_params, or ignore_missing=True if the checkpoint only "
                                     "partly covers the network")
        if not out.assign and not out.partial and not out.supplied and not out.custom and out.missing:
            raise MissingParamsError(f"none of the {len(out.missing)} selected params is in {self.path} "
                                     f"(prefix={self.prefix!r}); wrong file or prefix? checkpoint names: "
                                     f"{listed(sorted(self.ckpt_names), 8)}")

    def report(self, custom_sel: Mapping[str, list[str]]) -> LoadReport:
        out = self.out
        custom_names = {n for layer in out.custom for n in custom_sel[layer]}
        mapped = {n: self.resolved[n] for n in out.assign if self.resolved[n] != n}
        mapped.update({n: ", ".join(conv.sources) for n, conv in out.conversions.items()
                       if n in out.assign or n in out.partial})
        mapped.update({n: f"custom_missing_load_func({self.strip(n)!r})" for n in out.supplied})
        loaded = tuple(n for n in self.selected if n in out.assign or n in out.partial or n in out.supplied
                       or (n in custom_names and n not in self.skip_params))
        skipped = tuple(out.skipped) + tuple(f"{layer}/{p}" for layer, ps in out.custom_skipped.items() for p in ps)
        return LoadReport(path=self.path, loaded=loaded, missing=tuple(out.missing), unused=tuple(self.unused()),
                          mapped=mapped, converted=out.converted, ignored=tuple(out.ignored), skipped=skipped,
                          custom_layers=tuple(out.custom), kept_init=tuple(out.kept_init))


def plan_load(
    specs: Specs,
    custom_layers: Mapping[str, Sequence[str]],
    source: CheckpointSource,
    *,
    path: str = "<checkpoint>",
    copy_modes: Mapping[str, str] | None = None,
    options: LoadOptions | None = None,
    **load_options: Any,
) -> ParamLoadPlan:
    """Decide, from names, shapes and dtypes only, what a load does; raise every error before anything is assigned.

    `specs` are the network's params {"layer/param": (shape, dtype)}; `custom_layers` the layers whose callable
    custom_param_importer takes their values; `copy_modes` {"layer/param": mode} the params whose layer's
    custom_param_importer is a copy mode ("reset": kept at init; "ifpossible": kept at init if the shape differs;
    "subset": a differing shape with the same number of dims is copied in part). The other options are those of
    `LoadOptions` (`options`, or as keywords).
    """
    o = options if options is not None else LoadOptions.make("plan_load", **load_options)
    ignores = _Ignores(_without_tensor_suffix(o.ignore_params), _without_tensor_suffix(o.ignore_params_prefixes))
    planner = _Planner(specs, source, path, o.prefix, copy_modes or {}, o.skip_params, ignores)
    planner.check_prefix()
    mapping = planner.resolve_mapping({_strip_tensor_suffix(k): v for k, v in (o.var_name_mapping or {}).items()})
    candidates, custom_sel = planner.classify(mapping, custom_layers)
    planner.plan_custom(custom_sel, mapping)
    planner.ignores.check(planner.resolved.values(), planner.ckpt_names)
    out = planner.out
    if not candidates and not out.custom and not out.skipped and not out.missing and not out.kept_init:
        raise ConfigError(f"nothing selected to load from {path}: the network has {len(specs)} params, "
                          f"prefix={o.prefix!r} selects {len(planner.selected)}, ignore_params/"
                          "ignore_params_prefixes leave none; check prefix and the ignore options")
    for net_name in candidates:
        planner.plan_param(net_name, o.custom_missing_load_func, o.cast)
    planner.check_missing(o.ignore_missing)
    used = {**out.assign, **out.partial}
    conversions = {used[n]: conv for n, conv in out.conversions.items() if n in used}
    return ParamLoadPlan(path=path, source=source, assign=out.assign, supplied=out.supplied, cast=out.cast,
                         custom=out.custom, custom_skipped=out.custom_skipped, partial=out.partial,
                         report=planner.report(custom_sel), conversions=conversions)


def _strip_tensor_suffix(name: Any) -> Any:
    """A name given with TF's tensor suffix ``:0`` means the name without it."""
    return name[:-2] if isinstance(name, str) and name.endswith(":0") else name


def _without_tensor_suffix(names: Iterable[str]) -> Iterable[str]:
    if isinstance(names, str):
        return names  # _Ignores names the error
    return [_strip_tensor_suffix(n) for n in names]
