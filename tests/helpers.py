"""Helpers shared by the tests."""

from __future__ import annotations

import os

import numpy as np


def save_v2(prefix: str | os.PathLike, values: dict[str, np.ndarray]) -> str:
    """A TF bundle at `prefix` written with the raw SaveV2 op (what RETURNN / TF1 savers produce, name-based)."""
    import tensorflow as tf

    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
    return str(prefix)


def store_model(tmp_path: os.PathLike) -> str:
    """The model path prefix of a store in `tmp_path` (its directory does not exist yet)."""
    return os.path.join(os.fspath(tmp_path), "net-model", "network")


def run_returnn(script: str, payload: object, tmp_dir: str | os.PathLike, timeout: float = 900) -> object:
    """Run `script` (Python using returnn) in a subprocess (RETURNN's TF code switches TF to graph mode, and prints
    its log to stdout): `payload` as JSON on stdin, with the key "result" naming the file the script writes its
    JSON answer to; returns that answer. Skips the test where returnn is missing; where it is installed, a failing run
    fails the test (the first run on a machine compiles RETURNN's native LSTM ops, which takes a minute or two)."""
    import importlib.util
    import json
    import subprocess
    import sys

    import pytest

    if importlib.util.find_spec("returnn") is None:
        pytest.skip("returnn is not installed")
    result = os.path.join(os.fspath(tmp_dir), "returnn_result.json")
    job = dict(payload, result=result) if isinstance(payload, dict) else {"payload": payload, "result": result}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(job), capture_output=True, text=True,
                          env=env, timeout=timeout)
    if proc.returncode != 0 or not os.path.exists(result):
        pytest.fail(f"the RETURNN oracle failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    with open(result, encoding="utf-8") as f:
        return json.load(f)
