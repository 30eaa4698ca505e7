"""transition: epoch transitions, param loading and exact resume for TensorFlow / Keras 3 training jobs.

The public API is re-exported here explicitly (the table below: public name -> private module). Names are imported
on first use, so that `import transition` (and the command line's start-up) stays fast and TensorFlow is imported
only when a name that needs it is used, and then without its start-up log noise.
"""

from __future__ import annotations

import importlib
from typing import Any

from transition.errors import (
    CheckpointError as CheckpointError,
    ConfigError as ConfigError,
    MissingParamsError as MissingParamsError,
    ShapeMismatchError as ShapeMismatchError,
    TransitionError as TransitionError,
)
from transition.internal._quiet import quiet_tensorflow as _quiet_tensorflow

__version__ = "0.1.0"

_MODULE_OF: dict[str, str] = {}
for _module, _names in (
    # core (issue 2)
    (
        "params._importing",
        (
            "ImportReport",
            "ParamRecord",
            "ParamsSnapshot",
            "ParamStatus",
        ),
    ),
    (
        "network._layers_base",
        (
            "REQUIRED",
            "DataInfo",
            "NetLayer",
            "layer_class_names",
            "register_layer_class",
        ),
    ),
    (
        "netdict._netdict",
        (
            "NetDictDiff",
            "diff_net_dicts",
        ),
    ),
    (
        "network._network",
        (
            "Layer",
            "Network",
        ),
    ),
    ("network._slots", ("SlotsSnapshot",)),
    ("params._split", ("copy_with_new_split_axes",)),
    (
        "network._transition",
        (
            "TransitionResult",
            "transition_network",
        ),
    ),
    (
        "netdict._pretrain",
        (
            "Pretrain",
            "WrapEpochValue",
            "pretrain_from_config",
        ),
    ),
    # loading (issue 3)
    (
        "checkpoint._tools",
        (
            "CheckpointEntry",
            "average_checkpoints",
            "convert_checkpoint",
            "inspect_checkpoint",
        ),
    ),
    ("checkpoint._assignment_map", ("init_from_checkpoint",)),
    (
        "checkpoint._load_options",
        (
            "LoadDecision",
            "LoadPlan",
            "PreloadEntry",
            "decide_and_load",
            "decide_loading",
        ),
    ),
    (
        "checkpoint._loading",
        (
            "LoadReport",
            "chain_restore",
            "load_checkpoint",
            "restore_from_dict",
        ),
    ),
    (
        "checkpoint._reader",
        (
            "CheckpointReader",
            "find_epoch_model",
            "list_epoch_models",
            "open_checkpoint",
            "read_checkpoint",
        ),
    ),
    # checkpoints and training state (issue 4)
    (
        "store._callback_state",
        (
            "KerasCallbackState",
            "Stateful",
            "adapt_callback",
            "collect_callback_states",
            "restore_callback_states",
        ),
    ),
    ("store._keep", ("KeepPolicy",)),
    ("store._lock", ("DirectoryLock",)),
    (
        "training._preempt",
        (
            "PREEMPTED_EXIT_CODE",
            "PreemptionHandler",
        ),
    ),
    (
        "store._rng",
        (
            "RngState",
            "capture_rng_state",
            "restore_rng_state",
        ),
    ),
    (
        "store._state",
        (
            "EpochRecord",
            "TrainingState",
            "read_training_state",
        ),
    ),
    (
        "store._store",
        (
            "CheckpointInfo",
            "CheckpointStore",
            "RestoredCheckpoint",
            "checkpoint_prefix",
        ),
    ),
    # epoch manager (issue 5)
    (
        "training._config",
        (
            "Config",
            "load_config",
        ),
    ),
    ("training._lr_control", ("LearningRateControl",)),
    ("training._manager", ("TransitionManager",)),
    ("training._loop", ("train_from_config",)),
):
    _MODULE_OF.update(dict.fromkeys(_names, _module))

__all__ = sorted(
    ["CheckpointError", "ConfigError", "MissingParamsError", "ShapeMismatchError", "TransitionError", *_MODULE_OF]
)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'transition' has no attribute {name!r}")
    _quiet_tensorflow()
    value = getattr(importlib.import_module(f"transition.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
