"""One live connection to one upstream MCP server, supervised.

An `Upstream` is owned by exactly one task (`run`), which opens the transport, holds the `ClientSession`,
keeps the server's listings current, and reconnects with exponential backoff when the server crashes. Request
handlers only borrow the session through `request()`. Server-to-client traffic (sampling, elicitation, roots,
log messages) is routed to the downstream call that is in flight on this upstream (`Caller`), since that call is
what caused it; list changes and resource updates are reported to the owner through `UpstreamEvents`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import mcp.types as types
from mcp import ClientSession
from mcp.client._probe import negotiate_auto
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter

from local_mcp_gateway import __version__
from local_mcp_gateway.errors import UpstreamError
from local_mcp_gateway.upstream.backchannel import BackChannel
from local_mcp_gateway.upstream.common import (
    CALLER_CAPABILITIES,
    Caller,
    Listings,
    UpstreamEvents,
    UpstreamState,
    describe,
    is_auth_wait,
    stamp_caller_capabilities,
    watch_end,
)
from local_mcp_gateway.upstream.listing import ListingsKeeper
from local_mcp_gateway.upstream.stdio import StdioProcess
from local_mcp_gateway.upstream.transports import open_transport

__all__ = [
    "CALLER_CAPABILITIES",
    "STOP_GRACE",
    "AuthFactory",
    "Caller",
    "Listings",
    "Upstream",
    "UpstreamEvents",
    "UpstreamState",
]

logger = logging.getLogger(__name__)

RAW_RESULT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])
"""Results are passed through as received: no model round trip on the hot path."""

BACKOFF_INITIAL = 0.5
"""Seconds before the first restart after a crash; doubled per consecutive crash."""

BACKOFF_MAX = 30.0
"""Longest wait between two restarts."""

MAX_CONSECUTIVE_CRASHES = 5
"""After this many crashes in a row the server stays `failed` until its configuration changes."""

STABLE_AFTER = 30.0
"""Seconds of uninterrupted service after which the crash count starts again from zero."""

STARTUP_GRACE = 10.0
"""Least time a server gets to start and answer initialize (and the first listings), whatever its timeout_seconds:
a process start (an interpreter, `npx`) can take longer than a request may."""

STOP_GRACE = 10.0
"""Seconds in-flight calls may take to finish when the server is being removed or restarted."""

GATEWAY_CLIENT_INFO = types.Implementation(name="local-mcp-gateway", version=__version__)


AuthFactory = Callable[["Upstream"], Any]
"""Returns the `httpx2.Auth` for a remote upstream with `oauth` settings (None: no authentication)."""

NEEDS_AUTH_RETRY = 5.0
"""Seconds between attempts while a server waits for an OAuth login (tokens may arrive from `auth login`)."""

Connector = Callable[["Upstream"], Any]
"""Returns an async context manager yielding (read, write) for the upstream (the default opens its transport)."""


class Upstream(ListingsKeeper, BackChannel):
    """A supervised connection to one upstream server (see module docstring)."""

    def __init__(
        self,
        server: Any,
        events: UpstreamEvents,
        *,
        connector: Connector | None = None,
        auth: AuthFactory | None = None,
    ) -> None:
        self.server = server
        self.events = events
        self._auth_factory = auth
        self.state = UpstreamState.DISABLED if not server.enabled else UpstreamState.STARTING
        self.error: str | None = None
        self.restarts = 0
        self.listings = Listings()
        self.process = StdioProcess(pid=0) if server.kind == "stdio" else None
        self.auth_url: str | None = None
        self.auth_scope: str | None = None
        """The scope a pending step-up login asks for (the connection serves meanwhile)."""
        self._connector = connector
        self._session: ClientSession | None = None
        self._capabilities: types.ServerCapabilities | None = None
        self._callers: list[Caller] = []
        self._in_flight = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._stop = anyio.Event()
        self._ready_or_failed = anyio.Event()
        self._log_level: types.LoggingLevel | None = None
        self._init_scope: anyio.CancelScope | None = None
        self.modern = False
        """Whether the connection speaks 2026-07-28 (chosen by the upstream's answer to `server/discover`)."""
        self._resource_uris: dict[str, int] = {}
        self._uris_changed = anyio.Event()
        self.ever_ready = False
        """Whether this upstream has been ready at least once (a first start is waited for by requests)."""
        self._authorized = anyio.Event()

    # -- state -------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def label(self) -> str:
        return f"{self.server.profile}/{self.server.name}"

    @property
    def _startup_timeout(self) -> float:
        return max(self.server.timeout_seconds, STARTUP_GRACE)

    @property
    def capabilities(self) -> types.ServerCapabilities | None:
        return self._capabilities

    async def wait_settled(self, timeout: float) -> None:
        """Wait until the first connection attempt is over, ready or not (at most `timeout` seconds)."""
        with anyio.move_on_after(timeout):
            await self._ready_or_failed.wait()

    def stop(self) -> None:
        """Ask the owner task to close the connection (after in-flight calls, bounded by `STOP_GRACE`)."""
        self._stop.set()
        if self._init_scope is not None:  # a connection attempt (perhaps waiting for a login) ends now
            self._init_scope.cancel()

    # -- the owner task --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; return once `stop()` is called or the server has failed."""
        if not self.server.enabled:
            self._ready_or_failed.set()
            return
        crashes = 0
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    await self._connect_and_serve()
                except Exception as exc:  # one upstream's failure never propagates to the profile
                    if is_auth_wait(exc):
                        await self._wait_for_login(exc)
                        continue
                    self.error = describe(exc)
                    logger.warning("upstream %s failed: %s", self.label, self.error)
                finally:
                    self._session = None
                if self._stop.is_set():
                    break
                self._ready_or_failed.set()  # the first attempt is over: nobody waits on this server any longer
                if time.monotonic() - started > STABLE_AFTER:
                    crashes = 0
                crashes += 1
                if self.error is None:
                    self.error = "the server closed the connection"
                if crashes >= MAX_CONSECUTIVE_CRASHES:
                    self.state = UpstreamState.FAILED
                    self._ready_or_failed.set()
                    self._set_listings(Listings())
                    logger.error(
                        "upstream %s failed %d times in a row; it stays failed until its configuration changes",
                        self.label,
                        crashes,
                    )
                    return
                self.state = UpstreamState.STARTING if self.state != UpstreamState.FAILED else self.state
                self._set_listings(Listings())
                delay = min(BACKOFF_INITIAL * 2 ** (crashes - 1), BACKOFF_MAX)
                logger.info("restarting upstream %s in %.1f s", self.label, delay)
                with anyio.move_on_after(delay):
                    await self._stop.wait()
                if not self._stop.is_set():
                    self.restarts += 1
                    self.state = UpstreamState.STARTING
        finally:
            self.state = UpstreamState.STOPPED if self.state != UpstreamState.FAILED else self.state
            self._ready_or_failed.set()

    def mark_needs_auth(self, url: str) -> None:
        """An OAuth login is needed: show `url` in /status; the connection attempt waits, unbounded by the timeout."""
        self.auth_url = url
        self.state = UpstreamState.NEEDS_AUTH
        self.error = "waiting for an OAuth login"
        if self._init_scope is not None:
            self._init_scope.deadline = float("inf")
        self._ready_or_failed.set()
        self._set_listings(Listings())

    def mark_step_up(self, url: str, scope: str | None) -> None:
        """A call needs a wider `scope`: show the login `url`; the connection keeps serving meanwhile."""
        self.auth_url = url
        self.auth_scope = scope

    def mark_authorized(self) -> None:
        """The login finished: the connection attempt continues, bounded by the timeout again."""
        self.auth_url = None
        self.auth_scope = None
        if self.state == UpstreamState.NEEDS_AUTH:
            self.state = UpstreamState.STARTING
            self.error = None
        if self._init_scope is not None:
            self._init_scope.deadline = anyio.current_time() + self._startup_timeout
        self._authorized.set()

    async def _wait_for_login(self, exc: BaseException) -> None:
        """Stay `needs_auth` until a login completes (or `NEEDS_AUTH_RETRY` passes), without counting a crash."""
        if self.state != UpstreamState.NEEDS_AUTH:
            self.state = UpstreamState.NEEDS_AUTH
        self.error = describe(exc)
        self._ready_or_failed.set()
        self._authorized = anyio.Event()
        with anyio.move_on_after(NEEDS_AUTH_RETRY):
            async with anyio.create_task_group() as waiters:

                async def until(event: anyio.Event) -> None:
                    await event.wait()
                    waiters.cancel_scope.cancel()

                waiters.start_soon(until, self._stop)
                waiters.start_soon(until, self._authorized)

    async def _connect_and_serve(self) -> None:
        auth = self._auth_factory(self) if self._auth_factory and self.server.kind == "remote" else None
        transport = (
            self._connector(self) if self._connector else open_transport(self.server, process=self.process, auth=auth)
        )
        async with transport as (read, write), anyio.create_task_group() as tg:
            closed = anyio.Event()
            session_read = watch_end(read, closed, tg)
            async with ClientSession(
                session_read,
                write,
                sampling_callback=self._on_sampling,
                elicitation_callback=self._on_elicitation,
                list_roots_callback=self._on_list_roots,
                logging_callback=self._on_log,
                message_handler=lambda message: self._on_message(message, tg),
                client_info=GATEWAY_CLIENT_INFO,
                # On 2026-07-28 log messages are a per-request opt-in: take them all, callers filter their own.
                log_level="debug",
            ) as session:
                with anyio.CancelScope(deadline=anyio.current_time() + self._startup_timeout) as scope:
                    self._init_scope = scope
                    if getattr(self.server, "protocol", "auto") == "handshake":
                        await session.initialize()
                    else:
                        await negotiate_auto(session)  # server/discover (2026-07-28) where served, else initialize
                    self.modern = session.discover_result is not None
                    if self.modern:
                        stamp_caller_capabilities(session)
                    self._capabilities = session.server_capabilities
                    listings = await self._list_all(session)
                self._init_scope = None
                if scope.cancelled_caught:
                    raise UpstreamError(f"no answer to initialize within {self._startup_timeout:g} s")
                self._session = session
                self.state = UpstreamState.READY
                self.ever_ready = True
                self.error = None
                self._set_listings(listings)
                self._ready_or_failed.set()
                logger.info("upstream %s ready: %d tools", self.label, len(listings.tools))
                if self._log_level is not None:
                    await self._apply_log_level(session)
                if self.modern:
                    tg.start_soon(self._follow_changes, session, tg)
                async with anyio.create_task_group() as waiters:

                    async def until(event: anyio.Event) -> None:
                        await event.wait()
                        waiters.cancel_scope.cancel()

                    waiters.start_soon(until, self._stop)
                    waiters.start_soon(until, closed)
                if self._stop.is_set():
                    with anyio.move_on_after(STOP_GRACE):
                        await self._idle.wait()
                self._session = None
                tg.cancel_scope.cancel()
            if not self._stop.is_set():
                raise UpstreamError("the server closed the connection")

    # -- calls from request handlers -------------------------------------------------------------------------

    async def request(
        self,
        request: types.ClientRequest | types.Request[Any, Any],
        caller: Caller | None = None,
        *,
        progress: Any = None,
    ) -> dict[str, Any]:
        """Send `request` upstream and return the raw result; the call is cancelled after `timeout_seconds`."""
        session = self._session
        if session is None or self.state != UpstreamState.READY:
            raise MCPError(types.INTERNAL_ERROR, f"server {self.name!r} is not available ({self.state})")
        if caller is not None:
            self._callers.append(caller)
        self._in_flight += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        try:
            with anyio.move_on_after(self.server.timeout_seconds):
                return await session.send_request(request, RAW_RESULT, progress_callback=progress)
            raise MCPError(
                types.REQUEST_TIMEOUT,
                f"server {self.name!r} did not answer within {self.server.timeout_seconds:g} s; the call was cancelled",
            )
        finally:
            self._in_flight -= 1
            if caller is not None:
                self._callers.remove(caller)
            if self._in_flight == 0:
                self._idle.set()

