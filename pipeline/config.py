"""Typed, validated views of ``params.yaml``.

Each domain declares a frozen dataclass for its own section (e.g.
``DegradeConfig`` in :mod:`pipeline.data.degrade`); :func:`parse` builds it from
a mapping and fails with the dotted key path on an unknown key or a bad value.
Config is validated once here, at the edge, and plain values are passed inward.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pipeline.errors import PipelineError

T = TypeVar("T")


class ConfigError(PipelineError, ValueError):
    """A params value is missing, unknown or of the wrong type/range."""


def load_params(path: str | os.PathLike[str] = "params.yaml") -> dict[str, Any]:
    """Read ``params.yaml`` (a mapping at top level)."""
    import yaml  # here, not at the top: the model code runs on GPU boxes without PyYAML

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def _check(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return parse(tp, value, key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_check(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        inner = args[0] if args else Any
        items = [_check(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def parse(cls: type[T], mapping: Mapping[str, Any] | None, prefix: str) -> T:
    """Build dataclass ``cls`` from ``mapping``; ``prefix`` is its dotted key path.

    Unknown keys and wrongly typed values raise :class:`ConfigError` naming
    e.g. ``degrade.scale``.  Fields with defaults may be omitted.  After type
    checks, a ``validate()`` method on ``cls`` (if any) may add range checks and
    should raise ``ConfigError`` itself.
    """
    mapping = dict(mapping or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key; {suggest(unknown[0], fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}"
        if name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise ConfigError(f"{key}: missing required key")
            continue
        kwargs[name] = _check(mapping[name], hints[name], key)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(prefix)
    return obj


def suggest(name: str, known: Iterable[str]) -> str:
    """``"did you mean 'lr'?"`` for the closest known name, else the list of known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known: {known}"


def section(params: Mapping[str, Any], name: str, cls: type[T]) -> T:
    """Parse top-level section ``name`` of ``params`` into ``cls``.

    A missing section is an error (a misspelled ``degrad:`` would otherwise run on
    silent defaults); an empty one (``degrade: {}``) takes every default.
    """
    if name not in params:
        close = difflib.get_close_matches(name, [str(k) for k in params], n=1, cutoff=0.6)
        hint = f"found {close[0]!r}; misspelled?" if close else f"sections present: {sorted(map(str, params))}"
        raise ConfigError(f"{name}: params section missing; {hint}")
    value = params[name]
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: expected a mapping, got {value!r}")
    return parse(cls, value, name)


def seed(params: Mapping[str, Any]) -> int:
    """The top-level ``seed`` (default 0); an integer, never silently truncated."""
    value = params.get("seed", 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"seed: expected an integer, got {value!r}")
    return value


def require(cond: bool, key: str, message: str) -> None:
    """Raise ``ConfigError('<key>: <message>')`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"{key}: {message}")
