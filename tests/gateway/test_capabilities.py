"""Capabilities, both ways. On the handshake line, a client is only asked what it declared it can answer (sampling,
elicitation, roots): otherwise the upstream gets an error at once, and the client never sees the request. And a
server that serves tools without declaring the `tools` capability has them listed anyway, as SDK clients do."""

from __future__ import annotations

import json

import anyio
import httpx2
import pytest

from tests.conftest import fixture_server, mcp_client

pytestmark = pytest.mark.anyio

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def messages(response: httpx2.Response) -> list[dict]:
    """The JSON-RPC messages of a POST's answer, JSON or SSE."""
    if response.headers["content-type"].startswith("application/json"):
        return [response.json()]
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


@pytest.mark.parametrize(
    ("tool", "arguments", "capability", "method"),
    [
        ("sample", {"prompt": "hi"}, "sampling", "sampling/createMessage"),
        ("ask", {"question": "name?"}, "elicitation", "elicitation/create"),
        ("roots", {}, "roots", "roots/list"),
    ],
)
async def test_an_undeclared_capability_is_never_asked_for(
    config_repo, gateway_factory, tool, arguments, capability, method
):
    # A long upstream timeout: a question put to a client that never answers would hold the call that long.
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py"), "prefix": "", "timeout_seconds": 600, "protocol": "handshake"}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bare", "version": "0"}},
    }
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120)) as http:
        opened = await http.post(url, content=json.dumps(initialize), headers=HEADERS)
        session = {**HEADERS, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        await http.post(url, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), headers=session)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        # This client never answers a server request: the call must end on its own, well before the timeout.
        with anyio.fail_after(120):
            answer = messages(await http.post(url, content=json.dumps(call), headers=session))
    assert not [m for m in answer if m.get("method") == method], "the client was asked what it cannot answer"
    final = answer[-1]
    assert final["id"] == 2
    text = json.dumps(final)
    assert f"did not declare the {capability} capability" in text


@pytest.mark.parametrize("protocol", ["handshake", "modern"])
async def test_tools_of_a_server_that_does_not_declare_them_are_listed_and_called(config_repo, gateway_factory, protocol):
    server = fixture_server("echo_server.py", "--undeclared-tools")
    config_repo.write_profile("p", {"echo": {**server, "prefix": "", "protocol": protocol}})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("p")) as session:
        assert "echo" in {tool.name for tool in (await session.list_tools()).tools}
        result = await session.call_tool("echo", {"text": "listed anyway"})
    assert result.content[0].text == "listed anyway"
