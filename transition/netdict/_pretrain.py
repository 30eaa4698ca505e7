"""Pretrain schedules: which net dict (and copy mode) each epoch trains, with RETURNN's semantics (own code).

The construction algorithms live in `_pretrain_construct.py`. Step dicts keep a "#copy_param_mode" key (as in
RETURNN); "#repetition" is consumed here. `WrapEpochValue`s anywhere in a net dict are resolved per epoch.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from transition.errors import ConfigError, did_you_mean
from transition.netdict._construct import construct_steps, normalize_sources
from transition.params._copy_modes import PRESERVING_MODES, check_copy_param_mode

__all__ = ["Pretrain", "WrapEpochValue", "pretrain_from_config"]
_OPTION_KEYS = (
    "construction_algo",
    "repetitions",
    "copy_param_mode",
    "copy_output_layer",
    "output_layers",
    "input_layers",
    "greedy",
)


@attrs.frozen
class WrapEpochValue:
    """A value in a net dict that depends on the epoch: `func(epoch=epoch)` gives the value for that epoch
    (as RETURNN calls it; a function without a parameter named `epoch` gets it positionally)."""

    func: Callable[..., Any]

    def get_value(self, epoch: int) -> Any:
        """The value for this epoch: `func(epoch=epoch)`, or `func(epoch)` without a parameter named `epoch`."""
        try:
            params = inspect.signature(self.func).parameters
        except (TypeError, ValueError):  # some builtins have no signature
            return self.func(epoch=epoch)
        by_name = "epoch" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        return self.func(epoch=epoch) if by_name else self.func(epoch)


def _is_wrapped(value: Any) -> bool:
    # RETURNN's own WrapEpochValue (same interface) is accepted too, so RETURNN configs keep working.
    return isinstance(value, WrapEpochValue) or (
        type(value).__name__ == "WrapEpochValue" and callable(getattr(value, "get_value", None))
    )


def _resolve(value: Any, epoch: int) -> Any:
    if _is_wrapped(value):
        return value.get_value(epoch=epoch)
    if isinstance(value, dict):
        return {k: _resolve(v, epoch) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_resolve(v, epoch) for v in value)
    return value


def _check_count(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"pretrain: {what} must be an int >= {minimum}, got {value!r}")
    return value


def _repetitions_per_step(repetitions: Any, num_steps: int) -> list[int]:
    """Repetitions per step from None / an int / a list / a dict with "default", "final" and step indices."""
    if not repetitions:  # None, 0, [] and {} mean once each, as in RETURNN
        return [1] * num_steps
    if isinstance(repetitions, Mapping):
        reps = dict(repetitions)
        result = [_check_count(reps.pop("default", 1), "repetitions['default']")] * num_steps
        final = reps.pop("final", None)
        for key, value in reps.items():
            if isinstance(key, bool) or not isinstance(key, int) or not -num_steps <= key < num_steps:
                hint = did_you_mean(key, ["default", "final"]) if isinstance(key, str) else ""
                raise ConfigError(
                    f"pretrain: repetitions key {key!r}{hint} is not 'default', 'final' or a step index in "
                    f"[0, {num_steps}) (the schedule has {num_steps} steps)"
                )
            if final is not None and key % num_steps == num_steps - 1:
                raise ConfigError(f"pretrain: repetitions sets the last step twice: by 'final' and by {key!r}")
            result[key] = _check_count(value, f"repetitions[{key!r}]")
        if final is not None:
            result[-1] = _check_count(final, "repetitions['final']")
        return result
    if isinstance(repetitions, (list, tuple)):
        reps = [_check_count(r, f"repetitions[{i}]") for i, r in enumerate(repetitions)]
        if len(reps) > num_steps:
            raise ConfigError(
                f"pretrain: repetitions has {len(reps)} entries but the schedule has only {num_steps} steps; "
                f"give at most {num_steps} (the last entry repeats for the remaining steps)"
            )
        return reps + [reps[-1]] * (num_steps - len(reps))
    return [_check_count(repetitions, "repetitions", minimum=1)] * num_steps


class Pretrain:
    """A pretrain schedule: the net dict of every epoch, growing towards the final net (RETURNN's semantics).

    construction_algo: "from_output" (default), "from_input", "no_network_modifications" or a function
    `(idx, net_dict) -> net_dict | None` (None ends the construction; the final net is appended).
    repetitions: epochs per step: an int, a list (the last entry repeats) or a dict with "default", "final" and
    step indices; a step dict's "#repetition" key overrides it.
    """

    def __init__(
        self,
        net_dict: Mapping[str, Any],
        construction_algo: str | Callable[..., Any] = "from_output",
        repetitions: int | Sequence[int] | Mapping[Any, int] | None = None,
        copy_param_mode: str | None = None,
        copy_output_layer: bool | str | None = None,
        output_layers: Sequence[str] = ("output",),
        input_layers: Sequence[str] = ("data",),
    ) -> None:
        self.copy_param_mode = _check_copy_mode(copy_param_mode, "copy_param_mode")
        self.copy_output_layer = _copy_output_layer(copy_output_layer, copy_param_mode)
        self.construction_algo = construction_algo
        for what, names in (("output_layers", output_layers), ("input_layers", input_layers)):
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"pretrain: {what} must be a list of layer names, got {names!r}")
        original = normalize_sources(net_dict, what="pretrain net dict")
        steps = construct_steps(original, construction_algo, tuple(output_layers), tuple(input_layers))
        steps = [dict(step) for step in steps]
        reps = _repetitions_per_step(repetitions, len(steps))
        for i, step in enumerate(steps):
            if "#repetition" in step:
                reps[i] = _check_count(step.pop("#repetition"), f"'#repetition' of step {i}")
            _check_copy_mode(step.get("#copy_param_mode"), f"'#copy_param_mode' of step {i}")
        self.repetitions: tuple[int, ...] = tuple(reps)
        if reps[-1] < 1:  # RETURNN would then train the step before the final net after pretraining
            raise ConfigError(
                f"pretrain: the final step (the full net) has {reps[-1]} repetitions; give it >= 1, e.g. "
                "repetitions={'default': 1, 'final': 1}"
            )
        expanded = [step for step, n in zip(steps, reps) for _ in range(n)]
        self._epoch_nets = [_resolve(step, epoch) for epoch, step in enumerate(expanded, start=1)]

    def __repr__(self) -> str:
        return (
            f"Pretrain(construction_algo={self.construction_algo!r}, num_epochs={self.get_train_num_epochs()}, "
            f"repetitions={list(self.repetitions)!r})"
        )

    def get_train_num_epochs(self) -> int:
        """The number of pretrain epochs (steps times their repetitions)."""
        return len(self._epoch_nets)

    def is_pretrain_epoch(self, epoch: int) -> bool:
        """Whether `epoch` (1-based) is covered by the schedule."""
        return 1 <= _check_epoch(epoch) <= len(self._epoch_nets)

    def get_network_json_for_epoch(self, epoch: int) -> dict[str, Any]:
        """The net dict (a copy) for `epoch` (1-based); after pretraining the final net."""
        return copy.deepcopy(self._epoch_nets[min(_check_epoch(epoch), len(self._epoch_nets)) - 1])

    def get_final_network_json(self) -> dict[str, Any]:
        """The final net dict (its epoch-dependent values resolved for the last pretrain epoch), a copy."""
        return copy.deepcopy(self._epoch_nets[-1])

    def get_copy_param_mode_for_epoch(self, epoch: int) -> str | None:
        """The copy mode for the transition into `epoch`: the step's "#copy_param_mode", else the option
        copy_param_mode during pretraining, else None (as RETURNN)."""
        net = self._epoch_nets[min(_check_epoch(epoch), len(self._epoch_nets)) - 1]
        return net.get("#copy_param_mode", self.copy_param_mode if self.is_pretrain_epoch(epoch) else None)


def _check_epoch(epoch: int) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ConfigError(f"pretrain: epochs start at 1, got epoch {epoch!r}")
    return epoch


def _check_copy_mode(mode: Any, what: str) -> str | None:
    return check_copy_param_mode(mode, f"pretrain {what}")


def _copy_output_layer(value: Any, copy_param_mode: str | None) -> bool | str:
    """RETURNN's rule: default copy_param_mode, else "ifpossible"; "reset" means False (do not copy)."""
    if value is None:
        value = copy_param_mode if copy_param_mode is not None else "ifpossible"
    if value == "reset":
        return False
    if value is True or value is False or value in ("ifpossible", "subset", *PRESERVING_MODES):
        return value
    raise ConfigError(
        f"pretrain: copy_output_layer {value!r} is not one of True, False, 'ifpossible', 'subset', 'reset', "
        "'preserve', 'net2wider'"
    )


def _to_bool_or_str(value: str) -> bool | str:
    low = value.strip().lower()
    if low in ("true", "yes", "on", "1"):
        return True
    if low in ("false", "no", "off", "0", ""):
        return False
    return value


def _int_list(value: str) -> list[int]:
    try:
        return [int(v) for v in value.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"pretrain: pretrain_repetitions {value!r} is not a list of ints, e.g. '1 1 2'") from None


def pretrain_from_config(
    value: Any,
    net_dict: Mapping[str, Any],
    *,
    pretrain_repetitions: Any = None,
    pretrain_construction_algo: Any = None,
    pretrain_copy_output_layer: Any = None,
    pretrain_greedy: Any = None,
) -> Pretrain | None:
    """A Pretrain from the config value `pretrain` ("default", True, a dict of options; None / False / "" / {}
    mean no pretraining) and the config's `network`. The older `pretrain_*` config keys fill in options that the
    dict does not set."""
    if isinstance(value, str):
        value = _to_bool_or_str(value)
    if not value:
        return None
    if value is True or value == "default":
        opts: dict[str, Any] = {}
    elif isinstance(value, Mapping):
        opts = dict(value)
        for key in opts:
            if key not in _OPTION_KEYS:
                hint = did_you_mean(str(key), _OPTION_KEYS)
                raise ConfigError(f"pretrain: unknown option {key!r}{hint}; known options: {list(_OPTION_KEYS)}")
    else:
        raise ConfigError(
            f"pretrain: unknown value {value!r}; use 'default', True, a dict of options {list(_OPTION_KEYS)} or None"
        )
    for key, val in (
        ("repetitions", pretrain_repetitions),
        ("construction_algo", pretrain_construction_algo),
        ("copy_output_layer", pretrain_copy_output_layer),
        ("greedy", pretrain_greedy),
    ):
        if isinstance(val, str) and key == "repetitions":
            val = _int_list(val)
        elif isinstance(val, str) and key != "construction_algo":
            val = _to_bool_or_str(val)
        if val is not None:
            opts.setdefault(key, val)
    greedy = opts.pop("greedy", None)
    if greedy:
        raise ConfigError(
            f"pretrain: option 'greedy'={greedy!r} is not supported (RETURNN dropped it too); remove it or set False"
        )
    return Pretrain(net_dict, **opts)
