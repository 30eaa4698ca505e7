"""RETURNN's `extern_data`: the data keys a net dict reads, their dims, sparsity and time axes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from transition.errors import ConfigError, did_you_mean
from transition.network._layers_base import DataInfo

__all__ = ["parse_extern_data"]

_EXTERN_KEYS = ("dim", "shape", "sparse", "dtype", "available_for_inference")


def parse_extern_data(extern_data: Mapping[str, Any]) -> dict[str, DataInfo]:
    """RETURNN extern_data -> {key: DataInfo}.

    {"dim": d} is [batch, time, d]; "shape": (d,) gives [batch, d]; "sparse": True gives int ids ([batch, time],
    or per "shape": () / (None,)); "dtype" overrides the dtype. [dim, ndim] (RETURNN's num_outputs) also works.
    """
    if not isinstance(extern_data, Mapping) or not extern_data:
        raise ConfigError(
            f"extern_data must be a non-empty dict of key -> {{'dim': ...}}, got {extern_data!r}"
        )
    return {key: _parse_extern_entry(key, spec) for key, spec in extern_data.items()}


def _parse_extern_entry(key: str, spec: Any) -> DataInfo:
    where = f"extern_data[{key!r}]"
    if isinstance(spec, (list, tuple)) and len(spec) == 2:  # num_outputs style: [dim, ndim]
        dim, ndim = spec
        if ndim not in (1, 2):
            raise ConfigError(f"{where} = {spec!r}: ndim must be 1 (sparse ids) or 2 (dense [time, dim])")
        spec = {"dim": dim, "sparse": ndim == 1}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a dict like {{'dim': 5}}, got {spec!r}")
    for k in spec:
        if k not in _EXTERN_KEYS:
            raise ConfigError(f"{where}: unknown key {k!r}{did_you_mean(k, _EXTERN_KEYS)}; known: {list(_EXTERN_KEYS)}")
    sparse = spec.get("sparse", False)
    if not isinstance(sparse, bool):
        raise ConfigError(f"{where}: 'sparse' must be True or False, got {sparse!r}")
    dim = spec.get("dim")
    shape = spec.get("shape")
    time = True
    if shape is not None:
        shape = tuple(shape)
        feat = () if sparse else shape[-1:]
        spatial = shape if sparse else shape[:-1]
        if (not sparse and not shape) or spatial not in ((), (None,)):
            want = "() or (None,)" if sparse else "(dim,) or (None, dim)"
            raise ConfigError(f"{where}: unsupported shape {shape!r}; give {want}")
        time = spatial == (None,)
        if feat:
            if dim is not None and dim != feat[0]:
                raise ConfigError(f"{where}: 'dim' {dim!r} differs from the last entry of 'shape' {shape!r}")
            dim = feat[0]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"{where}: 'dim' must be a positive int, got {dim!r}")
    dtype = spec.get("dtype", "int32" if sparse else "float32")
    try:
        dtype = tf.as_dtype(dtype).name
    except TypeError:
        raise ConfigError(f"{where}: unknown dtype {dtype!r}") from None
    return DataInfo(dim=dim, sparse=sparse, time=time, dtype=dtype)
