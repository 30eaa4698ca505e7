"""PreemptionHandler: the signal sets a flag, handlers are restored; a loop saves at the step boundary and exits 75."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from transition.training._preempt import (
    PREEMPTED_EXIT_CODE,
    PreemptionHandler,
    end_start_up,
    hold_until_installed,
    training_started,
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_sets_the_flag_and_previous_handler_is_restored(sig):
    seen = []
    previous = signal.signal(sig, lambda s, f: seen.append(s))
    try:
        with PreemptionHandler() as handler:
            assert not handler.requested
            os.kill(os.getpid(), sig)
            assert handler.requested and handler.signal_name == signal.Signals(sig).name
            assert seen == []  # ours handled it, the old one did not
        os.kill(os.getpid(), sig)
        assert seen == [sig]  # restored
    finally:
        signal.signal(sig, previous)


def test_a_signal_held_while_starting_makes_the_first_handler_requested():
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    said = []
    try:
        hold_until_installed(lambda signum, n: said.append((signum, n)))
        os.kill(os.getpid(), signal.SIGUSR1)  # the process lives on
        assert said == [(signal.SIGUSR1, 1)]
        with PreemptionHandler() as handler:
            assert handler.requested and handler.signal_name == "SIGUSR1" and training_started()
        with PreemptionHandler() as later:
            assert not later.requested  # handed over once
        hold_until_installed(lambda signum, n: said.append((signum, n)))
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert said[1:] == [(signal.SIGTERM, 1), (signal.SIGTERM, 2)]  # the count lets the caller exit at a second
        end_start_up()  # the command line's main returns: nothing held is kept for a later run in this process
        assert not training_started()
        with PreemptionHandler() as fresh:
            assert not fresh.requested
    finally:
        end_start_up()
        for sig, h in previous.items():
            signal.signal(sig, h)


def test_the_requeue_exit_code_is_ex_tempfail():
    assert PREEMPTED_EXIT_CODE == 75 == getattr(os, "EX_TEMPFAIL", 75)


_LOOP = textwrap.dedent("""
    import sys, numpy as np
    from transition.training._preempt import PREEMPTED_EXIT_CODE, PreemptionHandler
    from transition.store._store import CheckpointStore
    store = CheckpointStore(sys.argv[1])
    w = np.zeros(3, np.float32)
    with PreemptionHandler() as preempt:
        for step in range(1, 10**6):
            w += 1  # a training step
            if step == 3:
                print("running", flush=True)
            if preempt.requested:
                store.save(1, step, {"l/W": w}, epoch_finished=False)
                store.close()
                raise SystemExit(PREEMPTED_EXIT_CODE)
""")


def test_loop_saves_at_the_next_step_boundary_and_exits_75(tmp_path):
    model = str(tmp_path / "net")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-c", _LOOP, model], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE

    from transition.store._store import CheckpointStore

    with CheckpointStore(model) as store:
        info = store.latest_good()
        assert info is not None and not info.epoch_finished and info.step >= 3
        assert store.restore(info).params["l/W"].tolist() == [float(info.step)] * 3  # saved at a step boundary
