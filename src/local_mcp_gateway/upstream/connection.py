"""One live connection to one upstream MCP server, supervised.

An `Upstream` is owned by exactly one task (`run`), which opens the transport, holds the `ClientSession`,
keeps the server's listings current, and reconnects with exponential backoff when the server crashes. Request
handlers only borrow the session through `request()`. Server-to-client traffic (sampling, elicitation, roots,
log messages) is routed to the downstream call that is in flight on this upstream (`Caller`), since that call is
what caused it; list changes and resource updates are reported to the owner through `UpstreamEvents`.
"""

from __future__ import annotations

import enum
import logging
import time
from contextvars import ContextVar
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import mcp.types as types
from anyio.abc import TaskGroup
from mcp import ClientSession
from mcp.client._probe import negotiate_auto
from mcp.client.subscriptions import listen
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import CLIENT_CAPABILITIES_META_KEY
from mcp.client.session import ClientRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from pydantic import TypeAdapter

from local_mcp_gateway import __version__
from local_mcp_gateway.errors import AuthError, UpstreamError
from local_mcp_gateway.upstream.stdio import StdioProcess
from local_mcp_gateway.upstream.transports import open_transport

__all__ = ["STOP_GRACE", "Caller", "Listings", "Upstream", "UpstreamEvents", "UpstreamState"]

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

MAX_LIST_PAGES = 1000
"""Upper bound on pages followed when listing (a server that paginates forever is cut off)."""

LIST_POLL_INTERVAL = 30.0
"""Seconds between re-listings of a 2026-07-28 server that offers no change notices."""

LISTEN_RETRY = 1.0
"""Seconds before a lost `subscriptions/listen` stream towards a 2026-07-28 upstream is opened again."""

STOP_GRACE = 10.0
"""Seconds in-flight calls may take to finish when the server is being removed or restarted."""

GATEWAY_CLIENT_INFO = types.Implementation(name="local-mcp-gateway", version=__version__)


class UpstreamState(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    NEEDS_AUTH = "needs_auth"
    DISABLED = "disabled"
    STOPPED = "stopped"


@dataclass(eq=False)
class Caller:
    """The downstream request a call to an upstream is made for: where its back-channel traffic goes."""

    session: ServerSession
    request_id: types.RequestId | None

    @property
    def metadata(self) -> ServerMessageMetadata | None:
        return ServerMessageMetadata(related_request_id=self.request_id) if self.request_id is not None else None

    async def ask(self, request: types.ServerRequest, result_type: type[Any]) -> Any:
        """Put a server-to-client request (sampling, elicitation, roots) to this caller and return its answer."""
        return await self.session.send_request(request, result_type, metadata=self.metadata)


@dataclass
class Listings:
    """What one upstream offers, pagination already followed; each list in the server's own order."""

    tools: list[types.Tool] = field(default_factory=list)
    prompts: list[types.Prompt] = field(default_factory=list)
    resources: list[types.Resource] = field(default_factory=list)
    templates: list[types.ResourceTemplate] = field(default_factory=list)


class UpstreamEvents(Protocol):
    """What an upstream reports to the profile that owns it."""

    def listings_changed(self, upstream: Upstream) -> None: ...

    async def resource_updated(self, upstream: Upstream, params: types.ResourceUpdatedNotificationParams) -> None: ...

    async def log_message(self, upstream: Upstream, params: types.LoggingMessageNotificationParams) -> None: ...


AuthFactory = Callable[["Upstream"], Any]
"""Returns the `httpx2.Auth` for a remote upstream with `oauth` settings (None: no authentication)."""

NEEDS_AUTH_RETRY = 5.0
"""Seconds between attempts while a server waits for an OAuth login (tokens may arrive from `auth login`)."""

Connector = Callable[["Upstream"], Any]
"""Returns an async context manager yielding (read, write) for the upstream (the default opens its transport)."""


class Upstream:
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
                    if _is_auth_wait(exc):
                        await self._wait_for_login(exc)
                        continue
                    self.error = _describe(exc)
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

    def mark_authorized(self) -> None:
        """The login finished: the connection attempt continues, bounded by the timeout again."""
        self.auth_url = None
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
        self.error = _describe(exc)
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
            session_read = _watch_end(read, closed, tg)
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
                        _stamp_caller_capabilities(session)
                    self._capabilities = session.server_capabilities
                    self.server_info = session.server_info
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

    # -- listings --------------------------------------------------------------------------------------------

    async def _list_all(self, session: ClientSession) -> Listings:
        caps = self._capabilities or types.ServerCapabilities()
        listings = Listings()
        if caps.tools is not None:
            listings.tools = await self._paginate(session.list_tools, "tools")
        if caps.prompts is not None:
            listings.prompts = await self._paginate(session.list_prompts, "prompts")
        if caps.resources is not None:
            listings.resources = await self._paginate(session.list_resources, "resources")
            listings.templates = await self._paginate(session.list_resource_templates, "resource_templates")
        return listings

    async def _paginate(self, method: Callable[..., Awaitable[Any]], attribute: str) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            try:
                page = await method(params=params)
            except MCPError as exc:
                if exc.error.code == types.METHOD_NOT_FOUND:
                    return items
                raise
            items.extend(getattr(page, attribute))
            cursor = page.next_cursor
            if not cursor:
                break
        return items

    def _set_listings(self, listings: Listings) -> None:
        changed = listings != self.listings
        self.listings = listings
        if changed:
            self.events.listings_changed(self)

    async def _relist(self) -> None:
        session = self._session
        if session is None:
            return
        try:
            listings = await self._list_all(session)
        except Exception as exc:
            logger.warning("upstream %s: re-listing after a change notice failed: %s", self.label, _describe(exc))
            return
        self._set_listings(listings)

    # -- change notices on 2026-07-28 connections ----------------------------------------------------------

    async def _follow_changes(self, session: ClientSession, tg: TaskGroup) -> None:
        """Keep a `subscriptions/listen` stream open for list changes and the subscribed resource URIs."""
        caps = self._capabilities or types.ServerCapabilities()
        # On 2026-07-28 a server advertises listChanged / subscribe exactly when it serves subscriptions/listen.
        wanted = {
            "tools_list_changed": bool(caps.tools and caps.tools.list_changed),
            "prompts_list_changed": bool(caps.prompts and caps.prompts.list_changed),
            "resources_list_changed": bool(caps.resources and caps.resources.list_changed),
        }
        if not any(wanted.values()) and not (caps.resources and caps.resources.subscribe):
            await self._poll_listings()
            return
        while not self._stop.is_set():
            changed = self._uris_changed
            uris = sorted(self._resource_uris)
            try:
                async with anyio.create_task_group() as watch:

                    async def reopen_on_change() -> None:
                        await changed.wait()
                        watch.cancel_scope.cancel()

                    watch.start_soon(reopen_on_change)
                    async with listen(session, resource_subscriptions=uris, **wanted) as subscription:
                        async for event in subscription:
                            if isinstance(event, ResourceUpdated):
                                params = types.ResourceUpdatedNotificationParams(uri=event.uri)
                                await self.events.resource_updated(self, params)
                            else:
                                tg.start_soon(self._relist)
                    watch.cancel_scope.cancel()
            except MCPError as exc:
                if exc.error.code == types.METHOD_NOT_FOUND:
                    await self._poll_listings()
                    return
                logger.info("upstream %s: change stream ended: %s", self.label, _describe(exc))
                tg.start_soon(self._relist)
                await anyio.sleep(LISTEN_RETRY)
            except Exception as exc:  # a lost stream is opened again; the listings may have moved meanwhile
                logger.info("upstream %s: change stream ended: %s", self.label, _describe(exc))
                tg.start_soon(self._relist)
                await anyio.sleep(LISTEN_RETRY)

    async def _poll_listings(self) -> None:
        """A 2026-07-28 server without `subscriptions/listen` cannot announce changes: list it again now and then."""
        logger.info(
            "upstream %s sends no change notices on 2026-07-28; its lists are refreshed every %g s "
            "(protocol: handshake lets it send list_changed)",
            self.label,
            LIST_POLL_INTERVAL,
        )
        while not self._stop.is_set():
            await anyio.sleep(LIST_POLL_INTERVAL)
            await self._relist()

    async def subscribe(self, uri: str) -> None:
        """Receive `notifications/resources/updated` for `uri` (resources/subscribe, or the listen stream)."""
        if not self.modern:
            await self.request(types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)))
            return
        self._resource_uris[uri] = self._resource_uris.get(uri, 0) + 1
        if self._resource_uris[uri] == 1:
            self._uris_changed.set()
            self._uris_changed = anyio.Event()

    async def unsubscribe(self, uri: str) -> None:
        if not self.modern:
            await self.request(types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri)))
            return
        count = self._resource_uris.get(uri, 0) - 1
        if count <= 0:
            self._resource_uris.pop(uri, None)
            self._uris_changed.set()
            self._uris_changed = anyio.Event()
        else:
            self._resource_uris[uri] = count

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

    async def set_log_level(self, level: types.LoggingLevel) -> None:
        """Remember the level clients asked for and pass it on (now and after each reconnect)."""
        self._log_level = level
        if self._session is not None:
            await self._apply_log_level(self._session)

    async def _apply_log_level(self, session: ClientSession) -> None:
        if self._capabilities is None or self._capabilities.logging is None or self._log_level is None:
            return
        try:
            await session.set_logging_level(self._log_level)
        except Exception as exc:
            logger.info("upstream %s refused logging/setLevel: %s", self.label, _describe(exc))

    # -- the server-to-client channel ------------------------------------------------------------------------

    def _caller(self) -> Caller | None:
        return self._callers[-1] if self._callers else None

    async def _forward_request(self, request: types.ServerRequest, result_type: type[Any]) -> Any:
        caller = self._caller()
        if caller is None:
            return types.ErrorData(
                code=types.INVALID_REQUEST, message=f"{request.method}: no client call is in flight to answer it"
            )
        try:
            return await caller.ask(request, result_type)
        except MCPError as exc:
            return exc.error
        except Exception as exc:
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"{request.method} failed: {_describe(exc)}")

    async def _on_sampling(self, context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        return await self._forward_request(types.CreateMessageRequest(params=params), types.CreateMessageResult)

    async def _on_elicitation(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
        return await self._forward_request(types.ElicitRequest(params=params), types.ElicitResult)

    async def _on_list_roots(self, context: ClientRequestContext) -> Any:
        return await self._forward_request(types.ListRootsRequest(), types.ListRootsResult)

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        caller = self._caller()
        if caller is not None:
            try:
                await caller.session.send_log_message(
                    params.level, params.data, params.logger, related_request_id=caller.request_id
                )
            except Exception as exc:
                logger.debug("could not forward a log message from %s: %s", self.label, _describe(exc))
            return
        await self.events.log_message(self, params)

    async def _on_message(self, message: Any, tg: TaskGroup) -> None:
        if isinstance(message, Exception):
            logger.warning("upstream %s: transport error: %s", self.label, _describe(message))
            return
        if isinstance(
            message,
            (types.ToolListChangedNotification, types.PromptListChangedNotification, types.ResourceListChangedNotification),
        ):
            tg.start_soon(self._relist)
        elif isinstance(message, types.ResourceUpdatedNotification):
            await self.events.resource_updated(self, message.params)


def _watch_end(read: Any, closed: anyio.Event, tg: TaskGroup) -> Any:
    """A read stream that sets `closed` when the transport's read stream ends (the server went away)."""
    send, receive = anyio.create_memory_object_stream[Any](0)

    async def pump() -> None:
        try:
            async with send:
                async for item in read:
                    await send.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            closed.set()

    tg.start_soon(pump)
    return receive


CALLER_CAPABILITIES: ContextVar[dict[str, Any] | None] = ContextVar("caller_capabilities", default=None)
"""The capabilities a 2026-07-28 caller declared, stamped on the upstream request made for it (None: the gateway's)."""


def _stamp_caller_capabilities(session: ClientSession) -> None:
    """Make a 2026-07-28 session declare, per request, the capabilities of the client the request is made for.

    The SDK stamps every request with the session's own capabilities; an upstream deciding what it may ask must
    see the end client's instead (it answers -32021 when the client lacks one).
    """
    stamp = session._stamp  # the SDK keeps its per-request envelope stamp private

    def caller_stamp(data: dict[str, Any], opts: Any) -> None:
        stamp(data, opts)
        capabilities = CALLER_CAPABILITIES.get()
        if capabilities is not None and isinstance(meta := data.get("params", {}).get("_meta"), dict):
            meta[CLIENT_CAPABILITIES_META_KEY] = capabilities

    session._stamp = caller_stamp


def _is_auth_wait(exc: BaseException) -> bool:
    """Whether a failed connection attempt ended in an unfinished OAuth login (an `AuthError`)."""
    if isinstance(exc, AuthError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_auth_wait(inner) for inner in exc.exceptions)
    return exc.__cause__ is not None and _is_auth_wait(exc.__cause__)


def _describe(exc: BaseException) -> str:
    """A one-line description of an error for logs and /status (never a traceback)."""
    if isinstance(exc, MCPError):
        return exc.error.message
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, UpstreamError) else text
