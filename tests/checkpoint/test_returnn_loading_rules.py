"""RETURNN's EngineBase is the oracle of the loading decisions: every combination of task, existing epochs,
load, load_epoch and import_model_train_epoch1 gives the model file, its epoch and the start epoch that
RETURNN's `get_epoch_model` / `get_train_start_epoch` give, and an error exactly where RETURNN fails."""

from __future__ import annotations

import itertools
import os

import pytest

from tests.helpers import run_returnn
from transition.checkpoint._epochs import list_epoch_models
from transition.checkpoint._load_options import decide_loading
from transition.errors import ConfigError

_ORACLE = """
import json, sys
from returnn.config import Config
from returnn.engine.base import EngineBase
from returnn.util.basic import BackendEngine
BackendEngine.select_engine(engine=BackendEngine.TensorFlow)
job = json.load(sys.stdin)
out = []
for opts in job["cases"]:
    config = Config({k: v for k, v in opts.items() if v is not None})
    try:
        epoch, filename = EngineBase.get_epoch_model(config)
        start = EngineBase.get_train_start_epoch(config) if opts["task"] == "train" else None
        out.append({"epoch": epoch, "file": filename, "start": start})
    except Exception as exc:  # RETURNN fails on an assertion
        out.append({"error": repr(exc)})
json.dump(out, open(job["result"], "w"))
"""

EXISTING = {"none": (), "1,2": (1, 2), "1p,2p,3": ((1, "p"), (2, "p"), 3)}


def _make_files(tmp_path):
    """The model's epochs for every EXISTING case, a `load` file with and one without an epoch, an import file."""
    files = {}
    for key, epochs in EXISTING.items():
        model = str(tmp_path / key.replace(",", "_") / "net")
        os.makedirs(os.path.dirname(model))
        for e in epochs:
            epoch, pretrain = (e if isinstance(e, tuple) else (e, ""))
            open(f"{model}{'.pretrain' if pretrain else ''}.{epoch:03d}.index", "w").close()
        files[key] = model
    for name in ("other.005", "other", "init"):
        for suffix in (".index", ".meta"):  # RETURNN asserts that load / import_model_train_epoch1 have a .meta
            open(tmp_path / f"{name}{suffix}", "w").close()
    return files


def _cases(tmp_path, models):
    loads = [None, str(tmp_path / "other.005"), str(tmp_path / "other")]
    imports = [None, str(tmp_path / "init")]
    for task, existing, load, load_epoch, imp in itertools.product(
            ("train", "forward"), EXISTING, loads, (None, 2, 4), imports):
        yield {"task": task, "model": models[existing], "load": load, "load_epoch": load_epoch,
               "import_model_train_epoch1": imp, "num_epochs": 10}


def _ours(case):
    task = case["task"]
    options = {k: v for k, v in case.items() if k not in ("task", "num_epochs") and v is not None}
    plan = decide_loading(options, task, list_epoch_models(case["model"]))
    return plan


@pytest.mark.oracle
def test_loading_decisions_equal_returnn_engine_base(tmp_path):
    models = _make_files(tmp_path)
    cases = list(_cases(tmp_path, models))
    theirs = run_returnn(_ORACLE, {"cases": cases}, tmp_path)
    checked_errors = 0
    for case, expected in zip(cases, theirs):
        if "error" in expected or (case["task"] != "train" and expected["file"] is None):
            checked_errors += 1  # RETURNN fails (an assertion; outside training: no model to load)
            with pytest.raises(ConfigError):
                _ours(case)
            continue
        plan = _ours(case)
        assert plan.model_file == expected["file"], (case, expected, plan.log_line())
        assert plan.model_epoch == (expected["epoch"] or None), (case, expected, plan.log_line())
        if case["task"] == "train":
            assert plan.start_epoch == expected["start"], (case, expected, plan.log_line())
            assert plan.new_training == (not expected["epoch"]), (case, expected, plan.log_line())
    assert 0 < checked_errors < len(cases)
