"""One broken upstream never takes a profile down; crashed servers restart; stopping leaves no process behind."""

from __future__ import annotations

import os
import signal
import time

import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import fixture_server, mcp_client

pytestmark = pytest.mark.anyio


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    """Poll `predicate` until it returns a truthy value (bounded); return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_upstream_killed_mid_session_restarts_while_the_other_keeps_serving(config_repo, gateway_factory):
    config_repo.write_profile(
        "p",
        {
            "steady": fixture_server("echo_server.py", "--name", "steady"),
            "fragile": fixture_server("echo_server.py", "--name", "fragile"),
        },
    )
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("p")) as client:
        pid = int((await client.call_tool("fragile__pid", {})).content[0].text)
        os.kill(pid, signal.SIGKILL)
        # The other server is untouched.
        assert (await client.call_tool("steady__whoami", {})).content[0].text == "steady"
        status = wait_for(lambda: (s := gateway.status())["profiles"]["p"]["servers"]["fragile"]["restarts"] >= 1 and s)
        fragile = wait_for(
            lambda: (s := gateway.status()["profiles"]["p"]["servers"]["fragile"])["state"] == "ready" and s
        )
        assert fragile["restarts"] >= 1 and status
        new_pid = int((await client.call_tool("fragile__pid", {})).content[0].text)
        assert new_pid != pid and not alive(pid)


@pytest.mark.parametrize("mode", ["garbage", "exit", "hang", "badresult", "missing-command"])
async def test_a_misbehaving_upstream_costs_only_its_own_tools(config_repo, gateway_factory, mode):
    if mode == "missing-command":
        bad = {"command": "/nonexistent/mcp-server-binary", "timeout_seconds": 2}
    else:
        bad = {**fixture_server("misbehaving_server.py", "--mode", mode), "timeout_seconds": 2}
    config_repo.write_profile("p", {"good": fixture_server("echo_server.py", "--name", "good"), "bad": bad})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("p")) as client:
        assert (await client.call_tool("good__whoami", {})).content[0].text == "good"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert any(name.startswith("good__") for name in names)
        if mode == "badresult":
            bad_tools = [name for name in names if name.startswith("bad__")]
            assert bad_tools
            with pytest.raises(MCPError):
                await client.call_tool(bad_tools[0], {})
        else:
            assert not any(name.startswith("bad__") for name in names)
        assert (await client.call_tool("good__whoami", {})).content[0].text == "good"
    if mode != "badresult":
        server = wait_for(lambda: (s := gateway.status()["profiles"]["p"]["servers"]["bad"])["error"] and s, timeout=30)
        assert server["state"] in ("starting", "failed")


@pytest.mark.timeout(300)
async def test_repeated_crashes_show_failed_while_the_server_keeps_being_retried(config_repo, gateway_factory):
    config_repo.write_profile(
        "p", {"bad": {**fixture_server("misbehaving_server.py", "--mode", "exit"), "timeout_seconds": 2}}
    )
    gateway = gateway_factory(config_repo.path)
    server = wait_for(
        lambda: (s := gateway.status()["profiles"]["p"]["servers"]["bad"])["state"] == "failed" and s, timeout=60
    )
    assert server["restarts"] >= 3
    assert server["error"]
    restarts = server["restarts"]
    wait_for(lambda: gateway.status()["profiles"]["p"]["servers"]["bad"]["restarts"] > restarts, timeout=60)


async def test_stop_leaves_no_process_behind_even_with_a_wrapper_and_grandchild(config_repo, gateway_factory):
    config_repo.write_profile("p", {"wrapped": {**fixture_server("spawn_child.py"), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("p")) as client:
        grandchild = int((await client.call_tool("pid", {})).content[0].text)
    assert alive(grandchild)
    wrapper = gateway.status()["profiles"]["p"]["servers"]["wrapped"]
    assert wrapper["state"] == "ready"
    assert gateway.stop() == 0
    wait_for(lambda: not alive(grandchild), timeout=10)
    assert not alive(gateway.process.pid)


async def test_per_session_isolation_gives_each_client_its_own_process(config_repo, gateway_factory):
    config_repo.write_profile(
        "p", {"own": {**fixture_server("echo_server.py"), "isolation": "per_session", "prefix": ""}}
    )
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("p")) as first, mcp_client(gateway.url("p")) as second:
        pid_one = int((await first.call_tool("pid", {})).content[0].text)
        pid_two = int((await second.call_tool("pid", {})).content[0].text)
        assert pid_one != pid_two
        assert int((await first.call_tool("pid", {})).content[0].text) == pid_one
    # Closing the sessions closes their upstreams.
    wait_for(lambda: not alive(pid_one) and not alive(pid_two), timeout=20)
