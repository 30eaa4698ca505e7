"""transition: epoch transitions, param loading and exact resume for TensorFlow / Keras 3 training jobs.

The public API is re-exported here explicitly; implementation modules are private.
"""

from transition._quiet import quiet_tensorflow as _quiet_tensorflow

_quiet_tensorflow()

from transition._errors import (
    CheckpointError,
    ConfigError,
    MissingParamsError,
    ShapeMismatchError,
    TransitionError,
)

# --- core (issue 2) ---
from transition._importing import ImportReport, ParamRecord, ParamsSnapshot, ParamStatus
from transition._layers_base import REQUIRED, DataInfo, NetLayer, layer_class_names, register_layer_class
from transition._netdict import NetDictDiff, diff_net_dicts
from transition._network import Layer, Network
from transition._slots import SlotsSnapshot
from transition._split import copy_with_new_split_axes
from transition._transition import TransitionResult, transition_network
from transition._pretrain import Pretrain, WrapEpochValue, pretrain_from_config

# --- loading (issue 3) ---
from transition._ckpt_tools import (
    CheckpointEntry,
    average_checkpoints,
    convert_checkpoint,
    inspect_checkpoint,
)
from transition._assignment_map import init_from_checkpoint
from transition._load_options import LoadDecision, LoadPlan, PreloadEntry, decide_and_load, decide_loading
from transition._loading import LoadReport, chain_restore, load_checkpoint, restore_from_dict
from transition._reader import (
    CheckpointReader,
    find_epoch_model,
    list_epoch_models,
    open_checkpoint,
    read_checkpoint,
)

# --- checkpoints and training state (issue 4) ---
from transition._callback_state import (
    KerasCallbackState,
    Stateful,
    adapt_callback,
    collect_callback_states,
    restore_callback_states,
)
from transition._keep import KeepPolicy
from transition._lock import DirectoryLock
from transition._preempt import PREEMPTED_EXIT_CODE, PreemptionHandler
from transition._rng import RngState, capture_rng_state, restore_rng_state
from transition._state import EpochRecord, TrainingState, read_training_state
from transition._store import CheckpointInfo, CheckpointStore, RestoredCheckpoint, checkpoint_prefix

# --- epoch manager (issue 5) ---
from transition._config import Config, load_config
from transition._lr_control import LearningRateControl
from transition._manager import TransitionManager
from transition._train_loop import train_from_config

__version__ = "0.1.0"

__all__ = [
    "CheckpointEntry",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointReader",
    "CheckpointStore",
    "Config",
    "ConfigError",
    "DataInfo",
    "DirectoryLock",
    "EpochRecord",
    "ImportReport",
    "KeepPolicy",
    "KerasCallbackState",
    "Layer",
    "LearningRateControl",
    "LoadDecision",
    "LoadPlan",
    "LoadReport",
    "MissingParamsError",
    "NetDictDiff",
    "NetLayer",
    "Network",
    "PREEMPTED_EXIT_CODE",
    "ParamRecord",
    "ParamStatus",
    "ParamsSnapshot",
    "PreemptionHandler",
    "PreloadEntry",
    "Pretrain",
    "REQUIRED",
    "RestoredCheckpoint",
    "RngState",
    "ShapeMismatchError",
    "SlotsSnapshot",
    "Stateful",
    "TrainingState",
    "TransitionError",
    "TransitionManager",
    "TransitionResult",
    "WrapEpochValue",
    "adapt_callback",
    "average_checkpoints",
    "capture_rng_state",
    "chain_restore",
    "checkpoint_prefix",
    "collect_callback_states",
    "convert_checkpoint",
    "copy_with_new_split_axes",
    "decide_and_load",
    "decide_loading",
    "diff_net_dicts",
    "find_epoch_model",
    "init_from_checkpoint",
    "inspect_checkpoint",
    "layer_class_names",
    "list_epoch_models",
    "load_checkpoint",
    "load_config",
    "open_checkpoint",
    "pretrain_from_config",
    "read_checkpoint",
    "read_training_state",
    "register_layer_class",
    "restore_callback_states",
    "restore_from_dict",
    "restore_rng_state",
    "train_from_config",
    "transition_network",
]
