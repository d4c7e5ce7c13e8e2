"""Big answers to clients that never read them cost a bounded amount of memory, refused calls get a clear error,
and the memory is given back once those clients go."""

from __future__ import annotations

import json
import socket

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import fixture_server, mcp_client
from tests.gateway.test_supervision import wait_for

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
ANSWER_MIB = 15
CLIENTS = 12
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_session(url: str) -> str:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "slow", "version": "0"}},
    }
    response = httpx2.post(url, content=json.dumps(initialize), headers=HEADERS, timeout=30)
    session_id = response.headers["mcp-session-id"]
    notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    httpx2.post(url, content=json.dumps(notice), headers={**HEADERS, "mcp-session-id": session_id}, timeout=30)
    return session_id


def call_and_never_read(port: int, path: str, session_id: str) -> socket.socket:
    """Send a tools/call for a big answer on a raw connection that then never reads a byte."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "big", "arguments": {"mib": ANSWER_MIB}}}
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session_id}\r\n"
        f"Mcp-Protocol-Version: 2025-11-25\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body)
    return sock


@pytest.mark.timeout(700)
async def test_clients_that_never_read_big_answers_hold_a_bounded_amount(config_repo, gateway_factory):
    config_repo.write_gateway(security={"max_calls_in_flight": 6, "max_buffered_result_bytes": 40 * MIB})
    config_repo.write_profile("p", {"big": {**fixture_server("big_server.py"), "prefix": "", "timeout_seconds": 120}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    port = int(gateway.base_url.rsplit(":", 1)[1])
    pid = gateway.process.pid
    # Warm up every code path with a client that reads (one big answer fits).
    async with mcp_client(url) as reader:
        assert len((await reader.call_tool("big", {"mib": ANSWER_MIB})).content[0].text) == ANSWER_MIB * MIB
    baseline = rss(pid)

    sockets = [call_and_never_read(port, "/mcp/p", open_session(url)) for _ in range(CLIENTS)]
    try:
        # Every call was either refused or answered; the answers that fit are held for their slow readers.
        status = wait_for(
            lambda: (s := gateway.status()["profiles"]["p"])["calls_refused"] >= CLIENTS - 2
            and s["calls_in_flight"] <= 2
            and s,
            timeout=300,
        )
        assert status["buffered_result_bytes"] <= 40 * MIB
        held = rss(pid) - baseline
        assert held < 300 * MIB, f"the gateway grew by {held // MIB} MiB for {CLIENTS} unread answers"
        # A client that does read gets a clear error while the buffer for unread answers is full.
        async with mcp_client(url) as reader:
            with pytest.raises(MCPError) as caught:
                await reader.call_tool("big", {"mib": ANSWER_MIB})
        assert "security.max_buffered_result_bytes" in caught.value.error.message
    finally:
        for sock in sockets:
            sock.close()
    # The clients are gone: what they held is released.
    wait_for(lambda: (s := gateway.status()["profiles"]["p"])["calls_in_flight"] == 0 and s["buffered_result_bytes"] == 0)
    wait_for(lambda: rss(pid) - baseline < 100 * MIB, timeout=60)
    async with mcp_client(url) as reader:
        assert len((await reader.call_tool("big", {"mib": ANSWER_MIB})).content[0].text) == ANSWER_MIB * MIB
