"""One profile at run time: its upstreams, the aggregated catalog, and the MCP server its clients talk to.

A `Profile` is owned by one task (`run`), which runs the upstreams of `isolation: shared` servers and the
Streamable HTTP session manager. Servers with `isolation: per_session` get one upstream per client session,
opened on first use and closed with the session. Request handlers read the catalog of the caller's view once,
route by client name or URI, and pass results through untouched.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp.types as types
from anyio.abc import TaskGroup
from mcp.server import Server
from mcp.server.caching import CACHEABLE_METHODS, CacheHint
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from local_mcp_gateway import __version__
from local_mcp_gateway.mrtr import answer_rounds, pass_rounds_through, request_state_boundary, run_round
from local_mcp_gateway.security import TrafficLog
from local_mcp_gateway.transport import SessionManager
from local_mcp_gateway.catalog import Catalog, coerce_arguments, page
from local_mcp_gateway.gitops.enforce import guarded_catalog
from local_mcp_gateway.upstream.connection import STOP_GRACE, AuthFactory, Caller, Upstream, UpstreamState

__all__ = ["Profile", "ProfileOptions"]

logger = logging.getLogger(__name__)

SESSION_IDLE_TIMEOUT = 30 * 60.0
"""A client session with no request for this long is closed (its per-session upstreams too)."""

DRAIN_POLL = 0.05
"""How often a stopping profile looks whether its last requests have been answered."""

FIRST_USE_WAIT = 30.0
"""Longest wait for a per-session upstream to come up before the first request is answered without it."""

_STATE_KEY = "local_mcp_gateway"

UNCACHED = CacheHint(ttl_ms=0, scope="private")
"""Cache hint for 2026-07-28 results: upstreams on the handshake line give none, so claim no freshness."""

_LISTEN_EVENTS = {"tools": ToolsListChanged(), "prompts": PromptsListChanged(), "resources": ResourcesListChanged()}


@dataclass(frozen=True)
class ProfileOptions:
    """Transport-level settings of a profile's endpoint."""

    security: TransportSecuritySettings | None = None
    max_sessions: int | None = 10_000
    max_request_bytes: int = 4 * 1024 * 1024
    session_idle_timeout: float | None = SESSION_IDLE_TIMEOUT
    request_state_keys: list[bytes] | None = None
    """Keys sealing 2026-07-28 `requestState` (shared by replicas); None: a key of this process only."""
    module_stamps: Mapping[str, str | None] = field(default_factory=dict)
    """Fingerprints of in-process servers' module sources: a changed one restarts the servers using it."""
    traffic: Any = None
    """`logging.traffic` settings: when enabled, a redacted record of each MCP request (see `security.TrafficLog`)."""
    lock: Any = None
    """The profile's lock guard (`gitops.enforce.LockGuard`): tools differing from the reviewed lock are flagged,
    hidden or blocked; None: no lock enforced."""


@dataclass(eq=False)
class _View:
    """The upstreams one client connection sees: the profile's shared ones plus its own per-session ones."""

    own: dict[str, Upstream] = field(default_factory=dict)
    catalog: Catalog | None = None
    version: tuple[int, int] = (-1, -1)
    own_version: int = 0
    session: ServerSession | None = None
    subscriptions: set[str] = field(default_factory=set)


class ProfileServer(Server[Any]):
    """The low-level MCP server of one profile; advertises list-change notices for everything it aggregates."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class Profile:
    """A served profile (see module docstring)."""

    def __init__(
        self,
        slug: str,
        servers: Sequence[Any],
        options: ProfileOptions,
        *,
        description: str | None = None,
        auth: AuthFactory | None = None,
    ):
        self.slug = slug
        self._auth = auth
        self.description = description
        self.options = options
        self.servers: list[Any] = list(servers)
        self.upstreams: dict[str, Upstream] = {
            server.name: Upstream(server, self, auth=auth) for server in self.servers if server.isolation == "shared"
        }
        self._catalog = Catalog()
        self._version = 0
        self._views: dict[int, _View] = {}
        self._stateless_view = _View()
        self._tg: TaskGroup | None = None
        self._stop = anyio.Event()
        self.bus = InMemorySubscriptionBus()
        """Change notices for 2026-07-28 clients, delivered on their `subscriptions/listen` streams."""
        self._listen = ListenHandler(self.bus)
        self._listen_refs: dict[tuple[str, Upstream], int] = {}
        self.traffic: TrafficLog | None = TrafficLog.from_config(slug, options.traffic) if options.traffic else None
        self.server = self._build_server()
        self.manager = SessionManager(
            self.server,
            stateless=False,
            security_settings=options.security,
            max_request_body_size=options.max_request_bytes,
            max_sessions=options.max_sessions,
            session_idle_timeout=options.session_idle_timeout,
        )
        self._rebuild_catalog()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the shared upstreams and the session manager until `stop()`."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for upstream in self.upstreams.values():
                tg.start_soon(upstream.run)
            async with self.manager.run():
                task_status.started()
                await self._stop.wait()
                # No new request reaches a stopped profile; those in flight get a bounded grace to be answered.
                with anyio.move_on_after(STOP_GRACE):
                    while self.manager.posts_in_flight():
                        await anyio.sleep(DRAIN_POLL)
            for upstream in self._all_upstreams():
                upstream.stop()

    def stop(self) -> None:
        self._stop.set()

    def apply(self, servers: Sequence[Any], options: ProfileOptions, *, description: str | None = None) -> None:
        """Take a new generation's settings for this profile, touching only what changed.

        A server whose connection settings (fingerprint, secrets included) and `enabled` flag are unchanged keeps
        its upstream; it only takes the new naming, filters and description. A changed server gets a new upstream
        and the old one is stopped once its in-flight calls finish (bounded); a removed one is stopped likewise.
        Client sessions stay; they receive list_changed for whatever they now see differently.
        """
        assert self._tg is not None, "apply() needs the profile to be running"
        self.description = description
        old_stamps = self.options.module_stamps

        def same(previous: Any, server: Any) -> bool:
            if not _same_connection(previous, server):
                return False
            return server.module is None or old_stamps.get(server.module) == options.module_stamps.get(server.module)

        rebuild = options.request_state_keys != self.options.request_state_keys or options.traffic != self.options.traffic
        self.options = options
        if rebuild:
            traffic = TrafficLog.from_config(self.slug, options.traffic) if options.traffic else None
            if traffic is None or self.traffic is None or traffic.max_entries != self.traffic.max_entries:
                self.traffic = traffic
            self.server.middleware = self._middleware()
        self.manager.security_settings = options.security
        before = self._catalog
        old = {server.name: server for server in self.servers}
        new = {server.name: server for server in servers}
        shared: dict[str, Upstream] = {}
        for server in servers:
            previous = old.get(server.name)
            if server.isolation != "shared":
                continue
            current = self.upstreams.get(server.name)
            if current is not None and previous is not None and same(previous, server):
                current.server = server
                shared[server.name] = current
                continue
            upstream = Upstream(server, self, auth=self._auth)
            shared[server.name] = upstream
            self._tg.start_soon(upstream.run)
            if current is not None:
                logger.info("profile %s: server %s changed; restarting it", self.slug, server.name)
        for name, upstream in self.upstreams.items():
            if shared.get(name) is not upstream:
                upstream.stop()
        views_before = {id(view): self._catalog_of(view) for view in self._views.values()}
        for view in [*self._views.values(), self._stateless_view]:
            for name, upstream in list(view.own.items()):
                server = new.get(name)
                if server is not None and server.isolation == "per_session" and same(old[name], server):
                    upstream.server = server
                else:
                    upstream.stop()
                    del view.own[name]
            view.own_version += 1
        self.servers = list(servers)
        self.upstreams = shared
        self._rebuild_catalog()
        if len(self.upstreams) == len(self.servers):
            self._notify_changes(before, self._catalog, self._views.values())
        else:
            for view in self._views.values():
                self._notify_changes(views_before.get(id(view), before), self._catalog_of(view), [view], publish=False)
            self._notify_changes(before, self._catalog, [])

    async def wait_settled(self, timeout: float) -> None:
        """Wait (bounded) until every shared upstream is ready or has failed."""
        with anyio.move_on_after(timeout):
            for upstream in self.upstreams.values():
                await upstream.wait_settled(timeout)

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one HTTP request on this profile's MCP endpoint."""
        await self.manager.handle_request(scope, receive, send)

    def _all_upstreams(self) -> list[Upstream]:
        found = list(self.upstreams.values())
        for view in [*self._views.values(), self._stateless_view]:
            found.extend(view.own.values())
        return found

    @property
    def catalog(self) -> Catalog:
        """What clients of this profile see from its shared servers."""
        return self._catalog

    # -- status ------------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        servers: dict[str, Any] = {}
        for server in self.servers:
            upstream = self.upstreams.get(server.name)
            entry: dict[str, Any] = {"kind": server.kind, "isolation": server.isolation}
            if upstream is not None:
                entry.update(
                    state=str(upstream.state),
                    tools=self._catalog.server_count(server.name),
                    restarts=upstream.restarts,
                    error=upstream.error,
                )
                if upstream.auth_url:
                    entry["auth_url"] = upstream.auth_url
            else:
                sessions = [v.own[server.name] for v in self._views.values() if server.name in v.own]
                entry.update(
                    state=str(UpstreamState.DISABLED) if not server.enabled else "per_session",
                    sessions=len(sessions),
                    tools=None,
                    restarts=sum(u.restarts for u in sessions),
                    error=None,
                )
            if server.description:
                entry["description"] = server.description
            servers[server.name] = entry
        return {
            "description": self.description,
            "sessions": len(self._views),
            "clashes": list(self._catalog.clashes),
            "servers": servers,
        }

    # -- events from upstreams (UpstreamEvents) ----------------------------------------------------------------

    def listings_changed(self, upstream: Upstream) -> None:
        if self.upstreams.get(upstream.name) is upstream:
            before = self._catalog
            self._rebuild_catalog()
            self._notify_changes(before, self._catalog, self._views.values())
            return
        for view in self._views.values():
            if view.own.get(upstream.name) is upstream:
                before = self._catalog_of(view)
                view.own_version += 1
                self._notify_changes(before, self._catalog_of(view), [view], publish=False)
                return
        if self._stateless_view.own.get(upstream.name) is upstream:
            before = self._catalog_of(self._stateless_view)
            self._stateless_view.own_version += 1
            self._notify_changes(before, self._catalog_of(self._stateless_view), [])

    async def resource_updated(self, upstream: Upstream, params: types.ResourceUpdatedNotificationParams) -> None:
        uri = str(params.uri)
        if self._sees(self._stateless_view, upstream):
            await self.bus.publish(ResourceUpdated(uri))
        for view in list(self._views.values()):
            if uri in view.subscriptions and view.session is not None and self._sees(view, upstream):
                await _quietly(view.session.send_resource_updated(uri))

    async def log_message(self, upstream: Upstream, params: types.LoggingMessageNotificationParams) -> None:
        for view in list(self._views.values()):
            if view.session is not None and self._sees(view, upstream):
                await _quietly(view.session.send_log_message(params.level, params.data, params.logger))

    def _sees(self, view: _View, upstream: Upstream) -> bool:
        return self.upstreams.get(upstream.name) is upstream or view.own.get(upstream.name) is upstream

    # -- catalog -----------------------------------------------------------------------------------------------

    def _rebuild_catalog(self) -> None:
        entries = [(s, self.upstreams[s.name].listings) for s in self.servers if s.name in self.upstreams]
        self._catalog = guarded_catalog(entries, self.options.lock)
        self._version += 1
        for clash in self._catalog.clashes:
            logger.warning("profile %s: %s", self.slug, clash)

    def _catalog_of(self, view: _View) -> Catalog:
        if len(self.upstreams) == len(self.servers):
            return self._catalog
        if view.catalog is None or view.version != (self._version, view.own_version):
            entries = []
            for server in self.servers:
                upstream = self.upstreams.get(server.name) or view.own.get(server.name)
                if upstream is not None:
                    entries.append((server, upstream.listings))
            view.catalog = guarded_catalog(entries, self.options.lock)
            view.version = (self._version, view.own_version)
        return view.catalog

    def _notify_changes(self, before: Catalog, after: Catalog, views: Any, *, publish: bool = True) -> None:
        """Tell the sessions of `views` (and, if `publish`, the 2026-07-28 listeners) which lists changed."""
        kinds = []
        if before.tools != after.tools:
            kinds.append("tools")
        if before.prompts != after.prompts:
            kinds.append("prompts")
        if before.resources != after.resources or before.templates != after.templates:
            kinds.append("resources")
        if not kinds or self._tg is None:
            return
        views = list(views)
        sessions = [view.session for view in views if view.session is not None]
        for session in sessions:
            self._tg.start_soon(_send_list_changed, session, tuple(kinds))
        if publish:
            for kind in kinds:
                self._tg.start_soon(self.bus.publish, _LISTEN_EVENTS[kind])

    # -- the caller's view -------------------------------------------------------------------------------------

    async def _view(self, ctx: ServerRequestContext[Any, Any]) -> _View:
        connection: Connection = ctx.session._connection  # the SDK exposes the connection only privately
        if connection.protocol_version in MODERN_PROTOCOL_VERSIONS:
            view = self._stateless_view
        else:
            view = connection.state.get(_STATE_KEY)
            if view is None:
                view = _View(session=ctx.session)
                connection.state[_STATE_KEY] = view
                self._views[id(connection)] = view
                connection.exit_stack.push_async_callback(self._close_view, id(connection), view)
        if len(self.upstreams) < len(self.servers):
            await self._start_own(view)
        await self._settle_first_start()
        return view

    async def _settle_first_start(self) -> None:
        """Hold a request (bounded) while a server of this profile is still on its first start.

        Right after startup or a reload added a server, its tools are a moment away; answering a list or a call
        in that moment would show the client a profile without them.
        """
        starting = [u for u in self.upstreams.values() if u.state == UpstreamState.STARTING and not u.ever_ready]
        if starting:
            with anyio.move_on_after(FIRST_USE_WAIT):
                for upstream in starting:
                    await upstream.wait_settled(FIRST_USE_WAIT)

    async def _start_own(self, view: _View) -> None:
        missing = [
            s for s in self.servers if s.name not in self.upstreams and s.name not in view.own and s.enabled
        ]
        if not missing or self._tg is None:
            return
        started = []
        for server in missing:
            upstream = Upstream(server, self, auth=self._auth)
            view.own[server.name] = upstream
            self._tg.start_soon(upstream.run)
            started.append(upstream)
        with anyio.move_on_after(FIRST_USE_WAIT):
            for upstream in started:
                await upstream.wait_settled(FIRST_USE_WAIT)
        view.own_version += 1

    async def _close_view(self, key: int, view: _View) -> None:
        self._views.pop(key, None)
        for upstream in view.own.values():
            upstream.stop()
        for uri in view.subscriptions:
            await self._maybe_unsubscribe_upstream(uri, view)
        view.session = None

    def _upstream(self, view: _View, server: str) -> Upstream:
        upstream = self.upstreams.get(server) or view.own.get(server)
        if upstream is None:
            raise MCPError(types.INTERNAL_ERROR, f"server {server!r} is not available")
        return upstream

    # -- handlers ----------------------------------------------------------------------------------------------

    def _build_server(self) -> ProfileServer:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = ProfileServer(
                f"local-mcp-gateway/{self.slug}",
                version=__version__,
                description=self.description,
                on_list_tools=self._list_tools,
                on_call_tool=self._call_tool,
                on_list_prompts=self._list_prompts,
                on_get_prompt=self._get_prompt,
                on_list_resources=self._list_resources,
                on_list_resource_templates=self._list_resource_templates,
                on_read_resource=self._read_resource,
                on_subscribe_resource=self._subscribe,
                on_unsubscribe_resource=self._unsubscribe,
                on_completion=self._complete,
                on_set_logging_level=self._set_logging_level,
                on_subscriptions_listen=self._subscriptions_listen,
                cache_hints=dict.fromkeys(CACHEABLE_METHODS, UNCACHED),
            )
        server.middleware = self._middleware()
        return server

    def _middleware(self) -> list[Any]:
        """The MCP server's middleware: the request-state seal, then (if enabled) the traffic log."""
        chain: list[Any] = [request_state_boundary(self.options.request_state_keys, f"local-mcp-gateway/{self.slug}")]
        if self.traffic is not None:
            chain.append(self.traffic.middleware)
        return chain

    async def _list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        catalog = self._catalog_of(await self._view(ctx))
        items, cursor = page(catalog.tools, params.cursor if params else None)
        return types.ListToolsResult(tools=items, next_cursor=cursor)

    async def _list_prompts(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        catalog = self._catalog_of(await self._view(ctx))
        items, cursor = page(catalog.prompts, params.cursor if params else None)
        return types.ListPromptsResult(prompts=items, next_cursor=cursor)

    async def _list_resources(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        catalog = self._catalog_of(await self._view(ctx))
        items, cursor = page(catalog.resources, params.cursor if params else None)
        return types.ListResourcesResult(resources=items, next_cursor=cursor)

    async def _list_resource_templates(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        catalog = self._catalog_of(await self._view(ctx))
        items, cursor = page(catalog.templates, params.cursor if params else None)
        return types.ListResourceTemplatesResult(resource_templates=items, next_cursor=cursor)

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        view = await self._view(ctx)
        route = self._catalog_of(view).tool_routes.get(params.name)
        if route is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        upstream = self._upstream(view, route.server)
        arguments = params.arguments
        if upstream.server.coerce_arguments:
            arguments = coerce_arguments(arguments, route.input_schema)
        request = types.CallToolRequest(
            params=types.CallToolRequestParams(name=route.upstream_name, arguments=arguments, _meta=_forward_meta(ctx))
        )
        return await self._forward(ctx, params, upstream, request)

    async def _get_prompt(self, ctx: Any, params: types.GetPromptRequestParams) -> Any:
        view = await self._view(ctx)
        route = self._catalog_of(view).prompt_routes.get(params.name)
        if route is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")
        request = types.GetPromptRequest(
            params=types.GetPromptRequestParams(name=route.upstream_name, arguments=params.arguments, _meta=_forward_meta(ctx))
        )
        return await self._forward(ctx, params, self._upstream(view, route.server), request)

    async def _read_resource(self, ctx: Any, params: types.ReadResourceRequestParams) -> Any:
        view = await self._view(ctx)
        uri = str(params.uri)
        server = self._catalog_of(view).server_for_uri(uri)
        if server is None:
            raise MCPError(types.INVALID_PARAMS, f"Resource not found: {uri}", {"uri": uri})
        request = types.ReadResourceRequest(params=types.ReadResourceRequestParams(uri=uri, _meta=_forward_meta(ctx)))
        return await self._forward(ctx, params, self._upstream(view, server), request)

    async def _forward(self, ctx: Any, params: Any, upstream: Upstream, request: Any) -> Any:
        """Send a client's request upstream; server-to-client questions go back to this caller (see `mrtr.py`)."""
        progress = _progress_forwarder(ctx)
        modern_caller = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        if upstream.modern:
            if modern_caller:
                return await pass_rounds_through(ctx, params, upstream, request, progress)
            return await answer_rounds(ctx, upstream, request, progress)
        if modern_caller:
            result = await run_round(ctx, params, lambda caller: upstream.request(request, caller, progress=progress))
            return result if isinstance(result, types.InputRequiredResult) else _for_caller(ctx, result)
        return await upstream.request(request, Caller(ctx.session, ctx.request_id), progress=progress)

    async def _subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        view = await self._view(ctx)
        uri = str(params.uri)
        server = self._catalog_of(view).server_for_uri(uri)
        if server is None:
            raise MCPError(types.INVALID_PARAMS, f"Resource not found: {uri}", {"uri": uri})
        upstream = self._upstream(view, server)
        if not self._subscribed_elsewhere(uri, upstream, view):
            await upstream.subscribe(uri)
        view.subscriptions.add(uri)
        return types.EmptyResult()

    async def _unsubscribe(self, ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        view = await self._view(ctx)
        uri = str(params.uri)
        if uri in view.subscriptions:
            view.subscriptions.discard(uri)
            await self._maybe_unsubscribe_upstream(uri, view)
        return types.EmptyResult()

    def _subscribed_elsewhere(self, uri: str, upstream: Upstream, view: _View) -> bool:
        if view is not self._stateless_view and self._listen_refs.get((uri, upstream)):
            return True
        return any(
            uri in other.subscriptions and self._sees(other, upstream)
            for other in self._views.values()
            if other is not view
        )

    async def _maybe_unsubscribe_upstream(self, uri: str, view: _View) -> None:
        server = self._catalog_of(view).server_for_uri(uri)
        upstream = self.upstreams.get(server) if server else None
        if server and upstream is None:
            upstream = view.own.get(server)
        if upstream is None or self._subscribed_elsewhere(uri, upstream, view):
            return
        await _quietly(upstream.unsubscribe(uri))

    async def _complete(self, ctx: Any, params: types.CompleteRequestParams) -> Any:
        view = await self._view(ctx)
        catalog = self._catalog_of(view)
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            route = catalog.prompt_routes.get(ref.name)
            if route is None:
                raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {ref.name}")
            server = route.server
            ref = types.PromptReference(type="ref/prompt", name=route.upstream_name)
        else:
            found = catalog.server_for_template(ref.uri) or catalog.server_for_uri(ref.uri)
            if found is None:
                raise MCPError(types.INVALID_PARAMS, f"Unknown resource template: {ref.uri}")
            server = found
        request = types.CompleteRequest(
            params=types.CompleteRequestParams(ref=ref, argument=params.argument, context=params.context)
        )
        result = await self._upstream(view, server).request(request, Caller(ctx.session, ctx.request_id))
        return _for_caller(ctx, result)

    async def _subscriptions_listen(self, ctx: Any, params: types.SubscriptionsListenRequestParams) -> Any:
        """A 2026-07-28 listen stream; resource URIs it asks for are subscribed upstream while it is open."""
        view = await self._view(ctx)
        uris = list(params.notifications.resource_subscriptions or ())
        subscribed: list[tuple[str, Upstream]] = []
        for uri in uris:
            server = self._catalog_of(view).server_for_uri(uri)
            if server is None:
                continue
            upstream = self._upstream(view, server)
            key = (uri, upstream)
            if self._listen_refs.get(key, 0) == 0 and not self._subscribed_elsewhere(uri, upstream, view):
                await _quietly(upstream.subscribe(uri))
            self._listen_refs[key] = self._listen_refs.get(key, 0) + 1
            subscribed.append(key)
        try:
            return await self._listen(ctx, params)
        finally:
            with anyio.CancelScope(shield=True):
                for key in subscribed:
                    self._listen_refs[key] -= 1
                    if self._listen_refs[key] == 0:
                        del self._listen_refs[key]
                        uri, upstream = key
                        if not self._subscribed_elsewhere(uri, upstream, self._stateless_view):
                            await _quietly(upstream.unsubscribe(uri))

    async def _set_logging_level(self, ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        view = await self._view(ctx)
        for upstream in [*self.upstreams.values(), *view.own.values()]:
            await upstream.set_log_level(params.level)
        return types.EmptyResult()


def _same_connection(old: Any, new: Any) -> bool:
    """Whether a server's upstream connection can be kept across a reload."""
    return old.fingerprint == new.fingerprint and old.enabled == new.enabled and old.kind == new.kind


def _for_caller(ctx: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Shape an upstream result for the caller's protocol line.

    2026-07-28 results carry `resultType`; an upstream on the handshake line sends none, and a complete result
    is what it means. Towards handshake-line callers the SDK's serializer drops fields their version lacks.
    """
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and "resultType" not in result:
        result["resultType"] = "complete"
    return result


def _forward_meta(ctx: Any) -> dict[str, Any] | None:
    """The caller's `_meta`, minus what belongs to the downstream hop (the progress token)."""
    raw = (ctx.params or {}).get("_meta")
    if not isinstance(raw, Mapping):
        return None
    meta = {k: v for k, v in raw.items() if k != "progressToken" and not k.startswith("io.modelcontextprotocol/")}
    return meta or None


def _progress_forwarder(ctx: Any) -> Any:
    """A progress callback that relays upstream progress to the caller under the caller's own token."""
    raw = (ctx.params or {}).get("_meta")
    token = raw.get("progressToken") if isinstance(raw, Mapping) else None
    if token is None:
        return None
    session: ServerSession = ctx.session
    related = ctx.request_id

    async def forward(progress: float, total: float | None, message: str | None) -> None:
        await _quietly(session.send_progress_notification(token, progress, total, message, related_request_id=related))

    return forward


async def _send_list_changed(session: ServerSession, kinds: tuple[str, ...]) -> None:
    senders = {
        "tools": session.send_tool_list_changed,
        "prompts": session.send_prompt_list_changed,
        "resources": session.send_resource_list_changed,
    }
    for kind in kinds:
        await _quietly(senders[kind]())


async def _quietly(awaitable: Any) -> None:
    """Await a best-effort notification; a client that went away must not fail the sender."""
    try:
        await awaitable
    except Exception as exc:
        logger.debug("notification not delivered: %s", exc)
