"""Pretrain a growing MLP layer by layer on scikit-learn's bundled digits (no download).

Every epoch the net dict comes from `Pretrain(..., construction_algo="from_output")`; when it changes, the network
is rebuilt by an epoch transition that copies the old params (and the Adam moments) into the grown network. The
output layer has a custom importer: it copies the old output weights but halves them, because the layer below it
is new and randomly initialised. Prints the transition report and the dev accuracy per epoch.

    python examples/pretrain_digits.py [--final-epochs 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from transition.netdict._netdict import diff_net_dicts  # noqa: E402
from transition.netdict._pretrain import Pretrain  # noqa: E402
from transition.network._network import Network  # noqa: E402
from transition.network._transition import transition_network  # noqa: E402

EXTERN_DATA = {"data": {"shape": (64,)}, "classes": {"dim": 10, "sparse": True, "shape": ()}}


def halve_old_output(layer, values_dict, session, epoch=None):
    """A RETURNN-style custom_param_importer: copy the old output params, with the weights halved."""
    for name, old in values_dict.items():
        var = layer.params[name]
        if tuple(var.shape) != old.shape:  # the layer below changed its size: keep the fresh init
            print(f"  [importer] epoch {epoch}: {layer.name}/{name} {old.shape} -> {tuple(var.shape)}, kept init")
            continue
        var.assign(old * (0.5 if name == "W" else 1.0))
        print(f"  [importer] epoch {epoch}: {layer.name}/{name} copied" + (", halved" if name == "W" else ""))


NET_DICT = {
    "l1": {"class": "linear", "activation": "relu", "n_out": 64, "from": "data"},
    "l2": {"class": "linear", "activation": "relu", "n_out": 64, "from": "l1"},
    "l3": {"class": "linear", "activation": "relu", "n_out": 64, "from": "l2"},
    "output": {
        "class": "softmax", "loss": "ce", "target": "classes", "from": "l3",
        "custom_param_importer": halve_old_output,
    },
}


def load_data(seed: int = 0):
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    perm = np.random.default_rng(seed).permutation(len(x))
    n_dev = len(x) // 5
    dev, train = perm[:n_dev], perm[n_dev:]
    return (x[train], y[train]), (x[dev], y[dev])


def train_epoch(net: Network, optimizer, x, y, rng, batch_size: int = 64) -> float:
    variables = net.trainable_variables

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = net.compute_loss({"data": xb, "classes": yb}, training=True)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    losses = []
    perm = rng.permutation(len(x))
    for i in range(0, len(x), batch_size):
        idx = perm[i : i + batch_size]
        losses.append(float(step(x[idx], y[idx])))
    return float(np.mean(losses))


def accuracy(net: Network, x, y) -> float:
    probs = net.call({"data": x}, training=False)
    return float(np.mean(np.argmax(np.asarray(probs), axis=-1) == y))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--final-epochs", type=int, default=3, help="epochs of the full net after pretraining")
    args = ap.parse_args()
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    (x_train, y_train), (x_dev, y_dev) = load_data()

    pretrain = Pretrain(NET_DICT, construction_algo="from_output", copy_param_mode="ifpossible")
    num_epochs = pretrain.get_train_num_epochs() + args.final_epochs
    print(f"{pretrain!r}; training {num_epochs} epochs")

    net_dict = pretrain.get_network_json_for_epoch(1)
    net = Network.from_dict(net_dict, EXTERN_DATA)
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(net.trainable_variables)
    for epoch in range(1, num_epochs + 1):
        new_dict = pretrain.get_network_json_for_epoch(epoch)
        if not diff_net_dicts(net.net_dict, new_dict).is_empty:
            result = transition_network(
                net, new_dict, extern_data=EXTERN_DATA, epoch=epoch,
                copy_param_mode=pretrain.get_copy_param_mode_for_epoch(epoch), optimizer=optimizer,
            )
            print(f"epoch {epoch}: the net changed:\n{result.diff}\n{result.report}")
            net, optimizer = result.network, result.optimizer
        t = time.perf_counter()
        loss = train_epoch(net, optimizer, x_train, y_train, rng)
        layers = [name for name in new_dict if not name.startswith("#")]
        print(
            f"epoch {epoch}: layers {layers}, train loss {loss:.3f}, dev accuracy {accuracy(net, x_dev, y_dev):.3f} "
            f"({time.perf_counter() - t:.1f} s)"
        )


if __name__ == "__main__":
    main()
