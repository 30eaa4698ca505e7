"""Exactness of a resumed `model.fit`: `transition.keras.BackupAndRestore` next to `keras.callbacks.BackupAndRestore`.

A model with a Dropout layer, Adam and an EarlyStopping(min_delta=0.01) is trained for 6 epochs on numpy data (12
batches an epoch, a backup every 5 batches) in a subprocess; another run is killed with SIGKILL after batch K and
run again with the same callback. Printed: how many of the arrays (weights, optimizer variables, EarlyStopping's
wait / best / stopped_epoch / best_epoch) differ from the uninterrupted run, for each callback and kill point.

    python bench/keras_backup.py [--kill-at 23 37 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

# This directory holds a file named like the package's modules: drop it from the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np, tensorflow as tf, keras
    import transition.keras

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(3)
    out, backup, kill_at, which = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rng = np.random.RandomState(0)
    x = rng.randn(96, 6).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    inp = keras.Input((6,), name="x")
    h = keras.layers.Dropout(0.3, name="drop")(keras.layers.Dense(16, activation="relu", name="h")(inp))
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(h))
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    es = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0.01, patience=3)

    class Kill(keras.callbacks.Callback):
        n = 0

        def on_train_batch_end(self, batch, logs=None):
            Kill.n += 1
            if Kill.n == kill_at:
                os.kill(os.getpid(), 9)

    if which == "transition":
        backup_cb = transition.keras.BackupAndRestore(backup, save_freq=5, callbacks=[es])
    else:
        backup_cb = keras.callbacks.BackupAndRestore(backup, save_freq=5)
    model.fit(x, y, batch_size=8, epochs=6, validation_data=(x[:32], y[:32]), verbose=0,
              callbacks=[backup_cb, es, Kill()])
    arrays = {f"weight{i}": v.numpy() for i, v in enumerate(model.weights)}
    arrays.update({f"optimizer{i}": np.asarray(v.numpy()) for i, v in enumerate(model.optimizer.variables)})
    arrays.update({f"es_{k}": np.asarray(getattr(es, k)) for k in ("wait", "best", "stopped_epoch", "best_epoch")})
    np.savez(out, **arrays)
    """
)


def run(script: str, out: str, backup: str, kill_at: int, which: str) -> int:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, script, out, backup, str(kill_at), which], env=env, capture_output=True,
                          text=True, timeout=300)
    if proc.returncode not in (0, -9):
        raise SystemExit(proc.stderr[-3000:])
    return proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill-at", type=int, nargs="+", default=[23, 37, 50], help="batches before the kill")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "fit.py")
        with open(script, "w") as f:
            f.write(SCRIPT)
        print(f"{'callback':<40} {'kill after batch':>16} {'arrays that differ':>20}")
        for which, label in (("transition", "transition.keras.BackupAndRestore"),
                             ("keras", "keras.callbacks.BackupAndRestore")):
            ref = os.path.join(tmp, f"{which}-ref.npz")
            run(script, ref, os.path.join(tmp, f"{which}-ref-backup"), 0, which)
            for kill_at in args.kill_at:
                out, backup = os.path.join(tmp, f"{which}-{kill_at}.npz"), os.path.join(tmp, f"{which}-{kill_at}")
                assert run(script, out, backup, kill_at, which) == -9
                run(script, out, backup, 0, which)
                a, b = np.load(ref), np.load(out)
                differ = sum(a[k].tobytes() != b[k].tobytes() for k in a.files)
                print(f"{label:<40} {kill_at:>16} {f'{differ} of {len(a.files)}':>20}")


if __name__ == "__main__":
    main()
