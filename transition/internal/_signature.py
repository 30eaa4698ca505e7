"""Signatures of functions whose keyword options are declared once, as the fields of an attrs class."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["with_options_signature"]


def with_options_signature(options_class: type, head: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator: the function's first `head` parameters, then every field of `options_class` as a keyword (so
    `help()` and `inspect.signature` show the options, declared only in the class)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(func).parameters.values())[:head]
        names = {p.name for p in params}
        for field in attrs.fields(options_class):
            if field.name not in names:
                default = inspect.Parameter.empty if field.default is attrs.NOTHING else field.default
                if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                    default = default.factory()
                params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                                annotation=field.type))
        func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return func

    return decorate
