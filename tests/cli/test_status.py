"""`transition status MODEL` (cli._status): the checkpoints and the one a resume would use, table and --json."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.helpers import store_model
from tests.store.test_store import _params
from transition.cli._main import main
from transition.store._keep import KeepPolicy
from transition.store._store import CheckpointStore

tf = pytest.importorskip("tensorflow")


@pytest.fixture
def model(tmp_path):
    return store_model(tmp_path)


def test_cli_status_table_and_json(model, capsys):


    with CheckpointStore(model, keep=KeepPolicy(keep_last=None)) as store:
        store.save(1, 0, _params(), scores={"dev": 0.25})
        store.save(2, 0, _params(), scores={"dev": 0.125})
    with open(model + ".002.data-00000-of-00001", "r+b") as f:
        f.write(b"\xff\xfe")  # bit damage, same size
    assert main(["status", model, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["resume_from"] == model + ".001"
    by_epoch = {r["epoch"]: r for r in status["checkpoints"]}
    assert by_epoch[1]["scores"] == {"dev": 0.25} and by_epoch[1]["damaged"] is None
    assert "checksum" in by_epoch[2]["damaged"]
    assert main(["status", model]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f"model {model}: 2 checkpoints"
    row1, row2 = (line.split() for line in table[2:4])
    assert row1[:4] == ["*", "network.001", "1", "0"] and "dev=0.25" in row1
    assert row1[-2:] == ["(checksums", "verified)"]
    assert row2[:3] == ["network.002", "2", "0"] and "DAMAGED:" in row2 and "network.002.data-00000-of-00001" in row2
    assert table[-1] == f"resume would use (*): {model}.001 (after epoch 1, continues with epoch 2)"
    os.remove(model + ".001.index")
    assert main(["status", model]) == 1  # checkpoints, none good: an error, not "would start from scratch"
    assert "resume: ERROR" in capsys.readouterr().out


def test_cli_status_subprocess_is_quiet_and_names_the_resume_checkpoint(model):
    """The real command line: a readable table on stdout, nothing on stderr (no TF start-up noise, no warnings)."""
    import subprocess
    import sys

    with CheckpointStore(model, keep=KeepPolicy(keep_last=None)) as store:
        store.save(1, 0, _params(), scores={"dev": float("nan")})
        store.save(2, 40, _params(), epoch_finished=False)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    proc = subprocess.run([sys.executable, "-m", "transition", "status", model], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].split() == ["checkpoint", "epoch", "step", "kind", "size", "scores", "status"]
    assert lines[2].split()[:3] == ["network.001", "1", "0"] and "dev=nan" in lines[2]
    assert lines[3].split()[:5] == ["*", "network.002.step00000040", "2", "40", "mid-epoch"]
    assert lines[-1] == f"resume would use (*): {model}.002.step00000040 (in epoch 2 after step 40)"


def test_cli_status_with_only_foreign_epoch_files_is_no_error(model, capsys):
    """RETURNN's network.NNN (no commit file): `transition train` loads it by the loading rules, so status must not
    claim that training would refuse to start."""


    tf.raw_ops.SaveV2(prefix=model + ".020", tensor_names=["l1/W"], shape_and_slices=[""],
                      tensors=[np.ones((2, 2), np.float32)])
    assert main(["status", model]) == 0
    out = capsys.readouterr().out
    assert "ERROR" not in out and "loading rules" in out.splitlines()[-1]
    assert main(["status", model, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["error"] is None and status["resume_from"] is None
    assert [r["epoch"] for r in status["checkpoints"]] == [20]


def test_cli_status_of_a_directory_or_a_checkpoint_file_finds_the_model(model, capsys):
    with CheckpointStore(model) as store:
        store.save(1, 0, _params(), scores={"dev": 0.5})
        store.save(2, 0, _params(), scores={"dev": 0.25})
    directory = os.path.dirname(model)
    for path in (directory, model + ".002", model + ".001.index"):
        assert main(["status", path, "--json"]) == 0, path
        status = json.loads(capsys.readouterr().out)
        assert status["model"] == model and status["resume_from"] == model + ".002", path
        assert [os.path.basename(r["prefix"]) for r in status["checkpoints"]] == ["network.001", "network.002"]
        assert path in status["note"] and "is a" in status["note"]
    assert main(["status", model + ".009", "--json"]) == 0  # an epoch the model does not have
    status = json.loads(capsys.readouterr().out)
    assert status["model"] == model and "no such checkpoint" in status["note"]
    assert main(["status", directory]) == 0
    out = capsys.readouterr().out
    assert "2 checkpoints" in out and "no checkpoints" not in out and f"resume would use (*): {model}.002" in out
    assert main(["status", model + "-typo"]) == 0  # no checkpoints of its own: the directory's models are named
    assert model in capsys.readouterr().out
    with CheckpointStore(os.path.join(directory, "other")) as store:
        store.save(1, 0, _params())
    assert main(["status", directory]) == 1  # two models: which one?
    err = capsys.readouterr().err
    assert model in err and os.path.join(directory, "other") in err and "2 models" in err


def test_cli_status_of_one_checkpoint_says_checkpoint(model, capsys):
    with CheckpointStore(model) as store:
        store.save(1, 0, _params())
    assert main(["status", model]) == 0
    assert f"model {model}: 1 checkpoint\n" in capsys.readouterr().out
