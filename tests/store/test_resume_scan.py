"""store._resume: the one resume decision, used by the manager and `transition status`."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import save_v2, store_model
from transition.store._store import CheckpointStore


@pytest.fixture
def model(tmp_path):
    return store_model(tmp_path)


def test_foreign_files_only_start_anew_with_the_loading_rules(model):
    import os

    os.makedirs(os.path.dirname(model))
    save_v2(model + ".003", {"l1/W": np.ones(2, np.float32)})  # RETURNN's network.003: no commit file
    with CheckpointStore(model) as store:
        scan = store.scan_for_resume()
    assert not scan.ours and scan.resume_from is None and scan.resume_error is None
    assert scan.error is not None  # what latest_good() refuses: no checkpoint of the store is good


def test_newest_good_checkpoint_of_our_own_is_resumed_and_damage_is_skipped(model):
    with CheckpointStore(model) as store:
        store.save(1, 0, {"l/W": np.ones(3, np.float32)})
        store.save(2, 0, {"l/W": np.ones(3, np.float32)})
    with open(model + ".002.data-00000-of-00001", "r+b") as f:
        f.write(b"\xff")
    with CheckpointStore(model) as store:
        scan = store.scan_for_resume()
    assert scan.ours and scan.resume_from.prefix == model + ".001" and scan.resume_from.verified
    assert [i.prefix for i in scan.skipped] == [model + ".002"] and "checksum" in scan.skipped[0].damaged
    with open(model + ".001.index", "r+b") as f:
        f.write(b"\xff\xff\xff\xff")
    with CheckpointStore(model) as store:
        scan = store.scan_for_resume()
    assert scan.resume_from is None and "none is good" in str(scan.resume_error)
