"""Preemption: on SIGTERM or SIGUSR1 set a flag; the training loop saves at the next step boundary and exits with
`PREEMPTED_EXIT_CODE`.

`PREEMPTED_EXIT_CODE = 75` is EX_TEMPFAIL of sysexits.h ("temporary failure, retry later"): a job script can
requeue on it, e.g. ``python train.py; [ $? -eq 75 ] && scontrol requeue $SLURM_JOB_ID``. (Slurm sends SIGTERM,
or SIGUSR1 with ``--signal=USR1@120``, before it kills a job.) In a multi-worker job the flag of every worker is
agreed over the cluster at each step boundary (`_distribute.Cluster.any` in `TransitionManager.step_done`): a signal
to any one worker makes all of them save after that same step and exit with 75. A signal that arrives before the
handler is installed (while a multi-worker job starts) is held by `hold_until_installed` and handed to the first
handler installed, so that it too is agreed at the first step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

__all__ = ["PreemptionHandler", "PREEMPTED_EXIT_CODE", "hold_until_installed", "mark_training_started",
           "training_started", "end_start_up"]

PREEMPTED_EXIT_CODE = 75
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_held: list[int] = []  # signals that arrived under `hold_until_installed`, for the next handler installed
_started = [False]  # the manager took over signals (installed its handler, or was told not to)


def mark_training_started() -> None:
    """The process is past its start-up: a manager installed its handler (or runs without one)."""
    _started[0] = True


def training_started() -> bool:
    """Whether `mark_training_started` was called in this process (the command line's start-up handlers ask)."""
    return _started[0]


def hold_until_installed(on_signal: Callable[[int, int], None] | None = None) -> None:
    """Until a `PreemptionHandler` is installed, record SIGTERM / SIGUSR1 (calling `on_signal(signum, how many are
    held)`, e.g. to say so, or to exit at a second one) instead of dying; the first handler installed then starts out
    requested."""

    def hold(signum: int, frame: FrameType | None) -> None:
        _held.append(signum)
        if on_signal is not None:
            on_signal(signum, len(_held))

    for sig in SIGNALS:
        signal.signal(sig, hold)


def end_start_up() -> None:
    """Forget held signals and whether training started (the command line's `main` returns; the process goes on)."""
    _held.clear()
    _started[0] = False


class PreemptionHandler:
    """`with PreemptionHandler() as p: ... if p.requested: save(); raise SystemExit(PREEMPTED_EXIT_CODE)`; restores the
    previous handlers on exit.

    Signal handlers can only be installed from the main thread; elsewhere `__enter__` raises RuntimeError.
    """

    def __init__(self, signals: Iterable[int] = SIGNALS):
        self.signals = tuple(signals)
        self._event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """True once one of the signals arrived."""
        return self._event.is_set()

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Set the flag as if `signum` had arrived."""
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("PreemptionHandler must be installed from the main thread (a Python signal rule)")
        for sig in self.signals:
            if sig not in self._previous:
                self._previous[sig] = signal.signal(sig, self._handle)
        mark_training_started()
        if _held:  # a signal held while the job started
            self.request(_held[0])
            _held.clear()

    def uninstall(self) -> None:
        """Restore the handlers that were there before `install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def __enter__(self) -> PreemptionHandler:
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.uninstall()
