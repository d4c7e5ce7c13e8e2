"""What one client connection of a profile sees: the shared upstreams plus its own per-session ones."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mcp.server.session import ServerSession

from local_mcp_gateway.catalog import Catalog
from local_mcp_gateway.upstream.connection import Upstream

__all__ = ["View"]


@dataclass(eq=False)
class View:
    """The upstreams one client connection sees: the profile's shared ones plus its own per-session ones."""

    own: dict[str, Upstream] = field(default_factory=dict)
    catalog: Catalog | None = None
    version: tuple[int, int] = (-1, -1)
    own_version: int = 0
    session: ServerSession | None = None
    subscriptions: set[str] = field(default_factory=set)
    opened: float = field(default_factory=time.monotonic)
    """When the connection made its first request (monotonic seconds), for the session duration metric."""
