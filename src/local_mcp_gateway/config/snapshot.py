"""The loaded configuration as immutable values: `Snapshot` > `ProfileSpec` > `ServerSpec`.

A snapshot is built completely by `load_snapshot` and never changed afterwards, so a running
generation can keep reading it while a reload builds the next one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from local_mcp_gateway.config.gateway_models import GatewayConfig
from local_mcp_gateway.config.models import AccessRule, InboundOAuthConfig, ServerConfig
from local_mcp_gateway.config.template import Template
from local_mcp_gateway.errors import ConfigIssue

__all__ = ["ProfileSpec", "ServerSpec", "Snapshot"]


@dataclass(frozen=True)
class ServerSpec:
    """One server as one profile sees it: catalog settings merged with the profile's overrides.

    `prefix` is the effective prefix (default: the server's key). `file` and `line` say where the
    server is defined: gateway.yaml for a catalog reference, the profile file for an inline server.
    `config.cwd`, when set, is an absolute path.
    """

    name: str
    config: ServerConfig
    prefix: str
    profile: str
    inline: bool
    file: Path
    line: int | None


@dataclass(frozen=True)
class ProfileSpec:
    """One profile, served at /mcp/<slug>; `servers` in the order written (the first wins a name clash)."""

    slug: str
    description: str | None
    servers: tuple[ServerSpec, ...]
    api_keys: tuple[Template, ...]
    file: Path
    lock_policy: str | None = None
    """`lock.policy` as written in the profile; None when the key is absent (see `gitops.lockfile`)."""
    oauth: InboundOAuthConfig | None = None
    """The profile's own inbound OAuth settings (merged with `security.oauth` by the `identity` package)."""
    access: tuple[AccessRule, ...] = ()
    """Per-tool access rules, in the order written."""


@dataclass(frozen=True)
class Snapshot:
    """A whole, valid configuration. Paths are absolute; `profiles` is read-only and sorted by slug.

    `digest` is a sha256 over every file read, in order: equal digests mean identical files.
    `warnings` lists problems that do not stop the gateway (shown by `validate` and in the log).
    The gateway's TLS paths are absolute.
    """

    config_path: Path
    root: Path
    gateway: GatewayConfig
    profiles: Mapping[str, ProfileSpec]
    profiles_dir: Path
    secrets_dir: Path
    state_dir: Path
    digest: str
    warnings: tuple[ConfigIssue, ...]

    def needs_api_key(self, slug: str) -> bool:
        """Whether clients of profile `slug` must send an API key (gateway-wide keys, or the profile's own)."""
        spec = self.profiles.get(slug)
        return bool(self.gateway.security.api_keys or (spec is not None and spec.api_keys))
