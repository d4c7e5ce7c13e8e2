"""Traces: one trace runs client -> gateway -> upstream, received by a real OTLP/HTTP receiver in the test."""

from __future__ import annotations

import json
import secrets

import pytest

from tests.conftest import PYTHON, free_port, mcp_client
from tests.fixtures.launch import http_fixture
from tests.observability.conftest import HERE, scrape, series, wait_for
from tests.observability.otlp import otlp_receiver

pytestmark = pytest.mark.anyio

SERVER_KIND = 2  # opentelemetry.proto SPAN_KIND_SERVER
CLIENT_KIND = 3  # SPAN_KIND_CLIENT


def trace_upstream() -> dict:
    return {"command": PYTHON, "args": [str(HERE / "trace_upstream.py")]}


def otel_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "gateway-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **extra,
    }


def new_parent() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


async def context_seen(client, tool: str, meta: dict | None = None) -> dict:
    result = await client.call_tool(tool, {}, meta=meta)
    assert not result.is_error, result
    return json.loads(result.content[0].text)


async def test_one_trace_runs_from_the_client_through_the_gateway_to_both_kinds_of_upstream(
    config_repo, gateway_factory, tmp_path
):
    with otlp_receiver() as receiver, http_fixture(HERE / "trace_upstream.py") as remote:
        config_repo.write_profile("team", {"local": trace_upstream(), "remote": {"url": remote.url}})
        gateway = gateway_factory(config_repo.path, env=otel_env(receiver.url))
        trace_id, client_span = new_parent()
        async with mcp_client(gateway.url("team")) as client:
            local = await context_seen(client, "local__trace_context", {"traceparent": f"00-{trace_id}-{client_span}-01"})
            remote_seen = await context_seen(
                client, "remote__trace_context", {"traceparent": f"00-{trace_id}-{client_span}-01"}
            )

        spans = receiver.wait_for(lambda s: len([x for x in s if x.trace_id == trace_id]) >= 4)
        in_trace = [span for span in spans if span.trace_id == trace_id]
        servers = [s for s in in_trace if s.kind == SERVER_KIND]
        clients = [s for s in in_trace if s.kind == CLIENT_KIND]
        assert sorted(s.name for s in servers) == ["tools/call local__trace_context", "tools/call remote__trace_context"]
        assert sorted(s.name for s in clients) == ["tools/call trace_context", "tools/call trace_context"]
        assert {s.service for s in in_trace} == {"gateway-under-test"}
        for server_span in servers:
            assert server_span.parent_span_id == client_span  # the client's span is the parent
            assert server_span.attributes["mcp.method.name"] == "tools/call"
            assert server_span.attributes["gen_ai.tool.name"] == server_span.name.split(" ", 1)[1]
            assert server_span.attributes["mcp.protocol.version"] == "2025-11-25"
            assert server_span.attributes["gateway.profile"] == "team"
        by_server = {s.attributes["gateway.server"]: s for s in clients}
        for name, seen in (("local", local), ("remote", remote_seen)):
            leg = by_server[name]
            parent = next(s for s in servers if s.name == f"tools/call {name}__trace_context")
            assert leg.parent_span_id == parent.span_id
            assert leg.attributes["gen_ai.tool.name"] == "trace_context"
            # The upstream got the gateway's client span as its parent, in the client's trace.
            assert seen["meta"] == f"00-{trace_id}-{leg.span_id}-01"
        assert by_server["local"].attributes["network.transport"] == "pipe"
        assert by_server["remote"].attributes["network.transport"] == "tcp"
        assert remote_seen["header"] == remote_seen["meta"]  # HTTP upstreams get it as a header too
        assert local["header"] is None


async def test_trace_context_from_the_http_header_and_a_malformed_one_starting_a_new_trace(
    config_repo, gateway_factory
):
    with otlp_receiver() as receiver:
        config_repo.write_profile("team", {"local": trace_upstream()})
        gateway = gateway_factory(config_repo.path, env=otel_env(receiver.url))
        trace_id, client_span = new_parent()
        async with mcp_client(gateway.url("team"), headers={"traceparent": f"00-{trace_id}-{client_span}-01"}) as client:
            from_header = await context_seen(client, "local__trace_context")
        malformed = f"00-{'z' * 32}-{client_span}-01"
        async with mcp_client(gateway.url("team")) as client:
            fresh = await context_seen(client, "local__trace_context", {"traceparent": malformed})
            zeros = await context_seen(client, "local__trace_context", {"traceparent": f"00-{'0' * 32}-{client_span}-01"})

        assert from_header["meta"].split("-")[1] == trace_id
        spans = receiver.wait_for(
            lambda s: len([x for x in s if x.kind == SERVER_KIND and x.name == "tools/call local__trace_context"]) >= 3
        )
        header_server = [s for s in spans if s.trace_id == trace_id and s.kind == SERVER_KIND]
        assert {s.parent_span_id for s in header_server} == {client_span}  # initialize and the list too
        assert "tools/call local__trace_context" in {s.name for s in header_server}
        for seen in (fresh, zeros):
            new_trace = seen["meta"].split("-")[1]
            assert new_trace not in (trace_id, "z" * 32, "0" * 32)
            root = [s for s in spans if s.trace_id == new_trace and s.kind == SERVER_KIND and "trace_context" in s.name]
            assert len(root) == 1 and root[0].parent_span_id == ""  # a new trace starts at the gateway


async def test_without_an_exporter_no_spans_are_made_and_the_callers_context_passes_through(
    config_repo, gateway_factory
):
    with otlp_receiver() as receiver:
        config_repo.write_profile("team", {"local": trace_upstream()})
        # The receiver listens, but nothing names an exporter: tracing stays off.
        gateway = gateway_factory(config_repo.path, env={"OTEL_SERVICE_NAME": "unused"})
        parent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
        async with mcp_client(gateway.url("team")) as client:
            seen = await context_seen(client, "local__trace_context", {"traceparent": parent})
        assert seen["meta"] == parent
        assert receiver.requests == 0
        assert series(scrape(gateway.base_url), "mcp_gateway_spans_dropped_total") is None


async def test_a_slow_collector_delays_no_call_and_overflowing_spans_are_dropped_and_counted(
    config_repo, gateway_factory
):
    with otlp_receiver() as receiver:
        config_repo.write_profile("team", {"local": trace_upstream()})
        env = otel_env(
            receiver.url, OTEL_BSP_MAX_QUEUE_SIZE="8", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2", OTEL_EXPORTER_OTLP_TIMEOUT="120"
        )
        receiver.delay = 120.0  # every export request is held (until the test ends) before it is answered
        gateway = gateway_factory(config_repo.path, env=env)
        async with mcp_client(gateway.url("team")) as client:
            await client.call_tool("local__fast", {})
            wait_for(lambda: receiver.requests >= 1)  # the exporter thread is now stuck in a slow export
            requests_before = receiver.requests
            for _ in range(40):  # each call makes two spans; the queue holds eight
                assert (await client.call_tool("local__fast", {})).content[0].text == "ok"
            # All forty calls were answered while that one export was still being held by the collector.
            assert receiver.requests == requests_before
        dropped = series(scrape(gateway.base_url), "mcp_gateway_spans_dropped_total", reason="queue_full")
        assert dropped is not None and dropped >= 40 * 2 - 8 - 2 * 2


async def test_a_collector_that_is_down_costs_the_calls_nothing_and_its_spans_are_counted_as_dropped(
    config_repo, gateway_factory
):
    config_repo.write_profile("team", {"local": trace_upstream()})
    closed = f"http://127.0.0.1:{free_port()}"
    gateway = gateway_factory(config_repo.path, env=otel_env(closed, OTEL_EXPORTER_OTLP_TIMEOUT="1"))
    async with mcp_client(gateway.url("team")) as client:
        for _ in range(5):
            assert (await client.call_tool("local__fast", {})).content[0].text == "ok"
    wait_for(
        lambda: (series(scrape(gateway.base_url), "mcp_gateway_spans_dropped_total", reason="export_failed") or 0) >= 10
    )
