"""find_epoch_model / list_epoch_models: RETURNN's `model[.pretrain].%03d` naming (pure file-system logic)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transition.checkpoint._epochs import find_epoch_model, list_epoch_models
from transition.checkpoint._naming import epoch_from_filename, epoch_prefix
from transition.errors import CheckpointError, ConfigError


def _touch(path, *suffixes):
    for s in suffixes:
        with open(f"{path}{s}", "w"):
            pass


@pytest.fixture()
def model(tmp_path):
    m = str(tmp_path / "net")
    _touch(f"{m}.001", ".index", ".data-00000-of-00001")
    _touch(f"{m}.pretrain.002", ".index", ".meta")
    _touch(f"{m}.003", ".meta")  # RETURNN's .meta counts as a bundle
    _touch(f"{m}.010", ".index")
    return m


def test_lists_epochs_and_picks_highest(model):
    assert list_epoch_models(model) == {
        1: f"{model}.001",
        2: f"{model}.pretrain.002",
        3: f"{model}.003",
        10: f"{model}.010",
    }
    assert find_epoch_model(model) == (10, f"{model}.010")
    assert find_epoch_model(model, load_epoch=2) == (2, f"{model}.pretrain.002")


def test_missing_load_epoch_lists_epochs_present(model):
    with pytest.raises(CheckpointError, match=r"epoch 5 .*\[1, 2, 3, 10\]") as e:
        find_epoch_model(model, load_epoch=5)
    assert model in str(e.value)


def test_skips_mid_epoch_uncommitted_and_other_models(model):
    _touch(f"{model}.011.step00000100", ".index")
    _touch(f"{model}.012", ".index", ".pending")  # a save under way / interrupted
    _touch(f"{model}x.013", ".index")  # another model whose name starts alike
    _touch(f"{model}.0014", ".index")  # not %03d
    _touch(f"{model}.014", ".data-00000-of-00001")  # no index: not a bundle
    assert sorted(list_epoch_models(model)) == [1, 2, 3, 10]
    assert find_epoch_model(model) == (10, f"{model}.010")
    with pytest.raises(CheckpointError, match=r"skipped uncommitted: .*net\.012"):
        find_epoch_model(model, load_epoch=12)
    _touch(f"{model}.012", ".commit.json")  # committed now
    assert find_epoch_model(model) == (12, f"{model}.012")


def test_plain_file_wins_over_pretrain_for_the_same_epoch(model):
    _touch(f"{model}.002", ".index")
    assert find_epoch_model(model, load_epoch=2) == (2, f"{model}.002")


@pytest.mark.parametrize("suffix", ["", ".index", ".meta", ".data-00000-of-00001"])
def test_epoch_parsed_from_filename(model, suffix):
    assert find_epoch_model(f"{model}.010{suffix}") == (10, f"{model}.010")
    assert find_epoch_model(f"{model}.pretrain.002{suffix}") == (2, f"{model}.pretrain.002")


def test_filename_errors(model):
    with pytest.raises(ConfigError, match=r"load_epoch=3 .*epoch 10"):
        find_epoch_model(f"{model}.010", load_epoch=3)
    with pytest.raises(CheckpointError, match=r"net\.077"):
        find_epoch_model(f"{model}.077.index")
    _touch(f"{model}.020", ".index", ".pending")
    with pytest.raises(CheckpointError, match="not committed"):
        find_epoch_model(f"{model}.020")


def test_no_epochs_is_an_error_naming_the_model(tmp_path):
    with pytest.raises(CheckpointError, match="no epoch checkpoints of model") as e:
        find_epoch_model(tmp_path / "none" / "net")
    assert "none" in str(e.value)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3", True])
def test_bad_load_epoch(model, bad):
    with pytest.raises(ConfigError, match="load_epoch"):
        find_epoch_model(model, load_epoch=bad)


@settings(max_examples=60, deadline=None)
@given(
    base=st.from_regex(r"[a-z][a-z0-9_.]{0,8}", fullmatch=True),
    epoch=st.integers(1, 99999),
    pretrain=st.booleans(),
    step=st.integers(0, 10**8 - 1),
)
def test_epoch_prefix_roundtrip(base, epoch, pretrain, step):
    path = epoch_prefix(f"/d/{base}", epoch, pretrain=pretrain)
    assert epoch_from_filename(path) == epoch
    assert epoch_from_filename(path + ".index") == epoch
    assert epoch_from_filename(epoch_prefix(f"/d/{base}", epoch, step_in_epoch=step)) is None


@pytest.mark.oracle
def test_matches_returnn_epoch_parsing(model):
    basic = pytest.importorskip("returnn.util.basic")
    for epoch, path in list_epoch_models(model).items():
        assert basic.model_epoch_from_filename(path) == epoch


def test_filename_gives_its_own_epoch_not_the_latest(tmp_path):
    model = str(tmp_path / "network")
    for epoch in (79, 80, 81):
        _touch(f"{model}.{epoch:03d}", ".index", ".meta", ".data-00000-of-00001")
    assert find_epoch_model(model) == (81, f"{model}.081")
    assert find_epoch_model(f"{model}.080") == (80, f"{model}.080")
    assert find_epoch_model(f"{model}.080", load_epoch=80) == (80, f"{model}.080")
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*network\.082"):
        find_epoch_model(f"{model}.082")
