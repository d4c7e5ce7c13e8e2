"""A configuration generation: the snapshot loaded, validated and resolved (secrets decrypted), ready to serve.

`build_generation` does it all or raises `GatewayError`; the gateway swaps a generation in only once it is built
(`gateway.Gateway`), and `plan --live`, `tools` and the dashboard's tests build one the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings

from local_mcp_gateway.config.commands import check_resolved_commands
from local_mcp_gateway.config.load import load_snapshot
from local_mcp_gateway.config.resolve import resolve_profile
from local_mcp_gateway.config.snapshot import Snapshot
from local_mcp_gateway.gitops.status import gitops_state
from local_mcp_gateway.identity import resource_settings
from local_mcp_gateway.mrtr import state_key_from_identity
from local_mcp_gateway.oauth.common import public_url_for
from local_mcp_gateway.profile import ProfileOptions
from local_mcp_gateway.reload import module_stamp
from local_mcp_gateway.replicas.keycheck import check_key
from local_mcp_gateway.secret_refs import require_identity
from local_mcp_gateway.secrets import SecretStore
from local_mcp_gateway.settings import EnvSettings

__all__ = ["Generation", "build_generation", "profile_options"]


@dataclass(frozen=True)
class Generation:
    """One loaded and resolved configuration: everything needed to build the profiles."""

    number: int
    snapshot: Snapshot
    servers: Mapping[str, tuple[Any, ...]]
    api_keys: Mapping[str, tuple[str, ...]]
    """Per profile: the inbound keys accepted there (gateway-wide keys plus the profile's own), decrypted."""
    secrets: SecretStore
    loaded_at: str
    request_state_keys: list[bytes] | None = None
    """Keys for 2026-07-28 request state, derived from the age key (None without one: per-process keys)."""
    module_stamps: Mapping[str, str | None] = field(default_factory=dict)
    """Per in-process server module: a fingerprint of its source, so an edited module restarts its servers."""
    locks: Mapping[str, Any] = field(default_factory=dict)
    """Per profile with a lock policy other than `off`: its `gitops.enforce.LockGuard`."""
    source: Mapping[str, Any] | None = None
    """Where the configuration came from in git (see `gitops.source.config_commit`), None outside git."""

    @property
    def commit(self) -> str | None:
        """The git commit the configuration folder holds (a repository, worktree or git-sync revision), if known."""
        return self.source["commit"] if self.source else None
    public_url: str = ""
    """The URL clients reach the gateway at (`public_url`, else from the listen address): profiles' resource URLs."""


def build_generation(config_path: Path, settings: EnvSettings, number: int) -> Generation:
    """Load, validate and resolve the configuration (secrets decrypted); raise `GatewayError` if anything fails.

    The configuration is read from the folder `config_path` resolves to, so a symlink swapped meanwhile
    (git-sync) cannot mix two revisions. With a key, the shared state folder is checked for the same key.
    """
    snapshot = load_snapshot(Path(os.path.realpath(config_path)), environ=os.environ)
    identity = require_identity(settings, snapshot)
    if identity is not None:
        check_key(snapshot.state_dir, identity, list(snapshot.gateway.secrets.recipients))
    store = SecretStore(snapshot.secrets_dir, identity)
    servers = {
        slug: resolve_profile(spec, secret=store.reveal_lookup, env=os.environ)
        for slug, spec in snapshot.profiles.items()
    }
    check_resolved_commands(servers, snapshot.gateway.security.allowed_commands)  # the programs that will run

    def render(templates: Any) -> tuple[str, ...]:
        return tuple(t.render(store.reveal_lookup, os.environ) for t in templates)

    shared_keys = render(snapshot.gateway.security.api_keys)
    api_keys = {slug: shared_keys + render(spec.api_keys) for slug, spec in snapshot.profiles.items()}
    loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
    state_keys = [state_key_from_identity(identity.reveal())] if identity is not None else None
    modules = {server.module for resolved in servers.values() for server in resolved if server.module}
    stamps = {module: module_stamp(module) for module in sorted(modules)}
    locks, source = gitops_state(snapshot)
    public_url = public_url_for(snapshot.gateway, settings)
    for slug in snapshot.profiles:
        resource_settings(snapshot, slug, public_url)  # inbound OAuth settings complete (an issuer), else ConfigError
    return Generation(
        number, snapshot, servers, api_keys, store, loaded_at, state_keys, stamps, locks, source, public_url
    )


def profile_options(generation: Generation) -> ProfileOptions:
    security = generation.snapshot.gateway.security
    return ProfileOptions(
        request_state_keys=generation.request_state_keys,
        module_stamps=dict(generation.module_stamps),
        # Host and Origin are checked by the inbound guard (security/guard.py), which knows the gateway's patterns;
        # the SDK's own check stays off so the two never disagree. It still checks Content-Type.
        security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_request_bytes=security.max_request_bytes,
        max_sessions=security.max_sessions,
        session_idle_timeout=security.session_idle_seconds,
        max_per_session_upstreams=security.max_per_session_upstreams,
        input_round_hold=security.input_round_hold_seconds,
        max_calls_in_flight=security.max_calls_in_flight,
        max_buffered_result_bytes=security.max_buffered_result_bytes,
        traffic=generation.snapshot.gateway.logging.traffic,
    )
