"""The MCP request handlers of a profile: each reads the caller's view once, routes by client name or URI to an
upstream, and passes the result through (see `mrtr.py` for the 2026-07-28 rounds).

`RequestHandlers` is the half of `Profile` that serves requests; the other half (`profile.core`) owns the
upstreams, the catalog and the views these handlers read.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

import anyio
import mcp.types as types
from mcp.server import Server
from mcp.server.caching import CACHEABLE_METHODS, CacheHint
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from local_mcp_gateway import __version__, observability
from local_mcp_gateway.catalog import coerce_arguments, page
from local_mcp_gateway.identity import audit_middleware, note_server, tool_allowed
from local_mcp_gateway.mrtr import answer_rounds, pass_rounds_through, request_state_boundary, run_round
from local_mcp_gateway.profile.pages import cached_lists, visible_tools
from local_mcp_gateway.profile.view import View
from local_mcp_gateway.redact import redacting_errors
from local_mcp_gateway.upstream import eras
from local_mcp_gateway.upstream.connection import Caller, Upstream

__all__ = ["ProfileServer", "RequestHandlers", "quietly"]

logger = logging.getLogger(__name__)


UNCACHED = CacheHint(ttl_ms=0, scope="private")
"""Cache hint for 2026-07-28 results: upstreams on the handshake line give none, so claim no freshness."""


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


class RequestHandlers:
    """Request handlers mixed into `Profile`; they use its views, catalog and upstreams."""

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
        """The MCP server's middleware: error redaction, metrics and traces (if on), the request-state seal, the traffic
        log (if on), the audit log, the store of list pages."""
        chain: list[Any] = [redacting_errors]  # outermost: every error answer passes the redaction point
        chain.extend(observability.server_middleware(self))
        chain.append(request_state_boundary(self.options.request_state_keys, f"local-mcp-gateway/{self.slug}"))
        if self.traffic is not None:
            chain.append(self.traffic.middleware)
        chain.append(audit_middleware)
        chain.append(cached_lists(self))  # innermost: everything above sees list requests served from the store
        return chain

    async def _list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        catalog = self._catalog_of(await self._view(ctx))
        items, cursor = page(visible_tools(catalog, ctx), params.cursor if params else None)  # the caller's own view
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
        if not tool_allowed(ctx, params.name):  # a tool hidden from this caller is unknown to it
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        route = self._catalog_of(view).tool_routes.get(params.name) or await self.route_when_down(view, "tool", params.name)
        note_server(route.server)
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
        route = self._catalog_of(view).prompt_routes.get(params.name) or await self.route_when_down(view, "prompt", params.name)
        note_server(route.server)
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
        note_server(server)
        request = types.ReadResourceRequest(params=types.ReadResourceRequestParams(uri=uri, _meta=_forward_meta(ctx)))
        return await self._forward(ctx, params, self._upstream(view, server), request)

    async def _forward(self, ctx: Any, params: Any, upstream: Upstream, request: Any) -> Any:
        """Send a client's request upstream; server-to-client questions go back to this caller (see `mrtr.py`)."""
        progress = _progress_forwarder(ctx)
        modern_caller = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        upstream = await eras.mirror(upstream, modern_caller, self._tg)  # the caller's line where the server has it
        if upstream.modern:
            if modern_caller:
                return await pass_rounds_through(ctx, params, upstream, request, progress)
            return await answer_rounds(ctx, upstream, request, progress)
        if modern_caller:

            def start(round_: Any) -> Any:
                # Progress is asked of the upstream when the first request asks for it; it goes to whichever
                # request waits on the call (a held call's later rounds: the retry's).
                return upstream.request(request, round_, progress=round_.relay_progress if progress else None)

            result = await run_round(ctx, params, start, self.held_calls, self._tg, progress)
            return result if isinstance(result, types.InputRequiredResult) else _for_caller(ctx, result)
        return await upstream.request(request, Caller(ctx.session, ctx.request_id), progress=progress)

    async def _subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        view = await self._view(ctx)
        uri = str(params.uri)
        server = self._catalog_of(view).server_for_uri(uri)
        if server is None:
            raise MCPError(types.INVALID_PARAMS, f"Resource not found: {uri}", {"uri": uri})
        upstream = self._upstream(view, server)
        line = await eras.mirror(upstream, False, self._tg)  # only session clients subscribe this way
        if line is not upstream or not self._subscribed_elsewhere(uri, upstream, view):
            await line.subscribe(uri)  # towards a server of both lines: on the session line (subscribing is idempotent)
        view.subscriptions.add(uri)
        return types.EmptyResult()

    async def _unsubscribe(self, ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        view = await self._view(ctx)
        uri = str(params.uri)
        if uri in view.subscriptions:
            view.subscriptions.discard(uri)
            await self._maybe_unsubscribe_upstream(uri, view)
        return types.EmptyResult()

    def _subscribed_elsewhere(self, uri: str, upstream: Upstream, view: View) -> bool:
        if view is not self._stateless_view and self._listen_refs.get((uri, upstream)):
            return True
        return any(
            uri in other.subscriptions and self._sees(other, upstream)
            for other in self._views.values()
            if other is not view
        )

    async def _maybe_unsubscribe_upstream(self, uri: str, view: View) -> None:
        server = self._catalog_of(view).server_for_uri(uri)
        upstream = self.upstreams.get(server) if server else None
        if server and upstream is None:
            upstream = view.own.get(server)
        if upstream is None or self._subscribed_elsewhere(uri, upstream, view):
            return
        await quietly(eras.session_line(upstream, view is self._stateless_view).unsubscribe(uri))

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
        modern_caller = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        upstream = await eras.mirror(self._upstream(view, server), modern_caller, self._tg)
        result = await upstream.request(request, Caller(ctx.session, ctx.request_id))
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
                await quietly(upstream.subscribe(uri))
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
                            await quietly(upstream.unsubscribe(uri))

    async def _set_logging_level(self, ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        view = await self._view(ctx)
        for upstream in [*self.upstreams.values(), *view.own.values()]:
            await upstream.set_log_level(params.level)
        return types.EmptyResult()


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
        await quietly(session.send_progress_notification(token, progress, total, message, related_request_id=related))

    return forward


async def quietly(awaitable: Any) -> None:
    """Await a best-effort notification; a client that went away must not fail the sender."""
    try:
        await awaitable
    except Exception as exc:
        logger.debug("notification not delivered: %s", exc)
