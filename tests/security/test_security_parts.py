"""The guard's parts as values: JSON depth scan, host globs, key ring, rate limiter, Hypercorn limits, traffic log."""

from __future__ import annotations

import json
from typing import Any

import mcp.types as types
import pytest
from hypercorn.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.server import Server

from local_mcp_gateway.config.gateway_models import SecurityConfig, TrafficLogConfig
from local_mcp_gateway.redact import MASK, Redactor
from local_mcp_gateway.security import (
    MAX_HEADER_BYTES,
    HostAllowList,
    KeyRing,
    RateLimiter,
    TrafficLog,
    apply_server_limits,
    is_loopback_address,
    json_nesting_exceeds,
)

# -- JSON nesting ----------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from('ab"\\[]{}\u00e9 ')),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=40,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=json_values, limit=st.integers(min_value=0, max_value=8))
def test_the_scan_agrees_with_a_parser_on_valid_json(value: Any, limit: int) -> None:
    body = json.dumps(value, ensure_ascii=False).encode()
    assert json_nesting_exceeds(body, limit) == (depth_of(value) > limit)


def test_brackets_inside_strings_and_escapes_do_not_count() -> None:
    assert not json_nesting_exceeds(json.dumps({"a": "[[[[{{{{" * 100}).encode(), 2)
    assert not json_nesting_exceeds(b'{"a": "\\"[[[[[[", "b": "\\\\"}', 1)
    assert json_nesting_exceeds(b'{"a": "\\\\", "b": [[1]]}', 2)


def test_a_huge_flat_body_is_scanned_and_passes() -> None:
    body = json.dumps({"text": "x" * 3_000_000, "list": list(range(10_000))}).encode()
    assert not json_nesting_exceeds(body, 64)


# -- hosts, addresses, keys ------------------------------------------------------------------------------------


def test_host_globs_treat_only_star_as_special() -> None:
    hosts = HostAllowList(["[::1]:*", "gw.example", "*.corp.example:443"])
    assert hosts.allows("[::1]:8080")
    assert not hosts.allows(":8080") and not hosts.allows("1:8080")
    assert hosts.allows("GW.example") and not hosts.allows("gw.example:80") and not hosts.allows("gwxexample")
    assert hosts.allows("a.b.corp.example:443") and not hosts.allows("corp.example:443")
    assert not HostAllowList([]).allows("127.0.0.1:80")
    assert not HostAllowList(["*"]).allows("")
    assert HostAllowList(["*"]).allows("anything.example:1")


def test_a_port_star_in_allowed_hosts_matches_digits_only() -> None:
    hosts = HostAllowList(["127.0.0.1:*", "[::1]:*", "*.corp.example:*"])
    assert hosts.allows("127.0.0.1:18210") and hosts.allows("[::1]:1")
    assert not hosts.allows("127.0.0.1:18210.attacker.example")
    assert not hosts.allows("127.0.0.1:80@attacker.example") and not hosts.allows("127.0.0.1:")
    assert not hosts.allows("[::1]:8080.attacker.example")
    assert hosts.allows("a.corp.example:443") and not hosts.allows("a:b.corp.example:443")
    assert not hosts.allows("evil.example/x.corp.example:443")


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True), (None, True),
     ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("192.168.1.2", False), ("not-an-ip", False)],
)
def test_loopback_addresses(address: str | None, loopback: bool) -> None:
    assert is_loopback_address(address) is loopback


def test_key_ring_accepts_each_key_and_nothing_else() -> None:
    ring = KeyRing(["first-key-aaaa", "second-key-bbbb"])
    assert ring.required and len(ring) == 2
    assert ring.accepts("first-key-aaaa") and ring.accepts("second-key-bbbb")
    for wrong in ("", "first-key-aaa", "first-key-aaaaa", "FIRST-KEY-AAAA", "second-key-bbbb "):
        assert not ring.accepts(wrong)
    assert "first" not in repr(ring)
    assert not KeyRing([]).required
    assert KeyRing([""]).required and not KeyRing([""]).accepts("")


# -- rate limiter ----------------------------------------------------------------------------------------------


class ManualClock:
    """A clock the test moves by hand, so refill is exact and no test waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = ManualClock()
    limiter = RateLimiter(60, clock=clock)  # one token a second
    assert all(limiter.acquire("a") is None for _ in range(60))
    assert limiter.acquire("a") == 1
    clock.now += 0.5
    assert limiter.acquire("a") == 1  # half a token: still wait, rounded up to a whole second
    clock.now += 0.5
    assert limiter.acquire("a") is None
    clock.now += 3600
    assert sum(limiter.acquire("a") is None for _ in range(100)) == 60  # never more than the burst


def test_retry_after_is_the_whole_seconds_until_a_token() -> None:
    clock = ManualClock()
    limiter = RateLimiter(2, clock=clock)  # a token every 30 s
    assert limiter.acquire("a") is None and limiter.acquire("a") is None
    assert limiter.acquire("a") == 30
    clock.now += 20.2
    assert limiter.acquire("a") == 10


def test_buckets_are_bounded_and_the_least_recent_goes_first() -> None:
    clock = ManualClock()
    limiter = RateLimiter(1, max_clients=3, clock=clock)
    for client in ("a", "b", "c"):
        assert limiter.acquire(client) is None
    assert limiter.acquire("a") is not None  # touches "a": now "b" is the least recent
    assert limiter.acquire("d") is None
    assert len(limiter) == 3
    assert limiter.acquire("b") is None  # "b" was dropped, so it starts again with a full bucket
    assert limiter.acquire("a") is not None  # "a" was kept
    for i in range(10_000):
        limiter.acquire(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 3


def test_a_zero_limit_is_not_a_limiter() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


# -- Hypercorn -------------------------------------------------------------------------------------------------


def test_server_limits_bound_headers_and_slow_clients_but_not_long_streams() -> None:
    config = Config()
    apply_server_limits(config, SecurityConfig())
    assert config.h11_max_incomplete_size == MAX_HEADER_BYTES
    assert config.h2_max_header_list_size == MAX_HEADER_BYTES
    assert 0 < config.keep_alive_timeout <= 10
    assert 0 < config.ssl_handshake_timeout <= 30
    assert config.read_timeout is None  # SSE responses keep a silent client connected for minutes
    assert config.include_server_header is False


# -- traffic log -----------------------------------------------------------------------------------------------


def echo_server() -> Server[Any]:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        schema = {"type": "object", "properties": {"text": {"type": "string"}, "api_key": {"type": "string"}}}
        return types.ListToolsResult(tools=[types.Tool(name="echo", input_schema=schema)])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name == "fail":
            return types.CallToolResult(content=[types.TextContent(type="text", text="no")], is_error=True)
        text = str((params.arguments or {}).get("text"))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server("traffic-test", on_list_tools=list_tools, on_call_tool=call_tool)


@pytest.mark.anyio
async def test_traffic_log_records_redacted_summaries_of_real_requests() -> None:
    secret = "sk-live-0123456789abcdef"
    log = TrafficLog("alpha", max_entries=50, redactor=Redactor([secret]))
    server = echo_server()
    server.middleware = [*server.middleware, log.middleware]
    async with Client(server, mode="legacy") as client:
        await client.list_tools()
        await client.call_tool("echo", {"text": f"token is {secret}", "api_key": "typed-by-user-1234"})
        await client.call_tool("fail", {})
    entries = log.entries()
    calls = [e for e in entries if e.method == "tools/call"]
    assert [e.name for e in calls] == ["echo", "fail"]
    assert [e.status for e in calls] == ["ok", "tool_error"]
    assert calls[0].params["arguments"] == {"text": f"token is {MASK}", "api_key": MASK}
    assert any(e.method == "tools/list" and e.status == "ok" for e in entries)
    assert all(e.profile == "alpha" and e.duration_ms >= 0 for e in entries)
    dumped = json.dumps(log.as_json())
    assert secret not in dumped and "typed-by-user-1234" not in dumped


def test_traffic_log_is_a_bounded_ring() -> None:
    log = TrafficLog("alpha", max_entries=3)
    for i in range(10):
        log.record("tools/call", {"name": f"t{i}"}, status="ok", duration=0.001)
    assert len(log) == 3
    assert [e.name for e in log.entries()] == ["t7", "t8", "t9"]


def test_large_params_are_shortened() -> None:
    log = TrafficLog("alpha", max_entries=3)
    entry = log.record("tools/call", {"name": "big", "arguments": {"text": "x" * 100_000}}, status="ok", duration=0)
    assert set(entry.params) == {"_truncated"} and len(entry.params["_truncated"]) < 5000


def test_traffic_log_follows_the_config() -> None:
    assert TrafficLog.from_config("alpha", TrafficLogConfig()) is None
    log = TrafficLog.from_config("alpha", TrafficLogConfig(enabled=True, max_entries=7))
    assert log is not None and log.max_entries == 7
