"""Typed settings: a dataclass built from loose keyword arguments (CLI `KEY=VALUE` pairs, JSON
read back from a run), each value checked against its field's annotation. Unknown names, wrong
types and values the dataclass refuses (`ValueError` in `__post_init__`) become one VadkitError
naming the setting and listing the valid ones. No torch here: the CLI uses it at start-up.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from vadkit.errors import VadkitError


def plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def build_config(config_cls: type, kwargs: Mapping[str, Any], *, what: str) -> Any:
    """`config_cls(**kwargs)` with every value checked against the field's annotation."""
    names = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise VadkitError(
            f"{what} has no setting {', '.join(unknown)}; its settings are {', '.join(names)}"
        )
    hints = typing.get_type_hints(config_cls)
    values = {k: _coerce(v, hints[k], f"{what}: {k}") for k, v in kwargs.items()}
    try:
        return config_cls(**values)
    except ValueError as e:
        raise VadkitError(f"{what}: {e}") from None


def _coerce(value: Any, hint: Any, what: str) -> Any:
    """`value` as type `hint` (int, float, str, bool, None, tuple[...] / list / dict, unions)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        for option in args:
            try:
                return _coerce(value, option, what)
            except VadkitError:
                continue
        raise VadkitError(f"{what} has the wrong type ({value!r})")
    if origin is dict and isinstance(value, dict):
        return value
    if origin is not None and origin is not dict and isinstance(value, list | tuple):
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, what) for v in value)
    if hint is Any or _scalar_fits(value, hint):
        return float(value) if hint is float else value
    raise VadkitError(f"{what} must be {_type_name(hint)}, got {value!r}")


def _scalar_fits(value: Any, hint: Any) -> bool:
    """An int is a float too; a bool is neither an int nor a float here."""
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint in (int, str, bool):
        return isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    return False


def _type_name(hint: Any) -> str:
    if get_origin(hint) is not None:
        return "a list"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, str(hint)
    )


__all__ = ["build_config", "plain"]
