"""Learning-rate control per epoch: constant and newbob-style, with RETURNN's option names.

Semantics follow RETURNN's `learning_rate_control.py` (our own code): the rate of an epoch is fixed when the epoch
starts and kept in the history together with the epoch's scores; a newbob control compares the chosen score of the
last two finished epochs and decays the rate when the improvement is too small. During pretraining the
`pretrain_learning_rate` is used, and the first epoch after pretraining starts again at `learning_rate`.
The history is JSON-able (`state_dict()` / `load_state_dict()`) and round-trips exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from transition.errors import ConfigError, did_you_mean
from transition.store._state import EpochRecord

__all__ = ["LearningRateControl", "LR_CONTROL_KINDS", "LR_CONFIG_ARGS", "LR_CONFIG_KEYS"]

#: accepted values of `learning_rate_control` -> our kind
LR_CONTROL_KINDS = {
    "constant": "constant",
    "newbob": "newbob_relative",
    "newbob_rel": "newbob_relative",
    "newbob_relative": "newbob_relative",
    "newbob_abs": "newbob_abs",
}

#: RETURNN's config keys of the learning-rate control -> the argument of `LearningRateControl`
LR_CONFIG_ARGS = {
    "learning_rate": "learning_rate",
    "learning_rates": "learning_rates",
    "learning_rate_control": "control",
    "learning_rate_control_error_measure": "error_measure",
    "learning_rate_control_relative_error_relative_lr": "relative_error_relative_lr",
    "learning_rate_control_min_num_epochs_per_new_lr": "min_num_epochs_per_new_lr",
    "newbob_learning_rate_decay": "decay",
    "newbob_relative_error_threshold": "relative_error_threshold",
    "newbob_relative_error_div_by_old": "relative_error_div_by_old",
    "newbob_error_threshold": "error_threshold",
    "min_learning_rate": "min_learning_rate",
    "pretrain_learning_rate": "pretrain_learning_rate",
}
LR_CONFIG_KEYS = tuple(LR_CONFIG_ARGS)


def _float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"option {key!r} must be a number, got {value!r} ({type(value).__name__})")
    return float(value)


class LearningRateControl:
    """Learning rate per epoch, and its history.

    `control`: "constant", "newbob" (= "newbob_relative", "newbob_rel") or "newbob_abs".
    `learning_rates`: fixed rates for the first epochs (a list for epochs 1, 2, ...) or a dict {epoch: rate}.
    """

    def __init__(
        self,
        learning_rate: float = 1.0,
        *,
        control: str = "constant",
        learning_rates: list[float] | Mapping[int, float] | None = None,
        error_measure: str | None = None,
        decay: float = 0.5,
        relative_error_threshold: float = -0.01,
        error_threshold: float = -0.01,
        relative_error_div_by_old: bool = False,
        relative_error_relative_lr: bool = False,
        min_num_epochs_per_new_lr: int = 0,
        min_learning_rate: float = 0.0,
        pretrain_learning_rate: float | None = None,
        num_pretrain_epochs: int = 0,
    ) -> None:
        if control not in LR_CONTROL_KINDS:
            hint = did_you_mean(str(control), LR_CONTROL_KINDS)
            extra = (
                " ('newbob_multi_epoch' is not supported)" if control == "newbob_multi_epoch" else ""
            )
            raise ConfigError(
                f"learning_rate_control={control!r} is not known{hint}{extra}; "
                f"use one of {', '.join(sorted(LR_CONTROL_KINDS))}"
            )
        self.kind = LR_CONTROL_KINDS[control]
        self.learning_rate = _float("learning_rate", learning_rate)
        self.decay = _float("newbob_learning_rate_decay", decay)
        self.relative_error_threshold = _float("newbob_relative_error_threshold", relative_error_threshold)
        self.error_threshold = _float("newbob_error_threshold", error_threshold)
        self.relative_error_div_by_old = bool(relative_error_div_by_old)
        self.relative_error_relative_lr = bool(relative_error_relative_lr)
        if isinstance(min_num_epochs_per_new_lr, bool) or not isinstance(min_num_epochs_per_new_lr, int):
            raise ConfigError(
                "option 'learning_rate_control_min_num_epochs_per_new_lr' must be an int, "
                f"got {min_num_epochs_per_new_lr!r}"
            )
        self.min_num_epochs_per_new_lr = min_num_epochs_per_new_lr
        self.min_learning_rate = _float("min_learning_rate", min_learning_rate)
        self.pretrain_learning_rate = (
            self.learning_rate
            if pretrain_learning_rate is None
            else _float("pretrain_learning_rate", pretrain_learning_rate)
        )
        if error_measure is not None and not isinstance(error_measure, str):
            raise ConfigError(
                f"option 'learning_rate_control_error_measure' must be a score name (str), got {error_measure!r}"
            )
        self.error_measure = error_measure
        self.num_pretrain_epochs = int(num_pretrain_epochs)
        if learning_rates is None:
            fixed: dict[int, float] = {}
        elif isinstance(learning_rates, Mapping):
            fixed = {int(e): _float(f"learning_rates[{e}]", v) for e, v in learning_rates.items()}
        elif isinstance(learning_rates, (list, tuple)):
            fixed = {i + 1: _float(f"learning_rates[{i}]", v) for i, v in enumerate(learning_rates)}
        else:
            raise ConfigError(
                f"option 'learning_rates' must be a list or a dict {{epoch: rate}}, got {learning_rates!r}"
            )
        if any(e < 1 for e in fixed):
            raise ConfigError(f"option 'learning_rates' has an epoch < 1: {sorted(fixed)}; epochs start at 1")
        self.fixed_learning_rates = fixed
        #: epoch -> EpochRecord(learning_rate, scores); the manager stores it in TrainingState.learning_rate_history
        self.history: dict[int, EpochRecord] = {}

    # --- construction from a config -------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, num_pretrain_epochs: int = 0) -> LearningRateControl:
        """Build from a config mapping with RETURNN's option names (absent keys take RETURNN's defaults)."""
        kwargs: dict[str, Any] = {"num_pretrain_epochs": num_pretrain_epochs}
        for key, arg in LR_CONFIG_ARGS.items():
            if key in config and config[key] is not None:
                kwargs[arg] = config[key]
        return cls(**kwargs)

    # --- per-epoch API --------------------------------------------------------------------------------------------
    def learning_rate_for_epoch(self, epoch: int) -> float:
        """The rate of `epoch`; decided (and recorded) on first call, then read from the history."""
        if epoch < 1:
            raise ConfigError(f"epoch must be >= 1, got {epoch}")
        if epoch in self.history:
            return self.history[epoch].learning_rate
        lr = self._decide(epoch)
        self.history[epoch] = EpochRecord(lr, {})
        return lr

    def peek_learning_rate(self, epoch: int) -> float:
        """The rate `epoch` would get now, without recording it."""
        if epoch in self.history:
            return self.history[epoch].learning_rate
        return self._decide(epoch)

    def set_epoch_scores(self, epoch: int, scores: Mapping[str, float]) -> None:
        """Record the scores of a finished epoch (merged into what is there)."""
        clean: dict[str, float] = {}
        for key, value in scores.items():
            if not isinstance(key, str):
                raise ConfigError(f"score names must be strings, got {key!r}")
            try:
                clean[key] = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"score {key!r} of epoch {epoch} must be a number, got {value!r}") from None
        if self.error_measure is not None and self.kind != "constant" and clean:
            if self._find_key(clean) is None:
                raise ConfigError(
                    f"learning_rate_control_error_measure={self.error_measure!r} is not among the scores of epoch "
                    f"{epoch}: {sorted(clean)}{did_you_mean(self.error_measure, clean)}; pass it to end_epoch or fix "
                    "the option"
                )
        lr = self.learning_rate_for_epoch(epoch)
        old = self.history[epoch]
        self.history[epoch] = EpochRecord(lr, {**old.scores, **clean})

    def error_key(self, scores: Mapping[str, float]) -> str | None:
        """The score that newbob compares, as RETURNN picks it (measure, then dev_score, dev_*, train_score)."""
        return self._find_key(scores)

    # --- state ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able history: {"history": [[epoch, learning_rate, {score: value}], ...]}."""
        return {
            "history": [
                [epoch, _json_float(rec.learning_rate), {k: _json_float(v) for k, v in rec.scores.items()}]
                for epoch, rec in sorted(self.history.items())
            ]
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the history written by `state_dict`."""
        try:
            rows = state["history"]
            history = {}
            for epoch, lr, scores in rows:
                if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
                    raise ValueError(f"bad epoch {epoch!r}")
                values = {str(k): _from_json_float(v) for k, v in scores.items()}
                history[epoch] = EpochRecord(_from_json_float(lr), values)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"learning-rate history in the training state is malformed ({exc}); expected "
                '{"history": [[epoch, learning_rate, {score: value}], ...]}'
            ) from None
        self.history = history

    # --- internals ------------------------------------------------------------------------------------------------
    def _decide(self, epoch: int) -> float:
        if epoch in self.fixed_learning_rates:
            return self.fixed_learning_rates[epoch]
        if epoch <= self.num_pretrain_epochs:
            return self.pretrain_learning_rate
        if 1 < epoch == self.num_pretrain_epochs + 1 and self.num_pretrain_epochs > 0:
            return self.learning_rate
        if self.min_num_epochs_per_new_lr > 1:
            last = [e for e in sorted(self.history) if e < epoch][-self.min_num_epochs_per_new_lr :]
            lrs = [self.history[e].learning_rate for e in last]
            if len(set(lrs)) >= 2 or 0 < len(lrs) < self.min_num_epochs_per_new_lr:
                return lrs[-1]
        last_epoch = self._last_epoch(epoch)
        if last_epoch is None:
            return self.learning_rate
        lr = self.history[last_epoch].learning_rate
        if self.kind == "constant":
            return lr
        last2 = self._last_epoch(last_epoch)
        if last2 is None:
            return lr
        old_key, old = self._score(last2)
        new_key, new = self._score(last_epoch)
        if old is None or new is None or old_key != new_key:
            return lr
        if self.kind == "newbob_abs":
            decay = (new - old) > self.error_threshold
        else:
            denom = abs(old) if self.relative_error_div_by_old else abs(new)
            if denom == 0.0:
                return lr
            rel = (new - old) / denom
            if self.relative_error_relative_lr and lr > 0 and self.learning_rate > 0:
                rel /= lr / self.learning_rate
            decay = rel > self.relative_error_threshold
        if decay:
            lr = max(lr * self.decay, self.min_learning_rate)
        return lr

    def _last_epoch(self, epoch: int) -> int | None:
        before = [e for e in self.history if e < epoch]
        return max(before) if before else None

    def _score(self, epoch: int) -> tuple[str | None, float | None]:
        scores = self.history[epoch].scores
        key = self._find_key(scores)
        if key is None:
            return None, None
        return key, scores[key]

    def _find_key(self, scores: Mapping[str, float]) -> str | None:
        if not scores:
            return None
        keys = []
        if self.error_measure is not None:
            keys += [self.error_measure, self.error_measure + "_output"]
            for key in keys:
                if key in scores:
                    return key
            return None
        for key in ("dev_score", "dev_score_output"):
            if key in scores:
                return key
        dev = sorted(k for k in scores if k.startswith("dev_"))
        if dev:
            return dev[0]
        for key in ("train_score", "train_score_output"):
            if key in scores:
                return key
        return min(scores)


def _json_float(value: float) -> float | str:
    """JSON has no NaN / inf: write them as strings."""
    if math.isfinite(value):
        return value
    return repr(value)  # 'nan', 'inf', '-inf'


def _from_json_float(value: Any) -> float:
    if isinstance(value, str):
        if value not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad number {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"bad number {value!r}")
    return float(value)
