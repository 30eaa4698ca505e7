"""`transition.keras`: Keras-facing tools of `transition`, for `model.fit` users.

- `BackupAndRestore(backup_dir, save_freq="epoch", delete_checkpoint=True, callbacks=())`: a drop-in for
  `keras.callbacks.BackupAndRestore` whose resume is exact (RNG states, all optimizer variables, the given
  callbacks' states, mid-epoch positions; atomic, checksummed backups with fall-back past a damaged one).
"""

from __future__ import annotations

from transition.internal._quiet import quiet_tensorflow

quiet_tensorflow()

from transition.training._backup import BackupAndRestore  # noqa: E402

__all__ = ["BackupAndRestore"]
