"""Function-preserving growth, the copy modes "preserve" and "net2wider": from the feature graphs of the old and
the new network (`_feature_graph.py`), where each old feature is in the new network and how every param grows
(`params._growth`), so that the new network computes what the old one did on every input.

Every feature of the old network is a key (layer, index). Walking the new graph in order, each new feature gets
the key of the old feature it computes (None: a new feature): an input keeps its keys; an old "units" layer keeps
its old units in front (a new unit: None under "preserve", a copy of a random old unit under "net2wider") once
every feature it read is in its new input; a "pass" layer passes its input's keys on; a new layer that can start
as the identity (linear / Dense / conv with activation None / linear, or relu after a non-negative input; copy,
dropout) passes its input's keys on, its extra units new. Each param of an old layer then copies every old entry to
where its features now are and sets the new entries by the role of their axis: zero outgoing weights of new inputs
(or, for inputs replicated by net2wider, the old weight divided among the copies), the fresh init on new units,
the identity on new features of normalisation layers. A new layer on a path starts as the identity.

Where the old features do not all reach an output (a new tanh layer on the path, a new layer narrower than its
input, a widened layer norm, a filter size that changes, ...) the plan is a ConfigError naming the layer and what
would work. The start-up check (`training._precheck`) runs the same plan on every pretrain transition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from transition.errors import ConfigError, did_you_mean
from transition.netdict._netdict import is_layer_key
from transition.network._feature_graph import FeatureGraph, Node, ParamAxes
from transition.params._copy_modes import PRESERVING_MODES, check_copy_param_mode
from transition.params._growth import AxisMap, IdentityInit, ParamGrowth

__all__ = ["GrowthPlan", "plan_growth", "check_growth", "layer_modes", "CUSTOM"]

Key = tuple[str, int]
CUSTOM = "custom importer"  # the mode of a layer whose callable custom_param_importer sets its params
_IDENTITY_ACTIVATIONS = (None, "linear", "identity")
_IDENTITY_ON_NONNEG = ("relu", "abs")  # f(x) = x for x >= 0
_OVER_ALL_UNITS = ("softmax", "log_softmax")


@attrs.frozen(eq=False)
class GrowthPlan:
    """How a transition keeps the network's function: {layer: {param: growth}} and, per layer of both networks,
    (its new feature positions, the old positions they compute) for comparing the two."""

    mode: str
    params: Mapping[str, Mapping[str, ParamGrowth | IdentityInit]]
    features: Mapping[str, tuple[np.ndarray, np.ndarray]]


@attrs.frozen(eq=False)
class _Rows:
    """A layer's new input features on its old ones: the old row of each (-1: new), shares, old rows not found."""

    index: np.ndarray
    scale: np.ndarray | None
    missing: tuple[int, ...]


def _fmt(key: Key) -> str:
    return f"{key[0]}[{key[1]}]"


def plan_growth(old: FeatureGraph, new: FeatureGraph, mode: str, *, modes: Mapping[str, Any] | None = None,
                seed: Any = None, noise: float = 0.0, strict: bool = True) -> GrowthPlan:
    """The plan of a transition from `old` to `new` under `mode` ("preserve" / "net2wider"); `modes`: a
    layer's own mode where its custom_param_importer gives one (`CUSTOM` for a function); `seed`: of net2wider's
    choices and noise; `noise`: the relative spread of the shares of a replicated unit's outgoing weights (they
    still add up to the old weight). ConfigError where the output cannot stay the same. `strict=False` gives only
    where the old features are (`features`, for comparing the networks after a transition in another mode)."""
    if mode not in PRESERVING_MODES:
        raise ConfigError(f"plan_growth: copy_param_mode {mode!r} keeps no function; use one of {PRESERVING_MODES}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < 1:
        raise ConfigError(f"net2wider_noise must be a number in [0, 1), got {noise!r}")
    return _Planner(old, new, mode, dict(modes or {}), np.random.default_rng(seed), float(noise)).run(strict)


def layer_modes(network: Any, importers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{layer: its own copy mode, or `CUSTOM` for a function} of the layers with a `custom_param_importer`: in
    `network` (a net dict's layer dicts, or a `Network`'s layers), or given in `importers` (which win)."""
    if isinstance(network, Mapping):
        own = {name: d.get("custom_param_importer") for name, d in network.items()
               if is_layer_key(name) and isinstance(d, Mapping)}
    else:
        own = {name: layer.custom_param_importer for name, layer in getattr(network, "layers", {}).items()}
    return {name: CUSTOM if callable(imp) else check_copy_param_mode(imp, f"custom_param_importer of layer {name!r}")
            for name, imp in {**own, **(importers or {})}.items() if imp is not None}


def check_growth(old: FeatureGraph, new_net_dict: Mapping[str, Any], new: FeatureGraph, mode: str) -> GrowthPlan:
    """`plan_growth` into a net dict (its layers' importers give their own modes); for the start-up check, with the
    graphs of `graph_of_net_dict` (no variables)."""
    return plan_growth(old, new, mode, modes=layer_modes(new_net_dict))


class _Planner:
    def __init__(self, old: FeatureGraph, new: FeatureGraph, mode: str, layer_modes: dict[str, Any],
                 rng: np.random.Generator, noise: float):
        self.old, self.new, self.mode, self.layer_modes, self.rng, self.noise = old, new, mode, layer_modes, rng, noise
        self.alias = _input_alias(old, new)
        self.mean: dict[str, list[Key | None]] = {}
        self.dropped: dict[str, tuple[frozenset[Key], str]] = {}
        self.rows: dict[str, _Rows] = {}
        self.units: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # (old unit or -1, replica mask)
        self.pairs: dict[str, tuple[list[tuple[int, int]], list[int]]] = {}  # new identity layer: pairs, fresh units

    # -- walking the new graph -----------------------------------------------------------------------------------

    def run(self, strict: bool = True) -> GrowthPlan:
        visit = {"units": self._units, "pass": self._pass, "combine": self._combine, "mix": self._fixed,
                 "opaque": self._fixed}
        for name, node in self.new.nodes.items():
            if node.kind == "input":
                self._input(node)
                continue
            if node.ids:  # int ids (e.g. a copy of sparse data): no features to follow
                self.mean[name] = []
                continue
            inp = [k for s in node.sources for k in self.mean.get(s, [])]
            old = self.old.nodes.get(name)
            if old is None or old.kind == "input":
                self._new_layer(node, inp)
            elif (old.kind, old.cls) != (node.kind, node.cls):
                self._lose_all(node, old, f"layer {name!r} changed from {old.cls} to {node.cls}")
            elif (changed := _changed(old, node)) is not None:
                self._lose_all(node, old, f"layer {name!r} changed {changed}, so it computes something else; keep "
                                          "it, or use copy_param_mode 'subset'")
            else:
                visit[node.kind](node, old, inp)
        if not strict:
            return GrowthPlan(self.mode, {}, self._features())
        self._check_outputs()
        return GrowthPlan(self.mode, self._params(), self._features())

    def _mode_of(self, node: Node) -> Any:
        for name in (node.name, *(p.layer for p in node.params)):
            if name in self.layer_modes:
                return self.layer_modes[name]
        return self.mode

    def _old_keys(self, sources: Sequence[str]) -> list[Key]:
        nodes = self.old.nodes
        return [(s, j) for s in sources if s in nodes and not nodes[s].ids for j in range(nodes[s].dim)]

    def _input(self, node: Node) -> None:
        name = self.alias.get(node.name, node.name)
        old = self.old.nodes.get(name)
        if old is None or old.kind != "input":  # an input the old network did not read: new features
            self.mean[node.name] = [] if node.ids else [None] * node.dim
            return
        if (old.dim, old.ids) != (node.dim, node.ids):
            raise ConfigError(f"copy_param_mode {self.mode!r}: input {node.name!r} has {node.dim} features in the new "
                              f"network but {old.dim} in the old one; both networks must read the same inputs")
        self.mean[node.name] = [] if node.ids else [(name, j) for j in range(node.dim)]

    def _units(self, node: Node, old: Node, inp: list[Key | None]) -> None:
        name, n_old, n = node.name, old.dim, node.dim
        reads_ids = any(p.roles and "ids" in p.roles for p in node.params)
        self._check_old_shapes(old, len(self._old_keys(old.sources)))
        rows = None if reads_ids else self._row_map(self._old_keys(old.sources), inp, divide=True)
        if rows is not None and rows.missing:
            key = self._old_keys(old.sources)[rows.missing[0]]
            return self._lose_all(node, old, self._why(name, key))  # the first cause, not the path to it
        if n > n_old and node.activation in _OVER_ALL_UNITS:
            return self._lose_all(node, old, (
                f"layer {name!r} grows from {n_old} to {n} units, and its activation {node.activation!r} normalises "
                "over all its units, so the new units change the old ones' outputs; keep its width, or use "
                "copy_param_mode 'subset'"))
        index, replica = np.arange(n), None
        if n > n_old:
            index[n_old:] = -1
            if self._mode_of(node) == "net2wider" and n_old:
                index[n_old:] = self.rng.integers(0, n_old, size=n - n_old)
                replica = np.arange(n) >= n_old
        if rows is not None:
            self.rows[name] = rows
        self.units[name] = (index, replica)
        self.mean[name] = [(name, int(i)) if i >= 0 else None for i in index]
        if n < n_old:
            self.dropped[name] = (frozenset((name, u) for u in range(n, n_old)),
                                  f"layer {name!r} has {n} units, {n_old} before; {self.mode!r} cannot drop units")

    def _check_old_shapes(self, old: Node, n_inputs: int) -> None:
        """The old params fit the old network: as many input rows as it gives the layer features, as many units."""
        for p in old.params:
            for axis, role in enumerate(p.roles or ()):
                want = {"in": n_inputs, "rec": old.dim, "out": old.dim * len(p.split[axis])}.get(role)
                if want is not None and p.shape[axis] != want:
                    raise ConfigError(
                        f"copy_param_mode {self.mode!r}: the old value of layer {old.name!r}, param {p.param!r} has "
                        f"{p.shape[axis]} entries on axis {axis} ({role!r}), but the old network gives it {want}; the "
                        "old values do not come from a network of this structure (set_params_by_serialized takes "
                        "the old network to be this one with the old widths and without its new layers); use "
                        "transition_network with the old network, or copy_param_mode 'subset'")

    def _pass(self, node: Node, old: Node, inp: list[Key | None]) -> None:
        old_keys = self._old_keys(old.sources)
        rows = self._row_map(old_keys, inp, divide=False)
        self.rows[node.name] = rows
        self.mean[node.name] = [(node.name, int(r)) if r >= 0 else None for r in rows.index]
        if rows.missing:
            key = old_keys[rows.missing[0]]
            self.dropped[node.name] = (frozenset((node.name, r) for r in rows.missing), self._why(node.name, key))

    def _combine(self, node: Node, old: Node, inp: list[Key | None]) -> None:
        if len(old.sources) != len(node.sources):
            return self._lose_all(node, old, f"layer {node.name!r} combines {len(node.sources)} sources, "
                                             f"{len(old.sources)} before")
        per = [self._row_map(self._old_keys([s_old]), self.mean.get(s_new, []), divide=False).index
               for s_new, s_old in zip(node.sources, old.sources)]
        mean: list[Key | None] = []
        for p in range(node.dim):
            found = {int(index[p]) for index in per if p < len(index)}
            mean.append((node.name, found.pop()) if len(found) == 1 and -1 not in found and len(per) else None)
        self.mean[node.name] = mean
        missing = sorted(set(range(old.dim)) - {k[1] for k in mean if k is not None})
        if missing:
            self.dropped[node.name] = (frozenset((node.name, r) for r in missing), (
                f"layer {node.name!r} ({node.cls}) no longer combines old feature {missing[0]} of all its sources "
                "with each other"))

    def _fixed(self, node: Node, old: Node, inp: list[Key | None]) -> None:
        """A "mix" or "opaque" layer keeps its output only with the same input and params."""
        old_inp = self._old_keys(old.sources)
        same_params = [(p.layer, p.param, p.shape) for p in node.params] == [
            (p.layer, p.param, p.shape) for p in old.params]
        if inp == old_inp and node.dim == old.dim and same_params:
            self.mean[node.name] = [(node.name, r) for r in range(node.dim)]
            return
        change = (f"its input grows from {len(old_inp)} to {len(inp)} features" if len(inp) != len(old_inp) else
                  "its input changed" if inp != old_inp else "its params changed")
        if node.kind == "mix":
            why = (f"layer {node.name!r} ({node.blocker or 'it mixes all its input features'}): {change}, so its "
                   "output changes; keep its input as it was, or use copy_param_mode 'subset'")
        else:
            why = (f"layer {node.name!r} ({node.blocker or 'no growth rule for it'}): {change}; keep it and its "
                   "input as they were, or use copy_param_mode 'subset'")
        self._lose_all(node, old, why)

    def _lose_all(self, node: Node, old: Node, why: str) -> None:
        self.mean[node.name] = [None] * node.dim
        self.dropped[node.name] = (frozenset((node.name, r) for r in range(old.dim)), why)

    def _new_layer(self, node: Node, inp: list[Key | None]) -> None:
        name = node.name
        why = self._identity_blocker(node)
        if why is not None:
            self.mean[name] = [None] * node.dim
            self.dropped[name] = (frozenset(k for k in inp if k is not None), why)
            return
        if node.kind == "pass":
            self.mean[name] = list(inp) if len(inp) == node.dim else [None] * node.dim
            return
        n_in, n = len(inp), node.dim
        pairs = [(p, p) for p in range(min(n_in, n))]
        mean, fresh = list(inp[:n]), []
        known = [p for p, k in enumerate(inp) if k is not None]
        for q in range(n_in, n):
            if self._mode_of(node) == "net2wider" and known:
                p = int(self.rng.choice(known))
                pairs.append((p, q))
                mean.append(inp[p])
            else:
                fresh.append(q)
                mean.append(None)
        self.pairs[name] = (pairs, fresh)
        self.mean[name] = mean
        if n < n_in:
            self.dropped[name] = (frozenset(k for k in inp[n:] if k is not None), (
                f"new layer {name!r} has {n} units but reads {n_in} features, so it cannot pass them all on; give "
                f"it at least {n_in} unit{'s' * (n_in != 1)}"))

    def _identity_blocker(self, node: Node) -> str | None:
        """Why a new layer cannot start as the identity of its input (None: it can)."""
        name, act = node.name, node.activation
        if node.kind not in ("units", "pass") or node.blocker:
            return (f"new layer {name!r} ({node.cls}) cannot start as the identity: "
                    f"{node.blocker or 'its kind mixes its inputs'}; insert a linear layer (activation None, "
                    "'linear', or 'relu' after a non-negative input) instead, or use copy_param_mode 'subset'")
        if act in _IDENTITY_ACTIVATIONS:
            return None
        if act in _IDENTITY_ON_NONNEG:
            negative = [s for s in node.sources if not self.new.nodes[s].nonneg]
            if not negative:
                return None
            src = self.new.nodes[negative[0]]
            return (f"new layer {name!r} has activation {act!r}, which passes its input through only where it is "
                    f">= 0, but its input {src.name!r} ({src.cls}, activation {src.activation!r}) can be negative; "
                    f"use activation None or 'linear', put {name!r} after a non-negative layer (e.g. a relu), or use "
                    "copy_param_mode 'subset'")
        return (f"new layer {name!r} has activation {act!r}, which cannot start as the identity; use activation "
                "None, 'linear' or 'relu' (relu after a non-negative input, e.g. another relu), or copy_param_mode "
                "'subset' (then it starts from its fresh init and the output changes)")

    def _row_map(self, old_keys: list[Key], new_keys: Sequence[Key | None], *, divide: bool) -> _Rows:
        """Each new feature's old row (-1: new); with `divide`, a row copied to k places gets shares that add up
        to 1 (1/k each, spread by `noise` under net2wider)."""
        where: dict[Key, list[int]] = {}
        for r, key in enumerate(old_keys):
            where.setdefault(key, []).append(r)
        index = np.full(len(new_keys), -1, dtype=np.int64)
        used: dict[Key, int] = {}
        for p, key in enumerate(new_keys):
            rows = where.get(key) if key is not None else None
            if rows:
                i = used[key] = used.get(key, -1) + 1
                index[p] = rows[i % len(rows)]
        counts = np.bincount(index[index >= 0], minlength=len(old_keys))
        missing = tuple(int(r) for r in np.nonzero(counts == 0)[0])
        return _Rows(index, self._shares(index, counts) if divide else None, missing)

    def _shares(self, index: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
        if not (counts > 1).any():
            return None
        scale = np.ones(len(index))
        for r in np.nonzero(counts > 1)[0]:
            places = np.nonzero(index == r)[0]
            share = np.full(len(places), 1.0 / len(places))
            if self.noise:
                z = self.rng.standard_normal(len(places))
                share += self.noise / len(places) * (z - z.mean())
            scale[places] = share
        return scale

    def _why(self, name: str, key: Key) -> str:
        """Why old feature `key` does not reach layer `name` of the new network."""
        for n in [name, *self.new.ancestors(name)]:
            dropped = self.dropped.get(n)
            if dropped is not None and key in dropped[0]:
                return dropped[1]
        return (f"old feature {_fmt(key)} is computed by no layer of the new network (layer {key[0]!r} was removed "
                "or rewired)")

    def _check_outputs(self) -> None:
        for out in self.old.outputs:
            old = self.old.nodes[out]
            if out not in self.new.nodes:
                raise ConfigError(f"copy_param_mode {self.mode!r}: the old network's output {out!r} is not in the "
                                  f"new network{did_you_mean(out, self.new.nodes)}; keep the output layers")
            got, want = self.mean.get(out, []), [(out, u) for u in range(old.dim)]
            if got == want:
                continue
            if len(got) != len(want):
                raise ConfigError(f"copy_param_mode {self.mode!r}: output {out!r} has {len(got)} features, "
                                  f"{len(want)} before; an output keeps its dim (use copy_param_mode 'subset' to grow "
                                  "it)")
            u = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
            raise ConfigError(f"copy_param_mode {self.mode!r} cannot keep output {out!r} unchanged: "
                              f"{self._why(out, (out, u))}")

    # -- the params ----------------------------------------------------------------------------------------------

    def _params(self) -> dict[str, dict[str, ParamGrowth | IdentityInit]]:
        out: dict[str, dict[str, ParamGrowth | IdentityInit]] = {}
        for name, node in self.new.nodes.items():
            if name in self.pairs:
                pairs, fresh = self.pairs[name]
                for p in node.params:
                    if p.roles is not None:
                        out.setdefault(p.layer, {})[p.param] = IdentityInit(p.roles, tuple(pairs), tuple(fresh))
                continue
            old = self.old.nodes.get(name)
            if old is None or (name not in self.rows and name not in self.units):
                continue
            for p in node.params:
                old_p = old.param(p.layer, p.param)
                if old_p is None or p.roles is None or old_p.roles != p.roles:
                    continue
                axes = [self._axis(node, old, p, old_p, axis) for axis in range(len(p.roles))]
                if any(a is None for a in axes):
                    continue
                growth = ParamGrowth(tuple(axes), p.feature_value)  # type: ignore[arg-type]
                if not growth.is_trivial(old_p.shape):
                    out.setdefault(p.layer, {})[p.param] = growth
        return out

    def _axis(self, node: Node, old: Node, p: ParamAxes, old_p: ParamAxes, axis: int) -> AxisMap | None:
        role, n_new, n_old = p.roles[axis], p.shape[axis], old_p.shape[axis]  # type: ignore[index]
        rows, units = self.rows.get(node.name), self.units.get(node.name)
        if role in ("in", "feature"):
            if rows is None or len(rows.index) != n_new or (len(rows.index) and rows.index.max() >= n_old):
                return None
            replica = _duplicates(rows.index) if role == "feature" else None
            return AxisMap(role, rows.index, rows.scale if role == "in" else None, replica)
        if role == "fixed":
            if n_new != n_old:
                raise ConfigError(
                    f"copy_param_mode {self.mode!r}: layer {node.name!r}, param {p.param!r}: axis {axis} changes from "
                    f"{n_old} to {n_new}; the output stays the same only where that axis (e.g. a conv's filter size) "
                    "keeps its size; keep it, or use copy_param_mode 'subset'")
            return AxisMap.identity(role, n_new)
        if role == "ids":
            return AxisMap(role, np.where(np.arange(n_new) < n_old, np.arange(n_new), -1))
        if units is None:
            return None
        index, replica = units
        if role == "rec":
            if n_new != len(index) or n_old != old.dim:
                return None
            counts = np.bincount(index[index >= 0], minlength=n_old)
            return AxisMap(role, index, self._shares(index, counts))
        return _out_axis(index, replica, p.split[axis], old_p.split[axis], node.dim, old.dim)

    def _features(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for name, mean in self.mean.items():
            if name in self.old.nodes and self.new.nodes[name].kind != "input":
                pos = [(p, k[1]) for p, k in enumerate(mean) if k is not None and k[0] == name]
                if pos:
                    out[name] = (np.array([p for p, _ in pos]), np.array([r for _, r in pos]))
        return out


def _changed(old: Node, new: Node) -> str | None:
    """What changed in a layer besides its width and inputs (an option, a param it has or lacks), or None."""
    old_config, new_config = dict(old.config), dict(new.config)
    for key in sorted(set(old_config) | set(new_config)):
        if old_config.get(key) != new_config.get(key):
            return f"option {key!r} from {old_config.get(key, '(not set)')} to {new_config.get(key, '(not set)')}"
    old_params = {(p.layer, p.param) for p in old.params}
    new_params = {(p.layer, p.param) for p in new.params}
    if old_params != new_params:
        diff = sorted(old_params ^ new_params)[0]
        return f"its params ({'has' if diff in new_params else 'lost'} param {diff[1]!r})"
    return None


def _out_axis(index: np.ndarray, replica: np.ndarray | None, new_parts: Sequence[int], old_parts: Sequence[int],
              units: int, old_units: int) -> AxisMap | None:
    """The map of an axis of a layer's own units, one block per gate part ([n, n, n, n] for an LSTM's)."""
    if len(new_parts) != len(old_parts) or any(n != units for n in new_parts) or any(o != old_units
                                                                                    for o in old_parts):
        return None
    blocks = [np.where(index >= 0, index + k * old_units, -1) for k in range(len(new_parts))]
    reps = [replica] * len(new_parts) if replica is not None else None
    return AxisMap("out", np.concatenate(blocks), None, np.concatenate(reps) if reps else None)


def _duplicates(index: np.ndarray) -> np.ndarray | None:
    """True where an entry copies an old row that an earlier entry copies already (a replicated feature)."""
    seen: set[int] = set()
    dup = np.zeros(len(index), dtype=bool)
    for p, r in enumerate(index):
        if r >= 0:
            dup[p] = int(r) in seen
            seen.add(int(r))
    return dup if dup.any() else None


def _input_alias(old: FeatureGraph, new: FeatureGraph) -> dict[str, str]:
    """A Keras model's only input may be named differently in the two networks (Keras numbers unnamed inputs)."""
    old_in = [n for n, node in old.nodes.items() if node.kind == "input"]
    new_in = [n for n, node in new.nodes.items() if node.kind == "input"]
    if len(old_in) == 1 and len(new_in) == 1 and old_in != new_in:
        return {new_in[0]: old_in[0]}
    return {}
