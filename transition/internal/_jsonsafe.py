"""Strict, pickle-free JSON: check that a value is JSON-able, encode non-finite floats, parse hostile bytes safely.

JSON has no inf / nan. `encode_floats` replaces them by ``{"$float": "inf" | "-inf" | "nan"}`` (and escapes a user
dict that would look like such a marker as ``{"$dict": {...}}``) and `decode_floats` turns those back; everything written goes through ``allow_nan=False`` so a bare ``NaN`` never reaches
disk, and `loads` refuses ``NaN`` / ``Infinity`` literals, duplicate keys, deep nesting and oversized input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "MAX_JSON_BYTES",
    "check_jsonable",
    "encode_floats",
    "decode_floats",
    "dumps",
    "loads",
]

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64
_MAX_FILE_DEPTH = 2 * MAX_DEPTH + 8  # a file nests what we write (markers may double the depth) in a few levels
_FLOAT_KEY = "$float"
_DICT_KEY = "$dict"  # escapes a one-key user dict whose key is one of our markers
_RESERVED = (_FLOAT_KEY, _DICT_KEY, "$array")
_SPECIAL = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}

ErrorFactory = Callable[[str], Exception]


def check_jsonable(value: Any, where: str, error: ErrorFactory, *, depth: int = 0) -> None:
    """Raise ``error(message)`` unless `value` is made of dict (str keys), list/tuple, str, int, float, bool, None.

    `where` names the value in the message (e.g. ``"callbacks['EarlyStopping']"``).
    """
    if depth > MAX_DEPTH:
        raise error(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(f"{where}: key {key!r} is a {type(key).__name__}, not a str (JSON keys are strings)")
            check_jsonable(item, f"{where}[{key!r}]", error, depth=depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_jsonable(item, f"{where}[{i}]", error, depth=depth + 1)
        return
    raise error(
        f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be stored as JSON; "
        "use dict, list, str, int, float, bool or None (convert numpy scalars with .item())"
    )


def encode_floats(value: Any) -> Any:
    """Return a copy of a JSON-able value with inf / nan floats as ``{"$float": "inf"}`` etc. (tuples -> lists)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT_KEY: "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, Mapping):
        out = {k: encode_floats(v) for k, v in value.items()}
        if len(out) == 1 and next(iter(out)) in _RESERVED:  # a user dict that looks like our markers: escape it
            return {_DICT_KEY: out}
        return out
    if isinstance(value, (list, tuple)):
        return [encode_floats(v) for v in value]
    return value


def decode_floats(value: Any) -> Any:
    """Inverse of `encode_floats`."""
    if isinstance(value, dict):
        if len(value) == 1 and _FLOAT_KEY in value and value[_FLOAT_KEY] in _SPECIAL:
            return _SPECIAL[value[_FLOAT_KEY]]
        if len(value) == 1 and isinstance(value.get(_DICT_KEY), dict):
            return {k: decode_floats(v) for k, v in value[_DICT_KEY].items()}
        return {k: decode_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_floats(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """Serialize a JSON-able value (after `encode_floats`) to UTF-8 bytes; never writes NaN / Infinity."""
    return json.dumps(value, allow_nan=False, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"the literal {name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = item
    return out


def loads(data: bytes | str, what: str, error: ErrorFactory) -> Any:
    """Parse untrusted JSON strictly; any problem is ``error(message)`` naming `what` (e.g. the file path)."""
    if len(data) > MAX_JSON_BYTES:
        raise error(f"{what}: {len(data)} bytes is larger than the limit of {MAX_JSON_BYTES} bytes")
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        value = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{what}: not valid JSON ({exc}); the file is damaged, use another checkpoint") from None
    if _depth(value) > _MAX_FILE_DEPTH:
        raise error(f"{what}: JSON nested deeper than {_MAX_FILE_DEPTH} levels; the file is damaged or not ours")
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest
