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
