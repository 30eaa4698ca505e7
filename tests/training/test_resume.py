"""The central exact-resume tests: interrupted runs, resumed, end bit-identical to an uninterrupted run.

With deterministic ops and a fixed seed: a run stopped at an epoch boundary, one interrupted mid-epoch by a hook
that raises, one preempted (SIGTERM flag) mid-epoch, and one killed with SIGKILL inside a save (a subprocess) are
each resumed and compared with an uninterrupted run: params, optimizer state, learning-rate history and callback
state must be equal bit for bit. The net grows during pretraining (a transition) and uses dropout (Keras seed
generators) and Adam (slots).
"""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CONFIG = textwrap.dedent(
    """
    import keras
    import numpy as _np

    _rng = _np.random.RandomState(0)
    _x = _rng.randn(40, 5).astype("float32")
    _y = (_x[:, 0] + _x[:, 1] > 0).astype("int32")

    extern_data = {"data": {"shape": (5,)}, "classes": {"dim": 2, "sparse": True, "shape": ()}}
    network = {
        "l1": {"class": "linear", "activation": "tanh", "n_out": 6, "from": "data", "dropout": 0.2},
        "l2": {"class": "linear", "activation": "tanh", "n_out": 6, "from": "l1"},
        "output": {"class": "softmax", "loss": "ce", "from": "l2", "target": "classes"},
    }
    pretrain = {"repetitions": 1, "construction_algo": "from_output"}
    num_epochs = 4
    batch_size = 8
    optimizer = {"class": "adam"}
    learning_rate = 0.01
    learning_rate_control = "newbob"
    newbob_relative_error_threshold = 0.5
    train = {"data": _x, "classes": _y}
    dev = {"data": _x[:16], "classes": _y[:16]}
    save_every_n_steps = 3
    keep_last_n = None
    deterministic = True
    random_seed = 7
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=100)]
    """
)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.config"
    path.write_text(CONFIG)
    return str(path)


def _run(config_path, model, *, num_epochs=4, step_hook=None):
    from transition.training._loop import train_from_config

    with open(os.devnull, "w") as devnull:
        return train_from_config(config_path, [f"--model={model}", f"--num_epochs={num_epochs}"], out=devnull,
                                 step_hook=step_hook)


def _final(model, epoch=4):
    from transition.store._state import TrainingState
    from transition.store._store import CheckpointStore

    store = CheckpointStore(model, lock=False, cleanup=False)
    restored = store.restore(f"{model}.{epoch:03d}")
    state = TrainingState.from_json_and_arrays(restored.state_json, restored.state_arrays)
    return restored, state


def _assert_identical(model_a, model_b):
    a, sa = _final(model_a)
    b, sb = _final(model_b)
    assert sorted(a.params) == sorted(b.params)
    for name in a.params:
        assert a.params[name].tobytes() == b.params[name].tobytes(), f"param {name} differs"
    assert sorted(a.optimizer) == sorted(b.optimizer)
    for name in a.optimizer:
        assert np.asarray(a.optimizer[name]).tobytes() == np.asarray(b.optimizer[name]).tobytes(), f"optimizer/{name}"
    assert sa.learning_rate_history == sb.learning_rate_history
    assert sa.callbacks == sb.callbacks
    assert (sa.global_step, sa.epoch, sa.rng) == (sb.global_step, sb.epoch, sb.rng)


@pytest.fixture(scope="module")
def reference(config_path, tmp_path_factory):
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    model = str(tmp_path_factory.mktemp("ref") / "net")
    _run(config_path, model)
    return model


def test_reference_is_sane(reference):
    restored, state = _final(reference)
    # the net grew: l2 exists in the final checkpoint and Adam slots travelled with the params
    assert "l2/W" in restored.params and {"momentums/l2/W", "velocities/l2/W", "iterations"} <= set(restored.optimizer)
    assert int(restored.optimizer["iterations"]) == 4 * 5
    assert sorted(state.learning_rate_history) == [1, 2, 3, 4]
    assert all("dev_score" in rec.scores for rec in state.learning_rate_history.values())
    assert state.callbacks["EarlyStopping"]["best"] is not None
    assert state.global_step == 4 * 5


def test_resume_at_epoch_boundary(config_path, reference, tmp_path):
    model = str(tmp_path / "net")
    _run(config_path, model, num_epochs=1)
    mgr = _run(config_path, model)  # the resumed run grows the net (epoch 2): new-layer init from the restored RNG
    assert mgr.resumed_from == f"{model}.001"
    _assert_identical(reference, model)


class _Interrupt(Exception):
    pass


def test_resume_after_exception_mid_epoch(config_path, reference, tmp_path):
    model = str(tmp_path / "net")

    def hook(epoch, step):
        if (epoch, step) == (3, 4):
            raise _Interrupt

    with pytest.raises(_Interrupt):
        _run(config_path, model, step_hook=hook)
    # 5 steps per epoch, a save every 3 steps: global step 12 (epoch 3, step 2) was the last save before the
    # exception in step 4; steps 3 and 4 of epoch 3 are redone
    mgr = _run(config_path, model)
    assert mgr.resumed_from == f"{model}.003.step00000002"
    _assert_identical(reference, model)


def test_resume_after_preemption_mid_epoch(config_path, reference, tmp_path):
    from transition.training._preempt import PREEMPTED_EXIT_CODE

    model = str(tmp_path / "net")

    def hook(epoch, step):
        if (epoch, step) == (2, 2):
            os.kill(os.getpid(), signal.SIGTERM)  # a real preemption signal: the manager's handler sets the flag

    with pytest.raises(SystemExit) as info:
        _run(config_path, model, step_hook=hook)
    assert info.value.code == PREEMPTED_EXIT_CODE
    mgr = _run(config_path, model)
    assert mgr.resumed_from == f"{model}.002.step00000002"
    _assert_identical(reference, model)


def test_resume_after_sigkill_during_save(config_path, reference, tmp_path):
    model = str(tmp_path / "net")
    _run(config_path, model, num_epochs=2)
    env = dict(os.environ, TRANSITION_TEST_KILL_AT="state_written", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-m", "transition", "train", config_path, f"--model={model}"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    # the interrupted save (global step 12 = epoch 3, step 2) left a pending checkpoint, never committed
    assert os.path.exists(f"{model}.003.step00000002.pending")
    mgr = _run(config_path, model)
    assert mgr.resumed_from == f"{model}.002"
    _assert_identical(reference, model)
