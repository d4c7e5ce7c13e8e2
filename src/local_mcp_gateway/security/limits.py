"""Limits that bound one client: header, body and nesting sizes, timeouts, and the Hypercorn settings."""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "CORS_ALLOWED_HEADERS",
    "CORS_ALLOWED_METHODS",
    "CORS_EXPOSED_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_COUNT",
    "MAX_JSON_DEPTH",
    "MAX_TRACKED_CLIENTS",
    "apply_server_limits",
    "json_nesting_exceeds",
]

# -- limits ----------------------------------------------------------------------------------------------------

MAX_HEADER_COUNT = 100
"""More request headers than this get 431: no MCP client needs them, and each one costs memory and parsing."""

MAX_HEADER_BYTES = 16 * 1024
"""Largest header block accepted (HTTP/1.1 and HTTP/2); larger gets 431, from Hypercorn or from the guard."""

HEADER_TIMEOUT = 5.0
"""Seconds a connection may sit without a complete request head: slow-header (slowloris) clients and idle
keep-alive connections are closed after this (Hypercorn's keep-alive timeout covers both)."""

TLS_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a client gets to finish the TLS handshake before the connection is dropped."""

BODY_IDLE_TIMEOUT = 10.0
"""Longest silence between two pieces of a request body; a client that stalls longer gets 408 and is cut off."""

BODY_TOTAL_TIMEOUT = 60.0
"""Longest time to receive a whole request body, however it trickles in (4 MiB needs about 70 KB/s)."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a POST body; MCP messages need a handful of levels, while
thousands of levels make recursive parsers and validators slow or crash them."""

SCAN_INLINE_BYTES = 64 * 1024
"""Bodies larger than this are scanned for nesting in a worker thread, so the event loop keeps serving others
(the scan takes up to about a second for 4 MiB of brackets)."""

MAX_TRACKED_CLIENTS = 10_000
"""Rate-limit buckets kept per profile; beyond this the least recently seen client's bucket is dropped, so
memory stays bounded however many addresses appear (a dropped client starts again with a full bucket)."""

PREFLIGHT_MAX_AGE = 600
"""Seconds a browser may cache a CORS preflight answer."""

# -- CORS ------------------------------------------------------------------------------------------------------

CORS_ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_ALLOWED_HEADERS = (
    "Content-Type, Authorization, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name"
)
"""Request headers a listed browser origin may send (the Streamable HTTP transport's, plus the key)."""
CORS_EXPOSED_HEADERS = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, Retry-After"
"""Response headers browser code may read: the session id it must send back, and why it was refused."""


# -- JSON nesting ----------------------------------------------------------------------------------------------

_JSON_SIGNIFICANT = re.compile(rb'["\\\[\]{}]')
_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPENERS, _CLOSERS = frozenset(b"[{"), frozenset(b"]}")


def json_nesting_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays/objects in `body` nest deeper than `limit`; one linear pass, no parsing, no recursion.

    Brackets inside strings (escapes included) do not count. Malformed JSON is left to the parser behind.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_SIGNIFICANT.finditer(body):
        at = match.start()
        if at == escaped_at:
            continue
        char = body[at]
        if in_string:
            if char == _BACKSLASH:
                escaped_at = at + 1
            elif char == _QUOTE:
                in_string = False
        elif char == _QUOTE:
            in_string = True
        elif char in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif char in _CLOSERS:
            depth -= 1
    return False


# -- Hypercorn -------------------------------------------------------------------------------------------------


def apply_server_limits(config: Any, security: Any) -> None:
    """Hypercorn settings that bound what one client can hold: header size, slow clients, TLS handshakes.

    `read_timeout` stays off on purpose: a client waiting on a long SSE response sends nothing for minutes, and
    a read timeout would cut it off. Slow request heads are covered by the keep-alive (idle) timeout, which
    runs until a complete head has arrived; slow bodies by the guard (`BODY_IDLE_TIMEOUT`, 408).
    """
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    config.h2_max_header_list_size = MAX_HEADER_BYTES
    config.keep_alive_timeout = HEADER_TIMEOUT
    config.ssl_handshake_timeout = TLS_HANDSHAKE_TIMEOUT
    config.include_server_header = False
