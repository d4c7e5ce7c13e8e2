"""One profile at run time: its upstreams, the aggregated catalog, and the MCP server its clients talk to.

A `Profile` is owned by one task (`run`), which runs the upstreams of `isolation: shared` servers and the
Streamable HTTP session manager. Servers with `isolation: per_session` get one upstream per client session,
opened on first use and closed with the session. Request handlers read the catalog of the caller's view once,
route by client name or URI, and pass results through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import anyio
import mcp.types as types
from anyio.abc import TaskGroup
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError

from local_mcp_gateway.budget import CallBudget
from local_mcp_gateway.catalog import Catalog, build_catalog
from local_mcp_gateway.gitops.enforce import guarded_catalog
from local_mcp_gateway.held import HeldCalls
from local_mcp_gateway.profile.handlers import RequestHandlers, quietly
from local_mcp_gateway.profile.options import ProfileOptions
from local_mcp_gateway.profile.sessions import SessionViews
from local_mcp_gateway.profile.view import View
from local_mcp_gateway.security import TrafficLog
from local_mcp_gateway.transport import SessionManager
from local_mcp_gateway.upstream import eras
from local_mcp_gateway.upstream.connection import (
    STOP_GRACE,
    AuthFactory,
    Upstream,
    UpstreamState,
)

__all__ = ["Profile", "ProfileOptions"]

logger = logging.getLogger(__name__)

DRAIN_POLL = 0.05
"""How often a stopping profile looks whether its last requests have been answered."""

_LISTEN_EVENTS = {"tools": ToolsListChanged(), "prompts": PromptsListChanged(), "resources": ResourcesListChanged()}


class Profile(RequestHandlers, SessionViews):
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
        self._views: dict[int, View] = {}
        self._stateless_view = View()
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
        self.held_calls = HeldCalls(options.input_round_hold)
        """Upstream calls waiting for a 2026-07-28 client's answers (see `mrtr.py`)."""
        self.budget = CallBudget(slug, options.max_calls_in_flight, options.max_buffered_result_bytes)
        self.manager.budget = self.budget
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
            self.held_calls.stop_all()
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
        self.manager.max_sessions = options.max_sessions
        self.budget.configure(options.max_calls_in_flight, options.max_buffered_result_bytes)
        self.manager.session_idle_timeout = options.session_idle_timeout
        self.held_calls.hold = options.input_round_hold
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

    def retry_now(self) -> int:
        """Connect at once every upstream of this profile that is waiting to retry (a reload asks for this)."""
        return sum(upstream.retry_now() for upstream in self._all_upstreams())

    async def route_when_down(self, view: View, kind: str, name: str) -> Any:
        """The route of a tool or prompt name that no current route knows, once its server is back.

        A server that is down (restarting, or `failed` and waiting for its next attempt) is still known by the
        names it offered when it was last ready: the call retries it at once (bounded) and goes through if it
        comes back, else it gets the server's retryable "restarting" error. Other names are unknown (-32602).
        """
        for server in self.servers:
            upstream = self.upstreams.get(server.name) or view.own.get(server.name)
            if upstream is None or upstream.state == UpstreamState.READY or not server.enabled:
                continue
            known = build_catalog([(server, upstream.known_listings)])
            if name in (known.tool_routes if kind == "tool" else known.prompt_routes):
                await upstream.wait_ready()
                catalog = self._catalog_of(view)
                route = (catalog.tool_routes if kind == "tool" else catalog.prompt_routes).get(name)
                if route is None:
                    raise upstream.restarting_error()
                return route
        raise MCPError(types.INVALID_PARAMS, f"Unknown {kind}: {name}")

    async def wait_settled(self, timeout: float) -> None:
        """Wait (bounded) until every shared upstream is ready or has failed."""
        with anyio.move_on_after(timeout):
            for upstream in self.upstreams.values():
                await upstream.wait_settled(timeout)

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one HTTP request on this profile's MCP endpoint (counted against its `budget`)."""
        await self.budget.serve(self.manager.handle_request, scope, receive, send)

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
                    next_retry_at=_iso(upstream.next_retry_at),
                )
                entry.update(eras.line_status(upstream))
                if upstream.auth_url:
                    entry["auth_url"] = upstream.auth_url
                if upstream.auth_scope:  # a step-up login is pending; the connection serves meanwhile
                    entry.update(state=str(UpstreamState.NEEDS_AUTH), auth_scope=upstream.auth_scope)
            else:
                live = [upstream for _, upstream in self.per_session_upstreams(server.name)]
                entry.update(
                    state=str(UpstreamState.DISABLED) if not server.enabled else "per_session",
                    upstreams=len(live),
                    sessions=len(live),  # kept for readers of the older field (the dashboard)
                    tools=None,
                    restarts=sum(u.restarts for u in live),
                    error=None,
                )
            if server.description:
                entry["description"] = server.description
            servers[server.name] = entry
        return {
            "description": self.description,
            "sessions": self.manager.open_sessions(),
            "sessions_evicted": self.manager.evicted,
            "per_session_upstreams": sum(entry.get("upstreams", 0) for entry in servers.values()),
            **self.budget.status(),
            "held_calls": self.held_calls.waiting(),
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
                await quietly(view.session.send_resource_updated(uri))

    async def log_message(self, upstream: Upstream, params: types.LoggingMessageNotificationParams) -> None:
        for view in list(self._views.values()):
            if view.session is not None and self._sees(view, upstream):
                await quietly(view.session.send_log_message(params.level, params.data, params.logger))

    def _sees(self, view: View, upstream: Upstream) -> bool:
        return self.upstreams.get(upstream.name) is upstream or view.own.get(upstream.name) is upstream

    # -- catalog -----------------------------------------------------------------------------------------------

    def _rebuild_catalog(self) -> None:
        entries = [(s, self.upstreams[s.name].listings) for s in self.servers if s.name in self.upstreams]
        self._catalog = guarded_catalog(entries, self.options.lock)
        self._version += 1
        for clash in self._catalog.clashes:
            logger.warning("profile %s: %s", self.slug, clash)

    def _catalog_of(self, view: View) -> Catalog:
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

    def _upstream(self, view: View, server: str) -> Upstream:
        upstream = self.upstreams.get(server) or view.own.get(server)
        if upstream is None:
            raise MCPError(types.INTERNAL_ERROR, f"server {server!r} is not available")
        return upstream

def _iso(when: float | None) -> str | None:
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds") if when is not None else None


def _same_connection(old: Any, new: Any) -> bool:
    """Whether a server's upstream connection can be kept across a reload."""
    return old.fingerprint == new.fingerprint and old.enabled == new.enabled and old.kind == new.kind


async def _send_list_changed(session: ServerSession, kinds: tuple[str, ...]) -> None:
    senders = {
        "tools": session.send_tool_list_changed,
        "prompts": session.send_prompt_list_changed,
        "resources": session.send_resource_list_changed,
    }
    for kind in kinds:
        await quietly(senders[kind]())
