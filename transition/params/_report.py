"""The report of an import: what happened to every param (pure data)."""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from transition.errors import ConfigError, did_you_mean

__all__ = ["ParamStatus", "ParamRecord", "ImportReport", "OutputCheck"]


class ParamStatus(enum.Enum):
    """What an import did to one param."""

    COPIED = "copied"
    PARTLY_COPIED = "partly copied"
    PRESERVED = "preserved"  # copy modes "preserve" / "net2wider": the reason says how (zero outgoing, identity, ...)
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
class OutputCheck:
    """What a transition's `verify_inputs` measured: the largest difference between the old and the new network's
    outputs on that batch (relative: over the largest old output value of that output layer)."""

    max_abs_diff: float
    max_rel_diff: float
    tolerance: float
    output: str  # the output layer with the largest relative difference
    examples: int  # the batch size
    # where the batch has the targets of the losses: {"<layer> loss" / "<layer> error": (before, after)}
    scores: Mapping[str, tuple[float, float]] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the outputs stayed within the tolerance."""
        return self.max_rel_diff <= self.tolerance

    def __str__(self) -> str:
        text = (f"outputs checked on {self.examples} examples: largest difference {self.max_abs_diff:.3g} "
                f"(relative {self.max_rel_diff:.3g}, tolerance {self.tolerance:g}) in {self.output!r}")
        return text + "".join(f"; {name} {a:.4g} -> {b:.4g}" for name, (a, b) in self.scores.items())


@attrs.frozen
class ImportReport:
    """Per param: copied, partly copied, preserved (and how), kept its init (and why), custom-imported or ignored;
    after a transition with `verify_inputs`, the output check."""

    records: tuple[ParamRecord, ...] = ()
    output_check: OutputCheck | None = None

    def __add__(self, other: ImportReport) -> ImportReport:
        if not isinstance(other, ImportReport):
            return NotImplemented
        check = self.output_check if self.output_check is not None else other.output_check
        return ImportReport(self.records + other.records, check)

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
        text = self._table()
        return text if self.output_check is None else f"{text}\n{self.output_check}"

    def _table(self) -> str:
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
        counts = ", ".join(f"{len(self.by_status(s))} {s.value}" for s in ParamStatus if self.by_status(s))
        lines.append(f"({len(self.records)} params: {counts})")
        return "\n".join(lines)


def _shape_str(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "x".join(str(d) for d in shape) or "scalar"
