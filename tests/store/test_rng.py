"""RNG capture / restore: after restore every generator yields the numbers it would have yielded without a restart."""

import json
import random

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from transition.errors import CheckpointError, ConfigError
from transition.store._rng import (
    RngState,
    capture_rng_state,
    find_seed_generators,
    restore_rng_state,
)


@pytest.fixture(autouse=True, scope="module")
def _clear_once():
    """Every test here builds its own small models (named layers); clear Keras' session once, at the end."""
    yield
    keras.backend.clear_session()


def _json_round_trip(state: RngState) -> RngState:
    obj, arrays = state.to_json_and_arrays()
    obj = json.loads(json.dumps(obj, allow_nan=False))
    arrays = {k: np.array(v) for k, v in arrays.items()}
    assert all(a.dtype == np.int64 and a.ndim == 1 for a in arrays.values())
    return RngState.from_json_and_arrays(obj, arrays)


def _dropout_model(name="drop"):
    inp = keras.Input((16,))
    out = keras.layers.Dropout(0.5, name=name)(inp)
    return keras.Model(inp, out)


# Each kind: (setup() -> context, draw(context) -> array, capture kwargs(context), restore kwargs(context))
def _kinds():
    def model_draw(m):
        return np.asarray(m(np.ones((2, 16), "float32"), training=True))

    return {
        "python": (lambda: None, lambda c: np.array([random.random(), random.gauss(0, 1), random.random()]),
                   lambda c: {}, lambda c: {}),
        "numpy_global": (lambda: None, lambda c: np.concatenate([np.random.rand(3), np.random.randn(1)]),
                         lambda c: {}, lambda c: {}),
        "numpy_pcg64": (lambda: np.random.default_rng(7), lambda g: g.random(3),
                        lambda g: {"numpy_generators": {"g": g}}, lambda g: {"numpy_generators": {"g": g}}),
        "numpy_philox": (lambda: np.random.Generator(np.random.Philox(3)), lambda g: g.normal(size=3),
                         lambda g: {"numpy_generators": {"g": g}}, lambda g: {"numpy_generators": {"g": g}}),
        "numpy_mt19937": (lambda: np.random.Generator(np.random.MT19937(3)), lambda g: g.integers(0, 1 << 40, 3),
                          lambda g: {"numpy_generators": {"g": g}}, lambda g: {"numpy_generators": {"g": g}}),
        "tf_global": (lambda: None, lambda c: tf.random.get_global_generator().normal([3]).numpy(),
                      lambda c: {}, lambda c: {}),
        "keras_global": (lambda: keras.random.normal((1,)), lambda c: keras.random.normal((3,)).numpy(),
                         lambda c: {}, lambda c: {}),
        "keras_layer": (_dropout_model, model_draw, lambda m: {"seed_generators": m},
                        lambda m: {"seed_generators": m}),
        "keras_explicit": (lambda: keras.random.SeedGenerator(5),
                           lambda sg: keras.random.uniform((3,), seed=sg).numpy(),
                           lambda sg: {"seed_generators": {"mine": sg}}, lambda sg: {"seed_generators": {"mine": sg}}),
    }


@pytest.mark.parametrize("json_trip", [False, True], ids=["memory", "json"])
@pytest.mark.parametrize("kind", list(_kinds()))
def test_restore_reproduces_next_numbers(kind, json_trip):
    setup, draw, cap_kw, res_kw = _kinds()[kind]
    ctx = setup()
    draw(ctx)  # advance a little first
    state = capture_rng_state(**cap_kw(ctx))
    a = draw(ctx)
    disturbed = draw(ctx)
    assert not np.array_equal(a, disturbed)  # the generator really moves on
    if json_trip:
        state = _json_round_trip(state)
    restore_rng_state(state, **res_kw(ctx))
    b = draw(ctx)
    np.testing.assert_array_equal(a, b)


def test_all_generators_in_one_state_survive_json():
    model = _dropout_model()
    gen = np.random.default_rng(1)
    keras.random.normal((1,))
    state = capture_rng_state(model, {"g": gen})

    def draw_all():
        return [random.random(), np.random.rand(), gen.random(), tf.random.get_global_generator().normal([1]).numpy(),
                keras.random.normal((2,)).numpy(), np.asarray(model(np.ones((1, 16), "float32"), training=True))]

    a = draw_all()
    state2 = _json_round_trip(state)
    assert state2 == state
    restore_rng_state(state2, model, {"g": gen})
    for x, y in zip(a, draw_all()):
        np.testing.assert_array_equal(x, y)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 700))
def test_python_and_numpy_round_trip_any_position(seed, n):
    random.seed(seed)
    np.random.seed(seed)
    for _ in range(n):
        random.random()
    np.random.rand(n)
    if n % 2:
        random.gauss(0, 1)  # leaves gauss_next set
        np.random.randn()  # leaves the cached gaussian set
    state = _json_round_trip(capture_rng_state(tf=False, keras_global=False))
    a = (random.gauss(0, 1), random.random(), np.random.randn(), np.random.rand())
    random.random()
    np.random.rand()
    restore_rng_state(state)
    assert (random.gauss(0, 1), random.random(), np.random.randn(), np.random.rand()) == a


def test_tf_global_generator_replaced_with_other_algorithm():
    tf.random.set_global_generator(tf.random.Generator.from_seed(3, alg="philox"))
    state = _json_round_trip(capture_rng_state(python=False, numpy=False, keras_global=False))
    a = tf.random.get_global_generator().uniform([4]).numpy()
    tf.random.set_global_generator(tf.random.Generator.from_seed(9, alg="threefry"))
    restore_rng_state(state)
    np.testing.assert_array_equal(tf.random.get_global_generator().uniform([4]).numpy(), a)


def test_fields_not_captured_are_left_alone():
    state = capture_rng_state(python=False, numpy=False, tf=False, keras_global=False)
    assert state == RngState()
    random.seed(1)
    a = random.random()
    random.seed(1)
    restore_rng_state(state)
    assert random.random() == a


def test_find_seed_generators_keys_by_layer():
    model = _dropout_model("my_drop")
    found = find_seed_generators(model)
    assert list(found) == ["my_drop/0"]
    assert found["my_drop/0"] is model.get_layer("my_drop").seed_generator


def test_strict_restore_names_missing_and_extra_keys():
    model = _dropout_model("drop_a")
    state = capture_rng_state(model)
    other = _dropout_model("drop_b")
    with pytest.raises(ConfigError, match="drop_a/0"):
        restore_rng_state(state, other)
    with pytest.raises(ConfigError, match="drop_b/0"):
        restore_rng_state(capture_rng_state(), other)
    restore_rng_state(state, other, strict=False)  # keys present on both sides only: nothing to do


def test_numpy_generator_errors():
    state = capture_rng_state(numpy_generators={"g": np.random.default_rng(1)})
    with pytest.raises(ConfigError, match="'g'.*PCG64"):
        restore_rng_state(state, numpy_generators={"g": np.random.Generator(np.random.Philox(1))})
    with pytest.raises(ConfigError, match="'g'"):
        restore_rng_state(state)
    with pytest.raises(ConfigError, match="'bad'"):
        capture_rng_state(numpy_generators={"bad": 3})
    with pytest.raises(ConfigError, match="not allowed"):
        capture_rng_state(numpy_generators={"../x": np.random.default_rng()})


def test_duplicate_seed_generator_keys_are_an_error():
    with pytest.raises(ConfigError, match="'x'"):
        find_seed_generators([{"x": keras.random.SeedGenerator(1)}, {"x": keras.random.SeedGenerator(2)}])


def _saved():
    obj, arrays = capture_rng_state(numpy_generators={"g": np.random.default_rng(2)}).to_json_and_arrays()
    return json.loads(json.dumps(obj)), arrays


@pytest.mark.parametrize("damage, field", [
    (lambda o, a: o["python"].pop("version"), "python.version"),
    (lambda o, a: o["python"].update(version="3"), "python.version"),
    (lambda o, a: o.update(bogus=1), "bogus"),
    (lambda o, a: o["numpy_global"].update(pos=10**9), "numpy_global.pos"),
    (lambda o, a: o["numpy_global"]["keys"].update(shape=[10**12]), "numpy_global.keys"),
    (lambda o, a: o["numpy_global"]["keys"].update(dtype="object"), "numpy_global.keys"),
    (lambda o, a: a.pop("rng/tf_global/state"), "tf_global.state"),
    (lambda o, a: a.update({"rng/numpy_global/keys": np.full(624, -1, np.int64)}), "numpy_global.keys"),
    (lambda o, a: a.update({"rng/numpy_global/keys": np.zeros(624, np.float64)}), "numpy_global.keys"),
    (lambda o, a: a.update({"rng/python/internal": np.full(625, 700, np.int64)}), "python.internal"),
    (lambda o, a: o.update(keras_seed_generators={"../evil": o["tf_global"]["state"]}), "../evil"),
    (lambda o, a: o["numpy_generators"]["g"]["state"].update(state=2**300), "numpy_generators"),
])
def test_damaged_state_names_the_field(damage, field):
    obj, arrays = _saved()
    damage(obj, arrays)
    with pytest.raises(CheckpointError) as info:
        RngState.from_json_and_arrays(obj, arrays, source="ckpt.state.json")
    assert field in str(info.value) and "ckpt.state.json" in str(info.value)


def test_restore_into_a_fresh_keras_session():
    """Restoring Keras' global SeedGenerator into a session that has none must not shift Python's `random`."""
    keras.random.normal((1,))
    state = _json_round_trip(capture_rng_state())
    a = (random.random(), keras.random.normal((2,)).numpy())
    keras.backend.clear_session()  # drops the global SeedGenerator, as a restart would
    restore_rng_state(state)
    b = (random.random(), keras.random.normal((2,)).numpy())
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


def test_failed_restore_changes_nothing():
    gen = np.random.default_rng(1)
    state = capture_rng_state(numpy_generators={"g": gen})
    model = _dropout_model("drop_x")  # its seed generator is not in `state`
    gen.random()
    random.seed(2)
    before = (random.getstate(), gen.bit_generator.state)
    with pytest.raises(ConfigError, match="drop_x/0"):
        restore_rng_state(state, model, {"g": gen})
    assert (random.getstate(), gen.bit_generator.state) == before


def test_capture_under_op_determinism_without_a_tf_generator(tmp_path):
    """Under op determinism TF refuses to create its global generator; capture must still work (no TF state) and
    a generator set later is captured and restored as usual. Runs in a subprocess: determinism is process-wide."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import tensorflow as tf
        from transition.store._rng import capture_rng_state, restore_rng_state
        tf.config.experimental.enable_op_determinism()
        state = capture_rng_state()
        assert state.tf_global is None, state.tf_global
        tf.random.set_global_generator(tf.random.Generator.from_seed(7))
        state = capture_rng_state()
        a = tf.random.get_global_generator().normal([3]).numpy().tolist()
        restore_rng_state(state)
        b = tf.random.get_global_generator().normal([3]).numpy().tolist()
        assert a == b, (a, b)
        print("OK")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("OK")
