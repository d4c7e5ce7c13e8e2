"""The Debian `prometheus` server scrapes a real gateway; PromQL over its HTTP API sees what real clients did."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx2

import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import fixture_server, mcp_client
from tests.observability.conftest import gated_echo, prometheus_binary, wait_for

pytestmark = pytest.mark.anyio

SERVER = 'mcp_server_operation_duration_seconds_count{profile="team",mcp_method_name="tools/call",%s}'
CLIENT = 'mcp_client_operation_duration_seconds_count{profile="team",server="echo",mcp_method_name="tools/call",%s}'


async def test_prometheus_sees_calls_a_bucket_and_a_killed_upstream_going_down(
    config_repo, gateway_factory, prometheus_factory, tmp_path
):
    gate = tmp_path / "victim-may-start"
    gate.touch()
    config_repo.write_profile(
        "team",
        {"echo": fixture_server("echo_server.py"),
         # one connection to kill: under `auto` a session client's calls would go to a second process
         "victim": {**gated_echo(gate, "--name", "victim"), "protocol": "handshake"}},
    )
    gateway = gateway_factory(config_repo.path)
    prometheus = prometheus_factory(gateway.base_url.removeprefix("http://"))
    wait_for(prometheus.targets_up)

    async with mcp_client(gateway.url("team")) as client:
        for index in range(5):
            assert (await client.call_tool("echo__echo", {"text": f"n{index}"})).content[0].text == f"n{index}"
        for _ in range(2):
            assert (await client.call_tool("echo__fail", {})).is_error
        with pytest.raises(MCPError):
            await client.call_tool("no_such_tool", {})
        victim_pid = int((await client.call_tool("victim__pid", {})).content[0].text)

    prometheus.wait_value(SERVER % 'gen_ai_tool_name="echo__echo",error_type=""', 5)
    prometheus.wait_value(SERVER % 'gen_ai_tool_name="echo__fail",error_type="tool_error"', 2)
    prometheus.wait_value(SERVER % 'gen_ai_tool_name="_unknown",error_type="-32602"', 1)
    # The upstream leg carries the upstream's own name and the server it went to.
    prometheus.wait_value(CLIENT % 'gen_ai_tool_name="echo",error_type=""', 5)
    # Every one of the five calls is in the +Inf bucket and in the 300 s bucket (the largest finite bound).
    bucket = 'mcp_server_operation_duration_seconds_bucket{profile="team",gen_ai_tool_name="echo__echo",le="%s"}'
    prometheus.wait_value(bucket % "+Inf", 5)
    prometheus.wait_value(bucket % "300", 5)
    assert prometheus.value(f"sum({bucket % '0.01'}) <= 5") is not None
    # Per-session and gateway series.
    prometheus.wait_value('mcp_gateway_upstream_up{profile="team",server="victim"}', 1)
    prometheus.wait_value("mcp_gateway_config_generation", 1)
    prometheus.wait_value('mcp_server_session_duration_seconds_count{profile="team"}', 1)

    gate.unlink()  # the gateway's restarts of this server now fail: it stays down
    os.kill(victim_pid, signal.SIGKILL)
    prometheus.wait_value('mcp_gateway_upstream_up{profile="team",server="victim"}', 0)
    prometheus.wait_value('mcp_gateway_upstream_up{profile="team",server="echo"}', 1)
    wait_for(lambda: (prometheus.value('mcp_gateway_upstream_restarts_total{server="victim"}') or 0) >= 1)


async def test_the_exposition_passes_promtool(config_repo, gateway_factory):
    promtool = prometheus_binary("promtool")
    config_repo.write_profile("team", {"echo": fixture_server("echo_server.py")})
    config_repo.write_gateway(security={"api_keys": ["k-0123456789abcdef"]})
    gateway = gateway_factory(config_repo.path)
    headers = {"authorization": "Bearer k-0123456789abcdef"}
    async with mcp_client(gateway.url("team"), headers=headers) as client:
        assert (await client.call_tool("echo__echo", {"text": 'quote " and \\ backslash'})).content[0].text
        with pytest.raises(MCPError):
            await client.call_tool("echo__boom", {})
        await client.read_resource("echo://item/7")
    assert httpx2.post(gateway.url("team"), json={}).status_code == 401
    text = httpx2.get(f"{gateway.base_url}/metrics", timeout=10).text
    assert 'gen_ai_tool_name="echo://item/{id}"' in text  # a read URI is labelled with the template it matched
    checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
