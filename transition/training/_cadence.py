"""When the manager saves within an epoch: the one save-cadence rule."""

from __future__ import annotations

import attrs

from transition.training._options import POS_INT

__all__ = ["SaveCadence"]


@attrs.frozen
class SaveCadence:
    """Save a mid-epoch checkpoint after every `every_n_steps`-th global step (None: only at epoch ends).

    Counting global steps (not steps within the epoch) keeps the cadence the same across epochs of any length and
    across a resume."""

    every_n_steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(POS_INT))

    def due(self, global_step: int) -> bool:
        """Whether a save is due after `global_step` steps in all."""
        return bool(self.every_n_steps) and global_step > 0 and global_step % self.every_n_steps == 0
