"""Names clients see, and the glob filters on upstream names.

A tool or prompt named `name` by an upstream whose prefix is `prefix` is shown to clients as
`prefix__name` (or `name` when the prefix is empty). The mapping is pure: the same upstream name
always gives the same client name, whatever else a profile contains, so clients can cache it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

__all__ = ["MAX_NAME_LENGTH", "PREFIX_SEPARATOR", "client_name", "matches", "sanitise"]

PREFIX_SEPARATOR = "__"
"""Between a server's prefix and the upstream name."""

MAX_NAME_LENGTH = 64
"""Longest client-visible name; many clients refuse longer tool names."""

HASH_HEX_DIGITS = 8
"""Hex digits of sha256 that end a shortened name, keeping it unique and stable."""

_KEPT_LENGTH = MAX_NAME_LENGTH - HASH_HEX_DIGITS - 1  # 55 characters, then "_", then the hash
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def sanitise(text: str) -> str:
    """Replace every character outside `[A-Za-z0-9_-]` with `_`."""
    return _UNSAFE.sub("_", text)


def client_name(prefix: str, name: str) -> str:
    """The name a client sees for upstream `name` of a server whose prefix is `prefix`.

    Longer than 64 characters: the first 55 characters, `_`, and the first 8 hex digits of the
    sha256 of the full joined (unsanitised) name.
    """
    joined = f"{prefix}{PREFIX_SEPARATOR}{name}" if prefix else name
    safe = sanitise(joined)
    if len(safe) <= MAX_NAME_LENGTH:
        return safe
    digest = hashlib.sha256(joined.encode("utf-8")).hexdigest()[:HASH_HEX_DIGITS]
    return f"{safe[:_KEPT_LENGTH]}_{digest}"


def matches(name: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """True when `name` matches a glob of `include` and none of `exclude` (case-sensitive)."""
    return any(fnmatchcase(name, glob) for glob in include) and not any(
        fnmatchcase(name, glob) for glob in exclude
    )
