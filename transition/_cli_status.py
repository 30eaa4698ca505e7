"""`transition status MODEL [--json] [--verify-all]`: the checkpoints of a model and which one a resume would use."""

from __future__ import annotations

import argparse
import json
import math
import sys

__all__ = ["register", "run_status"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status",
        help="list a model's checkpoints (epoch, step, scores, size, committed / damaged) and the one a resume uses",
        description="List the checkpoints of MODEL (the path prefix, e.g. /exp/net-model/network). Read-only: takes "
        "no lock and removes nothing.",
    )
    p.add_argument("model", metavar="MODEL", help="model path prefix (checkpoints are MODEL.001, MODEL.002, ...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--verify-all", action="store_true", help="verify the checksums of every checkpoint (reads all)")
    p.set_defaults(func=run_status)


def _status(model: str, verify_all: bool) -> dict:
    from transition._cli import quiet_tensorflow

    quiet_tensorflow()
    from transition._errors import CheckpointError
    from transition._store import CheckpointStore

    store = CheckpointStore(model, lock=False, cleanup=False)
    try:
        infos = store.list(checksums=verify_all)
        resume, error = None, None
        try:
            good = store.latest_good()
            resume = good.prefix if good else None
        except CheckpointError as exc:
            error = str(exc)
        if not verify_all:  # show why latest_good skipped the newer ones
            import attrs

            from transition._atomic import verify

            newest = next((i.order for i in infos if i.prefix == resume), None)
            checked = []
            for i in infos:
                if i.good and (newest is None or i.order > newest):
                    try:
                        verify(i.prefix, checksums=True)
                        i = attrs.evolve(i, verified=True)
                    except CheckpointError as exc:
                        i = attrs.evolve(i, damaged=str(exc))
                checked.append(i)
            infos = checked
    finally:
        store.close()
    rows = []
    for i in infos:
        rows.append({
            "prefix": i.prefix, "epoch": i.epoch, "step": i.step, "epoch_finished": i.epoch_finished,
            "scores": {k: (v if math.isfinite(v) else str(v)) for k, v in i.scores.items()},
            "global_step": i.global_step, "size": i.size, "committed": i.committed, "damaged": i.damaged,
            "checksums_verified": i.verified or i.prefix == resume,
        })
    return {"model": model, "checkpoints": rows, "resume_from": resume, "error": error}


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _table(status: dict) -> str:
    lines = [f"model {status['model']}"]
    if not status["checkpoints"]:
        lines.append("  no checkpoints")
    header = ("", "epoch", "step", "kind", "size", "status", "scores")
    rows = []
    for r in status["checkpoints"]:
        if r["damaged"]:
            reason = r["damaged"].replace(f"checkpoint {r['prefix']} is damaged: ", "")
            state = ("DAMAGED: " if r["committed"] else "") + reason
        else:
            state = "ok (checksums verified)" if r["checksums_verified"] else "ok (sizes checked)"
        scores = " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in sorted(r["scores"].items()))
        mark = "*" if r["prefix"] == status["resume_from"] else ""
        rows.append((mark, str(r["epoch"]), str(r["step"]), "epoch end" if r["epoch_finished"] else "mid-epoch",
                     _size(r["size"]) if r["committed"] else "-", state, scores))
    if rows:
        widths = [max(len(x[c]) for x in [header, *rows]) for c in range(len(header) - 1)]
        for row in [header, *rows]:
            lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1])
    if status["error"]:
        lines.append(f"resume: ERROR: {status['error']}")
    elif status["resume_from"]:
        lines.append(f"resume would use (*): {status['resume_from']}")
    else:
        lines.append("resume: no checkpoint, training would start from scratch")
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    status = _status(args.model, args.verify_all)
    if args.json:
        json.dump(status, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(_table(status))
    return 1 if status["error"] else 0
