"""local-mcp-gateway: profiles of MCP servers, declared in git, served as one endpoint each."""

__version__ = "0.1.0"

__all__ = ["__version__"]
