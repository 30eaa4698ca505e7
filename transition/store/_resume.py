"""The resume decision, the one home of it (used by `TransitionManager` and `transition status`): which checkpoint
of a model a restart continues from.

Newest first, the committed checkpoints are checked (`_listing.check_checkpoint`: checksums, the bundle's index, the
training state) until one is good; newer damaged ones are skipped with the reason. Only the store's own (committed)
checkpoints are resumed from: a model whose files were all written by other tools (e.g. RETURNN's `network.NNN`)
resumes from nothing, and the config's loading rules apply to them.
Checkpoints of our own that exist but none of which is good are an error, never a silent fresh start.
"""

from __future__ import annotations

import attrs

from transition.errors import CheckpointError, listed
from transition.store._info import CheckpointInfo
from transition.store._listing import NOT_COMMITTED_FOREIGN, check_checkpoint

__all__ = ["ResumeScan", "scan_for_resume"]


@attrs.frozen
class ResumeScan:
    """What `scan_for_resume` found: every checkpoint (oldest first), the newest good one (checksums verified) and
    the newer committed ones it skipped as damaged (newest first, with the reason)."""

    model: str
    checkpoints: list[CheckpointInfo]
    good: CheckpointInfo | None
    skipped: tuple[CheckpointInfo, ...]

    @property
    def ours(self) -> bool:
        """Whether the model has checkpoints of the store's own (committed ones, good or damaged)."""
        return any(i.committed for i in self.checkpoints)

    @property
    def resume_from(self) -> CheckpointInfo | None:
        """The checkpoint a resume continues from; None: start anew (with the loading rules)."""
        return self.good if self.ours else None

    @property
    def unusable(self) -> list[CheckpointInfo]:
        """The skipped checkpoints and the saves that never got a commit file."""
        return list(self.skipped) + [i for i in self.checkpoints if i.damaged == NOT_COMMITTED_FOREIGN]

    @property
    def error(self) -> CheckpointError | None:
        """Checkpoints exist but none is good (what `CheckpointStore.latest_good` raises)."""
        if self.good is not None or not self.unusable:
            return None
        listing = listed((f"{i.prefix}: {i.damaged}" for i in self.unusable), 5, sep="; ")
        return CheckpointError(
            f"model {self.model} has checkpoints but none is good ({listing}). Not starting from scratch: "
            "repair or move these files away, or load params explicitly"
        )

    @property
    def resume_error(self) -> CheckpointError | None:
        """The error a resume must raise: checkpoints of our own exist but none is good."""
        return self.error if self.ours else None


def scan_for_resume(model: str, infos: list[CheckpointInfo]) -> ResumeScan:
    """Verify `infos` (the model's listing, sizes checked) newest first until a good one is found."""
    skipped: list[CheckpointInfo] = []
    for info in reversed(infos):
        if not info.committed:
            continue
        if info.good:
            try:
                good = check_checkpoint(model, info.prefix, checksums=True)
            except CheckpointError as exc:
                info = attrs.evolve(info, damaged=str(exc))
            else:
                return ResumeScan(model, infos, good, tuple(skipped))
        skipped.append(info)
    return ResumeScan(model, infos, None, tuple(skipped))
