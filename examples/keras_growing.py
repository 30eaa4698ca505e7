"""A Keras functional model that widens a layer during training, trained with `mgr.fit`, with exact auto-resume.

`get_network(epoch)` builds the model of each epoch: a hidden Dense layer of 32 units up to epoch 3, of 64 from
epoch 4 on, concatenated with a linear projection of the input and read by the output layer. At epoch 4 the manager
sees another architecture and makes a transition that keeps what the model computes ("preserve": the old values
are copied into the wider kernels, the output kernel's rows of the hidden part and of the projection each at their
own offset, the 32 new hidden units get zero outgoing weights), checked on the dev data (`verify_inputs`); Adam's
moments follow their params, and the report is logged. Kill it at any point (Ctrl-C, SIGKILL) and run it again: it resumes from
the newest checkpoint under runs/keras_growing/ (epoch ends and every 10 steps) and ends as an uninterrupted run.

    python -m pip install -e '.[examples]'   # scikit-learn, for its bundled digits data (no download)
    python examples/keras_growing.py [--model runs/keras_growing/network] [--epochs 8]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import transition  # noqa: E402  (first: it imports TensorFlow without the start-up log noise)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

GROW_AT = 4


def get_network(epoch: int) -> keras.Model:
    """The model of `epoch`; layers have fixed names, so that params carry over by name (and across processes)."""
    units = 32 if epoch < GROW_AT else 64
    x = keras.Input((64,), name="pixels")
    hidden = keras.layers.Dense(units, activation="relu", name="hidden")(x)
    hidden = keras.layers.Dropout(0.2, name="dropout")(hidden)
    proj = keras.layers.Dense(16, name="proj")(x)
    joined = keras.layers.Concatenate(name="joined")([hidden, proj])
    return keras.Model(x, keras.layers.Dense(10, name="digit")(joined), name="digits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/keras_growing/network", help="checkpoint path prefix")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.RandomState(0).permutation(len(x))
    x, y = x[order], y[order]
    train_x, train_y, dev = x[:1500], y[:1500], tf.data.Dataset.from_tensor_slices((x[1500:], y[1500:])).batch(64)

    def train(epoch: int, seed: int) -> tf.data.Dataset:
        """The epoch's data, shuffled with the manager's per-epoch seed: the same order after a resume."""
        return tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(1500, seed=seed).batch(32)

    tf.config.experimental.enable_op_determinism()  # bit-identical after a resume
    mgr = transition.TransitionManager(
        args.model, get_network=get_network, num_epochs=args.epochs, copy_param_mode="preserve",
        verify_inputs=x[1500:],
        optimizer=lambda: keras.optimizers.Adam(1e-3), save_every_n_steps=10,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=3)])
    with mgr:
        history = mgr.fit(train, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"], validation_data=dev)
    for epoch, scores in zip(range(mgr.epoch - len(history) + 1, mgr.epoch + 1), history):
        print(f"epoch {epoch}: train_score {scores['train_score']:.4f}  dev_score {scores['dev_score']:.4f}  "
              f"dev_accuracy {scores['dev_accuracy']:.4f}")
    kernel = mgr.network.param_variables()["hidden/kernel"]
    print(f"hidden/kernel is {tuple(kernel.shape)} after epoch {mgr.epoch}")


if __name__ == "__main__":
    main()
