"""An upstream MCP server that reports the trace context each call reached it with.

    python tests/observability/trace_upstream.py [--transport stdio|http] [--port 0]

Tool `trace_context()` returns JSON: `meta` (the `traceparent` in `params._meta`) and `header` (the
`traceparent` HTTP header, over HTTP). Tool `fast()` returns "ok".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import mcp.types as types
from mcp.server import Server, ServerRequestContext

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from fixture_serving import add_transport_arguments, serve  # noqa: E402

TOOLS = [
    types.Tool(name="trace_context", description="The trace context this call arrived with", input_schema={"type": "object"}),
    types.Tool(name="fast", description="Returns ok", input_schema={"type": "object"}),
]


async def list_tools(ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name == "fast":
        return types.CallToolResult(content=[types.TextContent(type="text", text="ok")])
    raw = (ctx.params or {}).get("_meta") or {}
    headers = getattr(ctx.request, "headers", None)
    found = {
        "meta": raw.get("traceparent"),
        "header": headers.get("traceparent") if headers is not None else None,
    }
    return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(found))])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_transport_arguments(parser)
    args = parser.parse_args()
    serve(Server("trace-upstream", on_list_tools=list_tools, on_call_tool=call_tool), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
