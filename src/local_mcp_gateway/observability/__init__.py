"""Seeing the gateway run: Prometheus metrics, OpenTelemetry traces, and the context of JSON log lines.

The rest of the gateway calls in here at a few points, one call each:

* the profile's MCP server middleware (`server_middleware`): client-facing requests, timed and traced;
* `Upstream.request` (`client_leg`): upstream legs, timed and traced;
* the inbound guard (`note_refusal`), reloads (`note_reload`), the end of a client session (`session_ended`);
* the HTTP transport towards remote servers (`trace_header`): the trace context of a request, as a header too.

Nothing here does anything until `setup()` ran (the `run` command calls it once, from `metrics` in gateway.yaml and
the `OTEL_*` variables). With metrics off and no trace exporter configured, every hook returns at once.
Metrics are a small registry of our own (`metrics.py`), tracing is the OpenTelemetry SDK (`tracing.py`, imported only
when an exporter is configured), and `context.py` gives log lines their profile, server, session and trace ids.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from local_mcp_gateway.observability.context import log_fields, session_tag
from local_mcp_gateway.observability.instruments import REFUSAL_REASONS, UNKNOWN, GatewayMetrics
from local_mcp_gateway.observability.metrics import CONTENT_TYPE
from local_mcp_gateway.observability.tracing import tracing_wanted

__all__ = [
    "CONTENT_TYPE",
    "UNKNOWN",
    "Observability",
    "client_leg",
    "current",
    "log_fields",
    "metrics_text",
    "note_refusal",
    "note_reload",
    "server_middleware",
    "session_ended",
    "session_tag",
    "setup",
    "shutdown",
    "metrics_listener",
    "trace_header",
]

logger = logging.getLogger(__name__)


@dataclass
class Observability:
    """What is switched on in this process."""

    metrics: GatewayMetrics | None
    tracing: Any
    """A `tracing.Tracing`, or None when no exporter is configured."""
    log_context: bool = False
    """Whether log lines want the request context even with metrics and tracing off (JSON logs)."""
    listen: tuple[str, int] | None = None
    """Where `/metrics` has a listener of its own (then the main listener does not serve it)."""

    @property
    def observes_requests(self) -> bool:
        return self.metrics is not None or self.tracing is not None or self.log_context


_state: Observability | None = None


def setup(
    gateway: Any = None,
    *,
    metrics: bool = True,
    listen: Any = None,
    log_context: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Observability:
    """Switch on what the configuration asks for (replacing an earlier setup, whose tracing is shut down).

    `gateway` is read for the live gauges at scrape time; `listen` (`metrics.listen`: host and port) gives
    `/metrics` a listener of its own.
    """
    global _state
    shutdown()
    tracing = None
    env = os.environ if environ is None else environ
    if tracing_wanted(env):
        from local_mcp_gateway.observability.tracing import Tracing  # the SDK is imported only now

        tracing = Tracing.from_env(env)
    registry = GatewayMetrics() if metrics else None
    if registry is not None:
        registry.tracing = tracing
        registry.watch(gateway)
    address = (listen.host, listen.port) if metrics and listen is not None else None
    _state = Observability(registry, tracing, log_context, address)
    return _state


def shutdown() -> None:
    """Flush and stop tracing (bounded); hooks become no-ops."""
    global _state
    state, _state = _state, None
    if state is not None and state.tracing is not None:
        state.tracing.shutdown()


def current() -> Observability | None:
    return _state


def metrics_text(*, main_listener: bool = True) -> str | None:
    """The Prometheus text of this process, or None when metrics are off (or served by their own listener only)."""
    if _state is None or _state.metrics is None or (main_listener and _state.listen is not None):
        return None
    return _state.metrics.render()


@asynccontextmanager
async def metrics_listener() -> AsyncIterator[None]:
    """While the block runs, serve `/metrics` on `metrics.listen` if it is set; it stops (gracefully) at the end."""
    if _state is None or _state.listen is None:
        yield
        return
    from local_mcp_gateway.observability.listener import serve_metrics

    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_metrics, *_state.listen, stop)
        try:
            yield
        finally:
            stop.set()


def server_middleware(profile: Any) -> list[Any]:
    """The observing middleware for a profile's MCP server (empty when nothing observes requests)."""
    state = _state
    if state is None or not state.observes_requests:
        return []
    from local_mcp_gateway.observability.hooks import ServerObserver

    return [ServerObserver(state.metrics, state.tracing, profile)]


def client_leg(upstream: Any, request: Any, call: Awaitable[Any]) -> Awaitable[Any]:
    """`call` (a request to `upstream`), timed and traced when that is on; await what this returns."""
    state = _state
    if state is None or (state.metrics is None and state.tracing is None):
        return call
    from local_mcp_gateway.observability.hooks import observe_leg

    return observe_leg(state.metrics, state.tracing, upstream, request, call)


def note_refusal(profile: str, error: str) -> None:
    """The inbound guard refused a request of `profile` with refusal code `error`."""
    state = _state
    if state is not None and state.metrics is not None:
        state.metrics.refused.inc((profile, REFUSAL_REASONS.get(error, "other")))


def note_reload(outcome: str) -> None:
    """A reload ended: `applied`, `unchanged` or `failed`."""
    state = _state
    if state is not None and state.metrics is not None:
        state.metrics.reloads.inc((outcome,))


def session_ended(profile: str, duration: float, protocol_version: Any) -> None:
    """A client session of `profile` ended after `duration` seconds."""
    state = _state
    if state is not None and state.metrics is not None:
        from local_mcp_gateway.observability.hooks import _version

        state.metrics.session_duration.observe((_version(protocol_version), profile), duration)


_TRACEPARENT = re.compile(rb'"traceparent"\s*:\s*"([0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})"')
_TRACESTATE = re.compile(rb'"tracestate"\s*:\s*"([\x20-\x21\x23-\x5b\x5d-\x7e]{1,512})"')


def trace_header(request: Any) -> None:
    """Copy a JSON-RPC body's `_meta.traceparent` (and `tracestate`) into the HTTP headers of `request`."""
    if request.method != "POST" or "traceparent" in request.headers:
        return
    try:
        body = request.content
    except Exception:  # a streamed body: nothing to look at
        return
    if b'"traceparent"' not in body:
        return
    found = _TRACEPARENT.search(body)
    if found is None:
        return
    request.headers["traceparent"] = found.group(1).decode("ascii")
    state = _TRACESTATE.search(body)
    if state is not None:
        request.headers["tracestate"] = state.group(1).decode("ascii")
