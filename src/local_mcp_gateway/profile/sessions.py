"""The client sessions of a profile and their per-session upstreams, both bounded. Mixed into `Profile`.

Each handshake-line client connection gets a `View`: the profile's shared upstreams plus its own upstreams of
`isolation: per_session` servers, started on its first request and stopped when the session ends. 2026-07-28
clients have no session: they all share one view (`_stateless_view`), so for them a `per_session` server is one
upstream shared by every such client.

Live per-session upstreams of one server are capped (`ProfileOptions.max_per_session_upstreams`): starting one
more stops the one unused longest (no call in flight), and the session it belonged to starts it again on its next
request. Sessions themselves are capped by the session manager (`transport.SessionManager`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from local_mcp_gateway import observability
from local_mcp_gateway.profile.view import View
from local_mcp_gateway.upstream.connection import Upstream, UpstreamState

__all__ = ["FIRST_USE_WAIT", "SessionViews"]

logger = logging.getLogger(__name__)

FIRST_USE_WAIT = 30.0
"""Longest wait for a per-session upstream to come up before the first request is answered without it."""

_STATE_KEY = "local_mcp_gateway"


class SessionViews:
    """The session half of `Profile` (it provides `servers`, `upstreams`, `options`, `_views`, `_stateless_view`,
    `_tg`, `_auth`, `slug`)."""

    async def _view(self, ctx: ServerRequestContext[Any, Any]) -> View:
        connection: Connection = ctx.session._connection  # the SDK exposes the connection only privately
        if connection.protocol_version in MODERN_PROTOCOL_VERSIONS:
            view = self._stateless_view
        else:
            view = connection.state.get(_STATE_KEY)
            if view is None:
                view = View(session=ctx.session)
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

    async def _start_own(self, view: View) -> None:
        missing = [s for s in self.servers if s.name not in self.upstreams and s.name not in view.own and s.enabled]
        if not missing or self._tg is None:
            return
        started = []
        for server in missing:
            self._make_room(server.name)
            upstream = Upstream(server, self, auth=self._auth)
            view.own[server.name] = upstream
            self._tg.start_soon(upstream.run)
            started.append(upstream)
        with anyio.move_on_after(FIRST_USE_WAIT):
            for upstream in started:
                await upstream.wait_settled(FIRST_USE_WAIT)
        view.own_version += 1

    def _own_views(self) -> list[View]:
        return [*self._views.values(), self._stateless_view]

    def per_session_upstreams(self, name: str) -> list[tuple[View, Upstream]]:
        """The live per-session upstreams of server `name`, with the view each belongs to."""
        return [(view, view.own[name]) for view in self._own_views() if name in view.own]

    def _make_room(self, name: str) -> None:
        """Stop the per-session upstreams of `name` unused longest until one more fits under the cap."""
        live = self.per_session_upstreams(name)
        cap = self.options.max_per_session_upstreams
        if len(live) < cap:
            return
        live.sort(key=lambda item: (item[1].calls_in_flight > 0, item[1].last_used))
        for view, upstream in live[: len(live) - cap + 1]:
            idle = time.monotonic() - upstream.last_used
            logger.info(
                "profile %s: %d live per-session upstreams of %s (security.max_per_session_upstreams); "
                "stopping the one unused for %.0f s (its session starts it again on its next call)",
                self.slug,
                len(live),
                name,
                idle,
            )
            upstream.stop()
            if view.own.get(name) is upstream:
                del view.own[name]
                view.own_version += 1

    async def _close_view(self, key: int, view: View) -> None:
        observability.session_ended(self.slug, time.monotonic() - view.opened, _protocol_version(view))
        self._views.pop(key, None)
        for upstream in view.own.values():
            upstream.stop()
        for uri in view.subscriptions:
            await self._maybe_unsubscribe_upstream(uri, view)
        view.session = None


def _protocol_version(view: View) -> str | None:
    connection = getattr(view.session, "_connection", None)
    return getattr(connection, "protocol_version", None)
