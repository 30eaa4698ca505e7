"""Pretrain construction: the list of growing net dicts of a pretrain schedule (pure dict logic).

Follows the semantics of RETURNN's `returnn.pretrain.Pretrain` (own code). Where RETURNN fails or produces a net
whose "from" names a removed layer, we either give a valid schedule or raise a ConfigError naming the layer:
- "from" may be a string (RETURNN matches substrings of it), a tuple or a list; it is normalised to a list;
- inputs other than "data" ("data:feat", names in `input_layers`) count as inputs where layers read them (RETURNN
  asserts or raises a KeyError); "from_input" still grows from "data" only, as RETURNN;
- two outputs that read one layer: it is removed once; an output that reads a layer and its ancestor (a skip
  connection): the ancestor stays while the layers above it are removed (RETURNN fails on an assertion for both);
- a layer that reads a removed layer and carries no loss (a dead branch) is removed too (RETURNN keeps it, and
  the step's net cannot be built); an output that reads a removed layer is a ConfigError naming it;
- keys starting with "#" are not layers; intermediate steps of the built-in algorithms do not inherit them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from transition.errors import ConfigError, did_you_mean
from transition.netdict._netdict import is_layer_key

__all__ = ["NetSteps", "construct_steps", "normalize_sources", "sources_of"]

NetDict = dict[str, Any]
_MAX_CUSTOM_STEPS = 10_000


def sources_of(layer_dict: Mapping[str, Any]) -> list[str]:
    """The sources of a layer whose "from" is already a list (no "from" means ["data"])."""
    return list(layer_dict.get("from", ["data"]))


def normalize_sources(net_dict: Mapping[str, Any], what: str = "net dict") -> NetDict:
    """Deep copy of `net_dict` with every "from" as a list of str (an absent "from" stays absent)."""
    if not isinstance(net_dict, Mapping):
        raise ConfigError(f"{what}: expected a dict of layers, got {type(net_dict).__name__}")
    out: NetDict = {}
    for name, layer in net_dict.items():
        if not isinstance(name, str):
            raise ConfigError(f"{what}: layer names must be strings, got {name!r}")
        if not is_layer_key(name):
            out[name] = copy.deepcopy(layer)
            continue
        if not isinstance(layer, Mapping):
            raise ConfigError(f"{what}: layer {name!r} must be a dict of options, got {type(layer).__name__}")
        layer = copy.deepcopy(dict(layer))
        if "from" in layer:
            src = layer["from"]
            if isinstance(src, str):
                src = [src]
            if not isinstance(src, (list, tuple)) or not all(isinstance(s, str) for s in src):
                raise ConfigError(
                    f"{what}: layer {name!r}: 'from' must be a layer name or a list of layer names, got {src!r}"
                )
            layer["from"] = list(src)
        out[name] = layer
    return out


def _layers(net: Mapping[str, Any]) -> list[str]:
    return [k for k in net if is_layer_key(k)]


def _consumers(net: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """source -> the layers that read it."""
    result: dict[str, set[str]] = {}
    for name in _layers(net):
        for src in net[name].get("from", ["data"]):
            result.setdefault(src, set()).add(name)
    return {src: frozenset(names) for src, names in result.items()}


@attrs.frozen
class NetSteps:
    """Context of one construction: the normalised original net and the output / input layer names."""

    original: NetDict
    output_layers: tuple[str, ...]
    input_layers: tuple[str, ...]
    layer_names: frozenset[str] = attrs.field(
        default=attrs.Factory(lambda self: frozenset(_layers(self.original)), takes_self=True)
    )
    consumers: Mapping[str, frozenset[str]] = attrs.field(
        default=attrs.Factory(lambda self: _consumers(self.original), takes_self=True)
    )

    def is_external(self, src: str) -> bool:
        """A source that is not a layer of the original net ("data", "data:x", a name in input_layers)."""
        return src not in self.layer_names

    def is_known_external(self, src: str) -> bool:
        """Whether the external source `src` is known: "data", "data:x" or a name in input_layers."""
        return src == "data" or src.startswith("data:") or src in self.input_layers

    def is_output(self, net: Mapping[str, Any], name: str) -> bool:
        """Whether layer `name` of `net` is an output (named in output_layers, softmax, or with a target)."""
        layer = net[name]
        return name in self.output_layers or layer.get("class") == "softmax" or "target" in layer

    def check_step(self, net: Mapping[str, Any], what: str, removed_hint: str = "") -> None:
        """Every "from" of `net` names a layer of `net` or an input; else a ConfigError naming the layer."""
        for name in _layers(net):
            for src in sources_of(net[name]):
                if src in net or (self.is_external(src) and self.is_known_external(src)):
                    continue
                if src in self.layer_names:
                    raise ConfigError(
                        f"pretrain {what}: layer {name!r} reads {src!r}, which this step removes{removed_hint}"
                    )
                raise ConfigError(
                    f"pretrain {what}: layer {name!r} reads {src!r}, which is neither a layer of that net dict nor "
                    f"an input ('data', 'data:<key>' or a name in input_layers){did_you_mean(src, _layers(net))}"
                )


def _check_original(ctx: NetSteps, from_output: bool) -> None:
    """Check the net's sources, and the names in output_layers / input_layers unless left at their defaults
    (RETURNN ignores them for some algorithms; a default that matches nothing is not the user's mistake)."""
    ctx.check_step(ctx.original, "net dict")
    for name in ctx.output_layers if from_output or ctx.output_layers != ("output",) else ():
        if name not in ctx.layer_names:
            raise ConfigError(
                f"pretrain: output layer {name!r} (option output_layers) is not a layer of the net dict"
                f"{did_you_mean(name, ctx.layer_names)}; set output_layers to the names of the net's output layers"
            )
    if tuple(ctx.input_layers) != ("data",):
        used = {s for n in ctx.layer_names for s in sources_of(ctx.original[n])}
        for name in ctx.input_layers:
            if name not in used:
                raise ConfigError(
                    f"pretrain: input layer {name!r} (option input_layers) is read by no layer of the net dict"
                    f"{did_you_mean(name, sorted(used))}"
                )


def construct_steps(
    original: NetDict,
    construction_algo: str | Callable[..., Any],
    output_layers: Sequence[str],
    input_layers: Sequence[str],
) -> list[NetDict]:
    """The pretrain steps (before repetitions), the last one being `original` (already normalised)."""
    ctx = NetSteps(original, tuple(output_layers), tuple(input_layers))
    _check_original(ctx, from_output=construction_algo == "from_output")
    if callable(construction_algo):
        return _construct_custom(ctx, construction_algo)  # like RETURNN: trust the user's steps, keep them all
    if construction_algo == "from_output":
        steps = _construct_from_output(ctx)
    elif construction_algo == "from_input":
        steps = _construct_from_input(ctx)
    elif construction_algo == "no_network_modifications":
        steps = [original]
    else:
        algos = ["from_output", "from_input", "no_network_modifications"]
        raise ConfigError(
            f"pretrain: unknown construction_algo {construction_algo!r}{did_you_mean(str(construction_algo), algos)};"
            f" use one of {algos} or a function (idx, net_dict) -> net_dict | None"
        )
    steps = _drop_non_trainable_only_steps(ctx, steps)
    hint = ""
    if construction_algo == "from_output":
        hint = (
            f"; add that layer to output_layers (e.g. output_layers={ctx.output_layers + ('<that layer>',)!r}) so "
            "that it is rewired too, or use construction_algo='from_input' or a function"
        )
    for i, step in enumerate(steps[:-1]):
        ctx.check_step(step, f"step {i} (construction_algo={construction_algo!r})", hint)
    return steps


def _construct_custom(ctx: NetSteps, func: Callable[..., Any]) -> list[NetDict]:
    steps: list[NetDict] = []
    for idx in range(_MAX_CUSTOM_STEPS):
        net = func(idx=idx, net_dict=copy.deepcopy(ctx.original))
        if not net:  # None (or, as in RETURNN, an empty dict) ends the construction
            steps.append(ctx.original)
            return steps
        what = f"step {idx} of construction_algo {getattr(func, '__name__', func)!r}"
        if not isinstance(net, Mapping):
            raise ConfigError(f"pretrain {what}: must return a net dict or None, got {type(net).__name__}")
        net = normalize_sources(net, what=f"pretrain {what}")
        ctx.check_step(net, what)
        steps.append(net)
    raise ConfigError(
        f"pretrain: construction_algo {getattr(func, '__name__', func)!r} returned a net dict for "
        f"{_MAX_CUSTOM_STEPS} steps; it must return None to end the construction"
    )


# ---- from_output: remove the layers below the outputs, one level per step


def _construct_from_output(ctx: NetSteps) -> list[NetDict]:
    steps = [ctx.original]
    while True:
        simpler = _simplify_from_output(ctx, steps[0])
        if simpler is None:
            return steps
        steps.insert(0, simpler)


def _simplify_from_output(ctx: NetSteps, net: NetDict) -> NetDict | None:
    """The next simpler net: the outputs' direct sources are replaced by their sources. None: nothing to remove."""
    new = {k: copy.deepcopy(v) for k, v in net.items() if is_layer_key(k)}
    outputs = ctx.output_layers
    removed: set[str] = set()
    while True:
        new_sources: set[str] = set()
        current: set[str] = set()
        deleted: set[str] = set()
        keep = _ancestors_among(new, [s for o in outputs for s in sources_of(new[o]) if s in new and s not in outputs])
        for out in outputs:
            for src in sources_of(new[out]):
                current.add(src)
                if src in ctx.input_layers or ctx.is_external(src) or src in keep:
                    new_sources.add(src)
                elif src in removed:
                    continue  # read twice: already replaced by its sources
                elif src in outputs:
                    raise ConfigError(
                        f"pretrain (construction_algo='from_output'): output layer {out!r} reads output layer "
                        f"{src!r}; an output layer cannot be removed. Use construction_algo='from_input' or a "
                        f"function, or leave {src!r} out of output_layers"
                    )
                else:
                    new_sources.update(sources_of(new.pop(src)))
                    deleted.add(src)
                    removed.add(src)
        new_sources -= removed  # a removed layer that another removed one read: its sources are in already
        if sorted(new_sources) == sorted(current):
            return None
        for out in outputs:
            new[out]["from"] = sorted(new_sources)
        if any(src in ctx.input_layers or ctx.is_external(src) for src in new_sources):
            continue  # the outputs would read an input: its dim would change; remove more
        if all(not ctx.original[name].get("trainable", True) for name in deleted):
            continue  # only non-trainable layers removed: remove more
        _drop_dangling(ctx, new, removed)
        return new  # checked in construct_steps: RETURNN drops some steps before they are used


def _drop_dangling(ctx: NetSteps, net: NetDict, removed: set[str]) -> None:
    """Drop the layers that read a removed layer and carry no loss (e.g. a dead branch), until none is left.
    A layer with a loss (an output) stays, so that `check_step` names it."""
    while True:
        dangling = [
            name
            for name in _layers(net)
            if any(s in removed for s in sources_of(net[name]))
            and not ctx.is_output(net, name)
            and "loss" not in net[name]
        ]
        if not dangling:
            return
        for name in dangling:
            del net[name]
            removed.add(name)


def _ancestors_among(net: NetDict, direct: Sequence[str]) -> set[str]:
    """The layers of `direct` that another one of `direct` reads, directly or not (a skip connection): they stay."""
    keep: set[str] = set()
    for top in set(direct):
        stack, seen = list(sources_of(net[top])), set()
        while stack:
            name = stack.pop()
            if name in seen or name not in net or not is_layer_key(name):
                continue
            seen.add(name)
            if name in direct:
                keep.add(name)
            stack.extend(sources_of(net[name]))
    return keep


# ---- from_input: grow from the inputs, one level of depth per step


def _construct_from_input(ctx: NetSteps) -> list[NetDict]:
    steps: list[NetDict] = []
    depth = 1
    while True:
        step = _grow_from_input(ctx, depth)
        if step is None:
            steps.append(ctx.original)
            return steps
        steps.append(step)
        depth += 1


def _descendants(ctx: NetSteps, sources: Sequence[str]) -> list[str]:
    return sorted(set().union(*(ctx.consumers.get(src, ()) for src in sources)))


def _grow_from_input(ctx: NetSteps, depth: int) -> NetDict | None:
    orig = ctx.original
    new: NetDict = {}
    needed: set[str] = set()

    def add(name: str) -> None:
        needed.discard(name)
        new[name] = copy.deepcopy(orig[name])
        needed.update(s for s in sources_of(new[name]) if s not in new and not ctx.is_external(s))

    sources = ["data"]  # as RETURNN, growth starts at "data" only; other inputs are kept where layers read them
    while True:  # first the non-trainable layers reachable from the inputs (e.g. input windows)
        added = False
        for name in _descendants(ctx, sources):
            if name not in new and not orig[name].get("trainable", True):
                add(name)
                sources.append(name)
                added = True
        if not added:
            break
    for _ in range(depth):
        sources = [name for name in _descendants(ctx, sources) if name not in new]
        if not sources:
            return None  # reached the end
        for name in sources:
            add(name)
    for name in sorted(ctx.layer_names):
        if name not in new and ctx.is_output(orig, name):
            add(name)
    if not needed:
        return None  # nothing missing: this is the final topology
    for name in sorted(new):
        srcs = sources_of(new[name])
        existing = _existing_inputs(ctx, new, name)
        if srcs != existing:
            if "data" in existing:
                existing.remove("data")  # as RETURNN: a layer that got rewired does not keep "data"
            new[name]["from"] = existing
    return new


def _existing_inputs(ctx: NetSteps, new: NetDict, name: str) -> list[str]:
    """The sources of `name` in the original net, each missing one replaced by its own (recursively)."""
    collected: list[str] = []
    visited = {name}
    stack = [iter(sources_of(ctx.original[name]))]  # depth first as a recursion would go, without one (any depth)
    while stack:
        src = next(stack[-1], None)
        if src is None:
            stack.pop()
        elif src in new or ctx.is_external(src):
            if src not in collected:
                collected.append(src)
        elif src not in visited:
            visited.add(src)
            stack.append(iter(sources_of(ctx.original[src])))
    return collected


# ---- shared post-processing


def _drop_non_trainable_only_steps(ctx: NetSteps, steps: list[NetDict]) -> list[NetDict]:
    """Drop a step that adds only non-trainable (or output) layers to the step before it; keep the final net."""
    kept = []
    for i in range(len(steps) - 1):
        before = steps[i - 1] if i > 0 else {}
        after = steps[i]
        if any(
            name not in before and not ctx.is_output(after, name) and after[name].get("trainable", True)
            for name in sorted(_layers(after))
        ):
            kept.append(after)
    kept.append(steps[-1])
    return kept
