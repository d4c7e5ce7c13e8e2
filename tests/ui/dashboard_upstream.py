"""In-process MCP servers for the dashboard tests (`module: dashboard_upstream:<name>`; the tests put this folder
on the gateway's PYTHONPATH).

- `hostile`: tools whose descriptions and schema texts hold markup and script, to prove the page escapes them;
- `many`: 2,000 tools, to prove the page stays usable (search and paging);
- `worded`: a tool, a prompt and a resource with non-ASCII text.
"""

from __future__ import annotations

from typing import Any

import mcp.types as types
from mcp.server import MCPServer, Server

HOSTILE_DESCRIPTION = (
    '<script>window.__pwned = "description"</script><img src=x onerror="window.__pwned=\'img\'">'
    "</details></li></ol><b>bold?</b> & \"quotes\""
)
MANY_TOOLS = 2000


def hostile() -> MCPServer:
    server = MCPServer("hostile")

    @server.tool(description=HOSTILE_DESCRIPTION)
    def inject(text: str) -> str:
        return text

    return server


def many() -> Server[Any]:
    tools = [
        types.Tool(name=f"tool_{index:04d}", description=f"Tool number {index} of {MANY_TOOLS}",
                   input_schema={"type": "object", "properties": {"n": {"type": "integer"}}})
        for index in range(MANY_TOOLS)
    ]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=params.name)])

    return Server("many", on_list_tools=list_tools, on_call_tool=call_tool)


def worded() -> MCPServer:
    server = MCPServer("wörter")

    @server.tool(description="Schlägt ein Wort nach – λέξη, слово")
    def nachschlagen(wort: str) -> str:
        return wort

    @server.prompt(description="Grüße auf Deutsch")
    def gruss(name: str) -> str:
        return f"Grüß dich, {name}"

    @server.resource("wort://liste", description="Die Wörterliste")
    def liste() -> str:
        return "Äpfel"

    return server
