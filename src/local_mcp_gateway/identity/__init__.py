"""Who is calling: the gateway as an OAuth 2.1 protected resource, per-tool access rules, and an audit log.

    request --> InboundGuard --identify()--> Authenticator --> Principal in the ASGI scope
                                                  |                      |
                         API keys (KeyRing) ------+                      +--> handlers: tool_allowed(ctx, name)
                         JWT access tokens (tokens.TokenVerifier) -------+--> audit_middleware -> AuditLog

Modules: `principal` (the caller, access rules, `tool_allowed`), `resource` (effective settings, RFC 9728
metadata, `WWW-Authenticate` challenges), `authenticator` (the guard's decision), `tokens` (JWT checks with
Authlib's `joserfc`; imported only by profiles with `oauth`), `audit` (the audit log and its middleware).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from local_mcp_gateway.identity.audit import AuditLog, audit_middleware, note_denied, note_server
from local_mcp_gateway.identity.authenticator import Authenticator, Refusal
from local_mcp_gateway.identity.principal import (
    PRINCIPAL_SCOPE_KEY,
    AccessPolicy,
    Principal,
    access_key,
    key_caller_id,
    principal_of,
    tool_allowed,
)
from local_mcp_gateway.identity.resource import METADATA_PREFIX, ResourceSettings, resource_settings

__all__ = [
    "METADATA_PREFIX",
    "PRINCIPAL_SCOPE_KEY",
    "AccessPolicy",
    "AuditLog",
    "Authenticator",
    "Principal",
    "Refusal",
    "ResourceSettings",
    "access_key",
    "audit_log_for",
    "audit_middleware",
    "authenticator_settings",
    "key_caller_id",
    "note_denied",
    "note_server",
    "principal_of",
    "resource_settings",
    "tool_allowed",
]


def audit_log_for(snapshot: Any, current: AuditLog | None = None) -> AuditLog | None:
    """The audit log `logging.audit` asks for (the current one when its settings are unchanged), or None."""
    config = snapshot.gateway.logging.audit
    if not config.file:
        return None
    path = (snapshot.root / config.file).resolve()
    if current is not None and current.settings() == (str(path), config.max_bytes, config.backups):
        return current
    return AuditLog(path, config.max_bytes, config.backups)


def authenticator_settings(
    snapshot: Any, slug: str, api_keys: Sequence[str], public_url: str, audit: AuditLog | None
) -> tuple[Any, ...]:
    """Everything an `Authenticator` of profile `slug` is built from; equal tuples can keep the same one."""
    spec = snapshot.profiles[slug]
    policy = AccessPolicy.from_rules(slug, spec.access, audit)
    return (policy, tuple(api_keys), resource_settings(snapshot, slug, public_url))
