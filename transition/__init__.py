"""transition: epoch transitions, param loading and exact resume for TensorFlow / Keras 3 training jobs.

The public API is re-exported here explicitly: `_PUBLIC` maps each public name to the private module that defines
it. Names are imported on first use, so that `import transition` (and the command line's start-up) stays fast and
TensorFlow is imported only when a name that needs it is used, and then without its start-up log noise.
"""

from __future__ import annotations

from transition.errors import (
    CheckpointError as CheckpointError,
)
from transition.errors import (
    ClusterError as ClusterError,
)
from transition.errors import (
    ConfigError as ConfigError,
)
from transition.errors import (
    MissingParamsError as MissingParamsError,
)
from transition.errors import (
    MissingTensorsError as MissingTensorsError,
)
from transition.errors import (
    OutputChangedError as OutputChangedError,
)
from transition.errors import (
    ShapeMismatchError as ShapeMismatchError,
)
from transition.errors import (
    TransitionError as TransitionError,
)

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    # params: copy modes, the import report
    "ImportReport": "params._report",
    "OutputCheck": "params._report",
    "ParamRecord": "params._report",
    "ParamStatus": "params._report",
    "ParamsSnapshot": "params._snapshot",
    "copy_with_new_split_axes": "params._split",
    # netdict: net dicts and pretrain schedules
    "NetDictDiff": "netdict._netdict",
    "diff_net_dicts": "netdict._netdict",
    "Pretrain": "netdict._pretrain",
    "WrapEpochValue": "netdict._pretrain",
    "pretrain_from_config": "netdict._pretrain",
    # network: layers, Network, the transition
    "REQUIRED": "network._layers_base",
    "DataInfo": "network._layers_base",
    "NetLayer": "network._layers_base",
    "layer_class_names": "network._layers_base",
    "register_layer_class": "network._layers_base",
    "Layer": "network._layer",
    "Network": "network._network",
    "SlotsSnapshot": "network._slots",
    "TransitionResult": "network._transition",
    "transition_network": "network._transition",
    # checkpoint: reading, loading, tools
    "CheckpointReader": "checkpoint._reader_base",
    "open_checkpoint": "checkpoint._reader",
    "read_checkpoint": "checkpoint._reader",
    "find_epoch_model": "checkpoint._epochs",
    "list_epoch_models": "checkpoint._epochs",
    "LoadReport": "checkpoint._load_report",
    "chain_restore": "checkpoint._loading",
    "load_checkpoint": "checkpoint._loading",
    "restore_from_dict": "checkpoint._loading",
    "init_from_checkpoint": "checkpoint._assignment_map",
    "LoadDecision": "checkpoint._load_options",
    "LoadPlan": "checkpoint._load_options",
    "PreloadEntry": "checkpoint._load_options",
    "decide_and_load": "checkpoint._load_options",
    "decide_loading": "checkpoint._load_options",
    "CheckpointEntry": "checkpoint._tools",
    "average_checkpoints": "checkpoint._tools",
    "convert_checkpoint": "checkpoint._tools",
    "inspect_checkpoint": "checkpoint._tools",
    # store: checkpoints of a model, training state
    "KerasCallbackState": "store._callback_state",
    "Stateful": "store._callback_state",
    "adapt_callback": "store._callback_state",
    "collect_callback_states": "store._callback_state",
    "restore_callback_states": "store._callback_state",
    "KeepPolicy": "store._keep",
    "DirectoryLock": "store._lock",
    "RngState": "store._rng",
    "capture_rng_state": "store._rng",
    "restore_rng_state": "store._rng",
    "EpochRecord": "store._state",
    "TrainingState": "store._state",
    "read_training_state": "store._state",
    "CheckpointInfo": "store._info",
    "CheckpointStore": "store._store",
    "RestoredCheckpoint": "store._info",
    "checkpoint_prefix": "checkpoint._naming",
    # training: the epoch manager
    "PREEMPTED_EXIT_CODE": "training._preempt",
    "PreemptionHandler": "training._preempt",
    "LearningRateControl": "training._lr_control",
    "Config": "training._config",
    "load_config": "training._config",
    "TransitionManager": "training._manager",
    "BackupAndRestore": "training._backup",
    "train_from_config": "training._loop",
}

__all__ = sorted(["CheckpointError", "ClusterError", "ConfigError", "MissingParamsError", "MissingTensorsError",
                  "OutputChangedError", "ShapeMismatchError", "TransitionError", *_PUBLIC])


_SUBMODULES = ("keras",)  # public submodules: `transition.keras` (imported on first use, like the names)


def __getattr__(name: str) -> object:
    module = _PUBLIC.get(name)
    if module is None and name not in _SUBMODULES:
        raise AttributeError(f"module 'transition' has no attribute {name!r}")
    import importlib

    from transition.internal._quiet import quiet_tensorflow

    quiet_tensorflow()
    if module is None:
        value = importlib.import_module(f"transition.{name}")
        globals()[name] = value
        return value
    value = getattr(importlib.import_module(f"transition.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return [*__all__, *_SUBMODULES, "__version__"]
