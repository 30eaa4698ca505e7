"""KeepPolicy: properties over random checkpoint sequences (hypothesis), and its errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transition.errors import ConfigError
from transition.store._info import CheckpointInfo
from transition.store._keep import KeepPolicy


@st.composite
def checkpoint_sequences(draw):
    """Good / damaged / uncommitted checkpoints: epoch ends with optional scores, and mid-epoch ones."""
    n_epochs = draw(st.integers(0, 12))
    infos = []
    for epoch in range(1, n_epochs + 1):
        for step in sorted(draw(st.sets(st.integers(1, 50), max_size=2))):
            infos.append(CheckpointInfo(prefix=f"m.{epoch:03d}.step{step:08d}", epoch=epoch, step=step,
                                        epoch_finished=False, committed=True))
        if draw(st.booleans()) or epoch == n_epochs:
            score = draw(st.one_of(st.none(), st.floats(-5, 5), st.just(math.nan)))
            infos.append(CheckpointInfo(prefix=f"m.{epoch:03d}", epoch=epoch, step=60, epoch_finished=True,
                                        committed=True, scores={} if score is None else {"dev": score}))
    out = []
    for info in infos:
        kind = draw(st.sampled_from(["good"] * 4 + ["damaged", "uncommitted"]))
        if kind == "damaged":
            info = CheckpointInfo(**{**_fields(info), "damaged": "checksum"})
        elif kind == "uncommitted":
            info = CheckpointInfo(**{**_fields(info), "committed": False, "damaged": "not committed"})
        out.append(info)
    return draw(st.permutations(out))


def _fields(info: CheckpointInfo) -> dict:
    return {k: getattr(info, k) for k in ("prefix", "epoch", "step", "epoch_finished", "scores", "committed")}


policies = st.builds(
    KeepPolicy,
    keep_last=st.one_of(st.none(), st.integers(0, 4)),
    keep_best=st.integers(0, 3),
    score=st.just("dev"),
    mode=st.sampled_from(["min", "max"]),
    keep_every=st.one_of(st.none(), st.integers(1, 4)),
)


@settings(max_examples=300, deadline=None)
@given(infos=checkpoint_sequences(), policy=policies)
def test_policy_properties(infos, policy):
    good = [i for i in infos if i.good]
    ends = sorted((i for i in good if i.epoch_finished), key=lambda i: i.epoch)
    delete = policy.select_to_delete(infos)
    deleted = {i.prefix for i in delete}
    kept = {i.prefix for i in good} - deleted
    # only good ones are ever deleted, and the newest good one never
    assert deleted <= {i.prefix for i in good}
    if good:
        newest = max(good, key=lambda i: (i.epoch, i.epoch_finished, i.step))
        assert newest.prefix in kept
    # the last N epoch ends
    if policy.keep_last is None:
        assert {i.prefix for i in ends} <= kept
    elif policy.keep_last:
        assert {i.prefix for i in ends[-policy.keep_last:]} <= kept
    # every M-th epoch
    if policy.keep_every:
        assert {i.prefix for i in ends if i.epoch % policy.keep_every == 0} <= kept
    # the best K: nothing deleted is strictly better than the worst kept score among the K best
    scored = [i for i in ends if "dev" in i.scores and not math.isnan(i.scores["dev"])]
    if policy.keep_best and scored:
        sign = 1 if policy.mode == "min" else -1
        values = sorted(sign * i.scores["dev"] for i in scored)
        threshold = values[min(policy.keep_best, len(values)) - 1]
        assert {i.prefix for i in scored if sign * i.scores["dev"] < threshold} <= kept
        assert sum(1 for i in scored if i.prefix in kept and sign * i.scores["dev"] <= threshold) >= min(
            policy.keep_best, len(values))
    # mid-epoch checkpoints survive only as the newest good one
    for i in good:
        if not i.epoch_finished and i.prefix in kept:
            assert i is newest
    # the policy's state is the checkpoints themselves: after the deletion (a restart), it deletes nothing more
    remaining = [i for i in infos if i.prefix not in deleted]
    assert policy.select_to_delete(remaining) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"keep_best": 2}, "keep_best=2.*score="),
        ({"mode": "median"}, "mode.*'median'"),
        ({"keep_last": -1}, "keep_last"),
        ({"keep_every": 0}, "keep_every"),
    ],
)
def test_bad_policy_is_a_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        KeepPolicy(**kwargs)


def test_score_name_that_matches_nothing_is_an_error():
    infos = [CheckpointInfo(prefix="m.001", epoch=1, step=0, epoch_finished=True, committed=True,
                            scores={"dev_score": 1.0}),
             CheckpointInfo(prefix="m.002", epoch=2, step=0, epoch_finished=True, committed=True,
                            scores={"dev_score": 2.0})]
    with pytest.raises(ConfigError, match="'dev_scre'.*did you mean 'dev_score'"):
        KeepPolicy(keep_best=1, score="dev_scre").select_to_delete(infos)


def test_best_by_max_keeps_the_highest_and_ties_prefer_the_newer():
    infos = [CheckpointInfo(prefix=f"m.{e:03d}", epoch=e, step=0, epoch_finished=True, committed=True,
                            scores={"acc": acc}) for e, acc in [(1, 0.9), (2, 0.5), (3, 0.9), (4, 0.1)]]
    delete = KeepPolicy(keep_last=1, keep_best=1, score="acc", mode="max").select_to_delete(infos)
    assert [i.epoch for i in delete] == [1, 2]
