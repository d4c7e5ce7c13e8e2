"""A TOON encoder (Token-Oriented Object Notation, https://github.com/toon-format/spec): JSON values as
indented text with declared array lengths, for pasting into prompts.

Objects become `key: value` lines indented by two spaces per level; arrays declare their length (`tags[2]:
a,b`); arrays of objects that share the same primitive fields become a table (`rows[2]{id,name}:` and one
comma-separated row each); other arrays are lists of `- ` items. Strings are quoted only where the spec asks
for it (empty, padded, looking like a number or literal, or holding a delimiter, colon, quote, bracket, brace,
backslash or control character), with the escapes `\\\\ \\" \\n \\r \\t`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["encode"]

INDENT = "  "
_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_NUMBER_LIKE = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$|^0\d+$")
_NEEDS_QUOTES = re.compile(r'[:"\\\[\]{}\x00-\x1f\x7f,]')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def encode(value: Any) -> str:
    """`value` (JSON data model: dict, list, str, int, float, bool, None) as a TOON document."""
    lines: list[str] = []
    if isinstance(value, Mapping):
        _object(lines, value, 0)
    elif _is_array(value):
        _array(lines, None, list(value), 0)
    else:
        lines.append(_primitive(value))
    return "\n".join(lines) + "\n"


def _is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _key(key: Any) -> str:
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else _quote(text)


def _quote(text: str) -> str:
    return '"' + "".join(_ESCAPES.get(c, c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}") for c in text) + '"'


def _string(text: str) -> str:
    if (
        not text
        or text != text.strip()
        or text in ("true", "false", "null")
        or _NUMBER_LIKE.fullmatch(text)
        or _NEEDS_QUOTES.search(text)
        or text.startswith("-")
    ):
        return _quote(text)
    return text


def _primitive(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return json.dumps(value)
    return _string(str(value))


def _object(lines: list[str], obj: Mapping[str, Any], depth: int) -> None:
    for key, value in obj.items():
        _field(lines, _key(key), value, depth)


def _field(lines: list[str], key: str, value: Any, depth: int, prefix: str | None = None) -> None:
    """One `key: ...` line at `depth` (or after `prefix`, a list item's hyphen), and what nests under it."""
    lead = prefix if prefix is not None else INDENT * depth
    if isinstance(value, Mapping):
        lines.append(f"{lead}{key}:")
        _object(lines, value, depth + 1)
    elif _is_array(value):
        _array(lines, key, list(value), depth, lead)
    else:
        lines.append(f"{lead}{key}: {_primitive(value)}")


def _table_fields(items: list[Any]) -> list[str] | None:
    """The shared field names when every item is an object of the same primitive fields, else None."""
    if not items or not all(isinstance(item, Mapping) and item for item in items):
        return None
    fields = list(items[0].keys())
    for item in items:
        if list(item.keys()) != fields or not all(_is_primitive(v) for v in item.values()):
            return None
    return fields


def _array(
    lines: list[str], key: str | None, items: list[Any], depth: int, lead: str | None = None, *, table: bool = True
) -> None:
    """`key[N]...` for `items`; a keyless array inside a list may not be a table (the spec allows that at the root
    only), so it is written as a list."""
    lead = INDENT * depth if lead is None else lead
    name = key or ""
    if all(_is_primitive(item) for item in items):
        values = ",".join(_primitive(item) for item in items)
        lines.append(f"{lead}{name}[{len(items)}]:" + (f" {values}" if items else ""))
        return
    fields = _table_fields(items) if table else None
    if fields is not None:
        lines.append(f"{lead}{name}[{len(items)}]{{{','.join(_key(f) for f in fields)}}}:")
        for item in items:
            lines.append(INDENT * (depth + 1) + ",".join(_primitive(item[f]) for f in fields))
        return
    lines.append(f"{lead}{name}[{len(items)}]:")
    for item in items:
        _list_item(lines, item, depth + 1)


def _list_item(lines: list[str], item: Any, depth: int) -> None:
    hyphen = INDENT * depth + "- "
    if _is_primitive(item):
        lines.append(hyphen + _primitive(item))
    elif _is_array(item):
        _array(lines, None, list(item), depth, hyphen, table=False)
    elif not item:
        lines.append(hyphen.rstrip())
    else:
        entries = list(item.items())
        first_key, first_value = entries[0]
        # The first field sits on the hyphen line; what nests under it goes one level deeper than the
        # item's other fields, which line up with it (depth + 1).
        _field(lines, _key(first_key), first_value, depth + 1, prefix=hyphen)
        for key, value in entries[1:]:
            _field(lines, _key(key), value, depth + 1)
