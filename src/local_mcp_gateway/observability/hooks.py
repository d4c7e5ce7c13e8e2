"""Where the gateway is measured: the MCP server middleware (client-facing side) and the upstream legs.

Each request a client sends passes `ServerObserver` (one per profile, first in the profile's MCP server
middleware): it times the request, counts it in flight, sets the log context, and, with tracing on, opens the
server span under the caller's trace context. Each request sent upstream passes `observe_leg`: timed, and with
tracing on wrapped in a client span whose context the MCP SDK writes into `params._meta.traceparent` (and the
HTTP transport into the `traceparent` header).

Label values come from bounded sets only: tool and prompt names from the catalog, resource URIs the catalog
lists (or the template that matches), protocol versions the SDK knows; anything else is `_unknown`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import REQUEST_TIMEOUT
from mcp_types.version import KNOWN_PROTOCOL_VERSIONS

from local_mcp_gateway.observability.context import LOG_CONTEXT, SERVER_CONTEXT, session_tag
from local_mcp_gateway.observability.instruments import UNKNOWN, GatewayMetrics

__all__ = ["ServerObserver", "observe_leg"]

logger = logging.getLogger("local_mcp_gateway.requests")
"""One debug line per request served and per upstream leg (with the request's context in JSON logs)."""

_VERSIONS = frozenset(KNOWN_PROTOCOL_VERSIONS)
_NAMED = {"tools/call": "tool_routes", "prompts/get": "prompt_routes"}
_URI_METHODS = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})
_NOT_IN_FLIGHT = frozenset({"subscriptions/listen"})
"""Requests that stay open as change streams: not calls in flight."""

_VIEW_KEY = "local_mcp_gateway"
"""Where a profile keeps a connection's view (and its own catalog, with per-session servers)."""

TARGET: ContextVar[str] = ContextVar("mcp_gateway_target", default="")
"""The bounded target label of the client request being served (upstream legs of resource reads reuse it)."""

MAX_ATTRIBUTE = 256
"""Longest name put into a span attribute as the client sent it."""


def _version(value: Any) -> str:
    return value if value in _VERSIONS else UNKNOWN


def _uri_label(catalog: Any, uri: Any) -> str:
    if not isinstance(uri, str):
        return UNKNOWN
    if uri in catalog.resource_routes:
        return uri
    for template, text, _ in catalog.template_routes:
        if text == uri or (template is not None and template.match(uri) is not None):
            return text
    return UNKNOWN


def target_label(catalog: Any, method: str, params: Mapping[str, Any] | None) -> str:
    """The `gen_ai_tool_name` label of a request: a catalog name or URI (template), `_unknown`, or ''."""
    routes = _NAMED.get(method)
    if routes is not None:
        name = params.get("name") if params else None
        return name if isinstance(name, str) and name in getattr(catalog, routes) else UNKNOWN
    if method in _URI_METHODS:
        return _uri_label(catalog, params.get("uri") if params else None)
    if method == "completion/complete":
        ref = params.get("ref") if params else None
        if not isinstance(ref, Mapping):
            return UNKNOWN
        if ref.get("type") == "ref/prompt":
            name = ref.get("name")
            return name if isinstance(name, str) and name in catalog.prompt_routes else UNKNOWN
        return _uri_label(catalog, ref.get("uri"))
    return ""


def _is_tool_error(result: Any) -> bool:
    if type(result) is dict:  # upstream results pass through as plain dicts: skip the ABC check
        return result.get("isError") is True
    if isinstance(result, Mapping):
        return result.get("isError") is True
    return getattr(result, "is_error", False) is True


def _error_type(exc: BaseException) -> str:
    if isinstance(exc, MCPError):
        return str(exc.error.code)
    if not isinstance(exc, Exception):
        return "cancelled"
    return type(exc).__qualname__


class ServerObserver:
    """The MCP server middleware of one profile (see the module docstring)."""

    def __init__(self, metrics: GatewayMetrics | None, tracing: Any, profile: Any) -> None:
        self.profile = profile
        self.slug = profile.slug
        self.metrics = metrics
        self.tracing = tracing
        if tracing is not None:
            from opentelemetry import context as otel_context
            from opentelemetry import trace

            self._context = otel_context
            self._trace = trace
            self._server_kind = trace.SpanKind.SERVER

    def _catalog(self, ctx: Any) -> Any:
        profile = self.profile
        if len(profile.upstreams) < len(profile.servers):  # per-session servers: the connection's own catalog
            connection = getattr(ctx.session, "_connection", None)
            view = connection.state.get(_VIEW_KEY) if connection is not None else None
            if view is not None and view.catalog is not None:
                return view.catalog
        return profile.catalog

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        if ctx.request_id is None:  # notifications: nothing to time
            return await call_next(ctx)
        method = ctx.method
        params = ctx.params
        request = ctx.request
        headers = getattr(request, "headers", None)
        session = session_tag(headers.get("mcp-session-id")) if headers is not None else None
        log_token = LOG_CONTEXT.set((self.slug, session))
        target = target_label(self._catalog(ctx), method, params)
        target_token = TARGET.set(target)
        counted = self.metrics is not None and method not in _NOT_IN_FLIGHT
        if counted:
            self.metrics.in_flight.inc((self.slug,))
        span = attach = None
        if self.tracing is not None:
            span, attach = self._start_span(ctx, method, params, target, headers, session)
        error = ""
        started = time.perf_counter()
        try:
            result = await call_next(ctx)
            if method == "tools/call" and _is_tool_error(result):
                error = "tool_error"
            return result
        except BaseException as exc:
            error = _error_type(exc)
            raise
        finally:
            elapsed = time.perf_counter() - started
            if target == UNKNOWN:  # a per-session server's catalog is built by the first request
                target = target_label(self._catalog(ctx), method, params)
            version = _version(ctx.protocol_version)
            if self.metrics is not None:
                if counted:
                    self.metrics.in_flight.dec((self.slug,))
                self.metrics.server_duration.observe((method, target, error, version, self.slug), elapsed)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s %s: %.1f ms%s", method, target, elapsed * 1000, f" ({error})" if error else "")
            if span is not None:
                self._end_span(span, attach, method, target, error)
            TARGET.reset(target_token)
            LOG_CONTEXT.reset(log_token)

    def _start_span(self, ctx: Any, method: str, params: Any, target: str, headers: Any, session: str | None) -> Any:
        meta = params.get("_meta") if params else None
        parent = self.tracing.parent_context(meta, headers.get if headers is not None else None)
        attributes: dict[str, Any] = {
            "mcp.method.name": method,
            "mcp.protocol.version": str(ctx.protocol_version),
            "jsonrpc.request.id": str(ctx.request_id),
            "network.transport": "tcp",
            "network.protocol.name": "http",
            "gateway.profile": self.slug,
        }
        if session is not None:
            attributes["mcp.session.id"] = session
        _name_attributes(attributes, method, params)
        span = self.tracing.tracer.start_span(
            f"{method} {target}" if target and target != UNKNOWN else method,
            context=parent,
            kind=self._server_kind,
            attributes=attributes,
        )
        return span, self._context.attach(self._trace.set_span_in_context(span))

    def _end_span(self, span: Any, attach: Any, method: str, target: str, error: str) -> None:
        if target and target != UNKNOWN:
            span.update_name(f"{method} {target}")
        if error:
            span.set_attribute("error.type", error)
            span.set_status(self._trace.StatusCode.ERROR)
        self._context.detach(attach)
        span.end()


def _name_attributes(attributes: dict[str, Any], method: str, params: Any) -> None:
    if not params:
        return
    if method == "tools/call":
        attributes["gen_ai.operation.name"] = "execute_tool"
        if isinstance(name := params.get("name"), str):
            attributes["gen_ai.tool.name"] = name[:MAX_ATTRIBUTE]
    elif method == "prompts/get" and isinstance(name := params.get("name"), str):
        attributes["gen_ai.prompt.name"] = name[:MAX_ATTRIBUTE]
    elif isinstance(uri := params.get("uri"), str):
        attributes["mcp.resource.uri"] = uri[:MAX_ATTRIBUTE]


_TRANSPORTS = {"stdio": "pipe", "remote": "tcp", "module": "inproc"}


async def observe_leg(metrics: GatewayMetrics | None, tracing: Any, upstream: Any, request: Any, call: Awaitable[Any]) -> Any:
    """Time one request to an upstream (and wrap it in a client span when tracing is on)."""
    method = request.method
    params = request.params
    name = getattr(params, "name", None) if params is not None else None
    target = name if isinstance(name, str) and method in _NAMED else TARGET.get()
    server = upstream.server
    session = upstream._session  # the connection's negotiated version labels the leg
    version = _version(session.protocol_version if session is not None else None)
    server_token = SERVER_CONTEXT.set(server.name)
    span = attach = None
    if tracing is not None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        attributes: dict[str, Any] = {
            "mcp.method.name": method,
            "mcp.protocol.version": version,
            "network.transport": _TRANSPORTS.get(server.kind, "tcp"),
            "gateway.profile": server.profile,
            "gateway.server": server.name,
        }
        if target:
            attributes["gen_ai.tool.name" if method == "tools/call" else "mcp.target"] = target
        if method == "tools/call":
            attributes["gen_ai.operation.name"] = "execute_tool"
        span = tracing.tracer.start_span(
            f"{method} {target}" if target and target != UNKNOWN else method, kind=trace.SpanKind.CLIENT, attributes=attributes
        )
        attach = otel_context.attach(trace.set_span_in_context(span))
    error = ""
    started = time.perf_counter()
    try:
        result = await call
        if method == "tools/call" and _is_tool_error(result):
            error = "tool_error"
        return result
    except BaseException as exc:
        error = _error_type(exc)
        if error == "cancelled" and time.perf_counter() - started >= server.timeout_seconds:
            error = str(REQUEST_TIMEOUT)  # the call's own time limit ran out, not the caller's patience
        raise
    finally:
        elapsed = time.perf_counter() - started
        if metrics is not None:
            metrics.client_duration.observe((method, target, error, version, server.profile, server.name), elapsed)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("upstream %s: %s %s: %.1f ms%s", server.name, method, target, elapsed * 1000, f" ({error})" if error else "")
        if span is not None:
            from opentelemetry import context as otel_context
            from opentelemetry import trace

            if error:
                span.set_attribute("error.type", error)
                span.set_status(trace.StatusCode.ERROR)
            otel_context.detach(attach)
            span.end()
        SERVER_CONTEXT.reset(server_token)
