"""`ParamsSnapshot`: a network's params as numpy, with the split info of each param (pure numpy)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

__all__ = ["ParamsSnapshot", "SplitInfo"]

SplitInfo = Mapping[str, list[list[int]]]  # {param: [[parts of axis 0], [parts of axis 1], ...]}


@attrs.frozen
class ParamsSnapshot:
    """The params of a network as numpy arrays, with the split info of each param and the global train step."""

    values_dict: Mapping[str, Mapping[str, np.ndarray]]  # {layer: {param: array}}
    split_info: Mapping[str, Mapping[str, list[list[int]]]] = attrs.field(factory=dict)  # {layer: {param: parts}}
    global_train_step: int = 0

    @property
    def nbytes(self) -> int:
        """Total bytes of all arrays."""
        return sum(int(v.nbytes) for layer in self.values_dict.values() for v in layer.values())

    def param_names(self) -> list[str]:
        """All params as "layer/param"."""
        return [f"{layer}/{param}" for layer, params in self.values_dict.items() for param in params]
