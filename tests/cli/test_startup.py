"""The command line's start-up as processes: which commands import TensorFlow (none that need not), and signals
while it starts (one line on the real stderr, the exit code), `import transition.keras` without TF's noise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers import save_v2, store_model
from transition.store._store import CheckpointStore

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])))


def _imported_modules(args: list[str], cwd: str) -> tuple[int, str, set[str]]:
    """(exit code, stderr without the import log, the modules imported) of `python -m transition ARGS`."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "transition", *args], cwd=cwd, env=_ENV,
                          capture_output=True, text=True, timeout=120)
    imported, rest = set(), []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:"):
            imported.add(line.rsplit("|", 1)[-1].strip())
        else:
            rest.append(line)
    return proc.returncode, "\n".join(rest), imported


def test_commands_that_need_no_tensorflow_do_not_import_it(tmp_path):
    values = {"l1/W": np.ones((3, 4), np.float32), "l1/b": np.zeros((4,), np.float32)}
    bundle = save_v2(tmp_path / "bundle", values)
    np.savez(tmp_path / "values.npz", **values)
    model = store_model(tmp_path)
    with CheckpointStore(model) as store:
        store.save(1, 0, values, scores={"dev": 0.5})
    state_dir = tmp_path / "with_state"
    state_dir.mkdir()
    save_v2(state_dir / "ckpt-1", values)
    (state_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')
    (tmp_path / "a.config").write_text("num_epochs = 1\n")
    import keras

    keras_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    keras_model.save_weights(str(tmp_path / "k.weights.h5"))
    keras_model.save(str(tmp_path / "k.keras"))
    record = np.zeros((), dtype=[("l1/W", np.float32, (2, 3))])
    np.save(tmp_path / "record.npy", record)
    cases = [  # (args, exit code)
        (["status", model], 0), (["status", os.path.dirname(model)], 0), (["status", model + ".001"], 0),
        (["status", str(tmp_path / "nothing")], 0),
        (["inspect", bundle], 0), (["inspect", str(tmp_path / "values.npz")], 0), (["inspect", model + ".001"], 0),
        (["inspect", str(state_dir)], 0), (["inspect", str(tmp_path / "missing")], 1),
        (["inspect", str(tmp_path / "k.weights.h5")], 0), (["inspect", str(tmp_path / "k.keras")], 0),
        (["inspect", str(tmp_path / "record.npy")], 0),
        (["--help"], 0), (["train", "--help"], 0), (["status", "--help"], 0), ([], 2),
        (["train"], 2), (["train", "--num_epochs", "3", "a.config"], 2), (["train", "a.config", "--nope=1"], 2),
        (["convert", bundle], 2), (["status", model, "--bogus"], 2),
        (["train", str(tmp_path)], 1), (["train", str(tmp_path / "missing.config")], 1),
    ]
    for args, code in cases:
        rc, err, imported = _imported_modules(args, str(tmp_path))
        assert rc == code, (args, rc, err)
        assert "tensorflow" not in imported and "keras" not in imported, args
        assert "Traceback" not in err, (args, err)


def _wait_for_silenced_stderr(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Return once the process has pointed its fd 2 at /dev/null (TensorFlow's import is under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{proc.pid}/fd/2") == os.devnull:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"the process ended ({proc.returncode}) before TensorFlow's import")
        time.sleep(0.005)
    pytest.fail("TensorFlow's import never silenced fd 2")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see where fd 2 points")
@pytest.mark.parametrize(("sig", "code", "line"), [
    (signal.SIGTERM, 75, "transition train: preempted (SIGTERM) while starting"),
    (signal.SIGINT, 130, "transition train: interrupted"),
])
def test_a_signal_while_tensorflow_imports_prints_its_line(tmp_path, sig, code, line):
    """The signal arrives exactly while fd 2 points at /dev/null: its one line must still reach the real stderr."""
    config = tmp_path / "tiny.config"
    config.write_text("num_epochs = 1\n")
    proc = subprocess.Popen([sys.executable, "-m", "transition", "train", str(config)], cwd=tmp_path, env=_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_silenced_stderr(proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert line in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("**/*.commit.json"))


def test_import_transition_keras_first_silences_tensorflow(tmp_path):
    """The README's promise: `import transition.keras` first, then Keras and TensorFlow start without log noise."""
    env = {k: v for k, v in _ENV.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    proc = subprocess.run([sys.executable, "-c", "import transition.keras, keras, tensorflow as tf; "
                           "print(tf.constant(1).numpy())"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr
    assert proc.stderr == ""


_SIGNAL_IN_AN_IMPORT = """
import importlib.abc, os, signal, sys
class SignalDuringImport(importlib.abc.MetaPathFinder):  # the signal lands inside `import _socket` (ssl's C init)
    fired = False
    def find_spec(self, name, path, target=None):
        if name == "_socket" and not SignalDuringImport.fired:
            SignalDuringImport.fired = True
            print("fired", flush=True)
            os.kill(os.getpid(), int(sys.argv[1]))
        return None
sys.meta_path.insert(0, SignalDuringImport())
from transition.cli._main import main
sys.exit(main(["train", sys.argv[2], "--num_epochs=1"]))
"""


@pytest.mark.parametrize(("sig", "code", "line"), [
    (signal.SIGTERM, 75, "transition train: preempted (SIGTERM) while starting"),
    (signal.SIGINT, 130, "transition train: interrupted while starting"),
])
def test_a_signal_inside_an_import_that_catches_import_errors_still_exits(tmp_path, sig, code, line):
    """A signal handler's exception raised inside a C extension's import becomes an ImportError, which TensorFlow's
    import catches (`import ssl` ... except ImportError): the start-up exit must not depend on it propagating."""
    config = tmp_path / "job.config"
    config.write_text(CONFIG_THAT_TRAINS)
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_IN_AN_IMPORT, str(int(sig)), str(config)], cwd=tmp_path,
                          env=_ENV, capture_output=True, text=True, timeout=180)
    if "fired" not in proc.stdout:
        pytest.skip("_socket was imported before our hook could see it (nothing to test here)")
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert line in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists() and "epoch 1" not in proc.stdout  # nothing trained


CONFIG_THAT_TRAINS = """
import numpy as np
_x = np.random.RandomState(1).randn(16, 4).astype("float32")
extern_data = {"data": {"shape": (4,)}, "classes": {"dim": 2, "sparse": True, "shape": ()}}
network = {"output": {"class": "softmax", "loss": "ce", "from": "data", "target": "classes"}}
model = "runs/net"
num_epochs = 1
batch_size = 8
train = {"data": _x, "classes": (_x[:, 0] > 0).astype("int32")}
"""
