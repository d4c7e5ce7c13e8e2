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
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter

from local_mcp_gateway import __version__, observability
from local_mcp_gateway.errors import UpstreamError
from local_mcp_gateway.redact import RedactedText, redact_text
from local_mcp_gateway.upstream import eras
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
from local_mcp_gateway.upstream.login import LoginWaits
from local_mcp_gateway.upstream.stdio import StdioProcess
from local_mcp_gateway.upstream.supervision import Backoff, RetrySchedule, first_of
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

STARTUP_GRACE = 10.0
"""Least time a server gets to start and answer initialize (and the first listings), whatever its timeout_seconds:
a process start (an interpreter, `npx`) can take longer than a request may."""

STOP_GRACE = 10.0
"""Seconds in-flight calls may take to finish when the server is being removed or restarted."""

GATEWAY_CLIENT_INFO = types.Implementation(name="local-mcp-gateway", version=__version__)


AuthFactory = Callable[["Upstream"], Any]
"""Returns the `httpx2.Auth` for a remote upstream with `oauth` settings (None: no authentication)."""

RESTART_WAIT = 10.0
"""Longest time a call waits for its server to come back from a restart before it gets a retryable error."""

Connector = Callable[["Upstream"], Any]
"""Returns an async context manager yielding (read, write) for the upstream (the default opens its transport)."""


class Upstream(ListingsKeeper, BackChannel, LoginWaits):
    """A supervised connection to one upstream server (see module docstring)."""

    error = RedactedText()
    """The last error, as /status and `tools` show it: redacted when it is stored, whoever stores it."""

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
        self.server_info: types.Implementation | None = None
        """The name and version the server announced (for lock files)."""
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
        self.backoff = Backoff()
        self.retry = RetrySchedule()
        """When the next attempt is due after the connection ended (see `upstream.supervision`)."""
        self._ready = anyio.Event()
        self._ready_since: float | None = None
        self.last_used = time.monotonic()
        """Monotonic time a call through this upstream last began or ended."""
        self.known_listings = Listings()
        """What the server offered when it was last ready: calls for it are known while it is down."""

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

    @property
    def calls_in_flight(self) -> int:
        return self._in_flight

    def retry_now(self) -> bool:
        """Cut a backoff wait short and connect at once (a reload asks for this); whether a wait was cut."""
        return self.retry.wake()

    @property
    def next_retry_at(self) -> float | None:
        """Wall-clock time of the next connection attempt while the server is down and waiting, else None."""
        return self.retry.next_retry_at

    def stop(self) -> None:
        """Ask the owner task to close the connection (after in-flight calls, bounded by `STOP_GRACE`)."""
        self._stop.set()
        if self._init_scope is not None:  # a connection attempt (perhaps waiting for a login) ends now
            self._init_scope.cancel()

    # -- the owner task --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and connect again with backoff whenever the connection ends, until `stop()`.

        There is no state it gives up in: after repeated crashes the server shows `failed` but is still retried
        (see `upstream.supervision`), and a reload or a client call can bring the next attempt forward.
        """
        if not self.server.enabled:
            self._ready_or_failed.set()
            return
        try:
            while not self._stop.is_set():
                self.retry.attempt_started()
                try:
                    await self._connect_and_serve()
                except Exception as exc:  # one upstream's failure never propagates to the profile
                    if is_auth_wait(exc):
                        await self._wait_for_login(exc)
                        continue
                    self.error = describe(exc)
                    logger.warning("upstream %s failed: %s", self.label, self.error)
                finally:
                    self._lost()
                if self._stop.is_set():
                    break
                self._ready_or_failed.set()  # the first attempt is over: nobody waits on this server any longer
                served = time.monotonic() - self._ready_since if self._ready_since is not None else 0.0
                self._ready_since = None
                if self.error is None:
                    self.error = "the server closed the connection"
                delay = self.backoff.crashed(served)
                if self.backoff.failing:
                    if self.state != UpstreamState.FAILED:
                        logger.error(
                            "upstream %s failed %d times in a row; still retrying, at most %g s apart",
                            self.label,
                            self.backoff.crashes,
                            self.backoff.maximum,
                        )
                    self.state = UpstreamState.FAILED
                    self._set_listings(Listings())
                elif self.state != UpstreamState.FAILED:
                    # A restart keeps the listings: clients keep seeing the tools, and their calls wait for it.
                    self.state = UpstreamState.STARTING
                logger.info("restarting upstream %s in %.1f s", self.label, delay)
                await self.retry.wait(delay, self._stop)
                if not self._stop.is_set():
                    self.restarts += 1
        finally:
            self.state = UpstreamState.STOPPED
            self._ready_or_failed.set()

    def _lost(self) -> None:
        """The connection is gone (its teardown may still take a moment): calls from now on wait for the next one."""
        self._session = None
        if self._ready.is_set():
            self._ready = anyio.Event()
        if self.state == UpstreamState.READY and not self._stop.is_set():
            self.state = UpstreamState.STARTING

    async def _connect_and_serve(self) -> None:
        auth = self._auth_factory(self) if self._auth_factory and self.server.kind == "remote" else None
        transport = (
            self._connector(self) if self._connector else open_transport(self.server, process=self.process, auth=auth)
        )
        async with transport as (read, write), anyio.create_task_group() as tg:
            closed = anyio.Event()
            session_read = watch_end(read, closed)
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
                    await eras.negotiate(self, session)  # the line: `protocol`, and what the server answers
                    self.modern = session.discover_result is not None
                    if self.modern:
                        stamp_caller_capabilities(session)
                    self._capabilities = session.server_capabilities
                    self.server_info = session.server_info
                    listings = await eras.first_listing(self, session)
                self._init_scope = None
                if scope.cancelled_caught:
                    raise UpstreamError(f"no answer to initialize within {self._startup_timeout:g} s")
                self._session = session
                self.state = UpstreamState.READY
                self.ever_ready = True
                self.error = None
                self._ready_since = time.monotonic()
                self.known_listings = listings
                self._set_listings(listings)
                self._ready.set()
                self._ready_or_failed.set()
                logger.info("upstream %s ready: %d tools", self.label, len(listings.tools))
                if self._log_level is not None:
                    await self._apply_log_level(session)
                if self.modern:
                    tg.start_soon(self._follow_changes, session, tg)
                await first_of(self._stop, closed)
                if self._stop.is_set():
                    with anyio.move_on_after(STOP_GRACE):
                        await self._idle.wait()
                self._lost()
                tg.cancel_scope.cancel()
            if not self._stop.is_set():
                raise UpstreamError("the server closed the connection")

    # -- calls from request handlers -------------------------------------------------------------------------

    async def wait_ready(self) -> ClientSession:
        """The session of a server that is (re)starting, once it is ready again (bounded by `RESTART_WAIT`).

        A call to a server that is down brings its next attempt forward (see `RetrySchedule.wake_for_call`); if the
        server is not back in time the call gets a retryable error naming it.
        """
        if self.state in (UpstreamState.STOPPED, UpstreamState.DISABLED) or self._stop.is_set():
            raise MCPError(types.INTERNAL_ERROR, f"server {self.name!r} is not available ({self.state})")
        if self.state == UpstreamState.NEEDS_AUTH:
            raise MCPError(
                types.INTERNAL_ERROR, f"upstream {self.name} needs an OAuth login (local-mcp-gateway auth login {self.name})"
            )
        self.retry.wake_for_call()
        with anyio.move_on_after(min(self.server.timeout_seconds, RESTART_WAIT)):
            await self._ready.wait()
        session = self._session
        if session is not None and self.state == UpstreamState.READY:
            return session
        raise self.restarting_error()

    def restarting_error(self) -> MCPError:
        """The retryable error a call gets while this server is down: its name, state and last error."""
        detail = f"; last error: {redact_text(self.error)}" if self.error else ""  # errors can quote URLs, headers
        when = self.retry.next_retry_at
        retry = f"; next attempt in {max(when - time.time(), 0):.1f} s" if when is not None else ""
        return MCPError(
            types.INTERNAL_ERROR,
            f"upstream {self.name} is restarting ({self.state}{retry}{detail}); retry the call",
            {"server": self.name, "state": str(self.state), "retryable": True},
        )

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
            session = await self.wait_ready()
        if caller is not None:
            self._callers.append(caller)
        self.last_used = time.monotonic()
        self._in_flight += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        try:
            with anyio.move_on_after(self.server.timeout_seconds):
                return await observability.client_leg(
                    self, request, session.send_request(request, RAW_RESULT, progress_callback=progress)
                )
            raise MCPError(
                types.REQUEST_TIMEOUT,
                f"server {self.name!r} did not answer within {self.server.timeout_seconds:g} s; the call was cancelled",
            )
        finally:
            self.last_used = time.monotonic()
            self._in_flight -= 1
            if caller is not None:
                self._callers.remove(caller)
            if self._in_flight == 0:
                self._idle.set()

