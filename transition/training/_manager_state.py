"""The TrainingState the epoch manager saves and restores: the net dict as JSON, the pretrain step, the
checkpoint's params by layer, and the callbacks' states."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from transition.errors import ConfigError, did_you_mean
from transition.store._callback_state import (
    collect_callback_states,
    restore_callback_states,
)
from transition.store._rng import capture_rng_state
from transition.store._state import EpochRecord, TrainingState

if TYPE_CHECKING:
    import numpy as np

    from transition.netdict._pretrain import Pretrain
    from transition.network._network import Network

__all__ = ["STOPPED_KEY", "jsonable_net_dict", "pretrain_step", "params_by_layer", "restore_callbacks",
           "training_state"]

STOPPED_KEY = "transition.stopped"  # TrainingState.extra: a callback stopped the training


def jsonable_net_dict(value: Any) -> Any:
    """The net dict for the TrainingState: functions and other objects become {"$object": "<qualified name>"}."""
    if isinstance(value, Mapping):
        return {str(k): jsonable_net_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable_net_dict(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__ == "numpy":
        return jsonable_net_dict(tolist())
    name = getattr(value, "__qualname__", None) or type(value).__qualname__
    return {"$object": f"{getattr(value, '__module__', '?')}.{name}"}


def pretrain_step(pretrain: Pretrain | None, epoch: int) -> int | None:
    """The index of the pretrain construction step `epoch` trains (None after pretraining or without it)."""
    if pretrain is None or not pretrain.is_pretrain_epoch(epoch):
        return None
    total = 0
    for idx, reps in enumerate(pretrain.repetitions):
        total += reps
        if epoch <= total:
            return idx
    return None


def params_by_layer(params: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{"layer/param": array} -> {layer: {param: array}} (for `Network.from_dict(initial_values=...)`)."""
    values: dict[str, dict[str, np.ndarray]] = {}
    for name, arr in params.items():
        layer, _, param = name.partition("/")
        values.setdefault(layer, {})[param] = arr
    return values


def training_state(epoch: int, epoch_finished: bool, global_step: int, step_in_epoch: int, *, network: Network,
                   pretrain: Pretrain | None, lr_history: Mapping[int, EpochRecord], callbacks: Sequence[object],
                   shuffle_seed: int, stopped: bool) -> TrainingState:
    """The TrainingState of a checkpoint at `epoch` (finished, or after `step_in_epoch` steps of it)."""
    step = 0 if epoch_finished else step_in_epoch
    return TrainingState(
        epoch=epoch,
        epoch_finished=epoch_finished,
        global_step=global_step,
        step_in_epoch=step,
        pretrain_step=pretrain_step(pretrain, epoch),
        net_dict=jsonable_net_dict(network.net_dict) if network.net_dict is not None else None,
        learning_rate_history=lr_history,
        rng=capture_rng_state(network.keras_model),
        data_position={"epoch": epoch, "batch_index": step, "shuffle_seed": shuffle_seed},
        callbacks=collect_callback_states(callbacks),
        extra={STOPPED_KEY: True} if stopped else {},
    )


def restore_callbacks(callbacks: Sequence[object], saved: Mapping[str, Mapping[str, Any]], prefix: str,
                      log: Callable[[str], None], *, within_fit: bool = False) -> None:
    """Give the callbacks their saved states. A saved state without its callback is a ConfigError (it would be
    lost); callbacks without a saved state start fresh (logged). `within_fit`: the restore happens inside a running
    `fit` (after the callbacks' `on_train_begin`), so Keras callbacks get their state once only."""
    restored = restore_callback_states(callbacks, saved, strict=False, reapply_after_train_begin=not within_fit)
    current = list(collect_callback_states(callbacks))
    for key in saved:
        if key not in restored:
            raise ConfigError(
                f"checkpoint {prefix} has the state of callback {key!r}, but no callback with that state_key "
                f"was given{did_you_mean(key, current)}; add it (its state would be lost), or start a new model path"
            )
    fresh = [k for k in current if k not in saved]
    if fresh:
        log(f"callbacks without a saved state start fresh: {', '.join(fresh)}")
