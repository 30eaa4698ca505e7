"""`init_from_checkpoint`: TF's assignment maps (tf.compat.v1.train.init_from_checkpoint) for a `Network`.

Network-side names are ``layer/param``; a partitioned param may be ``name/part_0``, ``name/part_1``, ... The values
are assigned at once (TF2 has no initializers to replace). Unlike TF, a scope that matches no param is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from transition.checkpoint._load_plan import np_dtype
from transition.checkpoint._load_report import LoadReport
from transition.checkpoint._reader import open_checkpoint
from transition.errors import (
    ConfigError,
    MissingTensorsError,
    ShapeMismatchError,
    did_you_mean,
)

__all__ = ["init_from_checkpoint", "resolve_assignment_map", "Assignment"]


@attrs.frozen
class Assignment:
    """Assign checkpoint tensor `ckpt_name` (rows `start:stop` of axis 0 if `start` is not None) to `var_name`."""

    var_name: str
    ckpt_name: str
    start: int | None = None
    stop: int | None = None


def _is_variable(x: Any) -> bool:
    return not isinstance(x, (str, bytes, list, tuple, Mapping)) and hasattr(x, "assign") and hasattr(x, "shape")


def _collect_partitioned(name: str, store: Mapping[str, Any]) -> list[str] | None:
    if f"{name}/part_0" not in store:
        return None
    names, i = [], 0
    while f"{name}/part_{i}" in store:
        names.append(f"{name}/part_{i}")
        i += 1
    return names


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


class _Resolver:
    """Resolves an assignment map's entries against the network's variables and the checkpoint's names."""

    def __init__(self, store: Mapping[str, Any], ckpt: Mapping[str, tuple[tuple[int, ...], Any]], path: str):
        self.store, self.ckpt, self.path = store, ckpt, path
        self.by_id = {id(v): n for n, v in store.items()}
        self.by_id.update({id(getattr(v, "value", None)): n for n, v in store.items() if hasattr(v, "value")})
        self.extra: dict[str, Any] = {}
        self.out: list[Assignment] = []

    def name_of(self, var: Any) -> str:
        """The name of a variable given as an object (a network param's name, else its own, made unique)."""
        if id(var) in self.by_id:
            return self.by_id[id(var)]
        name = getattr(var, "path", None) or getattr(var, "name", None) or "<variable>"
        if (name in self.store or name in self.extra) and self.extra.get(name) is not var:
            name = f"{name}#{id(var)}"  # a variable outside the network whose name is taken
        self.extra[name] = var
        self.by_id[id(var)] = name
        return name

    def var_of(self, name: str) -> Any:
        return self.store[name] if name in self.store else self.extra[name]

    def check_key(self, key: str) -> None:
        if key not in self.ckpt:
            raise ConfigError(f"assignment map key {key!r}: tensor not found in checkpoint {self.path}"
                              f"{did_you_mean(key, self.ckpt)}")

    def add(self, key: str, var_names: list[str]) -> None:
        """Assign tensor `key` to one variable, or split along axis 0 into several (partitioned) ones."""
        c_shape, c_dtype = self.ckpt[key]
        c_dtype = np_dtype(c_dtype)
        for n in var_names:
            v_dtype = np_dtype(self.var_of(n).dtype)
            if v_dtype != c_dtype:
                raise ShapeMismatchError(f"variable {n!r} has dtype {v_dtype.name} but tensor {key!r} in {self.path} "
                                         f"has dtype {c_dtype.name}")
        if len(var_names) == 1:
            shape = _shape(self.var_of(var_names[0]))
            if shape != tuple(c_shape):
                raise ShapeMismatchError(f"shape of variable {var_names[0]!r} {shape} doesn't match the shape of "
                                         f"tensor {key!r} {tuple(c_shape)} in checkpoint {self.path}")
            self.out.append(Assignment(var_names[0], key))
            return
        shapes = [_shape(self.var_of(n)) for n in var_names]
        if not c_shape or any(len(s) != len(c_shape) or s[1:] != tuple(c_shape[1:]) for s in shapes) or sum(
                s[0] for s in shapes) != c_shape[0]:
            raise ShapeMismatchError(f"partitioned variables {var_names} with shapes {shapes} do not split tensor "
                                     f"{key!r} {tuple(c_shape)} of {self.path} along axis 0 (their first dims must "
                                     f"sum to {c_shape[0] if c_shape else 'a first axis'}, the other dims must match)")
        start = 0
        for n, s in zip(var_names, shapes):
            self.out.append(Assignment(n, key, start, start + s[0]))
            start += s[0]

    def entry(self, key: str, target: Any) -> None:
        """One entry of the map: a variable, a list of variables, a network name or a scope."""
        if _is_variable(target):
            self.check_key(key)
            self.add(key, [self.name_of(target)])
            return
        if isinstance(target, (list, tuple)) and target and all(_is_variable(v) for v in target):
            self.check_key(key)
            self.add(key, [self.name_of(v) for v in target])
            return
        if not isinstance(target, str) or not target:
            raise ConfigError(f"assignment map value for {key!r} must be a variable, a list of variables or a "
                              f"network name 'layer/param' or scope 'layer/', got {target!r}")
        names = [target] if target in self.store else _collect_partitioned(target, self.store)
        if names is not None:
            self.check_key(key)
            self.add(key, names)
            return
        self.scope(key, target)

    def scope(self, key: str, target: str) -> None:
        """A scope mapping 'ckpt_scope/': 'layer/' (every param under the scope, by its relative name)."""
        if not key.endswith("/"):
            raise ConfigError(f"assignment map {key!r}: {target!r} is not a param of the network"
                              f"{did_you_mean(target, self.store)}; a scope mapping needs the trailing '/' on the "
                              f"key: should be 'scope/': 'other_scope/'")
        scope = target[:-1] if target.endswith("/") else target
        in_scope = sorted({n[:n.index("/part_")] if "/part_" in n else n
                           for n in self.store if not scope or n.startswith(scope + "/")})
        if not in_scope:
            layers = sorted({n.split("/", 1)[0] + "/" for n in self.store})
            raise ConfigError(f"assignment map {key!r}: scope {target!r} matches no param of the network"
                              f"{did_you_mean(target, layers)}")
        missing, resolved = [], []
        for var_name in in_scope:
            rel = var_name[len(scope) + 1:] if scope else var_name
            full = (rel if key == "/" else key + rel).rstrip("/")
            if full not in self.ckpt:
                missing.append(f"{full!r} (for {var_name!r}){did_you_mean(full, self.ckpt)}")
            resolved.append((full, var_name))
        if missing:
            raise MissingTensorsError(f"assignment map {key!r}: {target!r}: tensors not found in checkpoint "
                                     f"{self.path}: " + "; ".join(missing))
        for full, var_name in resolved:
            self.add(full, [var_name] if var_name in self.store else _collect_partitioned(var_name, self.store))


def resolve_assignment_map(
    assignment_map: Mapping[str, Any] | Iterable[tuple[str, Any]],
    store: Mapping[str, Any],
    ckpt: Mapping[str, tuple[tuple[int, ...], Any]],
    *,
    path: str = "<checkpoint>",
) -> tuple[list[Assignment], dict[str, Any]]:
    """Resolve an assignment map against the network's variables `store` {"layer/param": variable} and the
    checkpoint's {name: (shape, dtype)}; raise every error before anything is assigned.

    Returns the assignments in TF's order (sorted by checkpoint key; a later one for the same variable wins) and
    {var_name: variable} for variables given as objects that are not in `store`.
    """
    items = list(assignment_map.items() if isinstance(assignment_map, Mapping) else assignment_map)
    resolver = _Resolver(store, ckpt, path)
    for key, target in sorted(items, key=lambda kv: kv[0]):
        resolver.entry(key, target)
    return resolver.out, resolver.extra


def init_from_checkpoint(ckpt: str | os.PathLike, assignment_map: Any, network: Any) -> LoadReport:
    """Assign checkpoint values to the network's params as `tf.compat.v1.train.init_from_checkpoint` maps them:
    ``'ckpt_scope/': 'layer/'``, ``'ckpt/name': 'layer/param'`` or a variable, ``'/': 'layer/'`` (checkpoint root),
    ``'ckpt/name': [var, ...]`` (one tensor split along axis 0), a list of pairs (one tensor into several
    variables). `network` is a Network or a dict {"layer/param": variable}. Returns a report; every error is
    raised before anything is assigned."""
    store = dict(network if isinstance(network, Mapping) else network.param_variables())
    path = os.fspath(ckpt)
    with open_checkpoint(path) as source:
        meta = {n: (source.shape(n), source.dtype(n)) for n in source.names()}
        assignments, extra = resolve_assignment_map(assignment_map, store, meta, path=source.path)
        final: dict[str, Assignment] = {}
        for a in assignments:  # a later assignment of the same variable wins, as in TF
            final[a.var_name] = a
        by_tensor: dict[str, list[Assignment]] = {}
        for a in final.values():
            by_tensor.setdefault(a.ckpt_name, []).append(a)
        for ckpt_name, group in by_tensor.items():
            value = source.read(ckpt_name)
            for a in group:
                var = store.get(a.var_name, extra.get(a.var_name))
                var.assign(value if a.start is None else value[a.start:a.stop])
    mapped = {a.var_name: a.ckpt_name + ("" if a.start is None else f"[{a.start}:{a.stop}]")
              for a in final.values() if a.ckpt_name != a.var_name or a.start is not None}
    return LoadReport(path=path, loaded=tuple(sorted(final)), unused=tuple(n for n in meta if n not in by_tensor),
                      mapped=mapped)
