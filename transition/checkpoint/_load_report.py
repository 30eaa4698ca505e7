"""`LoadReport`: what a load did, per network param and checkpoint name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

import attrs

__all__ = ["LoadReport"]


@attrs.frozen(eq=True, hash=False)
class LoadReport:
    """What a load did. Names in `loaded`, `missing`, `ignored`, `skipped`, `kept_init` are network names
    (``layer/param``); `unused` are checkpoint names; `mapped` is {network name: checkpoint name} where they differ;
    `converted` is {network name: how the value was converted}, a float cast ("float64 -> float32"), a partial
    copy by the layer's copy mode ("subset (4, 3) -> (4, 5)"), an old name or another layout; `custom_layers` are layers loaded through their
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
                extra.append(self.converted[name])
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
