"""Capture and restore every random number generator a training job draws from, without pickle.

Covered: Python's `random`, numpy's global (legacy) generator, optional `np.random.Generator` objects, TF's global
`tf.random.Generator`, Keras `SeedGenerator`s (found on a model's layers, e.g. Dropout, or given by name) and Keras'
global seed generator. Not covered (cannot be read back): TF's op-level seeds (`tf.random.set_seed` plus the
per-op counter of stateful ops such as `tf.random.uniform`); use seeded generators for exact resume.

On disk (`RngState.to_json_and_arrays`), each array is a 1-D int64 array (uint32 / uint64 values are stored
bit-exactly, their dtype recorded in the JSON), so any TF bundle writer can store it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np

from transition.errors import CheckpointError, ConfigError, did_you_mean
from transition.internal._keras_private import (
    global_seed_generator,
    layer_seed_generators,
    sublayers,
)

__all__ = [
    "RngState",
    "capture_rng_state",
    "restore_rng_state",
    "find_seed_generators",
]

_KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-/]{1,200}$")
_MAX_ARRAY = 1 << 20  # elements; real states have at most a few thousand
_MAX_RNG_INT = 1 << 256


def _arrays_equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.array_equal(np.asarray(a), np.asarray(b))) and np.asarray(a).dtype == np.asarray(b).dtype


def _deep_equal(a: Any, b: Any) -> bool:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and _arrays_equal(a, b)
    return type(a) is type(b) and a == b


_ARRAY_EQ = attrs.cmp_using(eq=_arrays_equal)
_MAP_EQ = attrs.cmp_using(eq=_deep_equal)


@attrs.frozen(eq=True)
class RngState:
    """A snapshot of random generators; a field that is None (or an empty mapping) was not captured.

    python: ``random.getstate()`` as (version, internal state as an int64 array of 625, gauss_next).
    numpy_global: ``np.random.get_state()`` (legacy MT19937) as a dict with "keys" (array), "pos", "has_gauss",
      "cached_gaussian".
    numpy_generators: name -> ``bit_generator.state`` dict of a given `np.random.Generator`.
    tf_global: TF's global generator as {"algorithm": int, "state": int64 array}.
    keras_global: the state (2 ints) of Keras' global SeedGenerator, if one had been created.
    keras_seed_generators: key -> state of a Keras SeedGenerator; keys are ``"{layer name}/{index}"`` for generators
      found on a model's layers, or the names given to `capture_rng_state`.
    """

    python: tuple[int, np.ndarray, float | None] | None = attrs.field(default=None, eq=attrs.cmp_using(
        eq=lambda a, b: (a is None and b is None) or (a is not None and b is not None and a[0] == b[0]
                                                       and _arrays_equal(a[1], b[1]) and a[2] == b[2])))
    numpy_global: Mapping[str, Any] | None = attrs.field(default=None, eq=_MAP_EQ)
    numpy_generators: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, eq=_MAP_EQ)
    tf_global: Mapping[str, Any] | None = attrs.field(default=None, eq=_MAP_EQ)
    keras_global: np.ndarray | None = attrs.field(default=None, eq=_ARRAY_EQ)
    keras_seed_generators: Mapping[str, np.ndarray] = attrs.field(factory=dict, eq=_MAP_EQ)

    def to_json_and_arrays(self, prefix: str = "rng") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return (JSON-able dict, {array name: 1-D int64 array}); array names start with ``{prefix}/``."""
        arrays: dict[str, np.ndarray] = {}

        def ref(name: str, arr: np.ndarray) -> dict[str, Any]:
            arr = np.asarray(arr)
            full = f"{prefix}/{name}"
            arrays[full] = _to_int64(arr)
            return {"$array": full, "dtype": arr.dtype.name, "shape": list(arr.shape)}

        obj: dict[str, Any] = {}
        if self.python is not None:
            version, internal, gauss = self.python
            obj["python"] = {"version": int(version), "internal": ref("python/internal", internal),
                             "gauss_next": _float_json(gauss)}
        if self.numpy_global is not None:
            g = self.numpy_global
            obj["numpy_global"] = {"keys": ref("numpy_global/keys", g["keys"]), "pos": int(g["pos"]),
                                   "has_gauss": int(g["has_gauss"]),
                                   "cached_gaussian": _float_json(g["cached_gaussian"])}
        if self.numpy_generators:
            obj["numpy_generators"] = {
                key: _encode_tree(st, lambda path, a, key=key: ref(f"numpy_generators/{key}/{path}", a))
                for key, st in self.numpy_generators.items()}
        if self.tf_global is not None:
            obj["tf_global"] = {"algorithm": int(self.tf_global["algorithm"]),
                                "state": ref("tf_global/state", self.tf_global["state"])}
        if self.keras_global is not None:
            obj["keras_global"] = ref("keras_global", self.keras_global)
        if self.keras_seed_generators:
            obj["keras_seed_generators"] = {key: ref(f"keras/{key}", arr)
                                            for key, arr in self.keras_seed_generators.items()}
        return obj, arrays

    @classmethod
    def from_json_and_arrays(cls, obj: Any, arrays: Mapping[str, np.ndarray], *, where: str = "rng",
                             source: str = "training state") -> RngState:
        """Inverse of `to_json_and_arrays`; a wrong type, key or array is a CheckpointError naming the field."""
        r = _Reader(arrays, source)
        r.require_dict(obj, where)
        known = {"python", "numpy_global", "numpy_generators", "tf_global", "keras_global", "keras_seed_generators"}
        r.no_unknown(obj, known, where)
        python = numpy_global = tf_global = keras_global = None
        if "python" in obj:
            p = obj["python"]
            w = f"{where}.python"
            r.require_dict(p, w)
            r.no_unknown(p, {"version", "internal", "gauss_next"}, w)
            python = (r.int(p, "version", w, 0, 100), r.array(p, "internal", w, "uint32", (625,), max_value=624),
                      r.opt_float(p, "gauss_next", w))
        if "numpy_global" in obj:
            g = obj["numpy_global"]
            w = f"{where}.numpy_global"
            r.require_dict(g, w)
            r.no_unknown(g, {"keys", "pos", "has_gauss", "cached_gaussian"}, w)
            numpy_global = {"keys": r.array(g, "keys", w, "uint32", (624,)), "pos": r.int(g, "pos", w, 0, 624),
                            "has_gauss": r.int(g, "has_gauss", w, 0, 1),
                            "cached_gaussian": r.float(g, "cached_gaussian", w)}
        numpy_generators = {}
        for key, st in r.keyed(obj, "numpy_generators", where).items():
            numpy_generators[key] = r.tree(st, f"{where}.numpy_generators[{key!r}]")
        if "tf_global" in obj:
            t = obj["tf_global"]
            w = f"{where}.tf_global"
            r.require_dict(t, w)
            r.no_unknown(t, {"algorithm", "state"}, w)
            tf_global = {"algorithm": r.int(t, "algorithm", w, 0, 100), "state": r.array(t, "state", w, "int64")}
        if "keras_global" in obj:
            keras_global = r.array(obj, "keras_global", where, None, (2,))
        keras_seed = {key: r.array({key: v}, key, f"{where}.keras_seed_generators", None, (2,))
                      for key, v in r.keyed(obj, "keras_seed_generators", where).items()}
        return cls(python=python, numpy_global=numpy_global, numpy_generators=numpy_generators,
                   tf_global=tf_global, keras_global=keras_global, keras_seed_generators=keras_seed)


# ----------------------------------------------------------------------------------------------- capture / restore


def find_seed_generators(obj: Any) -> dict[str, Any]:
    """Return {key: keras SeedGenerator} for a Keras layer / model (its layers' generators, keyed
    ``"{layer name}/{index}"``), a mapping name -> SeedGenerator, or an iterable of those."""
    import keras

    found: dict[str, Any] = {}

    def add(key: str, sg: Any) -> None:
        if not isinstance(sg, keras.random.SeedGenerator):
            raise ConfigError(f"seed generator {key!r} is a {type(sg).__name__}, not a keras.random.SeedGenerator")
        _check_key(key, "seed generator name", ConfigError)
        if key in found and found[key] is not sg:
            raise ConfigError(f"two different seed generators have the key {key!r}; give them distinct names")
        found[key] = sg

    if obj is None:
        return found
    if isinstance(obj, keras.layers.Layer):
        for layer in [obj, *sublayers(obj, recursive=True)]:
            for i, sg in enumerate(layer_seed_generators(layer)):
                add(f"{layer.name}/{i}", sg)
    elif isinstance(obj, Mapping):
        for key, sg in obj.items():
            add(key, sg)
    elif isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        for item in obj:
            for key, sg in find_seed_generators(item).items():
                add(key, sg)
    else:
        raise ConfigError(f"seed_generators: expected a keras model/layer, a mapping name -> SeedGenerator, or a "
                          f"list of those, got a {type(obj).__name__}")
    return found


def _bit_generator(gen: Any, name: str) -> Any:
    if isinstance(gen, np.random.Generator):
        return gen.bit_generator
    if isinstance(gen, np.random.BitGenerator):
        return gen
    raise ConfigError(f"numpy generator {name!r} is a {type(gen).__name__}, not a np.random.Generator")


def _existing_tf_global_generator(tf_mod: Any) -> Any:
    """TF's global generator, or None where it cannot exist yet: under op determinism TF refuses to create it
    until `tf.random.set_global_generator` was called, and a generator never created has no state to keep."""
    try:
        return tf_mod.random.get_global_generator()
    except RuntimeError as exc:
        if "determinism" in str(exc):
            return None
        raise


def capture_rng_state(seed_generators: Any = (), numpy_generators: Mapping[str, Any] | None = None, *,
                      python: bool = True, numpy: bool = True, tf: bool = True, keras_global: bool = True) -> RngState:
    """Snapshot the generators: Python `random`, numpy's global generator, TF's global generator, Keras' global
    seed generator (when it exists), the SeedGenerators of `seed_generators` (a Keras model / layer, a mapping
    name -> SeedGenerator, or a list of those) and the given `numpy_generators` (name -> np.random.Generator)."""
    py_state = None
    if python:
        version, internal, gauss = random.getstate()
        py_state = (int(version), np.asarray(internal, dtype=np.int64).astype(np.uint32), gauss)
    np_state = None
    if numpy:
        name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        if name != "MT19937":
            raise ConfigError(f"numpy's global generator uses {name!r}; only MT19937 is supported")
        np_state = {"keys": np.array(keys, dtype=np.uint32), "pos": int(pos), "has_gauss": int(has_gauss),
                    "cached_gaussian": float(cached)}
    np_gens = {}
    for key, gen in (numpy_generators or {}).items():
        _check_key(key, "numpy generator name", ConfigError)
        np_gens[key] = _copy_tree(_bit_generator(gen, key).state)
    tf_state = None
    if tf:
        import tensorflow as tf_mod

        g = _existing_tf_global_generator(tf_mod)
        if g is not None:
            tf_state = {"algorithm": int(g.algorithm), "state": np.array(g.state.numpy(), dtype=np.int64)}
    k_global = None
    if keras_global:
        kg = global_seed_generator(create=False)
        if kg is not None:
            k_global = np.array(kg.state.numpy())
    k_seeds = {key: np.array(sg.state.numpy()) for key, sg in find_seed_generators(seed_generators).items()}
    return RngState(python=py_state, numpy_global=np_state, numpy_generators=np_gens, tf_global=tf_state,
                    keras_global=k_global, keras_seed_generators=k_seeds)


def _match_keys(saved: Iterable[str], given: Iterable[str], what: str, strict: bool) -> None:
    saved, given = set(saved), set(given)
    if not strict:
        return
    for key in sorted(saved - given):
        raise ConfigError(f"the saved RNG state has a {what} {key!r} that was not given for restore"
                          f"{did_you_mean(key, given)}; pass it, or restore with strict=False")
    for key in sorted(given - saved):
        raise ConfigError(f"{what} {key!r} has no saved RNG state{did_you_mean(key, saved)}; "
                          "it was not captured, or restore with strict=False")


def restore_rng_state(state: RngState, seed_generators: Any = (), numpy_generators: Mapping[str, Any] | None = None,
                      *, strict: bool = True) -> None:
    """Set every generator captured in `state` back to it. Keras SeedGenerators and numpy generators are matched by
    key; with strict=True a saved key without a generator, or a given generator without a saved state, is a
    ConfigError naming the key (strict=False restores the keys present on both sides)."""
    # Check everything first, so that an error leaves all generators untouched.
    gens = dict(numpy_generators or {})
    _match_keys(state.numpy_generators, gens, "numpy generator", strict)
    sgs = find_seed_generators(seed_generators)
    _match_keys(state.keras_seed_generators, sgs, "Keras seed generator", strict)
    bit_gens = {}
    for key, gen in gens.items():
        if key in state.numpy_generators:
            bg = _bit_generator(gen, key)
            saved = state.numpy_generators[key]
            if saved.get("bit_generator") != type(bg).__name__:
                raise ConfigError(f"numpy generator {key!r} is a {type(bg).__name__} but the saved state is for "
                                  f"{saved.get('bit_generator')!r}; create it with that bit generator")
            bit_gens[key] = bg
    for key, bg in bit_gens.items():
        bg.state = _copy_tree(state.numpy_generators[key])
    if state.tf_global is not None:
        import tensorflow as tf_mod

        alg = int(state.tf_global["algorithm"])
        values = np.asarray(state.tf_global["state"], dtype=np.int64)
        g = tf_mod.random.get_global_generator()
        if int(g.algorithm) == alg and tuple(g.state.shape) == values.shape:
            g.reset(values)
        else:
            tf_mod.random.set_global_generator(tf_mod.random.Generator.from_state(values, alg))
    if state.keras_global is not None:
        kg = global_seed_generator(create=True)
        kg.state.assign(np.asarray(state.keras_global, dtype=kg.state.dtype))
    for key, sg in sgs.items():
        if key in state.keras_seed_generators:
            sg.state.assign(np.asarray(state.keras_seed_generators[key], dtype=sg.state.dtype))
    # Python and numpy last: creating Keras' global SeedGenerator above draws from Python's `random`.
    if state.python is not None:
        version, internal, gauss = state.python
        random.setstate((int(version), tuple(int(x) for x in np.asarray(internal)), gauss))
    if state.numpy_global is not None:
        g = state.numpy_global
        np.random.set_state(("MT19937", np.asarray(g["keys"], dtype=np.uint32), int(g["pos"]),
                             int(g["has_gauss"]), float(g["cached_gaussian"])))


# ----------------------------------------------------------------------------------------------- (de)serialization


def _check_key(key: Any, what: str, error: type[Exception]) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key) or ".." in key.split("/") or key.startswith("/"):
        raise error(f"{what} {key!r} is not allowed: use 1-200 characters of letters, digits and _ . : - / "
                    "(no '..' parts, no leading '/')")
    return key


def _float_json(x: float | None) -> Any:
    if x is None:
        return None
    x = float(x)
    if math.isfinite(x):
        return x
    return {"$float": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def _to_int64(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr).reshape(-1)
    if arr.dtype == np.int64:
        return arr.copy()
    if arr.dtype == np.uint64:
        return arr.view(np.int64).copy()
    if arr.dtype.kind in "iu" and arr.dtype.itemsize <= 4:
        return arr.astype(np.int64)
    raise ConfigError(f"an RNG state array has dtype {arr.dtype}; only integer arrays are supported")


def _copy_tree(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _copy_tree(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        return tree.copy()
    if isinstance(tree, np.integer):
        return int(tree)
    return tree


def _encode_tree(tree: Any, ref: Any, path: str = "") -> Any:
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            _check_key(k, "numpy bit generator state field", ConfigError)
            out[k] = _encode_tree(v, ref, f"{path}/{k}" if path else k)
        return out
    if isinstance(tree, np.ndarray):
        return ref(path, tree)
    if isinstance(tree, (bool, np.bool_)):
        return bool(tree)
    if isinstance(tree, (int, np.integer)):
        return int(tree)
    if isinstance(tree, str):
        return tree
    if isinstance(tree, (float, np.floating)):
        return _float_json(float(tree))
    raise ConfigError(f"numpy bit generator state field {path!r} has unsupported type {type(tree).__name__}")


class _Reader:
    """Validating accessors for `RngState.from_json_and_arrays`; errors are CheckpointErrors naming the field."""

    def __init__(self, arrays: Mapping[str, np.ndarray], source: str):
        self.arrays = arrays
        self.source = source

    def fail(self, msg: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: {msg}; the file is damaged or not from this version of transition")

    def require_dict(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            raise self.fail(f"{where} must be an object, got {type(obj).__name__}")

    def no_unknown(self, obj: dict, known: set[str], where: str) -> None:
        for key in obj:
            if key not in known:
                raise self.fail(f"unknown field {where}.{key}{did_you_mean(key, known)}")

    def get(self, obj: dict, key: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(f"missing field {where}.{key}")
        return obj[key]

    def int(self, obj: dict, key: str, where: str, lo: int, hi: int) -> int:
        v = self.get(obj, key, where)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(f"{where}.{key} must be an int in [{lo}, {hi}], got {v!r}")
        return v

    def float(self, obj: dict, key: str, where: str) -> float:
        v = self.get(obj, key, where)
        if isinstance(v, dict) and set(v) == {"$float"} and v["$float"] in ("inf", "-inf", "nan"):
            return float(v["$float"])
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(f"{where}.{key} must be a number, got {v!r}")
        return float(v)

    def opt_float(self, obj: dict, key: str, where: str) -> float | None:
        return None if self.get(obj, key, where) is None else self.float(obj, key, where)

    def keyed(self, obj: dict, key: str, where: str) -> dict[str, Any]:
        if key not in obj:
            return {}
        v = obj[key]
        self.require_dict(v, f"{where}.{key}")
        for k in v:
            try:
                _check_key(k, f"{where}.{key} key", CheckpointError)
            except CheckpointError as exc:
                raise self.fail(str(exc)) from None
        return v

    def array(self, obj: dict, key: str, where: str, dtype: str | None, shape: tuple[int, ...] | None = None,
              max_value: int | None = None) -> np.ndarray:
        ref = self.get(obj, key, where)
        w = f"{where}.{key}"
        if not isinstance(ref, dict) or set(ref) != {"$array", "dtype", "shape"}:
            raise self.fail(f"{w} must be an array reference {{'$array', 'dtype', 'shape'}}, got {ref!r}")
        name, dt, shp = ref["$array"], ref["dtype"], ref["shape"]
        allowed = ("int64", "uint64", "int32", "uint32")
        if dt not in allowed or (dtype is not None and dt != dtype):
            raise self.fail(f"{w} has dtype {dt!r}; expected {dtype or ' or '.join(allowed)}")
        if (not isinstance(shp, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d
                                                 for d in shp) or int(np.prod(shp, dtype=object)) > _MAX_ARRAY):
            raise self.fail(f"{w} has a bad shape {shp!r}")
        if shape is not None and tuple(shp) != shape:
            raise self.fail(f"{w} has shape {tuple(shp)}, expected {shape}")
        if not isinstance(name, str) or name not in self.arrays:
            raise self.fail(f"{w} refers to array {name!r}, which is not in the checkpoint")
        stored = np.asarray(self.arrays[name])
        n = int(np.prod(shp, dtype=np.int64))
        if stored.dtype != np.int64 or stored.shape != (n,):
            raise self.fail(f"array {name!r} for {w} is {stored.dtype}{list(stored.shape)}, expected int64[{n}]")
        if dt == "uint64":
            out = stored.view(np.uint64).copy()
        else:
            info = np.iinfo(dt)
            if n and (stored.min() < info.min or stored.max() > info.max):
                raise self.fail(f"array {name!r} for {w} has values outside {dt}")
            out = stored.astype(dt)
        if max_value is not None and n and out[-1] > max_value:
            raise self.fail(f"array {name!r} for {w}: position {int(out[-1])} is larger than {max_value}")
        return out.reshape(shp)

    def tree(self, obj: Any, where: str, depth: int = 0) -> Any:
        if depth > 8:
            raise self.fail(f"{where} is nested too deeply")
        if isinstance(obj, dict):
            if "$array" in obj:
                return self.array({"a": obj}, "a", where, None)
            if set(obj) == {"$float"}:
                return self.float({"v": obj}, "v", where)
            out = {}
            for k, v in obj.items():
                try:
                    _check_key(k, f"{where} key", CheckpointError)
                except CheckpointError as exc:
                    raise self.fail(str(exc)) from None
                out[k] = self.tree(v, f"{where}.{k}", depth + 1)
            return out
        if isinstance(obj, bool) or obj is None or isinstance(obj, str):
            return obj
        if isinstance(obj, int):
            if not -_MAX_RNG_INT <= obj <= _MAX_RNG_INT:
                raise self.fail(f"{where}: integer {obj} is too large for an RNG state")
            return obj
        if isinstance(obj, float):
            return obj
        raise self.fail(f"{where}: unexpected {type(obj).__name__} in a numpy bit generator state")
