"""The inbound guard in front of a profile's MCP endpoint: one request checked layer by layer (see the
package docstring for the order), then handed on with its body replayed from memory."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from local_mcp_gateway import observability
from local_mcp_gateway.security.access import HostAllowList, KeyRing, is_loopback_address
from local_mcp_gateway.security.limits import (
    BODY_IDLE_TIMEOUT,
    BODY_TOTAL_TIMEOUT,
    CORS_ALLOWED_HEADERS,
    CORS_ALLOWED_METHODS,
    CORS_EXPOSED_HEADERS,
    MAX_HEADER_BYTES,
    MAX_HEADER_COUNT,
    MAX_JSON_DEPTH,
    PREFLIGHT_MAX_AGE,
    SCAN_INLINE_BYTES,
    json_nesting_exceeds,
)
from local_mcp_gateway.security.ratelimit import RateLimiter

__all__ = ["InboundGuard"]

_LOOPBACK_ORIGIN = re.compile(r"^https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?$", re.IGNORECASE)

logger = logging.getLogger(__name__)

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

AUTH_REALM = "local-mcp-gateway"
JSONRPC_INVALID_REQUEST = -32600


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

    def __init__(
        self,
        security: Any,
        api_keys: Sequence[str],
        slug: str,
        *,
        rate_limited: bool = True,
        extra_hosts: Sequence[str] = (),
        authenticator: Any = None,
        any_origin: bool = False,
    ) -> None:
        self.security = security
        self._any_origin = any_origin
        """Whether pages of any origin may read (public documents, e.g. protected resource metadata)."""
        self.slug = slug
        self.authenticator = authenticator
        """Who is calling (`identity.Authenticator`: API keys and OAuth tokens); None: the API keys alone."""
        self._keys = KeyRing(api_keys)
        self._hosts = HostAllowList([*security.allowed_hosts, *extra_hosts])
        self._cors = frozenset(origin.lower() for origin in security.cors_origins)
        rate = security.rate_limit
        limited = rate_limited and rate.requests_per_minute > 0
        self._limiter = RateLimiter(rate.requests_per_minute) if limited else None
        self._limit_loopback = bool(rate.include_loopback)
        self._max_body = int(security.max_request_bytes)
        if self._keys.required and not len(self._keys):
            logger.warning("profile %s: every configured API key is empty; no request will be accepted", slug)

    @classmethod
    def for_operator(cls, security: Any, public_host: str | None = None, *, any_origin: bool = False) -> InboundGuard:
        """The guard of the operator routes (`/status`, `/readyz`, `/healthz`, `/traffic/...`, `/oauth/callback`).

        The same layers as a profile's endpoint, minus the API key (health probes carry none) and the rate limit
        (monitors poll): Host and Origin (so a DNS-rebound page cannot read `/status`), header count and size,
        body size and time. `public_host`, the `host:port` of `public_url`, is accepted too: the browser comes
        back to `/oauth/callback` by that name. With `any_origin`, the Origin check is left out (public documents
        that browser-based clients must read, like RFC 9728 metadata; the Host check stays).
        """
        extra = (public_host,) if public_host else ()
        return cls(security, (), "(operator routes)", rate_limited=False, extra_hosts=extra, any_origin=any_origin)

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
            refusal = self._check_key(headers) if self.authenticator is None else await self._identify(scope, headers)
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
        if self._keys.required or self.authenticator is not None:  # neither a key nor a token goes further
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
        if (
            origin is not None
            and not self._any_origin
            and origin.lower() not in self._cors
            and not _LOOPBACK_ORIGIN.fullmatch(origin)
        ):
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

    async def _identify(self, scope: Any, headers: list[tuple[bytes, bytes]]) -> _Refusal | None:
        """The authenticator's decision; a caller it lets in is left in the scope for the MCP handlers."""
        refused = await self.authenticator.identify(scope, headers)
        return None if refused is None else _Refusal(refused.status, refused.error, refused.message, refused.headers)

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
        body: bytes | None = None
        # One cancel scope for the whole body: its deadline is the sooner of the total and the idle limit, moved
        # on after every piece (a scope per piece cost as much as the rest of the guard).
        give_up = anyio.current_time() + BODY_TOTAL_TIMEOUT
        with anyio.CancelScope(deadline=min(give_up, anyio.current_time() + BODY_IDLE_TIMEOUT)) as waiting:
            while body is None:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                waiting.deadline = min(give_up, anyio.current_time() + BODY_IDLE_TIMEOUT)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self._max_body:
                    return self._too_large()
                chunks.append(chunk)
                if not message.get("more_body", False):
                    body = b"".join(chunks)
        if body is None:
            return _Refusal(
                408, "request_timeout", "the request body arrived too slowly; send it at once", close=True
            )
        if scope["method"] == "POST" and await _nesting_exceeds(body):
            return _Refusal(
                400,
                "too_deep",
                f"the request JSON nests deeper than {MAX_JSON_DEPTH} levels; send flatter arguments",
                jsonrpc=True,
            )
        return body

    def _too_large(self) -> _Refusal:
        return _Refusal(
            413,
            "too_large",
            f"the request body is over security.max_request_bytes ({self._max_body} bytes)",
            close=True,
        )

    def _note(self, scope: Any, refusal: _Refusal) -> None:
        observability.note_refusal(self.slug, refusal.error)
        client = scope.get("client")
        level = logging.DEBUG if refusal.status == 429 else logging.INFO
        logger.log(
            level,
            "%s: %s %s from %s refused with %d (%s)",
            f"profile {self.slug}" if not self.slug.startswith("(") else self.slug.strip("()"),
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
