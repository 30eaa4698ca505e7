"""transition: epoch transitions, param loading and exact resume for TensorFlow / Keras 3 training jobs.

The public API is re-exported here explicitly; implementation modules are private.
"""

from transition._errors import (
    CheckpointError,
    ConfigError,
    MissingParamsError,
    ShapeMismatchError,
    TransitionError,
)

# --- core (issue 2) ---
from transition._importing import ImportReport, ParamRecord, ParamsSnapshot, ParamStatus
from transition._netdict import NetDictDiff, diff_net_dicts
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

# --- epoch manager (issue 5) ---

__version__ = "0.1.0"
