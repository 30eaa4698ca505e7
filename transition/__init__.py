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

# --- loading (issue 3) ---

# --- checkpoints and training state (issue 4) ---

# --- epoch manager (issue 5) ---

__version__ = "0.1.0"
