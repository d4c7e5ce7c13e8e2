"""Pydantic validation errors translated into `ConfigIssue`s at the YAML position of the offending key.

Messages say what is expected and how to fix it; they never echo a free-form value (it could be a
secret written in plain text), only the choice made for an enumerated key.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from local_mcp_gateway.config.yamlsafe import Document, Path_
from local_mcp_gateway.errors import ConfigIssue

__all__ = ["validation_issues"]

_ECHO_LIMIT = 40  # characters of an enumerated value shown back

_PATTERN_HINTS = {
    "recipients": "expected an age recipient: 'age1' and 58 more characters; `local-mcp-gateway keygen` prints one",
    "prefix": "a prefix uses letters, digits, '_' and '-' only, at most 52 characters (or \"\" for none)",
    "module": "expected 'package.module:attribute', e.g. 'local_mcp_gateway.examples.clock:server'",
    "cors_origins": "expected a browser origin: scheme and host, e.g. https://app.example (no path, no trailing '/')",
    "public_url": "expected an http:// or https:// URL, e.g. http://127.0.0.1:8080",
}
_GLOB_FIELDS = frozenset({"include", "exclude", "allowed_commands", "allowed_hosts"})


def validation_issues(
    exc: ValidationError, doc: Document, model: type[BaseModel], base: Path_ = ()
) -> list[ConfigIssue]:
    """One issue per pydantic error of validating `doc`'s data (at `base`) as `model`."""
    issues = []
    for error in exc.errors():
        loc: Path_ = tuple(error["loc"])
        path = (*base, *loc)
        if error["type"] == "missing":
            issues.append(doc.issue(path[:-1], f"required key '{loc[-1]}' is missing"))
            continue
        issues.append(doc.issue(path, _message(error, model, loc)))
    return issues


def _message(error: ErrorDetails, model: type[BaseModel], loc: Path_) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _allowed_keys(model, loc[:-1]))
    if kind == "string_type":
        return "expected a string; put numbers and booleans in quotes, e.g. \"8080\""
    if kind == "list_type":
        return "expected a list of globs, e.g. [\"get_*\"]" if field in _GLOB_FIELDS else "expected a list, e.g. [a, b]"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a mapping of `key: value` entries"
    if kind in ("bool_type", "bool_parsing"):
        return "expected true or false"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "expected a whole number"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return "expected a number"
    if kind == "greater_than":
        return f"must be greater than {_number(ctx.get('gt'))}"
    if kind == "greater_than_equal":
        return f"must be at least {_number(ctx.get('ge'))}"
    if kind == "less_than_equal":
        return f"must be at most {_number(ctx.get('le'))}"
    if kind == "literal_error":
        value = error.get("input")
        got = f", got {value!r}" if isinstance(value, str | int) and len(str(value)) <= _ECHO_LIMIT else ""
        return f"expected {ctx.get('expected')}{got}"
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(field, f"does not match the pattern {ctx.get('pattern')}")
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    msg = str(error["msg"])
    return msg[:1].lower() + msg[1:]


def _number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _unknown_key(key: str, allowed: list[str]) -> str:
    if not allowed:
        return f"unknown key '{key}'"
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key '{key}'; {hint}allowed keys: {', '.join(allowed)}"


def _allowed_keys(model: type[BaseModel], loc: Path_) -> list[str]:
    """Field names of the model found at `loc` inside `model` (empty when it cannot be told)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return []
            current = current.model_fields[part].annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is dict and args:
            current = args[1]
        elif origin is list and args:
            current = args[0]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X, `Annotated[X, ...]` -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
