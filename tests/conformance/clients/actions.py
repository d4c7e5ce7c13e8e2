"""What a client does in each conformance client scenario, shared by the SDK baseline and the gateway adapter.

The suite runs a client command with the mock server's URL appended and `MCP_CONFORMANCE_SCENARIO`,
`MCP_CONFORMANCE_PROTOCOL_VERSION` (the line its mock speaks) and sometimes `MCP_CONFORMANCE_CONTEXT` (JSON:
credentials, tool calls) in the environment, then judges what reached its mock server. The actions here are
the application's part: which tools to list and call, and how to answer the server's questions. The
transport part (OAuth, headers, the protocol line) is what differs between the two clients: the SDK's own
client speaks to the mock directly; through the gateway, the gateway is the mock's client.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx2
import mcp.types as types
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

__all__ = ["client_mode", "context", "run_actions", "scenario"]


def scenario() -> str:
    return os.environ.get("MCP_CONFORMANCE_SCENARIO", "")


def context() -> dict[str, Any]:
    raw = os.environ.get("MCP_CONFORMANCE_CONTEXT")
    return json.loads(raw) if raw else {}


def client_mode() -> str:
    """`auto` (probe `server/discover`) on a 2026-07-28 leg, `legacy` (initialize only) on a handshake leg."""
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION")
    return "auto" if version is None or version in MODERN_PROTOCOL_VERSIONS else "legacy"


async def _accept_with_defaults(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    """Accept a form, filling in the defaults its schema declares (SEP-1034)."""
    content: dict[str, Any] = {}
    if isinstance(params, types.ElicitRequestFormParams):
        for name, field in params.requested_schema.get("properties", {}).items():
            if "default" in field:
                content[name] = field["default"]
    return types.ElicitResult(action="accept", content=content)


async def _confirm(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"confirmed": True})


async def _sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=""), model="stub")


async def _roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[])


def _stub_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """The least arguments a tool's input schema requires."""
    samples = {"string": "x", "integer": 0, "number": 0, "boolean": False, "object": {}, "array": [], "null": None}
    properties = schema.get("properties", {})
    return {name: samples.get(properties.get(name, {}).get("type"), "x") for name in schema.get("required", [])}


async def _calls(client: Client, calls: list[tuple[str, dict[str, Any]]], *, tolerant: bool = False) -> None:
    for name, arguments in calls:
        try:
            await client.call_tool(name, arguments)
        except Exception:
            if not tolerant:
                raise


async def run_actions(name: str, url: str, http: httpx2.AsyncClient) -> None:
    """Connect to `url` over `http` and do what scenario `name` asks of a client application."""
    mode = client_mode()
    callbacks: dict[str, Any] = {"elicitation_callback": _accept_with_defaults}
    if name == "request-metadata":
        callbacks.update(sampling_callback=_sample, list_roots_callback=_roots)
    if name == "sep-2322-client-request-state":
        callbacks["elicitation_callback"] = _confirm
    if name == "json-schema-ref-no-deref":
        mode = "legacy"  # its mock speaks only the handshake lifecycle
    async with Client(streamable_http_client(url, http_client=http), mode=mode, **callbacks) as client:
        listed = await client.list_tools()
        surfaced = {tool.name: tool for tool in listed.tools}
        if name in ("tools_call", "request-metadata", "http-standard-headers"):
            await _calls(client, [("add_numbers", {"a": 5, "b": 3})])
        elif name == "json-schema-2020-12-preservation" and "json_schema_echo" in surfaced:
            # The application hands the tool its own input schema back: the suite compares what arrives.
            await _calls(client, [("json_schema_echo", {"schema": surfaced["json_schema_echo"].input_schema})])
        elif name == "sse-retry":
            await _calls(client, [("test_reconnection", {})])
        elif name == "elicitation-sep1034-client-defaults":
            await _calls(client, [("test_client_elicitation_defaults", {})])
        elif name == "http-invalid-tool-headers":
            await _calls(client, [(t.name, _stub_arguments(t.input_schema)) for t in listed.tools], tolerant=True)
        elif name == "http-custom-headers":
            wanted = [(c["name"], c.get("arguments") or {}) for c in context().get("toolCalls", [])]
            await _calls(client, [call for call in wanted if call[0] in surfaced], tolerant=True)
        elif name == "sep-2322-client-request-state":
            for tool in ("test_mrtr_echo_state", "test_mrtr_unrelated", "test_mrtr_no_state"):
                await client.call_tool(tool, {})
            result = await client.call_tool("test_mrtr_no_result_type", {})
            assert isinstance(result, types.CallToolResult)
        elif name.startswith("auth/") and listed.tools:
            await _calls(client, [(listed.tools[0].name, {})], tolerant=True)
