"""Plain values (YAML files, ``key=value`` strings, a checkpoint's config) to the config dataclasses,
without OmegaConf.

Importing OmegaConf (with its ANTLR grammar) and building structured configs cost a one-shot tool
such as nmt-translate a good part of its start-up after ``import torch``. ``build`` does what
OmegaConf does for the values the config files and simple command lines hold: typed fields,
nested dataclasses, ``dict[str, Dataclass]`` and lists, enums by name, optional values, ``MISSING``
mandatory values. It refuses (raises ``Unsupported``) anything it is not sure to read exactly as
OmegaConf and Hydra would: interpolations (``${...}``), values of another type, a string field
given something Hydra would read as a number, a boolean or null. The caller then composes with
Hydra instead, which also words any error. ``tests/unit/test_structured.py`` checks that both give
the same dataclass.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from enum import Enum
from typing import Any

MISSING = "???"  # omegaconf.MISSING: a mandatory value (the same string, so Hydra reads it alike)

# How Hydra's override grammar reads an unquoted value (the forms a command line here may hold)
_INT = re.compile(r"[+-]?(0|[1-9]\d*)")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_NOT_A_STRING = re.compile(
    r"(?i)[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?|true|false|null|[+-]?inf|nan"
)


class Unsupported(ValueError):
    """A value ``build`` does not read exactly as OmegaConf would (compose with Hydra instead)."""


class Missing(ValueError):
    """A mandatory value (``MISSING``) was not given; the message is its dotted key."""


def defaults(cls: type) -> dict[str, Any]:
    """A dataclass's defaults as nested plain dicts (enums stay members, MISSING stays '???')."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = MISSING
        out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``: nested dicts merge key by key, everything else is replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def set_dotted(tree: dict[str, Any], key: str, raw: str) -> dict[str, Any]:
    """``a.b.c=raw`` from a command line; ``raw`` stays a string marked for typing by ``build``.
    Only keys that exist may be set (Hydra's struct mode); a sweep (``a,b``) is Hydra's to read."""
    *parents, last = key.split(".")
    node: Any = tree
    for name in [*parents, last]:
        if not isinstance(node, dict) or name not in node:
            raise Unsupported(f"{key}: not an existing key")
        node = node[name]
    if "," in raw:
        raise Unsupported(f"{key}: a sweep")
    update: dict[str, Any] = {last: CommandLine(raw)}
    for name in reversed(parents):
        update = {name: update}
    return merge(tree, update)


class CommandLine(str):
    """An unquoted value from the command line, read by the type of the field it lands in."""


def build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """The dataclass ``cls`` from ``values`` (its defaults merged with files and overrides)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise Unsupported(f"unknown key {prefix}{sorted(unknown)[0]}")
    base = defaults(cls)
    kwargs = {}
    for name in names:
        value = values.get(name, base[name])
        kwargs[name] = _convert(value, hints[name], f"{prefix}{name}")
    return cls(**kwargs)


def _convert(value: Any, hint: Any, key: str) -> Any:
    if isinstance(value, str) and value == MISSING:
        raise Missing(key)
    if isinstance(value, str) and "${" in value:
        raise Unsupported(f"{key}: interpolation")
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, CommandLine) and value == "null"):
            if len(options) < len(typing.get_args(hint)):
                return None
            raise Unsupported(f"{key}: null")
        if len(options) != 1:
            raise Unsupported(f"{key}: union")
        return _convert(value, options[0], key)
    if hint is Any:
        if isinstance(value, CommandLine):
            if _NOT_A_STRING.fullmatch(value):
                raise Unsupported(f"{key}: typed value")
            return str(value)
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise Unsupported(f"{key}: not a mapping")
        return build(hint, value, f"{key}.")  # type: ignore[arg-type]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise Unsupported(f"{key}: not a mapping")
        return {str(k): _convert(v, item, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise Unsupported(f"{key}: not a list")
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if value is None or (isinstance(value, CommandLine) and value == "null"):
        raise Unsupported(f"{key}: null")
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum(value, hint, key)
    if hint is bool:
        return _bool(value, key)
    if hint is int:
        if isinstance(value, CommandLine) and _INT.fullmatch(value):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Unsupported(f"{key}: not an integer")
    if hint is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value):  # YAML reads 1e-3 as a string
            return float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise Unsupported(f"{key}: not a number")
    if hint is str:
        if isinstance(value, CommandLine):
            if _NOT_A_STRING.fullmatch(value):
                raise Unsupported(f"{key}: typed value")
            return str(value)
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise Unsupported(f"{key}: not a string")
    raise Unsupported(f"{key}: type {hint}")


def _enum(value: Any, enum: type[Enum], key: str) -> Enum:
    if isinstance(value, enum):
        return value
    if isinstance(value, str) and value in enum.__members__:
        return enum[value]
    raise Unsupported(f"{key}: not one of {enum.__name__}")


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, CommandLine) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Unsupported(f"{key}: not a boolean")
