"""`ProfileSpec` + secret lookup + environment -> `ResolvedServer`s with every reference rendered.

A resolved server holds plain strings, some of them secret values, so its `repr` shows only what
identifies it. Its `fingerprint` covers exactly the settings that need a new upstream connection
when they change; reload compares fingerprints to decide what to restart. Naming and filtering
settings (prefix, tools, coerce_arguments, description) are outside it: changing them re-lists
names but keeps the connection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from local_mcp_gateway.config.models import ServerKind, ToolsConfig
from local_mcp_gateway.config.snapshot import ProfileSpec, ServerSpec, Snapshot
from local_mcp_gateway.config.template import Template
from local_mcp_gateway.errors import ConfigError, ConfigIssue

__all__ = ["ResolvedOAuth", "ResolvedServer", "resolve_profile", "resolve_server", "resolve_snapshot"]

SecretLookup = Callable[[str], str]
Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, repr=False)
class ResolvedOAuth:
    """OAuth client settings with their secrets (client secret, private key, identity token) rendered."""

    scopes: tuple[str, ...]
    client_id: str | None
    client_secret: str | None
    client_name: str | None
    grant: str = "authorization_code"
    client_metadata_url: str | None = None
    token_endpoint_auth_method: str | None = None
    private_key: str | None = None
    signing_algorithm: str = "ES256"
    issuer: str | None = None
    assertion_endpoint: str | None = None
    assertion_client_id: str | None = None
    assertion_token: str | None = None
    assertion_client_secret: str | None = None

    def fingerprint_parts(self) -> list[object]:
        """Everything that decides the connection, in a fixed order (secrets included: they are hashed)."""
        return [list(self.scopes), self.client_id, self.client_secret, self.client_name, self.grant,
                self.client_metadata_url, self.token_endpoint_auth_method, self.private_key, self.signing_algorithm,
                self.issuer, self.assertion_endpoint, self.assertion_client_id, self.assertion_token,
                self.assertion_client_secret]

    def __repr__(self) -> str:
        secret = "None" if self.client_secret is None else "'***'"
        return (
            f"ResolvedOAuth(grant={self.grant!r}, scopes={self.scopes!r}, client_id={self.client_id!r}, "
            f"client_secret={secret}, client_name={self.client_name!r})"
        )


@dataclass(frozen=True, repr=False)
class ResolvedServer:
    """One server of one profile, ready to connect: plain values, no references left.

    `env` and `headers` are `(name, value)` pairs in the order written (`dict(server.env)`).
    `cwd` is absolute. Equal `fingerprint`s mean one upstream connection can serve both.
    """

    name: str
    prefix: str
    profile: str
    kind: ServerKind
    command: str | None
    args: tuple[str, ...]
    env: Pairs
    cwd: str | None
    url: str | None
    transport: Literal["streamable-http", "sse"]
    headers: Pairs
    oauth: ResolvedOAuth | None
    module: str | None
    isolation: Literal["shared", "per_session"]
    protocol: Literal["auto", "handshake", "modern"]
    timeout_seconds: float
    tools: ToolsConfig
    coerce_arguments: bool
    enabled: bool
    description: str | None
    file: Path
    line: int | None
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", _fingerprint(self))

    @property
    def env_map(self) -> Mapping[str, str]:
        """`env` as a read-only mapping."""
        return MappingProxyType(dict(self.env))

    @property
    def header_map(self) -> Mapping[str, str]:
        """`headers` as a read-only mapping."""
        return MappingProxyType(dict(self.headers))

    def __repr__(self) -> str:
        return (
            f"ResolvedServer(name={self.name!r}, profile={self.profile!r}, kind={self.kind!r}, "
            f"prefix={self.prefix!r}, enabled={self.enabled!r}, fingerprint={self.fingerprint[:12]!r})"
        )


def _fingerprint(server: ResolvedServer) -> str:
    oauth = server.oauth
    relevant = {
        "command": server.command,
        "args": list(server.args),
        "env": [list(p) for p in server.env],
        "cwd": server.cwd,
        "url": server.url,
        "transport": server.transport,
        "headers": [list(p) for p in server.headers],
        "oauth": None if oauth is None else oauth.fingerprint_parts(),
        "module": server.module,
        "isolation": server.isolation,
        "protocol": server.protocol,
        "timeout_seconds": server.timeout_seconds,
    }
    encoded = json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def resolve_server(spec: ServerSpec, secret: SecretLookup, env: Mapping[str, str]) -> ResolvedServer:
    """Render every reference of one server. Raises `ConfigError` (naming the server's file) for an
    unset environment variable; errors of `secret` (e.g. `SecretError`) propagate unchanged."""
    config = spec.config

    def render(template: Template) -> str:
        try:
            return template.render(secret, env)
        except ConfigError as exc:
            issues = [ConfigIssue(spec.file, f"server '{spec.name}': {i.message}", spec.line) for i in exc.issues]
            raise ConfigError(issues) from None

    oauth = None
    if config.oauth is not None:
        settings = config.oauth
        assertion = settings.identity_assertion

        def maybe(template: Template | None) -> str | None:
            return None if template is None else render(template)

        oauth = ResolvedOAuth(
            scopes=tuple(settings.scopes),
            client_id=settings.client_id,
            client_secret=maybe(settings.client_secret),
            client_name=settings.client_name,
            grant=settings.grant,
            client_metadata_url=settings.client_metadata_url,
            token_endpoint_auth_method=settings.token_endpoint_auth_method,
            private_key=maybe(settings.private_key),
            signing_algorithm=settings.signing_algorithm,
            issuer=settings.issuer,
            assertion_endpoint=assertion.token_endpoint if assertion else None,
            assertion_client_id=assertion.client_id if assertion else None,
            assertion_token=maybe(assertion.id_token) if assertion else None,
            assertion_client_secret=maybe(assertion.client_secret) if assertion else None,
        )
    return ResolvedServer(
        name=spec.name,
        prefix=spec.prefix,
        profile=spec.profile,
        kind=config.kind,
        command=None if config.command is None else render(config.command),
        args=tuple(render(a) for a in config.args),
        env=tuple((k, render(v)) for k, v in config.env.items()),
        cwd=config.cwd,
        url=None if config.url is None else render(config.url),
        transport=config.transport,
        headers=tuple((k, render(v)) for k, v in config.headers.items()),
        oauth=oauth,
        module=config.module,
        isolation=config.isolation,
        protocol=config.protocol,
        timeout_seconds=config.timeout_seconds,
        tools=config.tools,
        coerce_arguments=config.coerce_arguments,
        enabled=config.enabled,
        description=config.description,
        file=spec.file,
        line=spec.line,
    )


def resolve_profile(spec: ProfileSpec, secret: SecretLookup, env: Mapping[str, str]) -> tuple[ResolvedServer, ...]:
    """Every server of one profile, in profile order, disabled ones included (`enabled` tells)."""
    return tuple(resolve_server(server, secret, env) for server in spec.servers)


def resolve_snapshot(
    snapshot: Snapshot, secret: SecretLookup, env: Mapping[str, str]
) -> Mapping[str, tuple[ResolvedServer, ...]]:
    """`resolve_profile` for every profile of a snapshot, keyed by slug (read-only)."""
    return MappingProxyType({slug: resolve_profile(p, secret, env) for slug, p in snapshot.profiles.items()})
