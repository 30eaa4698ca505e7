"""`transition status MODEL [--json] [--verify-all]`: the checkpoints of a model and which one a resume would use."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from transition.internal import _fs

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
    from transition.store._store import CheckpointStore

    store = CheckpointStore(model, lock=False, cleanup=False)
    try:
        scan = store.scan_for_resume()
        infos = store.list(checksums=True) if verify_all else scan.checkpoints
    finally:
        store.close()
    resume = scan.resume_from.prefix if scan.resume_from is not None else None  # the manager's decision
    error = scan.resume_error
    found = {i.prefix: i for i in scan.skipped}
    if scan.good is not None:
        found[scan.good.prefix] = scan.good
    if not verify_all:  # show what the scan learned: why newer ones were skipped, that the chosen one verified
        infos = [found.get(i.prefix, i) for i in infos]
    rows = []
    for i in infos:
        rows.append({
            "prefix": i.prefix, "epoch": i.epoch, "step": i.step, "epoch_finished": i.epoch_finished,
            "scores": {k: (v if math.isfinite(v) else str(v)) for k, v in i.scores.items()},
            "global_step": i.global_step, "size": i.size, "committed": i.committed, "damaged": i.damaged,
            "checksums_verified": i.verified or i.prefix == resume,
        })
    return {"model": model, "checkpoints": rows, "resume_from": resume, "error": str(error) if error else None}


def _reason(row: dict) -> str:
    """Why a checkpoint is unusable, without repeating its full path."""
    reason = row["damaged"].replace(f"checkpoint {row['prefix']} is damaged: ", "")
    return reason.replace(row["prefix"], os.path.basename(row["prefix"]))


def _table(status: dict) -> str:
    from transition.checkpoint._tools import human_size

    rows = status["checkpoints"]
    lines = [f"note: {status['note']}"] if status.get("note") else []
    lines.append(f"model {status['model']}: {len(rows) or 'no'} checkpoint{'' if len(rows) == 1 else 's'}")
    header = ("", "checkpoint", "epoch", "step", "kind", "size", "scores", "status")
    cells = []
    for r in rows:
        if r["damaged"]:
            state = ("DAMAGED: " if r["committed"] else "") + _reason(r)
        else:
            state = "ok (checksums verified)" if r["checksums_verified"] else "ok (sizes checked)"
        scores = " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in sorted(r["scores"].items()))
        cells.append(("*" if r["prefix"] == status["resume_from"] else "", os.path.basename(r["prefix"]),
                      str(r["epoch"]), str(r["step"]), "epoch end" if r["epoch_finished"] else "mid-epoch",
                      human_size(r["size"]) if r["committed"] else "-", scores or "-", state))
    if cells:  # the last column (status, maybe long) is not padded
        widths = [max(len(x[c]) for x in [header, *cells]) for c in range(len(header) - 1)]
        for row in [header, *cells]:
            lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1])
    resume = next((r for r in rows if r["prefix"] == status["resume_from"]), None)
    if status["error"]:
        lines.append(f"resume: ERROR: {status['error']}")
    elif resume is not None:
        where = (f"after epoch {resume['epoch']}, continues with epoch {resume['epoch'] + 1}"
                 if resume["epoch_finished"] else f"in epoch {resume['epoch']} after step {resume['step']}")
        lines.append(f"resume would use (*): {resume['prefix']} ({where})")
    elif rows:
        lines.append("resume: none is a checkpoint of transition's store; training applies the config's loading "
                     "rules (load, load_epoch, import_model_train_epoch1, else the newest epoch file) to them")
    else:
        directory = os.path.dirname(status["model"]) or "."
        missing = "" if _fs.isdir(directory) else f" (the directory {directory} does not exist: is MODEL right?)"
        lines.append(f"resume: no checkpoint, training would start from scratch{missing}")
    return "\n".join(lines)


def _models_in(directory: str) -> list[str]:
    """The models with checkpoint files in `directory`, sorted."""
    from transition.checkpoint._naming import model_of_file

    try:
        files = _fs.listdir(directory or ".")
    except OSError:
        return []
    return sorted({m for m in (model_of_file(os.path.join(directory, f)) for f in files) if m is not None})


def _has_checkpoints(model: str) -> bool:
    from transition.checkpoint._epochs import list_epoch_models
    from transition.store._listing import has_checkpoint_files

    return has_checkpoint_files(model) or bool(list_epoch_models(model))


def _resolve_model(path: str) -> tuple[str, str | None]:
    """(the model whose checkpoints to list, a note saying how MODEL was read or None): MODEL itself when it has
    checkpoints; else the one model of a directory, or the model of a checkpoint's file or prefix. A directory of
    several models is a ConfigError listing them."""
    from transition.checkpoint._naming import COMMIT_SUFFIX, INDEX_SUFFIX, model_of_file
    from transition.errors import ConfigError, listed

    if _has_checkpoints(path):
        return path, None
    if _fs.isdir(path):
        models = _models_in(path)
        if len(models) == 1:
            return models[0], f"{path} is a directory: its checkpoints are those of model {models[0]}"
        if models:
            raise ConfigError(f"{path} is a directory with the checkpoints of {len(models)} models: give one "
                              f"(MODEL is the path prefix of its checkpoints), one of {listed(models)}")
        return path, f"{path} is a directory without checkpoints; MODEL is the path prefix of a model's " \
                     "checkpoints (e.g. runs/exp/network for runs/exp/network.001)"
    model = model_of_file(path)
    if model is not None and _has_checkpoints(model):
        if any(_fs.exists(path + suffix) for suffix in ("", INDEX_SUFFIX, COMMIT_SUFFIX)):
            return model, f"{path} is a checkpoint of model {model}: listing that model's checkpoints"
        return model, f"{path}: no such checkpoint; listing the checkpoints of its model {model}"
    others = [m for m in _models_in(os.path.dirname(path)) if m != path]
    if others:
        return path, f"no checkpoints of model {path}; its directory has those of {listed(others)}"
    return path, None


def run_status(args: argparse.Namespace) -> int:
    model, note = _resolve_model(args.model)
    status = _status(model, args.verify_all)
    status["note"] = note
    if args.json:
        json.dump(status, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(_table(status))
    return 1 if status["error"] else 0
