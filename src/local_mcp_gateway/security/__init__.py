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

The same guard stands before the operator routes (`InboundGuard.for_operator`: no key, no rate limit).

Modules: `limits` (sizes, timeouts, Hypercorn settings), `access` (Host allow-list, API keys), `ratelimit`,
`guard` (the `InboundGuard` itself), `traffic` (the traffic log), `exhaustion` (out-of-descriptor logging).
"""

from __future__ import annotations

from local_mcp_gateway.security.access import HostAllowList, KeyRing, is_loopback_address
from local_mcp_gateway.security.exhaustion import ExhaustionFilter, install_accept_error_filter
from local_mcp_gateway.security.guard import InboundGuard
from local_mcp_gateway.security.limits import (
    CORS_ALLOWED_HEADERS,
    CORS_EXPOSED_HEADERS,
    MAX_HEADER_BYTES,
    MAX_HEADER_COUNT,
    MAX_JSON_DEPTH,
    MAX_TRACKED_CLIENTS,
    apply_server_limits,
    json_nesting_exceeds,
)
from local_mcp_gateway.security.ratelimit import RateLimiter
from local_mcp_gateway.security.traffic import TrafficEntry, TrafficLog

__all__ = [
    "CORS_ALLOWED_HEADERS",
    "CORS_EXPOSED_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_COUNT",
    "MAX_JSON_DEPTH",
    "MAX_TRACKED_CLIENTS",
    "ExhaustionFilter",
    "HostAllowList",
    "InboundGuard",
    "KeyRing",
    "RateLimiter",
    "TrafficEntry",
    "TrafficLog",
    "apply_server_limits",
    "install_accept_error_filter",
    "is_loopback_address",
    "json_nesting_exceeds",
]
