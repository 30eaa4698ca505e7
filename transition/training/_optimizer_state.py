"""The optimizer side of the epoch manager: building optimizers from config values, their learning rate, and
saving / restoring their state (iterations and slot variables) by param name; plus restoring params from a checkpoint.

Optimizer variables are named `iterations` and `{slot}/{layer}/{param}` (e.g. `momentums/l1/W`); the store writes
them under `optimizer/...`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from transition.checkpoint._param_renames import with_current_names
from transition.errors import CheckpointError, ConfigError, did_you_mean, listed
from transition.internal._keras_private import optimizer_iterations_variable
from transition.network._slots import named_slot_variables

if TYPE_CHECKING:
    import keras
    import numpy as np

    from transition.network._network import Network

__all__ = [
    "optimizer_factory",
    "learning_rate_of",
    "set_learning_rate",
    "optimizer_arrays",
    "restore_optimizer",
    "assign_checkpoint_params",
]

OptimizerFactory = Callable[[], "keras.optimizers.Optimizer"]


def _keras_optimizer_classes() -> dict[str, type]:
    import keras

    base = keras.optimizers.Optimizer
    classes = {}
    for attr in dir(keras.optimizers):
        cls = getattr(keras.optimizers, attr)
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base:
            classes[attr.lower()] = cls
    return classes


def optimizer_factory(value: OptimizerFactory | Mapping[str, Any]) -> OptimizerFactory:
    """A function creating the optimizer: `value` itself if callable, else from a config dict
    {"class": "adam", **options} (the Keras optimizer class, by name in any case). Bad options fail now."""
    if callable(value):
        return value
    if not isinstance(value, Mapping) or not isinstance(value.get("class"), str):
        raise ConfigError(f'optimizer must be a function or a dict like {{"class": "adam"}}, got {value!r}')
    opts = dict(value)
    name = opts.pop("class")
    if "learning_rate" in opts or "lr" in opts:
        raise ConfigError(
            f"optimizer {value!r}: set the learning rate with the top-level option 'learning_rate' "
            "(the learning-rate control owns it), not in the optimizer dict"
        )
    classes = _keras_optimizer_classes()
    key = name.lower().replace("_", "")
    if key not in classes:
        raise ConfigError(f"optimizer class {name!r} is not a Keras optimizer{did_you_mean(key, classes)}; "
                          f"known: {', '.join(sorted(classes))}")
    cls = classes[key]

    def make() -> keras.optimizers.Optimizer:
        try:
            return cls(**opts)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"optimizer {value!r}: {exc}") from None

    make()  # fail early on a bad option
    return make


def learning_rate_of(optimizer: keras.optimizers.Optimizer) -> float:
    """The optimizer's current learning rate as a float."""
    lr = optimizer.learning_rate
    return float(lr.numpy()) if hasattr(lr, "numpy") else float(lr)


def set_learning_rate(optimizer: keras.optimizers.Optimizer, lr: float) -> None:
    """Set the learning rate in place (assigning the variable, so compiled train steps see it)."""
    optimizer.learning_rate = lr  # Keras assigns its learning-rate variable (compiled steps see the new value)


def _slot_items(optimizer: keras.optimizers.Optimizer, network: Network) -> list[tuple[str, Any]]:
    """[(name "{slot}/{layer}/{param}", slot variable)] for the network's params the optimizer was built on."""
    return [(f"{slot}/{layer}/{param}", var) for slot, layer, param, var in named_slot_variables(optimizer, network)]


def _other_items(optimizer: keras.optimizers.Optimizer, named: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """[("var/{name}", variable)] of the optimizer's variables that are neither the step counter nor a slot of a
    param (e.g. its learning rate, a loss scale); a repeated name gets "_1", "_2", ... in the optimizer's order."""
    taken = {id(v) for v in named.values()}
    out, seen = [], set()
    for var in optimizer.variables:
        if id(var) in taken:
            continue
        name, i = f"var/{var.name}", 1
        while name in seen:
            name, i = f"var/{var.name}_{i}", i + 1
        seen.add(name)
        out.append((name, var))
    return out


def optimizer_arrays(optimizer: keras.optimizers.Optimizer, network: Network, *, all_variables: bool = False
                     ) -> dict[str, Any]:
    """{"iterations": var, "{slot}/{layer}/{param}": var} of a built optimizer (the store writes "optimizer/...");
    with `all_variables` also its other variables as "var/{name}" (e.g. the learning rate)."""
    out: dict[str, Any] = {"iterations": optimizer_iterations_variable(optimizer)}
    out.update(_slot_items(optimizer, network))
    if all_variables:
        out.update(_other_items(optimizer, out))
    return out


def restore_optimizer(
    optimizer: keras.optimizers.Optimizer, network: Network, arrays: Mapping[str, np.ndarray], prefix: str, *,
    all_variables: bool = False,
) -> None:
    """Assign the arrays written by `optimizer_arrays` (with the same `all_variables`) to a built optimizer;
    CheckpointError naming the variable when one is missing or has another shape."""
    if "iterations" not in arrays:
        raise CheckpointError(f"checkpoint {prefix} has no optimizer/iterations; it was not written by the manager")
    optimizer_iterations_variable(optimizer).assign(arrays["iterations"])
    items = _slot_items(optimizer, network)
    if all_variables:
        items += _other_items(optimizer, {"iterations": optimizer_iterations_variable(optimizer), **dict(items)})
    arrays = with_current_names(arrays, [key for key, _ in items])  # slots saved under a param's old name
    for key, slot_var in items:
        if key not in arrays:
            raise CheckpointError(f"checkpoint {prefix} has no optimizer/{key}{did_you_mean(key, arrays)}; "
                                  "was it written with another optimizer?")
        value = arrays[key]
        if tuple(value.shape) != tuple(slot_var.shape):
            raise CheckpointError(f"checkpoint {prefix}: optimizer/{key} has shape {tuple(value.shape)}, the "
                                  f"optimizer needs {tuple(slot_var.shape)}")
        slot_var.assign(value)


def assign_checkpoint_params(network: Network, params: Mapping[str, np.ndarray], prefix: str) -> None:
    """Assign the checkpoint's params {"layer/param": array} that were not created from them
    (`network.initialized_from_values`); the checkpoint and the network must have the same params and shapes."""
    done = {f"{layer}/{param}" for layer, param in getattr(network, "initialized_from_values", ())}
    variables = network.param_variables()
    params = with_current_names(params, variables)  # a checkpoint written before a param's rename
    missing = [name for name in variables if name not in params]
    if missing:
        hint = "" if getattr(network, "net_dict", None) is not None else (
            " (a Keras model: give its layers fixed names, Keras numbers unnamed layers per process)")
        raise CheckpointError(f"checkpoint {prefix} lacks params {listed(missing, 5)} of the network of its epoch; the "
                              f"config's network changed since it was written?{hint} Use the same network, or load "
                              "params with 'load' / 'preload_from_files' into a new model path")
    unknown = [name for name in params if name not in variables]
    if unknown:
        raise CheckpointError(f"checkpoint {prefix} has params {listed(unknown, 5)} that the network of its epoch lacks; "
                              "the config's network changed since it was written?")
    for name, var in variables.items():
        if name in done:
            continue
        value = params[name]
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointError(f"checkpoint {prefix}: param {name} has shape {tuple(value.shape)}, the network "
                                  f"needs {tuple(var.shape)}; the config's network changed since it was written?")
        var.assign(value)
