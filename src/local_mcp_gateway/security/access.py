"""Who may knock: the Host allow-list, inbound API keys (constant-time), and loopback addresses."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable

__all__ = ["HostAllowList", "KeyRing", "is_loopback_address", "split_host_port"]


class HostAllowList:
    """`security.allowed_hosts`: Host header values accepted, `host[:port]` where only `*` is special.

    A pattern is split into its host and its port at the last `:` outside brackets. In the port, `*` matches
    digits only (`127.0.0.1:*` is any port of 127.0.0.1, never `127.0.0.1:80.attacker.example`); in the host, `*`
    matches a run of name characters (letters, digits, `.`, `-`, `_`: `*.example.com:443` is any subdomain), never
    a `:`, `@`, `/` or space. Everything else is literal, so the brackets of `[::1]:*` mean an IPv6 address, not a
    character class. Host names are compared without regard to case. A pattern without a port matches a Host
    header without one. `["*"]` accepts every Host (the check is off); an empty list accepts none.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._any = "*" in self.patterns
        parts = (_host_pattern(pattern) for pattern in self.patterns)
        self._regex = re.compile("|".join(f"(?:{part})" for part in parts) or r"(?!)", re.IGNORECASE)

    def allows(self, host: str) -> bool:
        if not host:
            return False
        return self._any or self._regex.fullmatch(host) is not None

    def __repr__(self) -> str:
        return f"HostAllowList({list(self.patterns)!r})"


_HOST_STAR = r"[A-Za-z0-9._\-]*"
"""What `*` stands for in the host part of an allowed_hosts pattern: name characters, no `:`, `@`, `/`."""

_PORT_STAR = r"[0-9]+"
"""What `*` stands for in the port part: one or more digits."""


def split_host_port(text: str) -> tuple[str, str | None]:
    """`("host", "port")` of `host:port`, `[v6]:port`, or `(text, None)` when there is no port."""
    if text.startswith("["):
        end = text.find("]")
        if end >= 0 and text[end + 1 : end + 2] == ":":
            return text[: end + 1], text[end + 2 :]
        return text, None
    host, sep, port = text.rpartition(":")
    return (host, port) if sep else (text, None)


def _host_pattern(pattern: str) -> str:
    host, port = split_host_port(pattern)

    def glob(text: str, star: str) -> str:
        return "".join(star if c == "*" else re.escape(c) for c in text)

    regex = glob(host, _HOST_STAR)
    return regex if port is None else f"{regex}:{glob(port, _PORT_STAR)}"


# -- API keys --------------------------------------------------------------------------------------------------


class KeyRing:
    """The inbound API keys of one profile, checked in constant time.

    Only SHA-256 digests are kept; a presented key is hashed and compared with `hmac.compare_digest` against
    every digest, without stopping at a match, so neither timing nor the order of keys tells which key (or how
    much of one) was right. Empty keys are never accepted. `repr` shows how many keys, never a key.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        listed = list(keys)
        self.required = bool(listed)
        """True when keys are configured: then every request needs one, even if they are all empty strings."""
        self._digests = tuple(_digest(key) for key in listed if key)

    def accepts(self, presented: str) -> bool:
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched and bool(presented)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._digests)} keys)"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def is_loopback_address(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and their IPv4-mapped forms; None (a Unix socket peer) counts as local too."""
    if host is None:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
