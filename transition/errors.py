"""Exceptions of `transition`, and the helpers of messages: "did you mean" hints, lists never cut silently, counts."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "TransitionError",
    "ConfigError",
    "ShapeMismatchError",
    "CheckpointError",
    "MissingParamsError",
    "MissingTensorsError",
    "OutputChangedError",
    "ClusterError",
    "close_matches",
    "did_you_mean",
    "listed",
    "counted",
]


class TransitionError(Exception):
    """Base class of every error raised by `transition`."""


class ConfigError(TransitionError, ValueError):
    """An option, key or name given by the user is wrong (unknown, matches nothing, bad type)."""


class ShapeMismatchError(TransitionError, ValueError):
    """A value does not fit the variable it is meant for; the message names both shapes."""


class CheckpointError(TransitionError, OSError):
    """A checkpoint is missing, unreadable or damaged; the message names the path."""


class ClusterError(TransitionError):
    """A worker of a multi-worker job stopped or cannot be reached; the message says what to relaunch."""


class MissingParamsError(TransitionError, KeyError):
    """Params that a load needs are not in the checkpoint."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingTensorsError(MissingParamsError, ValueError):
    """Tensors an assignment map names are not in the checkpoint; also a ValueError, as TF's init_from_checkpoint
    raises one."""


class OutputChangedError(TransitionError):
    """A transition checked with `verify_inputs` changed the network's output beyond the tolerance; the message
    names the first layer whose output moved."""


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to `n` candidates that look like `name` (for "did you mean" hints)."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return " (did you mean 'x'?)" or "" when nothing is close."""
    matches = close_matches(name, candidates)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"


def listed(items: Iterable[object], limit: int = 10, sep: str | None = None) -> str:
    """The items as a list for a message, e.g. "['a', 'b']" (with `sep`: the items as text joined by it, e.g.
    "a; b"); past `limit` items the rest are counted, never cut silently: "['a', 'b', 'c'] ... and 4 more"."""
    items = list(items)
    shown = repr(items[:limit]) if sep is None else sep.join(str(i) for i in items[:limit])
    return shown if len(items) <= limit else f"{shown} ... and {len(items) - limit} more"


def counted(n: int, noun: str) -> str:
    """`1 checkpoint`, `2 checkpoints` (the plural adds "s")."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
