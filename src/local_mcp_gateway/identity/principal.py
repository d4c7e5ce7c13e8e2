"""Who is calling, and what that caller may see: the `Principal` the inbound guard puts into the request's ASGI
scope, the per-tool `AccessPolicy` of a profile, and `tool_allowed`, the one check the MCP handlers make.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

__all__ = [
    "PRINCIPAL_SCOPE_KEY",
    "AccessPolicy",
    "Principal",
    "access_key",
    "key_caller_id",
    "principal_of",
    "tool_allowed",
]

PRINCIPAL_SCOPE_KEY = "local_mcp_gateway.principal"
"""Key of the ASGI scope under which the guard leaves the verified caller for the MCP handlers."""


@dataclass(frozen=True)
class AccessPolicy:
    """The access rules of one profile (`access:` in its file) and where its calls are audited."""

    profile: str
    rules: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = ()
    """Per rule: the tool globs, and the scopes a caller needs for the tools they match."""
    audit: Any = None
    """The gateway's `AuditLog`, or None when `logging.audit.file` is unset."""

    @classmethod
    def from_rules(cls, profile: str, rules: Iterable[Any], audit: Any = None) -> AccessPolicy:
        return cls(profile, tuple((tuple(rule.tools), frozenset(rule.scopes)) for rule in rules), audit)

    def allows(self, tool: str, scopes: frozenset[str]) -> bool:
        """True when every rule matching `tool` has all its scopes in `scopes` (no rule matches: open)."""
        for globs, needed in self.rules:
            if any(fnmatchcase(tool, glob) for glob in globs) and not needed <= scopes:
                return False
        return True

    def scopes(self) -> list[str]:
        """Every scope some rule asks for, sorted."""
        return sorted({scope for _, needed in self.rules for scope in needed})


@dataclass(frozen=True)
class Principal:
    """A caller the guard let in: `caller` is what the audit log shows (`sub`, `key:<8 hex>` or `anonymous`)."""

    caller: str
    policy: AccessPolicy
    subject: str | None = None
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def may_use_tool(self, name: str) -> bool:
        return self.policy.allows(name, self.scopes)


def key_caller_id(key: str) -> str:
    """`key:` and 8 hex digits of a SHA-256 of an API key: tells keys apart in the audit log, never reveals one."""
    return "key:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def principal_of(ctx: Any) -> Principal | None:
    """The caller of an MCP request (from `ctx.request`, the HTTP request it came in); None outside HTTP."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    if not isinstance(scope, Mapping):
        return None
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    return principal if isinstance(principal, Principal) else None


def tool_allowed(ctx: Any, name: str) -> bool:
    """May the caller of this request see and call the tool `name`? Used by both `tools/list` and `tools/call`.

    A request without a principal (no HTTP request behind it, e.g. in-process) is not restricted: every HTTP
    request to a profile passes the guard, which always leaves one.
    """
    principal = principal_of(ctx)
    if principal is None or principal.may_use_tool(name):
        return True
    from local_mcp_gateway.identity.audit import note_denied

    note_denied()
    return False


def access_key(ctx: Any) -> Any:
    """What decides which tools the caller of this request may see: None when nothing is hidden from it (no
    principal, or a profile without access rules), else its profile's rules and its scopes. Two callers with the
    same key see the same tools, so a `tools/list` page built for one can be served to the other."""
    principal = principal_of(ctx)
    if principal is None or not principal.policy.rules:
        return None
    return (principal.policy.rules, principal.scopes)
