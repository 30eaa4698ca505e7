"""Tests of the growth of one param under "preserve" / "net2wider" and of the copy-mode rules for them (pure
numpy)."""

import numpy as np
import pytest

from transition.errors import ConfigError, ShapeMismatchError
from transition.params._copy_modes import (
    COPY_PARAM_MODES,
    Action,
    check_copy_param_mode,
    decide_copy,
    import_layer_values,
    preserves,
    slot_copy_mode,
    slot_growths,
)
from transition.params._growth import AxisMap, IdentityInit, ParamGrowth, grow_value, identity_value, slot_growth
from transition.params._report import ImportReport, OutputCheck, ParamRecord, ParamStatus


def test_new_modes_are_copy_modes():
    assert {"preserve", "net2wider"} <= set(COPY_PARAM_MODES)
    assert check_copy_param_mode("preserve") == "preserve" and preserves("net2wider") and not preserves("subset")
    with pytest.raises(ConfigError, match="did you mean 'preserve'.*'net2wider'"):
        check_copy_param_mode("preserv")


def test_decide_copy_without_a_growth_copies_as_subset():
    assert decide_copy((2, 3), (2, 5), "preserve").action is Action.PARTIAL
    assert decide_copy((2, 3), (2, 3), "net2wider").action is Action.COPY
    mismatch = decide_copy((2, 3), (6,), "preserve")
    assert mismatch.action is Action.MISMATCH and "'preserve' needs the same number of dims" in mismatch.why


def test_in_axis_new_rows_are_zero_out_axis_new_units_fresh():
    old = np.arange(6.0).reshape(2, 3) + 1
    fresh = np.full((4, 5), -7.0)
    growth = ParamGrowth((AxisMap("in", [0, -1, 1, -1]), AxisMap("out", [0, 1, 2, -1, -1])))
    value, how = grow_value(growth, old, fresh)
    assert np.array_equal(value[[0, 2]][:, :3], old)  # old rows moved to their inputs' new places
    assert np.all(value[[1, 3]][:, :3] == 0)  # rows of new inputs: zero (outgoing weights of new units)
    assert np.all(value[:, 3:] == -7.0)  # new units' own weights (incoming): the fresh init, also from new inputs
    assert "zero outgoing of 2 new inputs" in how and "fresh init on 2 new units" in how


def test_feature_axis_gets_the_identity_value_and_replicas_divide():
    scale = ParamGrowth((AxisMap("feature", [0, 1, -1]),), feature_value=1.0)
    value, how = grow_value(scale, np.array([3.0, 4.0]), np.zeros(3))
    assert value.tolist() == [3.0, 4.0, 1.0] and how == "identity on 1 new feature"
    # net2wider: input 0 copied to two places, each with half of the old row; the new unit copies unit 1
    growth = ParamGrowth((AxisMap("in", [0, 1, 0], scale=[0.5, 1.0, 0.5]),
                          AxisMap("out", [0, 1, 1], replica=[False, False, True])))
    old = np.array([[1.0, 2.0], [3.0, 4.0]])
    value, how = grow_value(growth, old, np.full((3, 3), 9.0))
    assert np.allclose(value, [[0.5, 1.0, 1.0], [3.0, 4.0, 4.0], [0.5, 1.0, 1.0]])
    x = np.array([5.0, 6.0])
    assert np.allclose(x[[0, 1, 0]] @ value[:, :2], x @ old)  # the copies' sum is the old contribution
    assert "divided among 2 replicated inputs" in how and "replicated 1 unit" in how


def test_fixed_axis_and_errors():
    growth = ParamGrowth((AxisMap("fixed", [0, 1]), AxisMap("in", [0, -1]), AxisMap("out", [0])))
    value, _ = grow_value(growth, np.ones((2, 1, 1)), np.zeros((2, 2, 1)))
    assert value[:, 0, 0].tolist() == [1, 1] and value[:, 1, 0].tolist() == [0, 0]
    with pytest.raises(ShapeMismatchError, match="fresh init has shape"):
        grow_value(growth, np.ones((2, 1, 1)), np.zeros((3, 2, 1)))
    with pytest.raises(ShapeMismatchError, match="copies old entry 1"):
        grow_value(ParamGrowth((AxisMap("out", [1]),)), np.ones(1), np.zeros(1))
    with pytest.raises(ValueError, match="unknown axis role"):
        AxisMap("sideways", [0])


def test_identity_init_of_a_new_layer():
    fresh = np.full((3, 4), 5.0)
    value, how = identity_value(IdentityInit(("in", "out"), ((0, 0), (1, 1), (2, 2)), (3,)), fresh)
    assert np.array_equal(value[:, :3], np.eye(3)) and np.all(value[:, 3] == 5.0)
    assert how == "identity; fresh init on 1 new unit"
    bias, how = identity_value(IdentityInit(("out",), ((0, 0),), ()), np.ones(4))
    assert bias.tolist() == [0, 0, 0, 0] and how == "zero (identity)"
    conv, _ = identity_value(IdentityInit(("fixed", "in", "out"), ((0, 0), (1, 1))), np.ones((3, 2, 2)))
    assert np.array_equal(conv[1], np.eye(2)) and not conv[[0, 2]].any()  # the filter's centre tap


def test_slot_growth_copies_old_slots_and_zeroes_new_parts():
    growth = ParamGrowth((AxisMap("in", [0, 1, 0], scale=[0.5, 1, 0.5]), AxisMap("out", [0, 1, 0],
                                                                               replica=[False, False, True])))
    slot = grow_value(slot_growth(growth), np.array([[1.0, 2.0], [3.0, 4.0]]), np.zeros((3, 3)))[0]
    assert slot.tolist() == [[1, 2, 0], [3, 4, 0], [1, 2, 0]]  # not divided; the replicated unit's slot starts at 0
    assert slot_copy_mode(ParamStatus.PRESERVED, (2, 2), (3, 3)) == "preserve"
    assert set(slot_growths({"W": growth, "b": IdentityInit(("out",), ())})) == {"W"}


def test_import_layer_values_with_growth_reports_preserved_and_how():
    growth = {"W": ParamGrowth((AxisMap("in", [0, -1]), AxisMap("out", [0]))),
              "new": IdentityInit(("in", "out"), ((0, 0),))}
    out, records = import_layer_values(
        "lay", {"W": np.ones((1, 1)), "b": np.ones(1)}, new_shapes={"W": (2, 1), "b": (1,), "new": (1, 1)},
        get_new_value=lambda p: np.full({"W": (2, 1), "b": (1,), "new": (1, 1)}[p], 3.0), copy_param_mode="preserve",
        growth=growth)
    rec = {r.param: r for r in records}
    assert out["W"].ravel().tolist() == [1, 0] and out["new"].tolist() == [[1]]
    assert rec["W"].status is ParamStatus.PRESERVED and rec["W"].reason == "zero outgoing of 1 new input"
    assert rec["new"].status is ParamStatus.PRESERVED and rec["new"].reason == "identity"
    assert rec["b"].status is ParamStatus.COPIED
    # the same growth under "subset" is not applied: subset's rule (the fresh init for the new row)
    out, records = import_layer_values("lay", {"W": np.ones((1, 1))}, new_shapes={"W": (2, 1)},
                                       get_new_value=lambda p: np.full((2, 1), 3.0), copy_param_mode="subset",
                                       growth=growth)
    assert out["W"].ravel().tolist() == [1, 3] and records[0].status is ParamStatus.PARTLY_COPIED
    # preserve without a growth for the param says so
    _, records = import_layer_values("lay", {"W": np.ones((1, 1))}, new_shapes={"W": (2, 1)},
                                     get_new_value=lambda p: np.zeros((2, 1)), copy_param_mode="preserve")
    assert "no growth rule for this param" in records[0].reason


def test_report_prints_preserved_and_the_output_check():
    check = OutputCheck(2e-7, 1e-7, 1e-5, "output", 300, {"output error": (0.07, 0.07)})
    record = ParamRecord("l1", "W", ParamStatus.PRESERVED, (2, 3), (2, 5), "fresh init on 2 new units")
    report = ImportReport((record,)) + ImportReport((), check)
    text = str(report)
    assert "preserved" in text and "fresh init on 2 new units" in text and "(1 params: 1 preserved)" in text
    assert "outputs checked on 300 examples: largest difference 2e-07" in text and "output error 0.07 -> 0.07" in text
    assert report.output_check.ok and not OutputCheck(1.0, 0.5, 1e-5, "o", 1).ok
