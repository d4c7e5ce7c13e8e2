"""Inbound security in front of every profile endpoint (placeholder: passes requests through)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["InboundGuard", "apply_server_limits"]

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class InboundGuard:
    """Checks one request to one profile's MCP endpoint, then hands it to `app`."""

    def __init__(self, security: Any, api_keys: Sequence[str], slug: str) -> None:
        self.security = security
        self.slug = slug
        self._keys = tuple(api_keys)

    async def __call__(self, scope: Any, receive: Any, send: Any, app: ASGIApp) -> None:
        await app(scope, receive, send)


def apply_server_limits(config: Any, security: Any) -> None:
    """Hypercorn settings that bound what one client can hold (none yet)."""
