"""The one-line summaries of the training log: the per-epoch line and what a transition did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from transition.params._report import ParamStatus

if TYPE_CHECKING:
    from transition.network._transition import TransitionResult

__all__ = ["transition_summary", "format_epoch_line"]


def transition_summary(result: TransitionResult) -> str:
    """`transition +l3,~output (params: 4 copied, 2 kept_init; custom importer in output)`: layers added (+),
    removed (-) and changed (~), the params by outcome, and with `verify_inputs` the largest output difference
    (`checked on 300 examples: max output diff 2.4e-07, output error 0.07 -> 0.07`)."""
    parts = []
    diff = getattr(result, "diff", None)
    if diff is not None:
        for sign, names in (("+", diff.added), ("-", diff.removed), ("~", diff.changed)):
            if names:
                parts.append(",".join(sign + name for name in names))
    counts: dict[str, int] = {}
    for rec in result.report.records:
        counts[rec.status.value] = counts.get(rec.status.value, 0) + 1
    hooks = sorted({r.layer for r in result.report.by_status(ParamStatus.CUSTOM)})
    text = "transition " + " ".join(parts) if parts else "transition"
    if counts:
        text += " (params: " + ", ".join(f"{n} {status}" for status, n in counts.items())
        if hooks:
            text += "; custom importer in " + ",".join(hooks)
        text += ")"
    check = result.report.output_check
    if check is not None:
        text += f" checked on {check.examples} examples: max output diff {check.max_abs_diff:.2g}"
        errors = [(name, ab) for name, ab in check.scores.items() if name.endswith(" error")]
        if errors:
            text += f", {errors[0][0]} {errors[0][1][0]:.4g} -> {errors[0][1][1]:.4g}"
    return text


def format_epoch_line(epoch: int, num_epochs: int, steps: int, scores: Mapping[str, float], learning_rate: float,
                      seconds: float, transition: str | None) -> str:
    """`epoch 3/10  steps 45  train_score 0.412  dev_score 0.398  dev_error 0.087  lr 0.001  2.1s  <transition>`."""
    parts = [f"epoch {epoch}/{num_epochs}", f"steps {steps}"]
    parts += [f"{k} {v:.4g}" for k, v in scores.items()]
    parts += [f"lr {learning_rate:.4g}", f"{seconds:.1f}s"]
    if transition:
        parts.append(transition)
    return "  ".join(parts)
