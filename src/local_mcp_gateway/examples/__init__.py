"""MCP servers used by the bundled example configuration; they run offline and need no Node.js.

- `clock`: an in-process server (``module: local_mcp_gateway.examples.clock:server``)
- `notes`: a stdio server (``command: python``, ``args: [-m, local_mcp_gateway.examples.notes]``)
"""
