"""Tests of the learning-rate control (transition.training._lr_control)."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transition.errors import ConfigError
from transition.training._lr_control import LearningRateControl

scores_st = st.lists(st.floats(min_value=0.01, max_value=100.0, allow_nan=False), min_size=1, max_size=12)


def _run(ctl, scores, key="dev_score"):
    lrs = []
    for epoch, s in enumerate(scores, 1):
        lrs.append(ctl.learning_rate_for_epoch(epoch))
        ctl.set_epoch_scores(epoch, {key: s})
    lrs.append(ctl.learning_rate_for_epoch(len(scores) + 1))
    return lrs


def test_constant_keeps_the_rate():
    ctl = LearningRateControl(0.3)
    assert _run(ctl, [5.0, 1.0, 9.0]) == [0.3] * 4


def test_newbob_decays_when_improvement_below_threshold():
    ctl = LearningRateControl(1.0, control="newbob", decay=0.5, relative_error_threshold=-0.01)
    # 3 -> 2 improves a lot (keep), 2 -> 1.99 improves 0.5 % (decay), 1.99 -> 1.5 improves (keep)
    assert _run(ctl, [3.0, 2.0, 1.99, 1.5]) == [1.0, 1.0, 1.0, 0.5, 0.5]


def test_newbob_abs_and_min_learning_rate():
    ctl = LearningRateControl(1.0, control="newbob_abs", decay=0.1, error_threshold=-0.5, min_learning_rate=0.05)
    # diffs: -0.2 (> -0.5: decay to 0.1), -0.1 (decay, clipped at 0.05)
    assert _run(ctl, [1.0, 0.8, 0.7]) == [1.0, 1.0, 0.1, 0.05]


def test_pretrain_learning_rate_then_initial_rate():
    ctl = LearningRateControl(1.0, control="newbob", pretrain_learning_rate=0.01, num_pretrain_epochs=2)
    lrs = _run(ctl, [5.0, 5.0, 5.0])
    assert lrs[:3] == [0.01, 0.01, 1.0]
    # no improvement between epochs 2 and 3: decayed from the rate of epoch 3
    assert lrs[3] == 0.5


def test_fixed_learning_rates_list():
    ctl = LearningRateControl(1.0, learning_rates=[0.1, 0.2])
    assert _run(ctl, [1.0, 1.0, 1.0]) == [0.1, 0.2, 0.2, 0.2]


def test_error_measure_selects_the_score_and_names_a_missing_one():
    ctl = LearningRateControl(1.0, control="newbob", error_measure="dev_error")
    for epoch, (err, score) in enumerate([(0.5, 1.0), (0.5, 0.1)], 1):
        ctl.learning_rate_for_epoch(epoch)
        ctl.set_epoch_scores(epoch, {"dev_error": err, "dev_score": score})
    # dev_score improved a lot but dev_error did not: decay
    assert ctl.learning_rate_for_epoch(3) == 0.5
    with pytest.raises(ConfigError, match="dev_eror"):
        LearningRateControl(1.0, control="newbob", error_measure="dev_eror").set_epoch_scores(1, {"dev_error": 1.0})


def test_default_error_key_prefers_dev_score_then_dev_then_train():
    ctl = LearningRateControl(1.0, control="newbob")
    assert ctl.error_key({"train_score": 1.0, "dev_score": 2.0, "dev_error": 3.0}) == "dev_score"
    assert ctl.error_key({"train_score": 1.0, "dev_error": 3.0}) == "dev_error"
    assert ctl.error_key({"train_score": 1.0, "a": 0.0}) == "train_score"


@pytest.mark.parametrize("bad", ["newbbob", "newbob_multi_epoch", "cosine"])
def test_unknown_control_is_config_error(bad):
    with pytest.raises(ConfigError, match=bad):
        LearningRateControl(1.0, control=bad)


def test_bad_option_types_name_the_key():
    with pytest.raises(ConfigError, match="newbob_learning_rate_decay"):
        LearningRateControl.from_config({"learning_rate": 1.0, "newbob_learning_rate_decay": "half"})
    with pytest.raises(ConfigError, match="learning_rate"):
        LearningRateControl.from_config({"learning_rate": "1e-3"})


def test_history_round_trips_through_json_exactly_including_nan():
    ctl = LearningRateControl(0.1, control="newbob")
    _run(ctl, [1.0 / 3.0, 0.1 + 0.2, 7e-310])
    ctl.set_epoch_scores(4, {"dev_score": float("nan"), "train_score": float("inf")})
    text = json.dumps(ctl.state_dict(), allow_nan=False)
    other = LearningRateControl(0.1, control="newbob")
    other.load_state_dict(json.loads(text))
    assert other.history.keys() == ctl.history.keys()
    for e in ctl.history:
        a, b = ctl.history[e], other.history[e]
        assert a.learning_rate == b.learning_rate
        assert a.scores.keys() == b.scores.keys()
        for k in a.scores:
            assert (a.scores[k] == b.scores[k]) or (math.isnan(a.scores[k]) and math.isnan(b.scores[k]))


def test_resumed_control_continues_like_uninterrupted():
    scores = [3.0, 2.9, 2.0, 1.99, 1.98, 1.0]
    full = LearningRateControl(1.0, control="newbob")
    expected = _run(full, scores)
    part = LearningRateControl(1.0, control="newbob")
    _run(part, scores[:3])
    resumed = LearningRateControl(1.0, control="newbob")
    resumed.load_state_dict(json.loads(json.dumps(part.state_dict())))
    got = [resumed.learning_rate_for_epoch(e) for e in range(1, 5)]
    for epoch, s in enumerate(scores[3:], 4):
        got_lr = resumed.learning_rate_for_epoch(epoch)
        resumed.set_epoch_scores(epoch, {"dev_score": s})
        if epoch > 4:
            got.append(got_lr)
    got.append(resumed.learning_rate_for_epoch(len(scores) + 1))
    assert got == expected


def test_malformed_state_is_config_error():
    with pytest.raises(ConfigError, match="history"):
        LearningRateControl(1.0).load_state_dict({"history": [["x", 1.0, {}]]})


@pytest.mark.oracle
@settings(max_examples=40, deadline=None)
@given(scores=scores_st, threshold=st.floats(-0.2, 0.05), decay=st.floats(0.1, 0.9), relative_lr=st.booleans(),
       div_by_old=st.booleans(), min_lr=st.sampled_from([0.0, 0.05]), kind=st.sampled_from(["newbob", "newbob_abs"]))
def test_newbob_matches_returnn(scores, threshold, decay, relative_lr, div_by_old, min_lr, kind):
    rlc = pytest.importorskip("returnn.learning_rate_control")
    ours = LearningRateControl(1.0, control=kind, relative_error_threshold=threshold, error_threshold=threshold,
                               decay=decay, relative_error_relative_lr=relative_lr,
                               relative_error_div_by_old=div_by_old, min_learning_rate=min_lr)
    common = dict(default_learning_rate=1.0, learning_rate_decay=decay, min_learning_rate=min_lr,
                  relative_error_also_relative_to_learning_rate=relative_lr, relative_error_div_by_old=div_by_old)
    if kind == "newbob":
        theirs = rlc.NewbobRelative(relative_error_threshold=threshold, **common)
    else:
        theirs = rlc.NewbobAbs(error_threshold=threshold, **common)
    expected = []
    for epoch, s in enumerate(scores, 1):
        expected.append(theirs.get_learning_rate_for_epoch(epoch))
        theirs.set_epoch_error(epoch, {"dev_score": s})
    expected.append(theirs.get_learning_rate_for_epoch(len(scores) + 1))
    assert _run(ours, scores) == expected


@settings(max_examples=40, deadline=None)
@given(scores=scores_st)
def test_rate_never_increases_nor_goes_below_min(scores):
    ctl = LearningRateControl(1.0, control="newbob", decay=0.3, min_learning_rate=0.02)
    lrs = _run(ctl, scores)
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    assert min(lrs) >= 0.02


def test_peek_does_not_record():
    ctl = LearningRateControl(1.0, control="newbob")
    for epoch, score in ((1, 3.0), (2, 2.99)):
        ctl.learning_rate_for_epoch(epoch)
        ctl.set_epoch_scores(epoch, {"dev_score": score})
    assert ctl.peek_learning_rate(3) == 0.5 and 3 not in ctl.history
    assert ctl.learning_rate_for_epoch(3) == 0.5 and 3 in ctl.history
