"""A served profile: `core` (upstreams, catalog, views, reloads, status), `handlers` (the MCP requests),
`view` (what one client connection sees)."""

from local_mcp_gateway.profile.core import Profile, ProfileOptions

__all__ = ["Profile", "ProfileOptions"]
