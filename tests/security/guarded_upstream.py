"""An in-process MCP server (`module: guarded_upstream:build`) for the security tests: one `echo` tool.

The gateway imports it by name, so the tests put this folder on the gateway process's PYTHONPATH.
"""

from __future__ import annotations

from mcp.server import MCPServer


def build() -> MCPServer:
    """A fresh server per import: the gateway calls this factory once per upstream."""
    server = MCPServer("guarded-upstream")

    @server.tool()
    def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    return server
