"""A stdio MCP server offering many tools (default 2,000), for `bench/listing.py`.

Each tool has a description of about a hundred characters and an input schema with three properties,
roughly what a large real server (GitHub's, a database's) offers per tool.

    python bench/listing_upstream.py --tools 2000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import anyio
import mcp.types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server

__all__ = ["build_server", "main", "tool_list"]


def tool_list(count: int) -> list[types.Tool]:
    """`count` tools named `tool_0000`... with the same shape of schema."""
    return [
        types.Tool(
            name=f"tool_{index:04d}",
            description=f"Tool number {index}: looks up a record by id and returns its fields, paged by limit and offset.",
            input_schema={
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "The record's id"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Page size"},
                    "verbose": {"type": "boolean", "description": "Include every field"},
                },
                "required": ["id"],
            },
        )
        for index in range(count)
    ]


def build_server(count: int) -> Server[Any]:
    tools = tool_list(count)

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=params.name)])

    return Server("many-tools", on_list_tools=list_tools, on_call_tool=call_tool)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=2000)
    args = parser.parse_args(argv)
    server = build_server(args.tools)

    async def serve() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(serve)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
