"""Tests of the import rules and the import report (pure numpy)."""

import numpy as np
import pytest

from transition.errors import ConfigError, ShapeMismatchError, TransitionError
from transition.params._copy_modes import check_copy_param_mode, import_layer_values
from transition.params._custom import call_custom_importer, custom_import_records
from transition.params._report import ImportReport, ParamRecord, ParamStatus
from transition.params._snapshot import ParamsSnapshot


def _fresh(shapes, fill=-1.0):
    calls = []

    def get(param):
        calls.append(param)
        return np.full(shapes[param], fill)

    return get, calls


def _run(values, shapes, **kw):
    get, calls = _fresh(shapes)
    out, records = import_layer_values("lay", values, new_shapes=shapes, get_new_value=get, **kw)
    return out, {r.param: r for r in records}, calls


def test_equal_shapes_copied_without_init():
    w = np.arange(6.0).reshape(2, 3)
    out, rec, calls = _run({"W": w}, {"W": (2, 3)})
    assert out["W"] is w or np.shares_memory(out["W"], w)
    assert rec["W"].status is ParamStatus.COPIED
    assert calls == []


def test_mode_none_mismatch_is_error_naming_everything():
    with pytest.raises(ShapeMismatchError) as e:
        _run({"W": np.zeros((2, 3))}, {"W": (2, 4)})
    msg = str(e.value)
    assert "'lay'" in msg and "'W'" in msg and "(2, 3)" in msg and "(2, 4)" in msg
    assert "ifpossible" in msg and "subset" in msg


def test_mode_none_mismatch_ignored_keeps_init_with_reason():
    out, rec, _ = _run({"W": np.zeros((2, 3))}, {"W": (2, 4)}, ignore_wrong_shape=True)
    assert "W" not in out
    assert rec["W"].status is ParamStatus.KEPT_INIT
    assert "ignore_wrong_shape" in rec["W"].reason
    assert rec["W"].old_shape == (2, 3) and rec["W"].new_shape == (2, 4)


def test_ifpossible_copies_equal_and_keeps_init_elsewhere():
    out, rec, calls = _run(
        {"W": np.ones((2, 3)), "b": np.ones(3)}, {"W": (2, 4), "b": (3,)}, copy_param_mode="ifpossible"
    )
    assert set(out) == {"b"}
    assert rec["W"].status is ParamStatus.KEPT_INIT and "ifpossible" in rec["W"].reason
    assert rec["b"].status is ParamStatus.COPIED
    assert calls == []


def test_ifpossible_ndim_change_keeps_init():
    out, rec, _ = _run({"W": np.ones((2, 3))}, {"W": (6,)}, copy_param_mode="ifpossible")
    assert out == {} and rec["W"].status is ParamStatus.KEPT_INIT


def test_subset_default_split_copies_overlap_keeps_init():
    old = np.arange(6.0).reshape(2, 3)
    out, rec, calls = _run({"W": old}, {"W": (3, 2)}, copy_param_mode="subset")
    expected = np.full((3, 2), -1.0)
    expected[:2, :2] = old[:2, :2]
    np.testing.assert_array_equal(out["W"], expected)
    assert rec["W"].status is ParamStatus.PARTLY_COPIED
    assert calls == ["W"]


def test_subset_uses_old_and_new_split_info():
    # output reads ["a", "b"]; a grows 3 -> 5: b's rows land at rows 5..7
    old = np.arange(12.0).reshape(6, 2)
    out, rec, _ = _run(
        {"W": old},
        {"W": (8, 2)},
        copy_param_mode="subset",
        old_split_info={"W": [[3, 3], [2]]},
        new_split_info={"W": [[5, 3], [2]]},
    )
    np.testing.assert_array_equal(out["W"][:3], old[:3])
    np.testing.assert_array_equal(out["W"][5:], old[3:])
    np.testing.assert_array_equal(out["W"][3:5], -1.0)


def test_subset_part_count_differs_copies_axis_whole():
    old = np.arange(4.0)
    out, rec, _ = _run(
        {"b": old}, {"b": (6,)}, copy_param_mode="subset", old_split_info={"b": [[4]]}, new_split_info={"b": [[3, 3]]}
    )
    np.testing.assert_array_equal(out["b"], [0, 1, 2, 3, -1, -1])
    assert "part counts differ" in rec["b"].reason


def test_subset_bad_split_info_is_error():
    with pytest.raises(ShapeMismatchError, match=r"'lay'.*'W'.*old split info"):
        _run({"W": np.zeros(4)}, {"W": (6,)}, copy_param_mode="subset", old_split_info={"W": [[1, 1]]})


def test_subset_ndim_mismatch_is_error_unless_ignored():
    with pytest.raises(ShapeMismatchError, match=r"'lay'.*'W'.*\(2, 3\).*\(6,\)"):
        _run({"W": np.zeros((2, 3))}, {"W": (6,)}, copy_param_mode="subset")
    out, rec, _ = _run({"W": np.zeros((2, 3))}, {"W": (6,)}, copy_param_mode="subset", ignore_wrong_shape=True)
    assert out == {} and rec["W"].status is ParamStatus.KEPT_INIT and "number of dims" in rec["W"].reason


def test_reset_keeps_init_for_all():
    out, rec, calls = _run({"W": np.ones((2, 3)), "b": np.ones(3)}, {"W": (2, 3), "b": (3,)}, copy_param_mode="reset")
    assert out == {}
    assert all(r.status is ParamStatus.KEPT_INIT for r in rec.values())
    assert calls == []


def test_reset_reinitialises_params_created_from_old_value():
    out, rec, calls = _run({"W": np.ones(3)}, {"W": (3,)}, copy_param_mode="reset", already_initialized={"W"})
    np.testing.assert_array_equal(out["W"], -1.0)
    assert rec["W"].status is ParamStatus.KEPT_INIT


def test_already_initialized_skipped_and_recorded_copied():
    out, rec, calls = _run({"W": np.ones(3)}, {"W": (3,)}, already_initialized={"W"})
    assert out == {} and calls == []
    assert rec["W"].status is ParamStatus.COPIED


def test_already_initialized_with_other_shape_is_error():
    with pytest.raises(TransitionError, match=r"'lay'.*'W'"):
        _run({"W": np.ones(3)}, {"W": (4,)}, copy_param_mode="subset", already_initialized={"W"})


def test_new_param_keeps_init():
    out, rec, _ = _run({}, {"W": (3,)})
    assert out == {} and rec["W"].status is ParamStatus.KEPT_INIT and rec["W"].old_shape is None


def test_unknown_old_param_is_error_naming_it():
    with pytest.raises(ConfigError) as e:
        _run({"Wx": np.ones(3)}, {"W": (3,)})
    assert "'lay'" in str(e.value) and "'Wx'" in str(e.value) and "did you mean 'W'" in str(e.value)


def test_unknown_old_param_ignored():
    out, rec, _ = _run({"Wx": np.ones(3)}, {"W": (3,)}, ignore_unknown=True)
    assert rec["Wx"].status is ParamStatus.IGNORED and rec["Wx"].new_shape is None


@pytest.mark.parametrize("mode", ["subst", "copy", 3])
def test_unknown_mode_is_config_error(mode):
    with pytest.raises(ConfigError, match=repr(mode)):
        _run({"W": np.ones(3)}, {"W": (3,)}, copy_param_mode=mode)
    assert check_copy_param_mode("subset") == "subset"
    with pytest.raises(ConfigError, match="did you mean 'subset'"):
        check_copy_param_mode("subst")


def test_report_table_and_helpers():
    r1 = ParamRecord("l1", "W", ParamStatus.COPIED, (2, 3), (2, 3))
    r2 = ParamRecord("output", "W", ParamStatus.PARTLY_COPIED, (3, 4), (5, 4), "subset")
    r3 = ParamRecord("l2", "b", ParamStatus.KEPT_INIT, None, (7,), "new param")
    rep = ImportReport((r1,)) + ImportReport((r2, r3))
    assert len(rep) == 3
    assert rep.by_status(ParamStatus.KEPT_INIT) == (r3,)
    assert rep.status_of("output/W") is ParamStatus.PARTLY_COPIED
    with pytest.raises(ConfigError, match="'output/X'"):
        rep.status_of("output/X")
    text = str(rep)
    lines = text.splitlines()
    assert "status" in lines[0] and "old shape" in lines[0]
    row = next(line for line in lines if line.startswith("output/W"))
    assert "partly copied" in row and "3x4" in row and "5x4" in row and "subset" in row
    assert "1 copied" in lines[-1] and "1 partly copied" in lines[-1] and "1 kept init" in lines[-1]
    # columns line up: status column starts at the same offset in every row
    starts = {line.index(s) for line, s in zip(lines[2:5], ["copied", "partly copied", "kept init"])}
    assert len(starts) == 1
    assert "no params" in str(ImportReport())


def test_snapshot_helpers():
    snap = ParamsSnapshot({"a": {"W": np.zeros((2, 2), np.float32)}, "b": {"b": np.zeros(3, np.float64)}})
    assert snap.nbytes == 16 + 24
    assert snap.param_names() == ["a/W", "b/b"]
    assert snap.global_train_step == 0 and snap.split_info == {}


def test_custom_records():
    recs = custom_import_records("l", {"W": np.zeros((1, 2))}, {"W": (1, 2), "b": (2,)})
    assert [r.status for r in recs] == [ParamStatus.CUSTOM] * 2
    assert recs[1].old_shape is None


def test_call_custom_importer_returnn_style():
    seen = {}

    def imp(layer, values_dict, session):
        seen.update(layer=layer, values_dict=values_dict, session=session)

    call_custom_importer(imp, layer="L", values_dict={"W": 1}, split_info={}, epoch=3, old_layer_dict={},
                         new_layer_dict={})
    assert seen == {"layer": "L", "values_dict": {"W": 1}, "session": None}


def test_call_custom_importer_passes_accepted_keywords_only():
    seen = {}

    def imp(*, layer, values_dict, epoch, new_layer_dict, session=None):
        seen.update(epoch=epoch, new=new_layer_dict)

    call_custom_importer(imp, layer="L", values_dict={}, epoch=4, old_layer_dict={"a": 1}, new_layer_dict={"b": 2})
    assert seen == {"epoch": 4, "new": {"b": 2}}

    got = {}

    def imp_kw(layer, values_dict, **kwargs):
        got.update(kwargs)

    call_custom_importer(imp_kw, layer="L", values_dict={}, split_info={"W": [[1]]}, epoch=2, old_layer_dict=None,
                         new_layer_dict=None)
    assert set(got) == {"session", "split_info", "epoch", "old_layer_dict", "new_layer_dict"}
    assert got["epoch"] == 2 and got["split_info"] == {"W": [[1]]}


def test_call_custom_importer_without_session_and_non_callable():
    out = call_custom_importer(lambda layer, values_dict: (layer, len(values_dict)), layer="L", values_dict={1: 2})
    assert out == ("L", 1)
    with pytest.raises(ConfigError, match="'subset'"):
        call_custom_importer("subset", layer="L", values_dict={})
