"""The peer benchmark's upstream: a stdio MCP server with `echo(text)` and as many more tools as asked.

Every target of `bench/peers.py` (the gateway, mcp-hub, mcp-proxy, fastmcp) starts this same script as its
stdio upstream, so the only thing that differs between targets is the hop in front of it.

    python bench/many_tools.py                     # echo alone
    python bench/many_tools.py --tools 2000        # echo plus 1,999 tools tool_0001 ... tool_1999

It is built on the SDK's low-level `mcp.server.Server` (mcp 2.3.0) with its tool list built once at start, so
the upstream's own cost of a `tools/list` is one serialisation of that list and is the same behind every
hop. All tools are returned in one page, as most servers do; the extra tools answer like `echo`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import anyio
import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

__all__ = ["build_server", "build_tools", "main"]

ECHO_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
EXTRA_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "Any text; it comes back unchanged"},
        "count": {"type": "integer", "minimum": 0, "description": "How often (ignored)"},
    },
    "required": ["text"],
}
"""A realistic small schema (two typed, described properties) for the generated tools."""


def build_tools(count: int) -> list[types.Tool]:
    """`echo` first, then `tool_0001` ... up to `count` tools in all."""
    tools = [types.Tool(name="echo", description="Return `text` unchanged.", input_schema=ECHO_SCHEMA)]
    for number in range(1, count):
        tools.append(
            types.Tool(
                name=f"tool_{number:04d}",
                description=f"Generated tool number {number}: returns its `text` argument unchanged.",
                input_schema=EXTRA_SCHEMA,
            )
        )
    return tools


def build_server(count: int, name: str) -> Server[Any]:
    tools = build_tools(count)
    names = {tool.name for tool in tools}

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name not in names:
            return types.CallToolResult(content=[types.TextContent(type="text", text="no such tool")], is_error=True)
        text = str((params.arguments or {}).get("text", ""))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server(name, version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)


async def _serve(server: Server[Any]) -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tools", type=int, default=1, help="how many tools in all, echo included (default 1)")
    parser.add_argument("--name", default="bench-many-tools", help="the server name it reports")
    args = parser.parse_args(argv)
    if args.tools < 1:
        parser.error("--tools must be at least 1")
    anyio.run(_serve, build_server(args.tools, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
