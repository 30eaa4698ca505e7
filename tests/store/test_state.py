"""TrainingState: JSON + arrays round trip, strict validation of damaged / hostile files, reading from a bundle."""

import json
import math
import random

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from transition.errors import CheckpointError, ConfigError
from transition.store._rng import capture_rng_state, restore_rng_state
from transition.store._state import (
    STATE_ARRAY_PREFIX,
    EpochRecord,
    TrainingState,
    dumps_state,
    loads_state,
    read_training_state,
)

_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.text(max_size=8),
                          st.floats(allow_nan=False))
_json_values = st.recursive(_json_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=5), kids, max_size=3)), max_leaves=10)
_json_dicts = st.dictionaries(st.text(max_size=6), _json_values, max_size=4)
_records = st.builds(EpochRecord, st.floats(0, 10), st.dictionaries(st.text(max_size=6), st.floats(allow_nan=False),
                                                                  max_size=3))


@settings(max_examples=60, deadline=None)
@given(epoch=st.integers(0, 10**9), finished=st.booleans(), step=st.integers(0, 2**62),
       pretrain=st.one_of(st.none(), st.integers(0, 1000)), net=st.one_of(st.none(), _json_dicts),
       history=st.dictionaries(st.integers(1, 1000), _records, max_size=4), data=_json_dicts,
       callbacks=st.dictionaries(st.text(min_size=1, max_size=6), _json_dicts, max_size=3), extra=_json_dicts)
def test_round_trip_without_rng(epoch, finished, step, pretrain, net, history, data, callbacks, extra):
    state = TrainingState(epoch=epoch, epoch_finished=finished, global_step=step, step_in_epoch=step // 2,
                          pretrain_step=pretrain, net_dict=net, learning_rate_history=history,
                          data_position=data, callbacks=callbacks, extra=extra)
    data_bytes, arrays = dumps_state(state)
    assert arrays == {}
    assert loads_state(data_bytes, arrays) == state


@settings(max_examples=80, deadline=None)
@given(value=st.recursive(
    st.one_of(st.floats(), st.integers(), st.text(max_size=4), st.none(), st.sampled_from(["inf", "$float"])),
    lambda kids: st.one_of(st.lists(kids, max_size=3),
                           st.dictionaries(st.sampled_from(["$float", "$dict", "$array", "a"]), kids, max_size=2)),
    max_leaves=8))
def test_float_encoding_round_trips_any_json_value(value):
    from transition.internal import _jsonsafe

    data = _jsonsafe.dumps(_jsonsafe.encode_floats(value))
    back = _jsonsafe.decode_floats(_jsonsafe.loads(data, "x", CheckpointError))
    assert _same(back, value)


def _same(a, b):
    if isinstance(b, float) and math.isnan(b):
        return isinstance(a, float) and math.isnan(a)
    if isinstance(b, (list, tuple)):
        return isinstance(a, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    return type(a) is type(b) and a == b


def test_round_trip_with_rng_and_non_finite_floats():
    rng = capture_rng_state(numpy_generators={"g": np.random.default_rng(4)})
    state = TrainingState(epoch=2, epoch_finished=False, global_step=7, step_in_epoch=3,
                          learning_rate_history={1: EpochRecord(0.5, {"dev": math.inf, "train": -math.inf})},
                          rng=rng, callbacks={"EarlyStopping": {"best": math.inf, "x": [math.nan]}},
                          extra={"n": -math.inf})
    data, arrays = dumps_state(state)
    assert b"NaN" not in data and b"Infinity" not in data
    json.loads(data)  # plain JSON
    back = loads_state(data, {k: v.copy() for k, v in arrays.items()})
    assert back.rng == rng
    assert back.learning_rate_history[1].scores == {"dev": math.inf, "train": -math.inf}
    assert back.callbacks["EarlyStopping"]["best"] == math.inf and math.isnan(back.callbacks["EarlyStopping"]["x"][0])
    assert back.extra == {"n": -math.inf}
    without = loads_state(data, None)
    assert without.rng is None and without.global_step == 7


def test_evolve_and_next_epoch():
    state = TrainingState(epoch=3, epoch_finished=True)
    assert state.next_epoch == 4
    mid = state.evolve(epoch=4, epoch_finished=False, step_in_epoch=5)
    assert mid.next_epoch == 4 and mid.step_in_epoch == 5 and state.step_in_epoch == 0
    with pytest.raises(ConfigError, match="epoch"):
        state.evolve(epoch=-1)


@pytest.mark.parametrize("kwargs, name", [
    ({"epoch": -1}, "epoch"),
    ({"global_step": 2**70}, "global_step"),
    ({"step_in_epoch": 1.5}, "step_in_epoch"),
    ({"pretrain_step": True}, "pretrain_step"),
    ({"epoch_finished": 1}, "epoch_finished"),
    ({"data_position": {"it": object()}}, "data_position['it']"),
    ({"extra": {1: 2}}, "extra"),
    ({"callbacks": {"cb": 3}}, "callbacks['cb']"),
    ({"learning_rate_history": {1: {"learning_rate": -1.0}}}, "learning_rate"),
    ({"learning_rate_history": {2: {"lr": 0.1}}}, "learning_rate_history[2]"),
    ({"learning_rate_history": {1: {"learning_rate": 0.1, "scores": {"dev": "x"}}}}, "scores['dev']"),
    ({"rng": {"python": 1}}, "rng"),
])
def test_constructor_rejects_bad_values(kwargs, name):
    with pytest.raises(ConfigError) as info:
        TrainingState(**kwargs)
    assert name in str(info.value)


def _good_obj():
    obj, _ = TrainingState(epoch=1, learning_rate_history={1: EpochRecord(0.1, {"dev": 1.0})}).to_json_and_arrays()
    return json.loads(json.dumps(obj))


@pytest.mark.parametrize("damage, field", [
    (lambda o: o.pop("global_step"), "global_step"),
    (lambda o: o.update(globl_step=1), "globl_step"),
    (lambda o: o.update(version=2), "version"),
    (lambda o: o.update(format="other"), "format"),
    (lambda o: o.update(epoch=-3), "epoch"),
    (lambda o: o.update(epoch="1"), "epoch"),
    (lambda o: o.update(global_step=10**30), "global_step"),
    (lambda o: o.update(step_in_epoch=True), "step_in_epoch"),
    (lambda o: o.update(pretrain_step=10**12), "pretrain_step"),
    (lambda o: o.update(epoch_finished="yes"), "epoch_finished"),
    (lambda o: o.update(net_dict=[1]), "net_dict"),
    (lambda o: o.update(data_position=None), "data_position"),
    (lambda o: o.update(callbacks={"ES": 1}), "ES"),
    (lambda o: o.update(learning_rate_history={"x": {}}), "learning_rate_history['x']"),
    (lambda o: o.update(learning_rate_history={"1": {"learning_rate": -1, "scores": {}}}), "learning_rate"),
    (lambda o: o["learning_rate_history"]["1"].update(scores={"dev": "low"}), "scores"),
    (lambda o: o.update(arrays="rng"), "arrays"),
    (lambda o: o.update(rng=3), "rng"),
])
def test_damaged_json_names_the_field(damage, field):
    obj = _good_obj()
    damage(obj)
    with pytest.raises(CheckpointError) as info:
        TrainingState.from_json_and_arrays(obj, {}, source="m.001.state.json")
    assert field in str(info.value) and "m.001.state.json" in str(info.value)


@pytest.mark.parametrize("data, hint", [
    (b'{"epoch": NaN}', "NaN"),
    (b'{"epoch": 1, "epoch": 2}', "duplicate"),
    (b'{"epoch": ', "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    (b"[1, 2]", "top level"),
])
def test_hostile_bytes_give_checkpoint_errors(data, hint):
    with pytest.raises(CheckpointError) as info:
        loads_state(data, {}, source="x.state.json")
    assert hint in str(info.value) and "x.state.json" in str(info.value)


def _write_checkpoint(prefix, state, drop_array=None):
    data, arrays = dumps_state(state)
    names = {"layer/W": np.ones((2, 2), np.float32)}
    names.update({STATE_ARRAY_PREFIX + k: v for k, v in arrays.items() if k != drop_array})
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(names), shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(v) for v in names.values()])
    with tf.io.gfile.GFile(f"{prefix}.state.json", "wb") as f:
        f.write(data)


def test_read_training_state_from_bundle(tmp_path):
    prefix = str(tmp_path / "model.003")
    random.seed(5)
    state = TrainingState(epoch=3, global_step=30, step_in_epoch=10, rng=capture_rng_state(),
                          data_position={"epoch_seed": 3, "batch_index": 0})
    _write_checkpoint(prefix, state)
    assert tf.train.load_checkpoint(prefix).get_tensor("layer/W").shape == (2, 2)
    a = random.random()
    for path in (prefix, prefix + ".state.json", prefix + ".index"):
        back = read_training_state(path)
        assert back == state
    restore_rng_state(back.rng)
    assert random.random() == a
    assert read_training_state(prefix, with_rng=False).rng is None


def test_read_training_state_on_ram_file_system():
    tf.io.gfile.makedirs("ram://test_state")
    prefix = "ram://test_state/model.002"
    state = TrainingState(epoch=2, rng=capture_rng_state(), extra={"note": "in memory"})
    _write_checkpoint(prefix, state)
    assert read_training_state(prefix) == state


def test_read_training_state_errors(tmp_path):
    prefix = str(tmp_path / "model.004")
    with pytest.raises(CheckpointError, match="model.004.state.json"):
        read_training_state(prefix)
    _write_checkpoint(prefix, TrainingState(epoch=4, rng=capture_rng_state(tf=False, keras_global=False)),
                      drop_array="rng/python/internal")
    with pytest.raises(CheckpointError, match="state/rng/python/internal"):
        read_training_state(prefix)
    assert read_training_state(prefix, with_rng=False).epoch == 4
    (tmp_path / "model.004.pending").write_text("")
    with pytest.raises(CheckpointError, match="never committed"):
        read_training_state(prefix, with_rng=False)
    (tmp_path / "model.004.commit.json").write_text("{}")  # a commit file that is not valid is refused
    with pytest.raises(CheckpointError, match="model.004"):
        read_training_state(prefix, with_rng=False)


def test_read_training_state_of_a_store_checkpoint(tmp_path):
    from transition.store._store import CheckpointStore

    random.seed(11)
    state = TrainingState(epoch=2, global_step=20, rng=capture_rng_state(),
                          learning_rate_history={2: EpochRecord(0.25, {"dev_score": 1.5})})
    with CheckpointStore(str(tmp_path / "net-model" / "network")) as store:
        info = store.save(2, 0, {"layer/W": np.zeros((3,), np.float32)}, state=state)
    assert read_training_state(info.prefix) == state
    with open(info.prefix + ".state.json", "r+b") as f:  # flip a byte: the checksum no longer matches
        f.seek(5)
        byte = f.read(1)
        f.seek(5)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(CheckpointError, match="state.json"):
        read_training_state(info.prefix)
