"""Configuration as code: gateway.yaml and profiles/*.yaml -> an immutable, checked `Snapshot`.

    load_snapshot(path)              files -> Snapshot, or ConfigError listing every issue
    resolve_profile(spec, secret, env)   one profile's servers with every reference rendered
    gateway_schema(), profile_schema()   the JSON Schemas of the two file kinds
"""

from local_mcp_gateway.config.gateway_models import (
    GatewayConfig,
    ListenConfig,
    LoggingConfig,
    RateLimitConfig,
    SecretsConfig,
    SecurityConfig,
    TlsConfig,
    TrafficLogConfig,
)
from local_mcp_gateway.config.load import load_snapshot
from local_mcp_gateway.config.models import (
    OAuthConfig,
    ProfileConfig,
    ProfileServerEntry,
    ServerConfig,
    ToolOverride,
    ToolsConfig,
)
from local_mcp_gateway.config.snapshot import ProfileSpec, ServerSpec, Snapshot
from local_mcp_gateway.config.template import Template

__all__ = [
    "GatewayConfig",
    "ListenConfig",
    "LoggingConfig",
    "OAuthConfig",
    "ProfileConfig",
    "ProfileServerEntry",
    "ProfileSpec",
    "RateLimitConfig",
    "SecretsConfig",
    "SecurityConfig",
    "ServerConfig",
    "ServerSpec",
    "Snapshot",
    "Template",
    "TlsConfig",
    "ToolOverride",
    "ToolsConfig",
    "TrafficLogConfig",
    "load_snapshot",
]
