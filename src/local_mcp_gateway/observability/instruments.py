"""The gateway's metrics: names and labels after the OpenTelemetry MCP semantic conventions, as the Prometheus
exporter spells them (dots become underscores, the unit is appended).

Histograms and counters are updated as things happen (see `hooks.py`); gauges that mirror live state (sessions,
upstream health, restarts, the configuration generation) are read from the gateway at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from local_mcp_gateway.observability.metrics import Counter, Gauge, Histogram, Registry, Sample

__all__ = ["OPERATION_BUCKETS", "REFUSAL_REASONS", "SESSION_BUCKETS", "UNKNOWN", "GatewayMetrics"]

OPERATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
"""Seconds; the buckets the MCP semantic conventions advise for operation durations."""

SESSION_BUCKETS = (*OPERATION_BUCKETS, 600, 1800, 3600, 14400, 86400)
"""Seconds; sessions last from a single call to a working day."""

UNKNOWN = "_unknown"
"""The label value for a name that is not in the catalog (or a version that is not known): cardinality stays bounded."""

OPERATION_LABELS = ("mcp_method_name", "gen_ai_tool_name", "error_type", "mcp_protocol_version", "profile")

REFUSAL_REASONS = {
    "rate_limited": "rate_limit",
    "unauthorized": "auth",
    "invalid_key": "auth",
    "too_large": "size",
    "headers_too_large": "size",
    "too_many_headers": "size",
    "too_deep": "size",
    "host_not_allowed": "host",
    "origin_not_allowed": "origin",
    "request_timeout": "timeout",
}
"""The inbound guard's refusal codes, grouped into the `reason` label (anything else: `other`)."""


class GatewayMetrics:
    """Every metric the gateway exposes, in one registry."""

    def __init__(self) -> None:
        self.registry = Registry()
        add = self.registry.add
        self.server_duration = add(
            Histogram(
                "mcp_server_operation_duration_seconds",
                "Duration of MCP requests served to clients (the client-facing side).",
                OPERATION_LABELS,
                OPERATION_BUCKETS,
            )
        )
        self.client_duration = add(
            Histogram(
                "mcp_client_operation_duration_seconds",
                "Duration of MCP requests the gateway sent to upstream servers.",
                (*OPERATION_LABELS, "server"),
                OPERATION_BUCKETS,
            )
        )
        self.session_duration = add(
            Histogram(
                "mcp_server_session_duration_seconds",
                "Duration of client sessions, from their first request to their end.",
                ("mcp_protocol_version", "profile"),
                SESSION_BUCKETS,
            )
        )
        self._gateway: Any = None
        self.sessions = add(Gauge("mcp_gateway_sessions", "Open client sessions.", ("profile",), self._sessions))
        self.upstream_up = add(
            Gauge("mcp_gateway_upstream_up", "1 when an upstream server is ready, else 0.", ("profile", "server"), self._up)
        )
        self.restarts = add(
            Gauge(
                "mcp_gateway_upstream_restarts_total",
                "Restarts of an upstream server since its connection was set up (a changed server starts again at 0).",
                ("profile", "server"),
                self._restarts,
            )
        )
        self.restarts.kind = "counter"
        self.in_flight = add(Gauge("mcp_gateway_calls_in_flight", "MCP requests being served now.", ("profile",)))
        self.reloads = add(Counter("mcp_gateway_reloads_total", "Configuration reloads, by outcome.", ("outcome",)))
        self.generation = add(
            Gauge("mcp_gateway_config_generation", "The configuration generation being served.", (), self._generation)
        )
        self.refused = add(
            Counter(
                "mcp_gateway_requests_refused_total",
                "Requests the inbound guard refused, by reason (rate_limit, auth, size, host, origin, timeout).",
                ("profile", "reason"),
            )
        )
        self.spans_dropped = add(
            Gauge("mcp_gateway_spans_dropped_total", "Trace spans dropped, by reason.", ("reason",), self._spans_dropped)
        )
        self.spans_dropped.kind = "counter"
        self.tracing: Any = None

    def watch(self, gateway: Any) -> None:
        """Read live gauges from `gateway` at scrape time."""
        self._gateway = gateway

    def render(self) -> str:
        return self.registry.render()

    # -- collectors (scrape time) ----------------------------------------------------------------------------

    def _profiles(self) -> list[tuple[str, Any]]:
        gateway = self._gateway
        return sorted(gateway.profiles.items()) if gateway is not None else []

    def _sessions(self) -> Iterable[Sample]:
        return [((slug, ), float(len(getattr(profile, "_views", ())))) for slug, profile in self._profiles()]

    def _upstreams(self) -> Iterable[tuple[str, str, Any]]:
        for slug, profile in self._profiles():
            for name, upstream in sorted(profile.upstreams.items()):
                yield slug, name, upstream

    def _up(self) -> Iterable[Sample]:
        return [((slug, name), 1.0 if str(u.state) == "ready" else 0.0) for slug, name, u in self._upstreams()]

    def _restarts(self) -> Iterable[Sample]:
        return [((slug, name), float(u.restarts)) for slug, name, u in self._upstreams()]

    def _generation(self) -> Iterable[Sample]:
        return [((), float(self._gateway.generation if self._gateway is not None else 0))]

    def _spans_dropped(self) -> Iterable[Sample]:
        if self.tracing is None:
            return []
        counts = self.tracing.counts
        return [(("queue_full",), float(counts.dropped_queue_full)), (("export_failed",), float(counts.dropped_export_failed))]
