"""transition: epoch transitions, param loading and exact resume for TensorFlow / Keras 3 training jobs.

The public API is re-exported here explicitly (the table below: public name -> private module). Names are imported
on first use, so that `import transition` (and the command line's start-up) stays fast and TensorFlow is imported
only when a name that needs it is used, and then without its start-up log noise.
"""

from __future__ import annotations

import importlib
from typing import Any

from transition._errors import (
    CheckpointError as CheckpointError,
    ConfigError as ConfigError,
    MissingParamsError as MissingParamsError,
    ShapeMismatchError as ShapeMismatchError,
    TransitionError as TransitionError,
)
from transition._quiet import quiet_tensorflow as _quiet_tensorflow

__version__ = "0.1.0"

_MODULE_OF: dict[str, str] = {}
for _module, _names in (
    # core (issue 2)
    (
        "_importing",
        (
            "ImportReport",
            "ParamRecord",
            "ParamsSnapshot",
            "ParamStatus",
        ),
    ),
    (
        "_layers_base",
        (
            "REQUIRED",
            "DataInfo",
            "NetLayer",
            "layer_class_names",
            "register_layer_class",
        ),
    ),
    (
        "_netdict",
        (
            "NetDictDiff",
            "diff_net_dicts",
        ),
    ),
    (
        "_network",
        (
            "Layer",
            "Network",
        ),
    ),
    ("_slots", ("SlotsSnapshot",)),
    ("_split", ("copy_with_new_split_axes",)),
    (
        "_transition",
        (
            "TransitionResult",
            "transition_network",
        ),
    ),
    (
        "_pretrain",
        (
            "Pretrain",
            "WrapEpochValue",
            "pretrain_from_config",
        ),
    ),
    # loading (issue 3)
    (
        "_ckpt_tools",
        (
            "CheckpointEntry",
            "average_checkpoints",
            "convert_checkpoint",
            "inspect_checkpoint",
        ),
    ),
    ("_assignment_map", ("init_from_checkpoint",)),
    (
        "_load_options",
        (
            "LoadDecision",
            "LoadPlan",
            "PreloadEntry",
            "decide_and_load",
            "decide_loading",
        ),
    ),
    (
        "_loading",
        (
            "LoadReport",
            "chain_restore",
            "load_checkpoint",
            "restore_from_dict",
        ),
    ),
    (
        "_reader",
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
        "_callback_state",
        (
            "KerasCallbackState",
            "Stateful",
            "adapt_callback",
            "collect_callback_states",
            "restore_callback_states",
        ),
    ),
    ("_keep", ("KeepPolicy",)),
    ("_lock", ("DirectoryLock",)),
    (
        "_preempt",
        (
            "PREEMPTED_EXIT_CODE",
            "PreemptionHandler",
        ),
    ),
    (
        "_rng",
        (
            "RngState",
            "capture_rng_state",
            "restore_rng_state",
        ),
    ),
    (
        "_state",
        (
            "EpochRecord",
            "TrainingState",
            "read_training_state",
        ),
    ),
    (
        "_store",
        (
            "CheckpointInfo",
            "CheckpointStore",
            "RestoredCheckpoint",
            "checkpoint_prefix",
        ),
    ),
    # epoch manager (issue 5)
    (
        "_config",
        (
            "Config",
            "load_config",
        ),
    ),
    ("_lr_control", ("LearningRateControl",)),
    ("_manager", ("TransitionManager",)),
    ("_train_loop", ("train_from_config",)),
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
