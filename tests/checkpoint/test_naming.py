"""checkpoint._naming: the one home of checkpoint file names and of the commit rule."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from transition.checkpoint._naming import (
    CommitState,
    commit_state,
    commit_state_of,
    epoch_prefix,
    is_checkpoint_file_suffix,
    parse_name,
)

_SUFFIXES = ["", ".index", ".meta", ".commit.json", ".pending", ".state.json", ".data-00000-of-00002"]


@given(st.sampled_from(["network", "net-model", "a.b"]), st.integers(1, 20000), st.booleans(),
       st.one_of(st.none(), st.integers(0, 10**8 - 1)), st.sampled_from(_SUFFIXES))
def test_every_name_the_project_writes_parses_back(base, epoch, pretrain, step, suffix):
    name = epoch_prefix(base, epoch, pretrain=pretrain, step_in_epoch=step) + suffix
    parsed = parse_name(base, name)
    assert (parsed.epoch, parsed.pretrain, parsed.step, parsed.suffix) == (epoch, pretrain, step, suffix)
    assert parsed.prefix_name(base) + suffix == name


def test_names_that_are_not_checkpoints_do_not_parse():
    for name in ("network.07.index", "network.0007.index", "network.007.step0001.index", "other.007.index",
                 "network.007.tmp-0123456789abcdef.index", "network.lock", "network.007.index.bak"):
        assert parse_name("network", name) is None, name
    assert is_checkpoint_file_suffix(".data-00001-of-00002") and not is_checkpoint_file_suffix(".commit.json")


def test_the_commit_file_decides(tmp_path):
    assert commit_state_of({".commit.json", ".pending"}) is CommitState.COMMITTED
    assert commit_state_of({".pending"}) is CommitState.PENDING
    assert commit_state_of(set()) is CommitState.FOREIGN
    prefix = str(tmp_path / "m.001")
    assert commit_state(prefix) is CommitState.FOREIGN
    open(prefix + ".pending", "w").close()
    assert commit_state(prefix) is CommitState.PENDING
    open(prefix + ".commit.json", "w").close()
    assert commit_state(prefix) is CommitState.COMMITTED
