"""OpenTelemetry traces, configured by the standard `OTEL_*` variables only.

Tracing is on when an exporter is named: `OTEL_TRACES_EXPORTER` (`otlp` or `console`; `none` turns it off), or an
OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). `OTEL_SDK_DISABLED=true`
turns it off whatever else is set. With tracing off the SDK is never imported: no tracer provider is installed,
no span is made, and trace context in `_meta` passes through untouched.

With tracing on, the OpenTelemetry SDK (the `otel` extra) is imported, its resource, sampler and OTLP exporter
read their own variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, ...), and spans are queued for a background thread
(`OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`). A request never waits for
the exporter: when the queue is full, or an export fails, spans are dropped and counted.

The MCP SDK makes spans of its own (`MCP send ...`) around every request it sends. The gateway makes the client
span itself, with the gateway's attributes, so the SDK's tracer is given a pass-through tracer: its spans vanish
and the trace context it writes into `_meta` is the gateway's client span.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SpanCounts", "Tracing", "tracing_wanted"]

logger = logging.getLogger(__name__)

SDK_TRACER_NAME = "mcp-python-sdk"
"""The MCP SDK's tracer: its spans are replaced by the gateway's own."""

DEFAULT_SERVICE_NAME = "local-mcp-gateway"

SHUTDOWN_FLUSH = 5.0
"""Seconds the exporter thread gets at shutdown to send what is queued."""


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """Whether the `OTEL_*` variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


class SpanCounts:
    """Spans finished, exported and dropped (read by `/metrics`); written by two threads, read as plain ints."""

    def __init__(self) -> None:
        self.exported = 0
        self.dropped_queue_full = 0
        self.dropped_export_failed = 0


class _QueueProcessor:
    """A span processor: finished spans go to a bounded queue, a daemon thread exports them in batches.

    `on_end` runs on the event loop and never blocks; a full queue drops the span (counted). An exporter that is
    down or slow only holds up the thread.
    """

    def __init__(self, exporter: Any, counts: SpanCounts, environ: Mapping[str, str]) -> None:
        self._exporter = exporter
        self._counts = counts
        self._max_queue = _env_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self._batch = min(_env_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), self._max_queue)
        self._delay = _env_int(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self._queue: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="otel-span-export", daemon=True)
        self._thread.start()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if not span.context.trace_flags.sampled:
            return
        if len(self._queue) >= self._max_queue:
            self._counts.dropped_queue_full += 1
            return
        self._queue.append(span)
        if len(self._queue) >= self._batch:
            self._wake.set()

    def _work(self) -> None:
        while True:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._drain()
            if self._stopping:
                return

    def _drain(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
            try:
                ok = self._exporter.export(batch).name == "SUCCESS"
            except Exception as exc:  # an exporter must not take the thread down
                logger.debug("span export failed: %s", exc)
                ok = False
            if ok:
                self._counts.exported += len(batch)
            else:
                self._counts.dropped_export_failed += len(batch)

    def shutdown(self) -> None:
        if self._stopping:  # the provider's exit hook may call it again
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(SHUTDOWN_FLUSH)
        try:
            self._exporter.shutdown()
        except Exception as exc:  # pragma: no cover - best effort at exit
            logger.debug("span exporter shutdown: %s", exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._wake.set()
        return True


def _exporter(environ: Mapping[str, str]) -> Any | None:
    name = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        logger.error("OTEL_TRACES_EXPORTER=%s is not supported here (use otlp or console); tracing stays off", name)
        return None
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    )
    if protocol.strip().lower() != "http/protobuf":
        logger.error("OTLP protocol %s is not supported here (use http/protobuf); tracing stays off", protocol)
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


class Tracing:
    """The tracer provider of the process, and the tracer the gateway makes its spans with."""

    def __init__(self, tracer: Any, provider: Any, processor: _QueueProcessor, counts: SpanCounts) -> None:
        self.tracer = tracer
        self.provider = provider
        self.processor = processor
        self.counts = counts
        from opentelemetry import propagate, trace

        self._extract = propagate.extract
        self._trace = trace

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tracing | None:
        """Set up tracing if the `OTEL_*` variables ask for it (None: they do not, or the SDK is missing)."""
        environ = os.environ if environ is None else environ
        if not tracing_wanted(environ):
            return None
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
        except ImportError:
            logger.error(
                "OTEL_* asks for traces but the OpenTelemetry SDK is not installed: "
                "pip install 'local-mcp-gateway[otel]'; tracing stays off"
            )
            return None
        exporter = _exporter(environ)
        if exporter is None:
            return None
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))

        class GatewayTracerProvider(TracerProvider):
            def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> Any:
                if instrumenting_module_name == SDK_TRACER_NAME:
                    return trace.NoOpTracer()  # its spans carry the current (gateway) span's context, and end unseen
                return super().get_tracer(instrumenting_module_name, *args, **kwargs)

        counts = SpanCounts()
        processor = _QueueProcessor(exporter, counts, environ)
        provider = GatewayTracerProvider(resource=resource)
        provider.add_span_processor(processor)  # type: ignore[arg-type]
        trace.set_tracer_provider(provider)
        from local_mcp_gateway import __version__

        logger.info("tracing on: spans are exported by %s", type(exporter).__name__)
        return cls(provider.get_tracer("local-mcp-gateway", __version__), provider, processor, counts)

    def parent_context(self, meta: Any, headers: Callable[[str], str | None] | None) -> Any:
        """The caller's trace context: `params._meta.traceparent` first, then the HTTP headers; None if neither
        holds a valid one (a malformed `traceparent` starts a new trace)."""
        carrier: dict[str, str] = {}
        if isinstance(meta, Mapping) and isinstance(meta.get("traceparent"), str):
            carrier["traceparent"] = meta["traceparent"]
            if isinstance(meta.get("tracestate"), str):
                carrier["tracestate"] = meta["tracestate"]
        elif headers is not None:
            parent = headers("traceparent")
            if parent:
                carrier["traceparent"] = parent
                state = headers("tracestate")
                if state:
                    carrier["tracestate"] = state
        if not carrier:
            return None
        try:
            context = self._extract(carrier)
        except (ValueError, TypeError):
            return None
        if not self._trace.get_current_span(context).get_span_context().is_valid:
            return None
        return context

    def shutdown(self) -> None:
        self.provider.shutdown()
