"""Error answers to MCP clients pass the redaction point (`redact.redacting_errors`, the outermost middleware)."""

from __future__ import annotations

from typing import Any

import mcp.types as types
import pytest
from mcp import ClientSession
from mcp.client._memory import InMemoryTransport
from mcp.server import Server
from mcp.shared.exceptions import MCPError

from local_mcp_gateway.redact import MASK, default_redactor, redacting_errors

pytestmark = pytest.mark.anyio

VALUE = "qtok-5f1c2d9e8b7a6c5d"


def failing_server() -> Server:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        schema = {"type": "object", "properties": {}}
        return types.ListToolsResult(tools=[types.Tool(name="plain", input_schema=schema),
                                            types.Tool(name="mcp", input_schema=schema)])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        url = f"http://127.0.0.1:9/mcp?q={VALUE}"
        if params.name == "plain":  # what an httpx error says about a failed upstream request
            raise RuntimeError(f"Server error '500 Internal Server Error' for url '{url}'")
        raise MCPError(types.INTERNAL_ERROR, f"upstream at {url} failed", {"url": url})

    server = Server("failing", on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware = [redacting_errors]
    return server


@pytest.fixture
def registered() -> Any:
    default_redactor.add(VALUE)  # as SecretStore does for every decrypted value
    yield
    default_redactor.remove(VALUE)


@pytest.mark.parametrize("tool", ["plain", "mcp"])
async def test_an_error_answer_never_carries_a_secret(registered: None, tool: str) -> None:
    async with InMemoryTransport(failing_server()) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        with pytest.raises(MCPError) as caught:
            await session.call_tool(tool, {})
    error = caught.value.error
    shown = f"{error.message} {error.data}"
    assert VALUE not in shown, shown
    assert MASK in error.message and ("500" in error.message or "failed" in error.message), error.message
