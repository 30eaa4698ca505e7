"""Normalise RETURNN-style net dicts and diff two of them (pure dict logic).

Equivalent spellings are not a change: a string vs a one-element list in "from", no "from" vs ["data"], a tuple
vs a list, 3 vs 3.0. Keys starting with "#" (e.g. "#repetition", "#copy_param_mode", "#config") are not layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from transition.errors import ConfigError

__all__ = ["MISSING", "NetDictDiff", "diff_net_dicts", "normalize_net_dict", "normalize_layer_dict", "is_layer_key"]

_NESTED_NET_OPTIONS = ("subnetwork", "unit")


class _Missing:
    """Marks an option that one side of a diff does not set."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unset>"


MISSING = _Missing()


def is_layer_key(key: str) -> bool:
    """Whether a net dict key names a layer (keys starting with "#" hold options, not layers)."""
    return not key.startswith("#")


def _normalize_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return {k: _normalize_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize_value(v) for v in value]
    # numpy scalars and arrays
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__ == "numpy":
        return _normalize_value(tolist())
    return value  # functions, WrapEpochValue, ...: compared by equality


def normalize_layer_dict(layer_name: str, layer_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise one layer dict: "from" is always a list (default ["data"]), tuples are lists, 3.0 is 3."""
    if not isinstance(layer_dict, Mapping):
        raise ConfigError(
            f"layer {layer_name!r}: expected a dict of options, got {type(layer_dict).__name__}; write "
            f"{layer_name!r}: {{'class': ..., ...}}"
        )
    out = {k: _normalize_value(v) for k, v in layer_dict.items()}
    src = layer_dict.get("from", "data")
    if isinstance(src, str):
        out["from"] = [src]
    elif isinstance(src, (list, tuple)):
        out["from"] = [_normalize_value(s) for s in src]
    else:
        raise ConfigError(
            f"layer {layer_name!r}: option 'from' must be a layer name or a list of them, got {src!r}"
        )
    for key in _NESTED_NET_OPTIONS:
        sub = layer_dict.get(key)
        if isinstance(sub, Mapping) and all(isinstance(v, Mapping) for k, v in sub.items() if is_layer_key(k)):
            out[key] = normalize_net_dict(sub)
    return out


def normalize_net_dict(net_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise every layer of a net dict (see `normalize_layer_dict`); "#" entries only get value normalisation."""
    if not isinstance(net_dict, Mapping):
        raise ConfigError(f"a net dict must be a dict of layer name -> layer dict, got {type(net_dict).__name__}")
    return {
        name: normalize_layer_dict(name, d) if is_layer_key(name) else _normalize_value(d)
        for name, d in net_dict.items()
    }


@attrs.frozen
class NetDictDiff:
    """Which layers were added, removed or changed (option -> (old, new)) between two net dicts.

    `meta_changed` holds the "#" entries that differ; they do not make the diff non-empty.
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: Mapping[str, Mapping[str, tuple[Any, Any]]] = attrs.field(factory=dict)
    meta_changed: Mapping[str, tuple[Any, Any]] = attrs.field(factory=dict)

    @property
    def is_empty(self) -> bool:
        """True when no layer was added, removed or changed (the network need not be rebuilt)."""
        return not (self.added or self.removed or self.changed)

    def __str__(self) -> str:
        if self.is_empty and not self.meta_changed:
            return "net dicts are equivalent"
        lines = [f"+ {name}" for name in self.added]
        lines += [f"- {name}" for name in self.removed]
        for name, options in self.changed.items():
            lines.append(f"~ {name}")
            for opt, (old, new) in options.items():
                lines.append(f"    {opt}: {old!r} -> {new!r}")
        for key, (old, new) in self.meta_changed.items():
            lines.append(f"# {key}: {old!r} -> {new!r}")
        return "\n".join(lines)


def diff_net_dicts(old: Mapping[str, Any], new: Mapping[str, Any]) -> NetDictDiff:
    """Compare two net dicts after normalisation; layers keep the order of the new (added) / old (removed) dict."""
    old_n, new_n = normalize_net_dict(old), normalize_net_dict(new)
    old_layers = [k for k in old_n if is_layer_key(k)]
    new_layers = [k for k in new_n if is_layer_key(k)]
    added = tuple(k for k in new_layers if k not in old_n)
    removed = tuple(k for k in old_layers if k not in new_n)
    changed: dict[str, dict[str, tuple[Any, Any]]] = {}
    for name in new_layers:
        if name not in old_n:
            continue
        a, b = old_n[name], new_n[name]
        options = {}
        for opt in list(a) + [k for k in b if k not in a]:
            va, vb = a.get(opt, MISSING), b.get(opt, MISSING)
            if not _equal(va, vb):
                options[opt] = (va, vb)
        if options:
            changed[name] = options
    meta = {}
    for key in [k for k in old_n if not is_layer_key(k)] + [k for k in new_n if not is_layer_key(k) and k not in old_n]:
        va, vb = old_n.get(key, MISSING), new_n.get(key, MISSING)
        if not _equal(va, vb):
            meta[key] = (va, vb)
    return NetDictDiff(added=added, removed=removed, changed=changed, meta_changed=meta)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False  # True is not the option value 1
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # e.g. objects whose == is elementwise or raises
        return a is b
