"""`Template`: a configuration string with `${secret:NAME}` and `${env:NAME}` references.

Parsed once, when the configuration is loaded, so a malformed reference is a validation error with a
file position rather than a surprise at run time. `$${` stands for a literal `${`. A template keeps
only its raw text; values are supplied at `render` time and never stored, so a `Template` can be
logged and compared without exposing a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from local_mcp_gateway.errors import ConfigError, ConfigIssue

__all__ = ["ENV_NAME_PATTERN", "SECRET_NAME_PATTERN", "Template", "TemplateSyntaxError"]

SECRET_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
"""Secret names: the stem of `secrets/NAME.age`, so no path separators and no `..`."""

ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""Environment variable names as POSIX shells accept them."""

_OPEN = "${"
_ESCAPED_OPEN = "$${"
_KINDS = ("secret", "env")

Kind = Literal["text", "secret", "env"]


class TemplateSyntaxError(ValueError):
    """A reference in a template is malformed; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class _Part:
    kind: Kind
    value: str  # literal text, or the referenced name


def _parse(raw: str) -> tuple[_Part, ...]:
    parts: list[_Part] = []
    text: list[str] = []
    i = 0
    while i < len(raw):
        if raw.startswith(_ESCAPED_OPEN, i):
            text.append(_OPEN)
            i += len(_ESCAPED_OPEN)
            continue
        if not raw.startswith(_OPEN, i):
            text.append(raw[i])
            i += 1
            continue
        end = raw.find("}", i + len(_OPEN))
        if end < 0:
            raise TemplateSyntaxError(
                "unclosed '${': write ${secret:NAME} or ${env:NAME}, or '$${' for a literal '${'"
            )
        body = raw[i + len(_OPEN) : end]
        kind, sep, name = body.partition(":")
        if not sep or kind not in _KINDS:
            shown = kind if len(kind) <= 20 else kind[:20] + "..."
            raise TemplateSyntaxError(
                f"unknown reference kind '{shown}': write ${{secret:NAME}} or ${{env:NAME}}, "
                "or '$${' for a literal '${'"
            )
        _check_name(kind, name)
        if text:
            parts.append(_Part("text", "".join(text)))
            text = []
        parts.append(_Part(kind, name))  # type: ignore[arg-type]
        i = end + 1
    if text:
        parts.append(_Part("text", "".join(text)))
    return tuple(parts)


def _check_name(kind: str, name: str) -> None:
    if not name:
        raise TemplateSyntaxError(f"empty name in '${{{kind}:}}': write ${{{kind}:NAME}}")
    if kind == "secret" and (not SECRET_NAME_PATTERN.match(name) or ".." in name):
        raise TemplateSyntaxError(
            "secret names use letters, digits, '_', '.' and '-' (at most 128, no '/', no '..'); "
            f"the file is secrets/NAME.age"
        )
    if kind == "env" and not ENV_NAME_PATTERN.match(name):
        raise TemplateSyntaxError(
            "environment variable names use letters, digits and '_' and do not start with a digit"
        )


class Template:
    """An immutable string with `${secret:NAME}` / `${env:NAME}` references; `$${` is a literal `${`.

    Equal and hashed by its raw text. Usable as a pydantic field type (JSON Schema: a string).
    """

    __slots__ = ("_parts", "_raw")

    def __init__(self, raw: str) -> None:
        """Parse `raw`; raises `TemplateSyntaxError` when a reference is malformed."""
        if not isinstance(raw, str):
            raise TypeError(f"Template needs a str, not {type(raw).__name__}")
        self._raw = raw
        self._parts = _parse(raw)

    @property
    def raw(self) -> str:
        """The text as written in the configuration file."""
        return self._raw

    @property
    def secret_names(self) -> frozenset[str]:
        """Names of the secrets this template references."""
        return frozenset(p.value for p in self._parts if p.kind == "secret")

    @property
    def env_names(self) -> frozenset[str]:
        """Names of the environment variables this template references."""
        return frozenset(p.value for p in self._parts if p.kind == "env")

    @property
    def is_plain(self) -> bool:
        """True when there is nothing to substitute (an escaped `$${` still counts as plain)."""
        return all(p.kind == "text" for p in self._parts)

    def render(self, secret: Callable[[str], str], env: Mapping[str, str]) -> str:
        """The final string: `secret(name)` for each secret, `env[name]` for each variable.

        Raises `ConfigError` naming the variable when an environment variable is unset; whatever
        `secret` raises for a missing secret propagates.
        """
        out: list[str] = []
        for part in self._parts:
            if part.kind == "text":
                out.append(part.value)
            elif part.kind == "secret":
                out.append(secret(part.value))
            elif part.value in env:
                out.append(env[part.value])
            else:
                raise ConfigError(
                    ConfigIssue(
                        file="environment",
                        message=f"${{env:{part.value}}} is not set; set {part.value} in the gateway's environment",
                    )
                )
        return "".join(out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(("Template", self._raw))

    def __repr__(self) -> str:
        return f"Template({self._raw!r})"

    def __str__(self) -> str:
        return self._raw

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _coerce, serialization=core_schema.plain_serializer_function_ser_schema(lambda t: t.raw)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string"}


def _coerce(value: object) -> Template:
    if isinstance(value, Template):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    try:
        return Template(value)
    except TemplateSyntaxError as exc:
        raise PydanticCustomError("template", str(exc)) from None
