"""Typed, validated parameter blocks: plain dataclasses parsed from YAML dicts.

Every config section and every policy's ``Params`` is a dataclass. ``parse(cls, data, path)``
checks keys, types and ranges and raises ConfigError naming the dotted path
(``cluster.pools[0].scheduler.chunk_size``). Bounds come from ``field(metadata=...)``,
written with the ``param`` helper::

    @dataclass
    class SarathiParams:
        chunk_size: int = param(512, ge=1, doc="token budget per iteration")

Every float must be finite (NaN and inf are refused: NaN passes every bound check) and within
±1e18 (``MAX_MAGNITUDE``), and every int within ±2**53 (an exact float).
Parsing has no side effects: no files are written and no directories are created.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from sim.errors import ConfigError

_MISSING = dataclasses.MISSING
MAX_INT = 2**53  # every int stays exact as a float (times and sums mix them)
MAX_MAGNITUDE = 1e18  # no quantity of a serving cluster (bytes, seconds, tokens, rates) comes near it


def param(
    default: Any = _MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    doc: str = "",
    default_factory: Any = _MISSING,
) -> Any:
    """A dataclass field with bounds and a one-line description."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "doc": doc}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if isinstance(tp, type):
        return tp.__name__
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, tuple, dict) and args:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return str(tp).replace("typing.", "")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A parameter block's resolved field types (read-only; resolved once per class: a sweep or a
    test session parses the same blocks many times, and each resolution compiles every annotation)."""
    return typing.get_type_hints(cls)


def parse(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, validating every key against its type."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {type(data).__name__} {data!r}", path)
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown key {key!r}{hint} (valid keys: {', '.join(sorted(fields))})", _join(path, str(key))
        )
    kwargs = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name in data:
            value = coerce(hints[name], data[name], sub)
            _check_bounds(f, value, sub)
            kwargs[name] = value
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise ConfigError("required key is missing", sub)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError as exc:
            raise ConfigError(exc.message, _join(path, exc.where) if exc.where else path) from None
        except ValueError as exc:
            raise ConfigError(str(exc), path) from None
    return obj


def _check_bounds(f: dataclasses.Field, value: Any, path: str) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    m = f.metadata
    if m.get("ge") is not None and value < m["ge"]:
        raise ConfigError(f"must be >= {m['ge']}, got {value}", path)
    if m.get("gt") is not None and value <= m["gt"]:
        raise ConfigError(f"must be > {m['gt']}, got {value}", path)
    if m.get("le") is not None and value > m["le"]:
        raise ConfigError(f"must be <= {m['le']}, got {value}", path)
    if m.get("lt") is not None and value >= m["lt"]:
        raise ConfigError(f"must be < {m['lt']}, got {value}", path)


def coerce(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against type ``tp`` (with int -> float widening); return the value."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors: list[tuple[Any, ConfigError]] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, path)
            except ConfigError as exc:
                errors.append((arg, exc))
        # one candidate (``Spec | None``), or one structured candidate for a mapping: its own error
        # names the inner field and rule, which "expected A | None, got {...}" would hide
        structured = [exc for arg, exc in errors if dataclasses.is_dataclass(arg) or hasattr(arg, "from_config")]
        if len(errors) == 1:
            raise errors[0][1]
        if isinstance(value, dict) and len(structured) == 1:
            raise structured[0]
        raise ConfigError(f"expected {_type_name(tp)}, got {value!r}", path)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{value!r} is not one of {list(choices)}{hint}", path)
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", path)
        (item_tp, *_rest) = get_args(tp) or (Any,)
        items = [coerce(item_tp, v, _join(path, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {value!r}", path)
        _key_tp, val_tp = get_args(tp) or (str, Any)
        return {k: coerce(val_tp, v, _join(path, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return parse(tp, value, path)
    custom = getattr(tp, "from_config", None)
    if custom is not None:
        return custom(value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", path)
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(f"number out of range, got {value!r}", path) from None
        if not math.isfinite(number):  # NaN passes every comparison, inf every upper-less bound
            raise ConfigError(f"expected a finite number, got {value!r}", path)
        if abs(number) > MAX_MAGNITUDE:  # squares and exponentials of it would overflow mid-run
            raise ConfigError(f"must be within ±{MAX_MAGNITUDE:g}, got {value!r}", path)
        return number
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"expected an integer, got {value!r}", path)
        if abs(value) > MAX_INT:
            raise ConfigError(f"must be within ±2**53, got {value!r}", path)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", path)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}", path)
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"expected {_type_name(tp)}, got {value!r}", path)
    return value


def to_dict(obj: Any) -> Any:
    """A plain-data (YAML-safe) copy of a parsed config object."""
    custom = getattr(obj, "to_config", None)
    if custom is not None and not isinstance(obj, type):
        return custom()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, doc) for each field of a parameter block, for docs and --help."""
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else "required"
        )
        out.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("doc", "")))
    return out
