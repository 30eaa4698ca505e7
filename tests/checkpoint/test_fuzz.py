"""The fuzz campaign over every checkpoint format (`fuzz_runner.py`): about a minute, in its own process, asserting
only CheckpointErrors, memory bounded by what the files hold, no file outside the checkpoint opened."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tensorflow as tf

from tests.checkpoint import fuzz_runner
from tests.checkpoint.hostile import MAKERS, make_sentinels
from transition.store._rng import capture_rng_state
from transition.store._state import TrainingState
from transition.store._store import CheckpointStore

SECONDS = float(os.environ.get("TRANSITION_FUZZ_SECONDS", "45"))
RNG = np.random.default_rng(11)


def _seed(root, fmt: str, read: str, mutate: list[str]) -> str:
    directory = os.path.join(root, fmt)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "target.json"), "w") as f:
        json.dump({"read": read, "mutate": mutate}, f)
    return directory


def seed_corpus(root: str) -> None:
    """One small valid checkpoint per format (and the hostile files of `hostile.MAKERS`, the sentinels)."""
    d = _seed(root, "tf", "b", ["b.index", "b.data-00000-of-00001"])
    big = RNG.normal(size=(6, 3)).astype(np.float32)
    names = ["a/W", "a/b", "flag", "half", "part", "part"]
    tensors = [RNG.normal(size=(2, 3)).astype(np.float32), np.int64(7), np.array([True, False]),
               np.ones(3, np.float16), big[:3], big[3:]]
    tf.raw_ops.SaveV2(prefix=os.path.join(d, "b"), tensor_names=names,
                      shape_and_slices=["", "", "", "", "6 3 0,3:-", "6 3 3,3:-"], tensors=tensors)
    values = {"a/W": RNG.normal(size=(4, 3)).astype(np.float32), "a/b:0": np.arange(3), "c": np.float64(2.0)}
    np.savez(os.path.join(_seed(root, "npz", "m.npz", ["m.npz"]), "m.npz"), **values)
    np.savez_compressed(os.path.join(_seed(root, "npz_deflated", "m.npz", ["m.npz"]), "m.npz"), **values)
    record = np.zeros((), [("a/W", "<f4", (4, 3)), ("b", "<i8", (3,))])
    np.save(os.path.join(_seed(root, "npy", "m.npy", ["m.npy"]), "m.npy"), record)
    with h5py.File(os.path.join(_seed(root, "h5", "m.weights.h5", ["m.weights.h5"]), "m.weights.h5"), "w") as f:
        f.create_dataset("layers/dense/vars/0", data=RNG.normal(size=(4, 3)).astype(np.float32))
        f.create_dataset("layers/dense/vars/1", data=np.zeros(3, np.float32))
        f.create_dataset("layers/conv/vars/0", data=RNG.normal(size=(20, 6)), chunks=(8, 3), compression="gzip",
                         shuffle=True)
    with h5py.File(os.path.join(_seed(root, "h5_legacy", "m.h5", ["m.h5"]), "m.h5"), "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        group = f.create_group("dense")
        group.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        group.create_dataset("dense/kernel:0", data=np.ones((4, 3), np.float32))
        group.create_dataset("dense/bias:0", data=np.zeros(3, np.float32))
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save(os.path.join(_seed(root, "keras", "m.keras", ["m.keras"]), "m.keras"))
    d = _seed(root, "store", "net", ["net.002.index", "net.002.data-00000-of-00001", "net.002.state.json",
                                     "net.002.commit.json", "net.001.state.json"])
    with CheckpointStore(os.path.join(d, "net")) as store:
        for epoch in (1, 2):
            rng = capture_rng_state(numpy_generators={"data": np.random.default_rng(epoch)}, tf=False,
                                    keras_global=False)
            store.save(epoch, 0, {"l/W": np.full((3, 2), epoch, np.float32)}, {"l/W/m": np.ones((3, 2), np.float32)},
                       state=TrainingState(epoch=epoch, rng=rng, learning_rate_history={1: {"learning_rate": 0.1}},
                                           callbacks={"cb": {"best": 1.0}}))
    sentinel = os.path.join(root, "sentinel")
    make_sentinels(sentinel)
    for name, make in MAKERS.items():
        directory = os.path.join(root, "hostile", name.replace(" ", "_").replace(".", ""))
        os.makedirs(directory)
        make(directory, sentinel)


@pytest.mark.slow
def test_fuzz_every_format(tmp_path):
    seed_corpus(str(tmp_path))
    env = dict(os.environ, TRANSITION_MAX_INFLATE_BYTES=str(4 << 20), MALLOC_ARENA_MAX="2")
    proc = subprocess.run([sys.executable, "-m", "tests.checkpoint.fuzz_runner", str(tmp_path), str(SECONDS)],
                          capture_output=True, text=True, timeout=SECONDS * 4 + 120, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 0, f"the fuzz runner died (status {proc.returncode}): {proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    failures = result["failures"]
    assert not failures, f"{len(failures)} failing cases, e.g. " + json.dumps(failures[:5], indent=1)
    assert all(n >= fuzz_runner.MIN_CASES for n in result["cases"].values()), result["cases"]  # each format was really fuzzed
    assert result["rss_growth"] < 256 << 20, result
