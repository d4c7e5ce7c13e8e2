"""Inbound security in front of every profile's MCP endpoint, the Hypercorn limits that bound one client, and
the redacted traffic log.

A request to `/mcp/<slug>` meets these layers in order; each one answers on its own and the request goes no
further (the profile was already found by `app.GatewayASGI`, an unknown slug is a 404 before this):

=====  ==========================================================  ============================================
 0     Hypercorn (`apply_server_limits`)                            header bytes (431), time to send the headers
                                                                    and the TLS handshake (connection closed)
 1     header count and total size                                  431
 2     Host allow-list, `security.allowed_hosts` (DNS rebinding)    421
 3     Origin: listed in `cors_origins`, or a loopback page         403
 4     rate limit per client address, `security.rate_limit`         429 + `Retry-After`
 5     CORS preflight (`OPTIONS`): answered here, never forwarded   204
 6     API key, `Authorization: Bearer <key>`                       401 + `WWW-Authenticate: Bearer`
 7     body: size (`max_request_bytes`), time, JSON nesting depth   413, 408, 400 (JSON-RPC error)
=====  ==========================================================  ============================================

Then the SDK's session manager gets the request, with the body already read (and replayed from memory), the
gateway's key removed from the headers, and `send` wrapped so responses to a listed browser origin carry the
CORS headers. Every check holds for every method and for both protocol lines (2025 sessions and the stateless
2026-07-28 line), because it runs before the SDK decides which line a request belongs to.

`TrafficLog` is the optional per-profile record of MCP requests (`logging.traffic`): a bounded ring of
redacted summaries filled by `TrafficLog.middleware`, a server middleware for the profile's MCP server.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread

from local_mcp_gateway.redact import Redactor, default_redactor

__all__ = [
    "CORS_ALLOWED_HEADERS",
    "CORS_EXPOSED_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_COUNT",
    "MAX_JSON_DEPTH",
    "MAX_TRACKED_CLIENTS",
    "HostAllowList",
    "InboundGuard",
    "KeyRing",
    "RateLimiter",
    "TrafficEntry",
    "TrafficLog",
    "apply_server_limits",
    "is_loopback_address",
    "json_nesting_exceeds",
]

logger = logging.getLogger(__name__)

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

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

_LOOPBACK_ORIGIN = re.compile(r"^https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?$", re.IGNORECASE)

AUTH_REALM = "local-mcp-gateway"
JSONRPC_INVALID_REQUEST = -32600


# -- Host allow-list -------------------------------------------------------------------------------------------


class HostAllowList:
    """`security.allowed_hosts`: Host header values accepted, as globs where only `*` is special.

    `*` matches any run of characters (`127.0.0.1:*` any port, `*.example.com:*` any subdomain); everything
    else is literal, so the brackets of `[::1]:*` mean an IPv6 address, not a character class. Host names are
    compared without regard to case. A pattern without a port matches a Host header without one. `["*"]`
    accepts every Host (the check is off); an empty list accepts none.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        parts = ("".join(".*" if c == "*" else re.escape(c) for c in pattern) for pattern in self.patterns)
        self._regex = re.compile("|".join(f"(?:{part})" for part in parts) or r"(?!)", re.IGNORECASE | re.DOTALL)

    def allows(self, host: str) -> bool:
        return bool(host) and self._regex.fullmatch(host) is not None

    def __repr__(self) -> str:
        return f"HostAllowList({list(self.patterns)!r})"


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


# -- rate limiting ---------------------------------------------------------------------------------------------


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per client address: `per_minute` requests in a burst, refilled at `per_minute`/60 a second.

    At most `max_clients` buckets are kept, least recently seen dropped first. `clock` returns seconds (monotonic).
    """

    def __init__(
        self, per_minute: int, *, max_clients: int = MAX_TRACKED_CLIENTS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive (0 means no limiter at all)")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, client: str) -> int | None:
        """Take one token for `client`: None when allowed, else the whole seconds to wait (>= 1)."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(self.capacity, now)
            self._buckets[client] = bucket
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))

    def __len__(self) -> int:
        return len(self._buckets)

    def __repr__(self) -> str:
        return f"RateLimiter({int(self.capacity)}/min, {len(self._buckets)} clients)"


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


# -- the guard -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    """An answer the guard gives instead of the endpoint."""

    status: int
    error: str
    message: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    close: bool = False
    jsonrpc: bool = False

    def body(self) -> bytes:
        if self.jsonrpc:
            payload: dict[str, Any] = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": JSONRPC_INVALID_REQUEST, "message": self.message},
            }
        else:
            payload = {"error": self.error, "message": self.message}
        return json.dumps(payload).encode()


class InboundGuard:
    """Checks one request to one profile's MCP endpoint (see the module docstring), then hands it to `app`.

    Built once per profile and configuration generation from the `SecurityConfig` and the profile's decrypted
    keys (gateway-wide plus its own): a key of one profile never opens another, because each guard only knows
    its own. The rate-limit buckets live here, so they start afresh with a new generation.
    """

    def __init__(self, security: Any, api_keys: Sequence[str], slug: str) -> None:
        self.security = security
        self.slug = slug
        self._keys = KeyRing(api_keys)
        self._hosts = HostAllowList(security.allowed_hosts)
        self._cors = frozenset(origin.lower() for origin in security.cors_origins)
        rate = security.rate_limit
        self._limiter = RateLimiter(rate.requests_per_minute) if rate.requests_per_minute > 0 else None
        self._limit_loopback = bool(rate.include_loopback)
        self._max_body = int(security.max_request_bytes)
        if self._keys.required and not len(self._keys):
            logger.warning("profile %s: every configured API key is empty; no request will be accepted", slug)

    def __repr__(self) -> str:
        return f"InboundGuard({self.slug!r}, {self._keys!r}, {self._limiter!r})"

    async def __call__(self, scope: Any, receive: Receive, send: Send, app: ASGIApp) -> None:
        if scope["type"] != "http":
            await _refuse_websocket(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        origins = [value.decode("latin-1") for name, value in headers if name.lower() == b"origin"]
        origin = origins[0] if len(origins) == 1 else ("null" if origins else None)
        listed_origin = origin if origin is not None and origin.lower() in self._cors else None
        if listed_origin is not None:
            send = _with_cors(send, listed_origin)

        refusal = self._check_head(scope, headers, origin)
        if refusal is None and scope["method"] == "OPTIONS":
            await _preflight(send, listed_origin)
            return
        if refusal is None:
            refusal = self._check_key(headers)
        if refusal is not None:
            self._note(scope, refusal)
            await _answer(send, refusal)
            return

        outcome = await self._read_body(scope, headers, receive)
        if isinstance(outcome, _Refusal):
            self._note(scope, outcome)
            await _answer(send, outcome)
            return
        if outcome is None:  # the client went away while sending
            return
        scope = dict(scope)
        if self._keys.required:
            scope["headers"] = [(name, value) for name, value in headers if name.lower() != b"authorization"]
        await app(scope, _replay(outcome, receive), send)

    # -- the head of the request ---------------------------------------------------------------------------

    def _check_head(self, scope: Any, headers: list[tuple[bytes, bytes]], origin: str | None) -> _Refusal | None:
        if len(headers) > MAX_HEADER_COUNT:
            return _Refusal(431, "too_many_headers", f"more than {MAX_HEADER_COUNT} request headers", close=True)
        if sum(len(name) + len(value) for name, value in headers) > MAX_HEADER_BYTES:
            # Hypercorn's own limit only applies while a head is still incomplete; a head that arrives in one
            # piece is parsed whatever its size, so the total is checked here as well.
            return _Refusal(431, "headers_too_large", f"request headers over {MAX_HEADER_BYTES} bytes", close=True)
        hosts = [value for name, value in headers if name.lower() == b"host"]
        host = hosts[0].decode("latin-1") if len(hosts) == 1 else ""
        if not self._hosts.allows(host):
            return _Refusal(
                421,
                "host_not_allowed",
                "this Host is not in security.allowed_hosts; connect by an allowed name or add it there",
            )
        if origin is not None and origin.lower() not in self._cors and not _LOOPBACK_ORIGIN.fullmatch(origin):
            return _Refusal(
                403, "origin_not_allowed", "this browser origin is not in security.cors_origins; add it there to allow it"
            )
        if self._limiter is not None:
            client = scope.get("client")
            address = client[0] if client else None
            if self._limit_loopback or not is_loopback_address(address):
                wait = self._limiter.acquire(address or "local")
                if wait is not None:
                    return _Refusal(
                        429,
                        "rate_limited",
                        f"more than {int(self._limiter.capacity)} requests a minute; retry after {wait} s",
                        headers=((b"retry-after", str(wait).encode()),),
                    )
        return None

    def _check_key(self, headers: list[tuple[bytes, bytes]]) -> _Refusal | None:
        if not self._keys.required:
            return None
        values = [value for name, value in headers if name.lower() == b"authorization"]
        presented = _bearer_token(values[0]) if len(values) == 1 else None
        if presented is None:
            return _Refusal(
                401,
                "unauthorized",
                "this profile needs an API key: send Authorization: Bearer <key>",
                headers=((b"www-authenticate", f'Bearer realm="{AUTH_REALM}"'.encode()),),
            )
        if not self._keys.accepts(presented):
            return _Refusal(
                401,
                "invalid_key",
                "the API key was not accepted for this profile; check it, or ask the operator for a current key",
                headers=((b"www-authenticate", f'Bearer realm="{AUTH_REALM}", error="invalid_token"'.encode()),),
            )
        return None

    # -- the body ------------------------------------------------------------------------------------------

    async def _read_body(
        self, scope: Any, headers: list[tuple[bytes, bytes]], receive: Receive
    ) -> bytes | _Refusal | None:
        """The whole body, or the refusal to send, or None when the client disconnected first."""
        declared = _single(headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return self._too_large()
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(BODY_TOTAL_TIMEOUT):
            while True:
                message: MutableMapping[str, Any] | None = None
                with anyio.move_on_after(BODY_IDLE_TIMEOUT):
                    message = await receive()
                if message is None:
                    break
                if message["type"] != "http.request":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self._max_body:
                    return self._too_large()
                chunks.append(chunk)
                if not message.get("more_body", False):
                    body = b"".join(chunks)
                    if scope["method"] == "POST" and await _nesting_exceeds(body):
                        return _Refusal(
                            400,
                            "too_deep",
                            f"the request JSON nests deeper than {MAX_JSON_DEPTH} levels; send flatter arguments",
                            jsonrpc=True,
                        )
                    return body
        return _Refusal(
            408, "request_timeout", "the request body arrived too slowly; send it at once", close=True
        )

    def _too_large(self) -> _Refusal:
        return _Refusal(
            413,
            "too_large",
            f"the request body is over security.max_request_bytes ({self._max_body} bytes)",
            close=True,
        )

    def _note(self, scope: Any, refusal: _Refusal) -> None:
        client = scope.get("client")
        level = logging.DEBUG if refusal.status == 429 else logging.INFO
        logger.log(
            level,
            "profile %s: %s %s from %s refused with %d (%s)",
            self.slug,
            scope.get("method"),
            scope.get("path"),
            client[0] if client else "local",
            refusal.status,
            refusal.error,
        )


async def _nesting_exceeds(body: bytes) -> bool:
    if len(body) <= SCAN_INLINE_BYTES:
        return json_nesting_exceeds(body, MAX_JSON_DEPTH)
    return await anyio.to_thread.run_sync(json_nesting_exceeds, body, MAX_JSON_DEPTH)


def _single(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The value of header `name` when it appears exactly once, else None."""
    values = [value for key, value in headers if key.lower() == name]
    return values[0].decode("latin-1") if len(values) == 1 else None


def _bearer_token(value: bytes) -> str | None:
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


_CORS_RESPONSE_NAMES = frozenset({b"access-control-allow-origin", b"access-control-expose-headers"})


def _with_cors(send: Send, origin: str) -> Send:
    """`send` that adds the CORS headers for a listed origin to the response head."""
    extra = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", CORS_EXPOSED_HEADERS.encode()),
        (b"vary", b"Origin"),
    ]

    async def send_with_cors(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _CORS_RESPONSE_NAMES]
            message = {**message, "headers": kept + extra}
        await send(message)

    return send_with_cors


async def _preflight(send: Send, listed_origin: str | None) -> None:
    headers = [(b"allow", CORS_ALLOWED_METHODS.encode()), (b"content-length", b"0")]
    if listed_origin is not None:
        headers += [
            (b"access-control-allow-methods", CORS_ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", CORS_ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", str(PREFLIGHT_MAX_AGE).encode()),
        ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _answer(send: Send, refusal: _Refusal) -> None:
    body = refusal.body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *refusal.headers,
    ]
    if refusal.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the body already read, then whatever the client sends next (its disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> MutableMapping[str, Any]:
        if pending:
            return pending.pop()
        return await receive()

    return replay


async def _refuse_websocket(scope: Any, receive: Receive, send: Send) -> None:
    """MCP has no WebSocket transport here: close the handshake with a policy-violation code."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 1008})


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


# -- traffic log -----------------------------------------------------------------------------------------------

DEFAULT_TRAFFIC_ENTRIES = 1000
MAX_RECORDED_PARAMS_CHARS = 2048
"""Recorded params are cut to this many characters of (redacted) JSON, so one large call cannot fill memory."""


@dataclass(frozen=True)
class TrafficEntry:
    """One MCP request or notification as seen by a profile, already redacted."""

    at: str
    """When it arrived (UTC, ISO 8601)."""
    profile: str
    method: str
    name: str | None
    """The tool or prompt name, or the resource URI, when the method has one."""
    status: str
    """`ok`, `tool_error` (a tool result with isError), `error` (a JSON-RPC error), or `notification`."""
    error_code: int | None
    duration_ms: float
    params: Any
    """The request's params with secrets masked (`redact.Redactor.redact_mapping`), possibly shortened."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrafficLog:
    """The last `max_entries` MCP requests of one profile, redacted before they are stored.

    Fill it by adding `log.middleware` to the profile's MCP server (`server.middleware`); read it with
    `entries()` / `as_json()`. Nothing is written to disk.
    """

    def __init__(self, profile: str, max_entries: int = DEFAULT_TRAFFIC_ENTRIES, redactor: Redactor | None = None):
        self.profile = profile
        self._entries: deque[TrafficEntry] = deque(maxlen=max_entries)
        self._redactor = redactor if redactor is not None else default_redactor

    @classmethod
    def from_config(cls, profile: str, traffic: Any) -> TrafficLog | None:
        """A log for `logging.traffic` when it is enabled, else None."""
        return cls(profile, traffic.max_entries) if traffic.enabled else None

    @property
    def max_entries(self) -> int:
        return self._entries.maxlen or 0

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TrafficLog({self.profile!r}, {len(self._entries)}/{self.max_entries})"

    def entries(self) -> list[TrafficEntry]:
        return list(self._entries)

    def as_json(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self._entries]

    def record(
        self,
        method: str,
        params: Any,
        *,
        status: str,
        duration: float,
        error_code: int | None = None,
        at: datetime | None = None,
    ) -> TrafficEntry:
        """Redact and store one summary; returns it."""
        name = None
        if isinstance(params, dict):
            raw = params.get("name", params.get("uri"))
            name = self._redactor.redact_text(str(raw)) if raw is not None else None
        entry = TrafficEntry(
            at=(at or datetime.now(UTC)).isoformat(timespec="milliseconds"),
            profile=self.profile,
            method=method,
            name=name,
            status=status,
            error_code=error_code,
            duration_ms=round(duration * 1000, 3),
            params=self._summarise(params),
        )
        self._entries.append(entry)
        return entry

    def _summarise(self, params: Any) -> Any:
        redacted = self._redactor.redact_mapping(params)
        text = json.dumps(redacted, default=str, ensure_ascii=False)
        if len(text) <= MAX_RECORDED_PARAMS_CHARS:
            return redacted
        return {"_truncated": text[:MAX_RECORDED_PARAMS_CHARS]}

    async def middleware(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """An MCP server middleware (`Server.middleware`) recording every request that passes it."""
        started = time.monotonic()
        method = str(getattr(ctx, "method", "?"))
        params = getattr(ctx, "params", None)
        try:
            result = await call_next(ctx)
        except Exception as exc:
            code = getattr(getattr(exc, "error", None), "code", None)
            self.record(method, params, status="error", duration=time.monotonic() - started, error_code=code)
            raise
        if getattr(ctx, "request_id", None) is None:
            status = "notification"
        elif _is_tool_error(result):
            status = "tool_error"
        else:
            status = "ok"
        self.record(method, params, status=status, duration=time.monotonic() - started)
        return result


def _is_tool_error(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("isError") is True
    return getattr(result, "is_error", None) is True
