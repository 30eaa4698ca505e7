"""`transition inspect / convert / avg` (cli._ckpt): tables, --json, errors, the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from tests.checkpoint.test_tools import _values
from tests.helpers import save_v2
from transition.checkpoint._reader import read_checkpoint
from transition.cli._main import main


def test_cli_inspect_table_and_json(tmp_path, capsys):
    values = _values()
    prefix = save_v2(tmp_path / "m", values)
    assert main(["inspect", prefix + ".index"]) == 0
    out = capsys.readouterr().out
    assert "l1/W" in out and "total: 4 arrays" in out
    assert main(["inspect", "--json", prefix]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {a["name"]: a["shape"] for a in data["arrays"]} == {n: list(np.shape(v)) for n, v in values.items()}
    assert data["total_bytes"] == sum(np.asarray(v).nbytes for v in values.values())


def test_cli_inspect_npz_and_keras_weights(tmp_path, capsys):
    import keras

    np.savez(tmp_path / "zoo.npz", **{"conv0/W:0": np.zeros((3, 2), np.float32)})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save_weights(str(tmp_path / "k.weights.h5"))
    expected = {"zoo.npz": ("npz", {"conv0/W": [3, 2]}),
                "k.weights.h5": ("keras_h5", {"dense/vars/0": [4, 3], "dense/vars/1": [3]})}
    for file, (kind, shapes) in expected.items():
        assert main(["inspect", "--json", str(tmp_path / file)]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["kind"] == kind and {a["name"]: a["shape"] for a in data["arrays"]} == shapes
        assert data["total_bytes"] == 4 * sum(int(np.prod(s)) for s in shapes.values())


def test_cli_errors_exit_1_and_name_the_path(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
    src = save_v2(tmp_path / "m", _values())
    assert main(["convert", src, str(tmp_path / "o.npz"), "--only", "l1", "--only", "nope"]) == 1
    assert "'nope'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o.npz")


def test_cli_convert_and_avg(tmp_path, capsys):
    a = save_v2(tmp_path / "a", _values(1.0))
    b = save_v2(tmp_path / "b", _values(3.0))
    assert main(["convert", a, str(tmp_path / "a.npz"), "--only", "l1/W", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["names"] == ["l1/W"]
    assert main(["avg", a, str(tmp_path / "a.npz"), "-o", str(tmp_path / "x")]) == 1  # differing names
    assert "differ in variables" in capsys.readouterr().err
    assert main(["avg", a, b, "-o", str(tmp_path / "ab")]) == 0
    ra, rb, ab = read_checkpoint(a), read_checkpoint(b), read_checkpoint(tmp_path / "ab")
    np.testing.assert_allclose(ab["l1/W"], (ra["l1/W"] + rb["l1/W"]) / 2, rtol=1e-6)


def test_cli_only_network(tmp_path, capsys):
    from transition.network._network import Network

    net = {"l1": {"class": "linear", "activation": "tanh", "n_out": 3, "from": "data"},
           "output": {"class": "softmax", "n_out": 2, "from": "l1"}}
    spec = {"network": net, "extern_data": {"data": {"dim": 4}, "classes": {"dim": 2, "sparse": True}}}
    params = Network.from_dict(net, spec["extern_data"]).param_variables()
    needed = sorted(params)
    values = {n: np.ones(v.shape, np.float32) for n, v in params.items()}
    values["optimizer/iter"] = np.int64(3)
    values["l1/W/Adam"] = np.zeros((4, 3), np.float32)  # a RETURNN-style slot under the param's name: not needed
    src = save_v2(tmp_path / "m", values)
    spec_path = tmp_path / "net.json"
    spec_path.write_text(json.dumps(spec))
    assert main(["convert", src, str(tmp_path / "o.npz"), "--only-network", str(spec_path)]) == 0
    assert sorted(read_checkpoint(tmp_path / "o.npz")) == needed
    assert main(["convert", src, str(tmp_path / "o1.npz"), "--only-network", str(spec_path), "--only",
                 "optimizer"]) == 0
    assert sorted(read_checkpoint(tmp_path / "o1.npz")) == sorted(needed + ["optimizer/iter"])
    del values[needed[0]]
    src2 = save_v2(tmp_path / "m2", values)
    assert main(["convert", src2, str(tmp_path / "o2.npz"), "--only-network", str(spec_path)]) == 1
    assert repr(needed[0]) in capsys.readouterr().err and not (tmp_path / "o2.npz").exists()
    spec_path.write_text(json.dumps({"net": net}))
    assert main(["convert", src, str(tmp_path / "o3.npz"), "--only-network", str(spec_path)]) == 1
    assert "'network'" in capsys.readouterr().err


def test_cli_subprocess_output_has_no_tf_noise(tmp_path):
    prefix = save_v2(tmp_path / "m", _values())
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    proc = subprocess.run([sys.executable, "-m", "transition", "inspect", prefix], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "l1/W" in proc.stdout and proc.stdout.startswith("checkpoint ")


def test_cli_output_into_a_closed_pipe_is_no_traceback(tmp_path):
    """`transition inspect --json ... | head -3`: the reader closes the pipe early; no BrokenPipeError traceback."""
    prefix = save_v2(tmp_path / "m", {f"layer{i}/W": np.zeros((2, 2), np.float32) for i in range(400)})
    proc = subprocess.Popen([sys.executable, "-m", "transition", "inspect", "--json", prefix],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the command writes anything (it still imports TensorFlow)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_cli_inspect_of_a_state_file_directory_agrees_with_tf(tmp_path, capsys):
    """TF's `checkpoint` state file is read without TensorFlow, to the checkpoint tf.train.latest_checkpoint names."""
    import tensorflow as tf

    directory = tmp_path / 'odd "dir" é'  # escaped in the state file (TF's own glob fails on a backslash)
    v = tf.Variable(np.arange(3, dtype=np.float32))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), str(directory), max_to_keep=3)
    manager.save()
    v.assign([7.0, 8.0, 9.0])
    manager.save()
    # an absolute path in the state file (as TF1's savers write it): the quotes are escaped
    tf.compat.v1.train.update_checkpoint_state(str(directory), str(directory / "ckpt-1"))
    expected = tf.train.latest_checkpoint(str(directory))
    assert expected is not None and '\\"' in (directory / "checkpoint").read_text()
    for path in (directory, directory / "checkpoint"):
        assert main(["inspect", "--json", str(path)]) == 0
        assert json.loads(capsys.readouterr().out)["path"] == expected
    (directory / "checkpoint").write_text('model_checkpoint_path: "gone-9"\n')
    assert main(["inspect", str(directory)]) == 1
    assert "names no existing checkpoint" in capsys.readouterr().err
    (directory / "checkpoint").write_text("model_checkpoint_path: unquoted\n")
    assert main(["inspect", str(directory)]) == 1
    assert "cannot parse the checkpoint state file" in capsys.readouterr().err
