"""Which protocol line the gateway speaks to an upstream, and a second connection for servers that speak both.

Under `protocol: auto` the gateway mirrors its client. Its first connection to a server (the one the profile's
catalog comes from) probes `server/discover`: a server that answers gets a 2026-07-28 connection, one that does
not gets the `initialize` handshake. Towards a server that speaks both lines, a session client's requests then
travel over a second, handshake connection, opened on the first such request and closed with the first one:
there the server's own server-initiated questions (sampling, elicitation, roots) and its notifications reach the
client as they would on a direct connection. A 2026-07-28 client's requests use the 2026-07-28 connection.

One stdio stream serves one line only (an SDK server that answered `server/discover` refuses `initialize` on the
same stream, and the reverse), so for a stdio server the second connection is a second process.

    auto       server answers server/discover    2026-07-28 for 2026-07-28 clients, handshake (second
                                                 connection) for session clients
               server does not answer it         handshake for everyone (2026-07-28 clients get rounds)
               answers it, refuses 2026-07-28    handshake for everyone, from the next connection on
    handshake                                    handshake for everyone
    modern                                       2026-07-28 for everyone (session clients get their
                                                 questions from the server's input_required rounds)
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

import anyio
import mcp.types as types
from anyio.abc import TaskGroup
from mcp import ClientSession
from mcp.client._probe import negotiate_auto
from mcp.shared.exceptions import MCPError
from mcp_types.version import LATEST_MODERN_VERSION, MODERN_PROTOCOL_VERSIONS

from local_mcp_gateway.errors import UpstreamError
from local_mcp_gateway.upstream.common import Listings, UpstreamState, describe

if TYPE_CHECKING:
    from local_mcp_gateway.upstream.connection import Upstream

__all__ = ["first_listing", "line_status", "mirror", "negotiate", "session_line"]

logger = logging.getLogger(__name__)

SECOND_CONNECTION_WAIT = 30.0
"""Longest wait for the handshake connection to come up on its first use; without it the 2026-07-28 connection
serves the request (the gateway then answers the server's input_required rounds by asking the client)."""

_pins: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
"""Second connections, pinned to the handshake line whatever their server's `protocol` says."""

_refused: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
"""Upstreams whose server answered `server/discover` but refused 2026-07-28 requests: why (shown in /status)."""

_seconds: weakref.WeakKeyDictionary[Any, Upstream] = weakref.WeakKeyDictionary()
"""The handshake connection of an upstream, once opened."""


_used: dict[str, TaskGroup] = {}
"""Servers (by profile/name) whose session clients used a second connection, with the task group it ran in: the
connection that replaces one after a reload or a change of its answer opens its second one at once."""


def _line(upstream: Upstream) -> str:
    pinned = _pins.get(upstream)
    if pinned is not None:
        return pinned
    if upstream in _refused:
        return "handshake"
    return getattr(upstream.server, "protocol", "auto")


# -- connecting ---------------------------------------------------------------------------------------------------


async def negotiate(upstream: Upstream, session: ClientSession) -> None:
    """Open `session` on the line `upstream` should speak (see module docstring)."""
    line = _line(upstream)
    tg = _used.get(upstream.label)
    if tg is not None and line == "auto" and upstream not in _seconds:
        # Session clients used a second connection to this server before: start one now, beside this probe, so
        # their next request does not wait for two starts (it is closed again if the server speaks only one line).
        try:
            _open_second(upstream, tg)
        except RuntimeError:  # that task group has ended (its profile stopped)
            _used.pop(upstream.label, None)
    if line == "handshake":
        await session.initialize()
    elif line == "modern":
        try:
            raw = await session.send_discover(LATEST_MODERN_VERSION)
        except MCPError as exc:
            raise UpstreamError(
                f"protocol: modern, but the server refused server/discover ({describe(exc)}); "
                "use protocol: auto or handshake for it"
            ) from exc
        result = types.DiscoverResult.model_validate(raw)
        if not any(version in result.supported_versions for version in MODERN_PROTOCOL_VERSIONS):
            raise UpstreamError(
                f"protocol: modern, but the server offers only {', '.join(result.supported_versions)}; "
                "use protocol: auto or handshake for it"
            )
        session.adopt(result)
    else:
        await negotiate_auto(session)  # server/discover (2026-07-28) where served, else initialize


async def first_listing(upstream: Upstream, session: ClientSession) -> Listings:
    """The first listings of a new connection; a server that answered `server/discover` under `protocol: auto`
    but refuses the 2026-07-28 requests that follow is connected on the handshake line from now on."""
    try:
        listings = await upstream._list_all(session)
    except MCPError as exc:
        if not upstream.modern or _line(upstream) != "auto":
            raise
        _refused[upstream] = (
            f"answered server/discover but refused a 2026-07-28 request ({describe(exc)}); "
            "speaking the handshake line to it"
        )
        logger.warning("upstream %s %s", upstream.label, _refused[upstream])
        raise UpstreamError(_refused[upstream]) from exc
    return listings


# -- choosing the connection for a caller -------------------------------------------------------------------------


class _SecondEvents:
    """Events of a second connection, reported as the first one's: the profile knows only the first."""

    def __init__(self, first: Upstream, tg: TaskGroup) -> None:
        self.first = first
        self.tg = tg

    def listings_changed(self, upstream: Upstream) -> None:
        # The catalog comes from the first connection; a change the server announced here is listed there.
        if upstream.ever_ready and self.first.state == UpstreamState.READY:
            self.tg.start_soon(self.first._relist)

    async def resource_updated(self, upstream: Upstream, params: types.ResourceUpdatedNotificationParams) -> None:
        await self.first.events.resource_updated(self.first, params)

    async def log_message(self, upstream: Upstream, params: types.LoggingMessageNotificationParams) -> None:
        await self.first.events.log_message(self.first, params)


async def _run_second(first: Upstream, second: Upstream) -> None:
    """Run the second connection until the first one is stopped (by a reload, a removal or the profile's end)."""
    async with anyio.create_task_group() as tg:

        async def stop_with_first() -> None:
            await first._stop.wait()
            second.stop()

        tg.start_soon(stop_with_first)
        await second.run()
        tg.cancel_scope.cancel()


def _open_second(upstream: Upstream, tg: TaskGroup) -> Upstream:
    from local_mcp_gateway.upstream.connection import Upstream  # the connection imports this module

    second = Upstream(upstream.server, _SecondEvents(upstream, tg), auth=upstream._auth_factory)
    _pins[second] = "handshake"
    _seconds[upstream] = second
    _used[upstream.label] = tg
    logger.info("upstream %s: opening a handshake connection for session clients", upstream.label)
    tg.start_soon(_run_second, upstream, second)
    return second


async def mirror(upstream: Upstream, modern_caller: bool, tg: TaskGroup | None) -> Upstream:
    """The connection a caller's request should use: the caller's own line where the server speaks it."""
    if upstream.state == UpstreamState.READY and not upstream.modern and (stale := _seconds.pop(upstream, None)):
        # The server no longer answers server/discover (it changed across a restart): one line for everyone.
        logger.info("upstream %s now speaks the handshake line only; closing its second connection", upstream.label)
        stale.stop()
    if modern_caller or not upstream.modern or _line(upstream) != "auto" or tg is None:
        return upstream
    second = _seconds.get(upstream) or _open_second(upstream, tg)
    if second.server is not upstream.server:  # a reload changed only names or filters: both follow
        second.server = upstream.server
    await second.wait_settled(SECOND_CONNECTION_WAIT)
    if second.state != UpstreamState.READY:
        return upstream
    if second._log_level != upstream._log_level and upstream._log_level is not None:
        await second.set_log_level(upstream._log_level)
    return second


def session_line(upstream: Upstream, modern_caller: bool) -> Upstream:
    """The connection a caller's requests went over, without opening one (for ending what it started there)."""
    if modern_caller:
        return upstream
    second = _seconds.get(upstream)
    return second if second is not None and second.state == UpstreamState.READY else upstream


def line_status(upstream: Upstream) -> dict[str, Any]:
    """What /status shows about the lines of one server: the first connection's, and the second one if open."""
    entry: dict[str, Any] = {}
    if upstream.state == UpstreamState.READY:
        entry["protocol"] = "2026-07-28" if upstream.modern else "handshake"
    second = _seconds.get(upstream)
    if second is not None:
        entry["handshake_connection"] = str(second.state)
        entry["restarts"] = upstream.restarts + second.restarts  # the server's restarts, on either line
        if second.error:
            entry["handshake_connection_error"] = second.error
    if upstream in _refused:
        entry["protocol_note"] = _refused[upstream]
    return entry
