"""The network of an epoch is a net dict or a built Keras model: building either, whether the epoch needs a
transition, and which of the manager's `custom_param_importers` apply.

A Keras model given for an epoch is the network as it is (the manager wraps it with `Network.from_keras`, its own
init is the fresh init of new params). When the model of the next epoch has the same architecture as the current
one (the same layers, layer configs, param shapes and connections; see `network._keras_wrap.keras_architecture`),
the epoch is no transition: training goes on with the current model object, and the new object is not used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from transition.errors import ConfigError, did_you_mean
from transition.netdict._netdict import diff_net_dicts, is_layer_key
from transition.network._keras_wrap import diff_architectures, is_keras_model, keras_architecture, keras_layers
from transition.network._network import Network

if TYPE_CHECKING:
    import numpy as np

__all__ = ["check_network_spec", "network_of", "needs_transition", "layer_names", "importers_for",
           "check_importer_names"]


def check_network_spec(spec: Any, where: str) -> Any:
    """`spec` if it is a net dict or a Keras model, else a ConfigError naming `where` (e.g. "get_network(epoch=3)")."""
    if isinstance(spec, Mapping):
        return dict(spec)
    if is_keras_model(spec):
        return spec
    if isinstance(spec, Network):
        raise ConfigError(f"{where} returned a transition.Network; return its Keras model (network.keras_model) or a "
                          "net dict: the manager wraps models itself")
    raise ConfigError(f"{where} returned a {type(spec).__name__}; return a net dict or a built keras.Model")


def network_of(spec: Any, extern_data: Mapping[str, Any] | None, *, where: str,
               initial_values: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> Network:
    """The Network of a net dict (built with `extern_data`; `initial_values` as `Network.from_dict`) or of a Keras
    model (wrapped; its variables keep their values)."""
    if is_keras_model(spec):
        return Network.from_keras(spec)
    if extern_data is None:
        raise ConfigError(f"{where} is a net dict, and net dicts need the option 'extern_data' (the data keys they "
                          "read, e.g. {'data': {'dim': 64}, 'classes': {'dim': 10, 'sparse': True}})")
    return Network.from_dict(dict(spec), dict(extern_data), initial_values=initial_values)


def needs_transition(current: Network, spec: Any) -> bool:
    """Whether the network of `spec` differs from the current one (a new Keras model object with the same
    architecture does not; a net dict equivalent to the current one does not)."""
    if is_keras_model(spec):
        if spec is current.keras_model:
            return False
        return not diff_architectures(keras_architecture(current.keras_model), keras_architecture(spec)).is_empty
    return current.net_dict is None or not diff_net_dicts(current.net_dict, spec).is_empty


def layer_names(spec: Any) -> list[str]:
    """The layer names of a net dict or a Keras model (as `Network` names them)."""
    if is_keras_model(spec):
        return list(keras_layers(spec))
    return [name for name in spec if is_layer_key(name)]


def importers_for(importers: Mapping[str, Any] | None, spec: Any) -> dict[str, Any]:
    """The `custom_param_importers` that name layers of the network of `spec`."""
    if not importers:
        return {}
    names = set(layer_names(spec))
    return {name: importer for name, importer in importers.items() if name in names}


def check_importer_names(importers: Mapping[str, Any] | None, networks: Iterable[Iterable[str]], what: str) -> None:
    """ConfigError for a `custom_param_importers` name that is no layer of any of the `networks` (layer names)."""
    if not importers:
        return
    known = sorted({name for names in networks for name in names})
    for name in importers:
        if name not in known:
            raise ConfigError(f"custom_param_importers names layer {name!r}, which is no layer of {what}"
                              f"{did_you_mean(name, known)}; the layers are {known}")
