"""Callback state that survives a restart: the `Stateful` protocol and adapters for Keras' monitor callbacks.

Any object with ``state_dict() -> dict`` and ``load_state_dict(state)`` is stateful; its states are keyed by its
``state_key`` attribute (default: the class name). Keras' EarlyStopping, ModelCheckpoint and ReduceLROnPlateau are
adapted by `adapt_callback`, so their best value and wait counters survive.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from transition.errors import ConfigError, did_you_mean
from transition.internal import _jsonsafe
from transition.internal._keras_private import run_after_next_train_begin

__all__ = [
    "Stateful",
    "KerasCallbackState",
    "state_key_of",
    "adapt_callback",
    "collect_callback_states",
    "restore_callback_states",
]


@runtime_checkable
class Stateful(Protocol):
    """An object whose state is saved in checkpoints. `state_dict` returns a JSON-able dict (floats may be inf /
    nan); `load_state_dict` takes what `state_dict` returned. An optional ``state_key`` attribute names the state
    (default: the class name); it must be unique among the callbacks of one job."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


# Attributes saved per Keras callback class (by class name, so subclasses are matched via the MRO).
_KERAS_FIELDS: dict[str, tuple[str, ...]] = {
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch"),
    "ModelCheckpoint": ("best", "_batches_seen_since_last_saving"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
}


def _keras_kind(cb: Any) -> str | None:
    try:
        import keras
    except ImportError:  # pragma: no cover
        return None
    for cls in type(cb).__mro__:
        if cls.__name__ in _KERAS_FIELDS and getattr(keras.callbacks, cls.__name__, None) is cls:
            return cls.__name__
    return None


def _plain(value: Any) -> Any:
    """numpy / TF scalars -> Python numbers; everything else unchanged."""
    if hasattr(value, "numpy") and callable(value.numpy) and not isinstance(value, (int, float)):
        value = value.numpy()
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value


class KerasCallbackState:
    """`Stateful` adapter for a Keras EarlyStopping / ModelCheckpoint / ReduceLROnPlateau.

    Saves "monitor" (checked on restore) and the counters: EarlyStopping wait, stopped_epoch, best, best_epoch;
    ModelCheckpoint best and the batches seen since the last save; ReduceLROnPlateau wait, best, cooldown_counter.
    EarlyStopping's ``best_weights`` (a full copy of the weights) is NOT saved: keep the best checkpoint with the
    store's keep policy instead. Keras resets these counters in ``on_train_begin``; `load_state_dict` therefore
    applies the state at once and once more right after the callback's next ``on_train_begin``.
    """

    def __init__(self, callback: Any, state_key: str | None = None):
        kind = _keras_kind(callback)
        if kind is None:
            raise ConfigError(f"{type(callback).__name__} is not a Keras callback that transition can adapt; "
                              f"known: {', '.join(sorted(_KERAS_FIELDS))}")
        self.callback = callback
        self.kind = kind
        self.state_key = state_key or getattr(callback, "state_key", None) or type(callback).__name__

    def __repr__(self) -> str:
        return f"KerasCallbackState({type(self.callback).__name__}, state_key={self.state_key!r})"

    def state_dict(self) -> dict[str, Any]:
        cb = self.callback
        state: dict[str, Any] = {"monitor": cb.monitor}
        for name in _KERAS_FIELDS[self.kind]:
            value = _plain(getattr(cb, name, None))
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{self.state_key}: attribute {name!r} is a {type(value).__name__}, "
                                  "expected a number or None")
            state[name.lstrip("_")] = value
        return state

    def load_state_dict(self, state: Mapping[str, Any], *, reapply_after_train_begin: bool = True) -> None:
        """Set the callback's counters; with `reapply_after_train_begin` once more after its next
        `on_train_begin` (which resets them), for a restore before a `fit` call."""
        cb = self.callback
        fields = _KERAS_FIELDS[self.kind]
        expected = {"monitor"} | {f.lstrip("_") for f in fields}
        for key in state:
            if key not in expected:
                raise ConfigError(f"state of callback {self.state_key!r}: unknown key {key!r}"
                                  f"{did_you_mean(key, expected)}")
        for key in sorted(expected - set(state)):
            raise ConfigError(f"state of callback {self.state_key!r}: missing key {key!r}")
        if state["monitor"] != cb.monitor:
            raise ConfigError(f"state of callback {self.state_key!r} was saved for monitor {state['monitor']!r} "
                              f"but the callback monitors {cb.monitor!r}; use the same monitor or another "
                              "state_key")
        values = {}
        for name in fields:
            value = state[name.lstrip("_")]
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"state of callback {self.state_key!r}: {name.lstrip('_')!r} must be a number "
                                  f"or null, got {value!r}")
            if name != "best" and value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"state of callback {self.state_key!r}: {name.lstrip('_')!r} must be an int "
                                  f">= 0, got {value!r}")
            values[name] = value
        if self.kind == "EarlyStopping" and getattr(cb, "restore_best_weights", False) and values["best"] is not None:
            warnings.warn(f"callback {self.state_key!r}: EarlyStopping's best_weights are not stored in checkpoints; "
                          "after this resume it restores the weights of its first epoch after the resume at best. "
                          "Keep the best checkpoint with the store's keep policy instead.", stacklevel=2)

        def apply() -> None:
            for name, value in values.items():
                setattr(cb, name, value)

        apply()
        if reapply_after_train_begin:
            run_after_next_train_begin(cb, apply)


def state_key_of(obj: Any) -> str:
    """The key a stateful object's state is stored under: its ``state_key`` attribute, else its class name."""
    key = getattr(obj, "state_key", None)
    if key is None:
        key = type(obj).__name__
    if not isinstance(key, str) or not key:
        raise ConfigError(f"state_key of {type(obj).__name__} must be a non-empty str, got {key!r}")
    return key


def adapt_callback(cb: Any) -> Stateful | None:
    """Return `cb` if it is Stateful, a `KerasCallbackState` for a known Keras callback, else None."""
    if isinstance(cb, Stateful):
        return cb
    if _keras_kind(cb) is not None:
        return KerasCallbackState(cb)
    return None


def _stateful_by_key(callbacks: Iterable[Any]) -> dict[str, Stateful]:
    out: dict[str, Stateful] = {}
    owners: dict[str, Any] = {}
    for cb in callbacks:
        adapted = adapt_callback(cb)
        if adapted is None:
            continue
        key = state_key_of(adapted)
        if key in out:
            raise ConfigError(f"two callbacks have the state_key {key!r}: {owners[key]!r} and {cb!r}; "
                              "give one of them another state_key attribute")
        out[key] = adapted
        owners[key] = cb
    return out


def collect_callback_states(callbacks: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Return {state_key: state_dict()} of the stateful (or adaptable Keras) callbacks; others are skipped.
    Two callbacks with one key is a ConfigError naming both; a state that is not JSON-able names its key."""
    states = {}
    for key, cb in _stateful_by_key(callbacks).items():
        state = cb.state_dict()
        if not isinstance(state, Mapping):
            raise ConfigError(f"state_dict() of callback {key!r} returned a {type(state).__name__}, not a dict")
        state = {k: _plain(v) for k, v in state.items()}
        _jsonsafe.check_jsonable(state, f"state of callback {key!r}", ConfigError)
        states[key] = state
    return states


def restore_callback_states(callbacks: Iterable[Any], states: Mapping[str, Mapping[str, Any]],
                            *, strict: bool = True, reapply_after_train_begin: bool = True) -> list[str]:
    """Load `states` (from `collect_callback_states`) into the callbacks; returns the keys restored.

    With strict=True, a saved state without a callback, or a stateful callback without a saved state, is a
    ConfigError naming the key; strict=False skips both. Keras callbacks get their state once more after their
    next `on_train_begin` unless `reapply_after_train_begin=False` (a restore within a running `fit`)."""
    by_key = _stateful_by_key(callbacks)
    if strict:
        for key in states:
            if key not in by_key:
                raise ConfigError(f"the checkpoint has a state for callback {key!r} but no such callback was given"
                                  f"{did_you_mean(key, by_key)}; add it, or restore with strict=False")
        for key in by_key:
            if key not in states:
                raise ConfigError(f"callback {key!r} has no state in the checkpoint{did_you_mean(key, states)}; "
                                  "restore with strict=False to start it fresh")
    restored = []
    for key, cb in by_key.items():
        if key in states:
            if isinstance(cb, KerasCallbackState):
                cb.load_state_dict(dict(states[key]), reapply_after_train_begin=reapply_after_train_begin)
            else:
                cb.load_state_dict(dict(states[key]))
            restored.append(key)
    return restored

