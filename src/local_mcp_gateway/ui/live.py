"""The dashboard's event stream (`GET /ui/events`): what changed since the page last heard, as server-sent events.

- `status`: the generation, each profile's catalog digest and each server's field texts, sent whenever any of
  them changed (the page reloads on a new generation or catalog, and updates the rest in place);
- `traffic`: traffic entries recorded since the last event, with the per-tool figures over every entry the logs
  hold; the first one carries what the logs already hold.

The stream looks every `EVENT_POLL` seconds: upstream states change without an event to wait on, and looking is
cheap (catalog digests are kept per catalog object, traffic rows are only built when an entry was added).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio

from local_mcp_gateway.ui import views

__all__ = ["EVENT_KEEPALIVE", "EVENT_POLL", "TRAFFIC_ROWS", "LiveView", "event_stream"]

logger = logging.getLogger(__name__)

TRAFFIC_ROWS = 300
"""Traffic rows sent when a page opens its event stream (newest last); the page keeps at most this many."""
EVENT_POLL = 0.5
"""How often the event stream looks for status changes and new traffic."""
EVENT_KEEPALIVE = 15.0
"""Seconds between comment lines that keep an idle event stream open through proxies."""


class LiveView:
    """What one open page has been sent so far, and what to send next."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self._digests: dict[str, tuple[Any, str]] = {}
        self._last_entry: dict[str, Any] = {}

    def oauth_servers(self, slug: str) -> list[str]:
        profile = self.gateway.profiles.get(slug)
        if profile is None:
            return []
        return [s.name for s in profile.servers if getattr(s, "oauth", None) is not None and s.name in profile.upstreams]

    def status(self) -> dict[str, Any]:
        digests = {}
        for slug, profile in list(self.gateway.profiles.items()):
            catalog = profile.catalog
            cached = self._digests.get(slug)
            if cached is None or cached[0] is not catalog:  # a catalog is replaced, never changed, when it changes
                cached = (catalog, views.catalog_digest(catalog))
                self._digests[slug] = cached
            digests[slug] = cached[1]
        oauth = {slug: self.oauth_servers(slug) for slug in self.gateway.profiles}
        return views.live_status(self.gateway.status(), digests, oauth)

    def traffic(self, *, force: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """(rows recorded since the last call, rows of every entry the logs hold); None when nothing was added."""
        logs = {slug: profile for slug, profile in list(self.gateway.profiles.items()) if profile.traffic is not None}
        latest = {slug: (entries[-1] if (entries := profile.traffic.entries()) else None) for slug, profile in logs.items()}
        if not force and all(latest[slug] is self._last_entry.get(slug) for slug in latest):
            return None
        new: list[dict[str, Any]] = []
        everything: list[dict[str, Any]] = []
        for slug, profile in logs.items():
            entries = profile.traffic.entries()
            rows = views.traffic_rows(entries, profile.catalog)
            last = self._last_entry.get(slug)
            start = 0
            if last is not None:  # entries are immutable: identity marks the place (0 if it was dropped)
                for index in range(len(entries) - 1, -1, -1):
                    if entries[index] is last:
                        start = index + 1
                        break
            self._last_entry[slug] = entries[-1] if entries else None
            new.extend(rows[start:])
            everything.extend(rows)
        new.sort(key=lambda row: row["at"])
        return new, everything


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def event_stream(view: LiveView) -> AsyncIterator[bytes]:
    """The stream of one open page, until the page goes away (the server then cancels it) or the gateway stops
    serving (so an open page does not hold up a shutdown; the page reconnects to the next process)."""
    logger.debug("dashboard event stream opened")
    try:
        yield b"retry: 2000\n\n"
        last_status = None
        first = True
        quiet = 0.0
        stopping = getattr(view.gateway, "stopping", None)
        while stopping is None or not stopping.is_set():
            status = view.status()
            if status != last_status:
                yield _event("status", status)
                last_status = status
                quiet = 0.0
            traffic = view.traffic(force=first)
            if traffic is not None:
                new, everything = traffic
                yield _event("traffic", {"rows": new[-TRAFFIC_ROWS:], "stats": views.traffic_stats(everything)})
                first = False
                quiet = 0.0
            if quiet >= EVENT_KEEPALIVE:
                yield b": keep-alive\n\n"
                quiet = 0.0
            await anyio.sleep(EVENT_POLL)
            quiet += EVENT_POLL
        logger.debug("dashboard event stream ended: the gateway is stopping")
    finally:
        logger.debug("dashboard event stream closed")
