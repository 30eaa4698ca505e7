"""Benchmark: the command line's start-up, each command a fresh process, against `python -c "import numpy"`.

The commands that need no TensorFlow (`status`, `inspect` of a TF bundle, an .npz and one of our checkpoints, a
usage error, `--help`) run as subprocesses (`python -m transition ...`, this checkout first on PYTHONPATH), in
interleaved rounds with the floor `python -c "import numpy"`; printed per command: the median wall time, the floor's
median and the ratio of our time to the floor's (the median over rounds). Fixtures (a TF bundle, an .npz, a model
with two checkpoints of the store) are written first, untimed, in this process.

    python bench/cli.py              # 15 rounds
    python bench/cli.py --rounds 5   # a quick run

Target: every command within 4x the floor (ratio <= 4).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

# Run from a checkout without installing: the repository root first on the import path.
_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, _ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
from _common import interleaved_medians  # noqa: E402  (bench/ is on the path as the script's folder)

TARGET = 4.0


def _fixtures(tmp: str) -> dict[str, str]:
    """Paths of a TF bundle, an .npz and a model of the store with two checkpoints (written here, untimed)."""
    from transition.internal._quiet import quiet_tensorflow

    quiet_tensorflow()  # writing the fixtures imports TensorFlow here (never in the timed commands)
    from transition.checkpoint._tools import write_checkpoint
    from transition.store._store import CheckpointStore

    values = {f"l{i}/W": np.full((64, 64), i, np.float32) for i in range(8)}
    bundle = write_checkpoint(values, os.path.join(tmp, "bundle"))
    npz = write_checkpoint(values, os.path.join(tmp, "values.npz"))
    model = os.path.join(tmp, "run", "network")
    with CheckpointStore(model) as store:
        for epoch in (1, 2):
            store.save(epoch, 0, values, scores={"dev_error": 0.5 / epoch})
    return {"bundle": bundle, "npz": npz, "model": model, "checkpoint": model + ".002"}


def _commands(f: dict[str, str]) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "transition"]
    return {
        "status MODEL": [*cli, "status", f["model"]],
        "status DIRECTORY": [*cli, "status", os.path.dirname(f["model"])],
        "inspect TF bundle": [*cli, "inspect", f["bundle"]],
        "inspect .npz": [*cli, "inspect", f["npz"]],
        "inspect our checkpoint": [*cli, "inspect", f["checkpoint"]],
        "inspect missing path": [*cli, "inspect", f["bundle"] + "-missing"],
        "usage error (train --num_epochs 30 CONFIG)": [*cli, "train", "--num_epochs", "30", "x.config"],
        "usage error (convert, no DST)": [*cli, "convert", f["npz"]],
        "--help": [*cli, "--help"],
        "train --help": [*cli, "train", "--help"],
    }


def _run(cmd: list[str], env: dict[str, str], expect: int | None) -> None:
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    if expect is not None and proc.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}, not {expect}: {proc.stderr.decode()[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.abspath(_ROOT),
                                                                     os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        commands = _commands(_fixtures(tmp))
        floor = "python -c 'import numpy'"
        expect = {name: 2 if name.startswith("usage") else (1 if "missing" in name else 0) for name in commands}
        contenders = {floor: lambda: _run([sys.executable, "-c", "import numpy"], env, 0)}
        for name, cmd in commands.items():
            contenders[name] = lambda cmd=cmd, code=expect[name]: _run(cmd, env, code)
        for fn in contenders.values():  # once each, untimed: warm page cache and .pyc files
            fn()
        medians, times = interleaved_medians(contenders, args.rounds)
    print(f"command line start-up, medians of {args.rounds} interleaved rounds (each a fresh process); "
          f"floor {floor}: {medians[floor]:.3f} s; target <= {TARGET:g}x the floor")
    width = max(len(n) for n in commands)
    missed = []
    for name in commands:
        ratio = statistics.median(t / f for t, f in zip(times[name], times[floor]))
        ok = ratio <= TARGET
        missed += [] if ok else [name]
        print(f"  {name:<{width}}  {medians[name]:.3f} s  {ratio:4.2f}x the floor  "
              f"({'ok' if ok else 'MISSED'}: target <= {TARGET:g}x)")
    print("all within the target" if not missed else f"missed the target: {', '.join(missed)}")


if __name__ == "__main__":
    main()
