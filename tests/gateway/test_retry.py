"""A server that is down is never given up on: it is retried with backoff, a reload or a call retries it at once,
and calls while it restarts get a retryable error naming it."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import fixture_server, mcp_client
from tests.fixtures.flaky_server import starts
from tests.gateway.test_supervision import wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]


def flaky(tmp_path: Path, **settings) -> tuple[dict, Path, Path]:
    """A server that crashes at start while the down file exists. Pinned to the handshake line: these tests
    supervise one connection (under `auto` a session client's calls would go to a second one, see eras.py)."""
    down, started = tmp_path / "down", tmp_path / "starts"
    entry = fixture_server("flaky_server.py", "--down-file", str(down), "--starts-file", str(started), "--name", "flaky")
    return {**entry, "protocol": "handshake", **settings}, down, started


def spawned_at(pid: int) -> float:
    """Wall-clock time process `pid` was started (forked by the gateway), from /proc: independent of how long the
    interpreter then takes to get going on a loaded machine."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19])
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def server_status(gateway, name: str = "flaky") -> dict:
    return gateway.status()["profiles"]["p"]["servers"][name]


def failed_and_waiting(gateway) -> dict | None:
    server = server_status(gateway)
    return server if server["state"] == "failed" and server["next_retry_at"] else None


async def test_a_crash_looping_server_is_failed_but_retried_and_sighup_retries_it_at_once(
    tmp_path, config_repo, gateway_factory
):
    entry, down, started = flaky(tmp_path, timeout_seconds=5)
    down.touch()
    config_repo.write_profile("p", {"flaky": entry})
    gateway = gateway_factory(config_repo.path)
    server = wait_for(lambda: failed_and_waiting(gateway), timeout=180)
    assert server["restarts"] >= 4 and "exit" in server["error"].lower() or server["error"]
    # Still retried after it shows `failed` (the old gateway stopped at the fifth crash for good).
    count = len(starts(started))
    wait_for(lambda: len(starts(started)) > count, timeout=120)
    server = wait_for(lambda: failed_and_waiting(gateway), timeout=180)
    due = datetime.fromisoformat(server["next_retry_at"]).timestamp()
    # The cause is fixed; SIGHUP with unchanged files retries now instead of at `next_retry_at`.
    down.unlink()
    count = len(starts(started))
    gateway.process.send_signal(signal.SIGHUP)
    ready = wait_for(lambda: (s := server_status(gateway))["state"] == "ready" and s, timeout=120)
    assert ready["error"] is None and ready["next_retry_at"] is None
    async with mcp_client(gateway.url("p")) as client:
        assert (await client.call_tool("flaky__whoami", {})).content[0].text == "flaky"
        pid = int((await client.call_tool("flaky__pid", {})).content[0].text)
    assert spawned_at(pid) < due, "the retry waited for its backoff instead of starting on SIGHUP"


async def test_a_call_to_a_server_that_is_down_retries_it_and_succeeds(tmp_path, config_repo, gateway_factory):
    entry, down, started = flaky(tmp_path, timeout_seconds=30)
    config_repo.write_profile("p", {"flaky": entry})
    gateway = gateway_factory(config_repo.path)
    wait_for(lambda: server_status(gateway)["state"] == "ready", timeout=120)
    async with mcp_client(gateway.url("p")) as client:
        pid = int((await client.call_tool("flaky__pid", {})).content[0].text)
        down.touch()
        os.kill(pid, signal.SIGKILL)
        server = wait_for(lambda: failed_and_waiting(gateway), timeout=180)
        due = datetime.fromisoformat(server["next_retry_at"]).timestamp()
        down.unlink()
        # The call brings the attempt forward and waits for it, instead of failing with "Unknown tool".
        assert (await client.call_tool("flaky__whoami", {})).content[0].text == "flaky"
        new_pid = int((await client.call_tool("flaky__pid", {})).content[0].text)
        assert spawned_at(new_pid) < due, "the call waited for the backoff instead of retrying at once"


async def test_a_call_while_the_server_restarts_gets_a_retryable_error_naming_it(
    tmp_path, config_repo, gateway_factory
):
    entry, down, _ = flaky(tmp_path, timeout_seconds=2)
    config_repo.write_profile("p", {"flaky": entry})
    gateway = gateway_factory(config_repo.path)
    wait_for(lambda: server_status(gateway)["state"] == "ready", timeout=120)
    async with mcp_client(gateway.url("p")) as client:
        pid = int((await client.call_tool("flaky__pid", {})).content[0].text)
        down.touch()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: server_status(gateway)["state"] != "ready", timeout=30)
        with pytest.raises(MCPError) as caught:
            await client.call_tool("flaky__whoami", {})
        assert "upstream flaky is restarting" in caught.value.error.message
        assert caught.value.error.code != -32602
        # Also once it shows `failed` (its tools dropped from the list), the name is still known.
        wait_for(lambda: failed_and_waiting(gateway), timeout=180)
        assert not [t for t in (await client.list_tools()).tools if t.name.startswith("flaky__")]
        with pytest.raises(MCPError) as caught:
            await client.call_tool("flaky__whoami", {})
        assert "upstream flaky is restarting" in caught.value.error.message
        with pytest.raises(MCPError) as caught:
            await client.call_tool("nosuch__tool", {})
        assert caught.value.error.message == "Unknown tool: nosuch__tool"
