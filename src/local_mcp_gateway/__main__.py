from local_mcp_gateway.cli import entrypoint

entrypoint()
