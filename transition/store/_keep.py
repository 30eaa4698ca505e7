"""Which checkpoints to keep: the last N epochs, the best K by a named score, every M-th epoch.

The policy is stateless: everything it needs (epochs, scores) is in the commit files, so its "state" (the best
scores seen) survives restarts by construction. It only ever deletes good (committed, undamaged) checkpoints, and
never the newest good one, so at least one good checkpoint always remains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import attrs

from transition.errors import ConfigError, did_you_mean

__all__ = ["KeepPolicy"]


class _Info(Protocol):  # what the policy reads of a CheckpointInfo
    epoch: int
    step: int
    epoch_finished: bool
    scores: Mapping[str, float]

    @property
    def good(self) -> bool: ...

    @property
    def order(self) -> tuple[int, int, int]: ...


def _non_negative(_inst, attribute, value) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ConfigError(f"KeepPolicy.{attribute.name} must be an int >= 0 or None, got {value!r}")


@attrs.frozen
class KeepPolicy:
    """keep_last: the N newest epoch-end checkpoints (None: all). keep_best: the K best epoch-end checkpoints by
    `score` (`mode` "min" or "max"; those without the score or with NaN do not compete). keep_every: every epoch that
    is a multiple of M. Mid-epoch checkpoints are kept only while one of them is the newest good checkpoint (they
    exist for resuming). The newest good checkpoint is always kept.
    """

    keep_last: int | None = attrs.field(default=2, validator=_non_negative)
    keep_best: int = attrs.field(default=0, validator=_non_negative)
    score: str | None = None
    mode: Literal["min", "max"] = "min"
    keep_every: int | None = attrs.field(default=None, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ConfigError(f"KeepPolicy.mode must be 'min' or 'max', got {self.mode!r}")
        if self.keep_best and not self.score:
            raise ConfigError(f"KeepPolicy(keep_best={self.keep_best}) needs score='<name of a score>'")
        if self.keep_every == 0:
            raise ConfigError("KeepPolicy.keep_every must be >= 1 (or None to keep no extra epochs)")

    def select_to_keep(self, infos: Sequence[_Info]) -> list[_Info]:
        """The good checkpoints this policy keeps, oldest first."""
        good = sorted((i for i in infos if i.good), key=lambda i: i.order)
        if not good:
            return []
        keep = {id(good[-1]): good[-1]}  # the newest good one, whatever it is
        ends = [i for i in good if i.epoch_finished]
        if self.keep_last is None:
            keep.update((id(i), i) for i in ends)
        elif self.keep_last:
            keep.update((id(i), i) for i in ends[-self.keep_last :])
        if self.keep_every:
            keep.update((id(i), i) for i in ends if i.epoch % self.keep_every == 0)
        if self.keep_best:
            keep.update((id(i), i) for i in self._best(ends))
        return [i for i in good if id(i) in keep]

    def select_to_delete(self, infos: Sequence[_Info]) -> list[_Info]:
        """The good checkpoints to delete, oldest first (never the newest good one; damaged ones are left alone)."""
        kept = {id(i) for i in self.select_to_keep(infos)}
        return sorted((i for i in infos if i.good and id(i) not in kept), key=lambda i: i.order)

    def _best(self, ends: list[_Info]) -> list[_Info]:
        assert self.score is not None
        scored = [i for i in ends if self.score in i.scores]
        if not scored:
            seen = {name for i in ends for name in i.scores}
            if seen:
                raise ConfigError(
                    f"KeepPolicy(score={self.score!r}) matches no score of the checkpoints"
                    f"{did_you_mean(self.score, seen)}; "
                    f"they have {sorted(seen)}"
                )
            return []
        sign = 1.0 if self.mode == "min" else -1.0

        def key(i: _Info) -> tuple[bool, float, tuple[int, int, int]]:
            value = float(i.scores[self.score])
            bad = math.isnan(value)
            # ties: the newer one wins (negated order sorts it first)
            return (bad, 0.0 if bad else sign * value, tuple(-x for x in i.order))

        return sorted(scored, key=key)[: self.keep_best]
