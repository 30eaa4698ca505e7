"""One worker of the multi-worker tests (the cluster from TF_CONFIG):

- `python dist_worker.py OUT_DIR cli CONFIG --model=M [--key=value ...]` runs the real command line (`transition
  train CONFIG ...`) with a step hook;
- `python dist_worker.py OUT_DIR fit M DISTRIBUTION` runs `mgr.fit` on a Keras model that grows at epoch 2.

Every step prints "step EPOCH STEP" and sleeps STEP_DELAY seconds; at the end the final params go to
OUT_DIR/worker{index}.npz. A worker other than the chief records every write it makes into the model directory (a
Python audit hook) in OUT_DIR/writes{index}.json; the tests assert that there is none."""

from __future__ import annotations

import json
import os
import sys
import time


def _audit_writes(model_dir: str, writes: list[str]) -> None:
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event: str, args: tuple) -> None:
        path = None
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            mode, flags = args[1], args[2]
            if (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & write_flags):
                path = args[0]
        elif event in ("os.rename", "os.replace", "os.remove", "os.mkdir", "os.rmdir", "os.truncate"):
            path = args[0]
        if isinstance(path, (str, bytes)):
            path = os.path.abspath(os.fsdecode(path))
            if path.startswith(model_dir + os.sep):
                writes.append(f"{event} {path}")

    sys.addaudithook(hook)


def _dump(mgr, out_dir: str, index: int) -> None:
    import numpy as np

    params = {name: np.asarray(var.numpy()) for name, var in mgr.network.param_variables().items()}
    np.savez(os.path.join(out_dir, f"worker{index}.npz"), **params)


def _step(epoch: int, step: int, delay: float) -> None:
    print(f"step {epoch} {step}", flush=True)
    time.sleep(delay)


def _cli(argv: list[str], out_dir: str, index: int, delay: float) -> int:
    import transition.training._loop as loop

    train_from_config = loop.train_from_config

    def train_and_dump(*args, **kwargs):
        mgr = train_from_config(*args, step_hook=lambda epoch, step: _step(epoch, step, delay), **kwargs)
        _dump(mgr, out_dir, index)
        return mgr

    loop.train_from_config = train_and_dump  # what `transition train` calls
    from transition.cli._main import main as cli

    return cli(["train", *argv])


def _fit(model: str, distribution: str, out_dir: str, index: int, delay: float) -> int:
    import keras
    import numpy as np
    import tensorflow as tf

    from transition.training._manager import TransitionManager

    tf.config.experimental.enable_op_determinism()
    x = np.random.RandomState(2).randn(40, 4).astype("float32")  # 5 global batches of 8, split 4 + 4
    y = (np.abs(x[:, 0] * 2).astype("int32") % 3)

    def get_network(epoch: int) -> keras.Model:  # "hidden" grows from 4 to 6 units at epoch 2
        inp = keras.Input((4,), name="x")
        h = keras.layers.Dense(4 if epoch < 2 else 6, activation="tanh", name="hidden")(inp)
        return keras.Model(inp, keras.layers.Dense(3, name="out")(h))

    class Steps(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.step = epoch + 1, 0

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            _step(self.epoch, self.step, delay)

    def data(seed: int) -> tf.data.Dataset:  # global batches of 8, the same order with and without a strategy
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        return ds.shuffle(40, seed=seed, reshuffle_each_iteration=False).batch(8)

    mgr = TransitionManager(model, get_network=get_network, num_epochs=3, save_every_n_steps=3, seed=5,
                            copy_param_mode="subset", optimizer=lambda: keras.optimizers.Adam(0.01),
                            distribution=None if distribution == "None" else distribution, callbacks=[Steps()])
    mgr.fit(data, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _dump(mgr, out_dir, index)
    return 0


def main() -> int:
    out_dir, mode, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    index = int(json.loads(os.environ.get("TF_CONFIG") or '{"task": {"index": 0}}')["task"]["index"])
    delay = float(os.environ.get("STEP_DELAY", "0"))
    model = next(a.split("=", 1)[1] for a in argv if a.startswith("--model=")) if mode == "cli" else argv[0]
    writes: list[str] = []
    if index != 0:
        _audit_writes(os.path.dirname(os.path.abspath(model)), writes)
    try:
        return _cli(argv, out_dir, index, delay) if mode == "cli" else _fit(model, argv[1], out_dir, index, delay)
    finally:
        with open(os.path.join(out_dir, f"writes{index}.json"), "w") as f:
            json.dump(writes, f)


if __name__ == "__main__":
    sys.exit(main())
