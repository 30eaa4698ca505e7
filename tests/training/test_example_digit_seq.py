"""A short smoke run of examples/digit_seq.config (tiny data, 3 epochs): the layer-by-layer BLSTM pretraining with
preload_from_files and a custom_param_importer runs, and a run interrupted mid-epoch (after the transition)
resumes to the same bits as an uninterrupted one."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples", "digit_seq.config")


class _Stop(Exception):
    pass


def _run(model, step_hook=None):
    from transition.training._config import load_config
    from transition.training._loop import train_from_config

    cfg = load_config(os.path.abspath(CONFIG))
    small = {"train": {"data": cfg["train"]["data"][:48], "classes": cfg["train"]["classes"][:48]},
             "dev": {"data": cfg["dev"]["data"][:16], "classes": cfg["dev"]["classes"][:16]},
             "model": model, "num_epochs": 3, "batch_size": 16, "save_every_n_steps": 2, "deterministic": True}
    with open(os.devnull, "w") as devnull:
        return train_from_config(cfg, small, out=devnull, step_hook=step_hook)


def _final(model):
    from transition.store._store import CheckpointStore

    return CheckpointStore(model, lock=False, cleanup=False).restore(f"{model}.003")


def test_digit_seq_example_pretrains_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config writes its preload file under ./runs/digit_seq
    straight = _run(str(tmp_path / "a" / "net"))
    assert [r.loaded for r in straight.load_decision.reports] == [("embed/W", "embed/b")]
    embedding = np.load(tmp_path / "runs" / "digit_seq" / "embedding.npz")
    assert embedding["embed/W"].shape == (10, 16)
    history = straight.lr_control.history
    assert sorted(history) == [1, 2, 3] and all(np.isfinite(h.scores["dev_score"]) for h in history.values())

    def hook(epoch, step):
        if (epoch, step) == (3, 3):
            raise _Stop

    with pytest.raises(_Stop):
        _run(str(tmp_path / "b" / "net"), step_hook=hook)
    resumed = _run(str(tmp_path / "b" / "net"))
    assert resumed.resumed_from.endswith("net.003.step00000002")
    a, b = _final(str(tmp_path / "a" / "net")), _final(str(tmp_path / "b" / "net"))
    assert "lstm1_bw/rec/W_re" in a.params  # the second BLSTM layer came in at epoch 3
    assert sorted(a.params) == sorted(b.params) and sorted(a.optimizer) == sorted(b.optimizer)
    for name in a.params:
        assert a.params[name].tobytes() == b.params[name].tobytes(), name
    for name in a.optimizer:
        assert np.asarray(a.optimizer[name]).tobytes() == np.asarray(b.optimizer[name]).tobytes(), name
