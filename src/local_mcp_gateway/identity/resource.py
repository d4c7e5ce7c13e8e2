"""The profile as an OAuth 2.1 protected resource: its effective settings (the profile's `oauth` over
`security.oauth`), its RFC 9728 metadata, and the `WWW-Authenticate` challenges that point clients to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_mcp_gateway.errors import ConfigError, ConfigIssue

__all__ = ["METADATA_PREFIX", "ResourceSettings", "resource_settings"]

METADATA_PREFIX = "/.well-known/oauth-protected-resource"
"""RFC 9728: the metadata of `https://host/mcp/team` lives at `https://host/.well-known/oauth-protected-resource/mcp/team`."""


@dataclass(frozen=True)
class ResourceSettings:
    """What a profile's guard needs to accept OAuth access tokens; equal settings keep the same key cache."""

    slug: str
    resource: str
    """The profile's URL, `{public_url}/mcp/<slug>`: the resource clients ask tokens for (RFC 8707)."""
    metadata_url: str
    issuer: str
    jwks_uri: str | None
    audience: str
    required_scopes: tuple[str, ...]
    rule_scopes: tuple[str, ...] = ()

    def metadata(self) -> dict[str, Any]:
        """The RFC 9728 protected resource metadata document."""
        scopes = sorted({*self.required_scopes, *self.rule_scopes})
        return {
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": f"local-mcp-gateway profile {self.slug}",
        }

    def challenge(self, error: str | None = None, description: str | None = None, scope: tuple[str, ...] = ()) -> str:
        """A `WWW-Authenticate: Bearer ...` value naming the metadata URL (and the scopes wanted)."""
        parts = []
        if error:
            parts.append(f'error="{error}"')
        if description:
            parts.append(f'error_description="{_quoted(description)}"')
        wanted = scope or self.required_scopes
        if wanted:
            parts.append(f'scope="{" ".join(wanted)}"')
        parts.append(f'resource_metadata="{self.metadata_url}"')
        return "Bearer " + ", ".join(parts)


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")


def resource_settings(snapshot: Any, slug: str, public_url: str) -> ResourceSettings | None:
    """The effective inbound OAuth settings of profile `slug`, or None when it accepts no tokens.

    `security.oauth` gives every profile its defaults; a profile's own `oauth` overrides the fields it sets.
    Raises `ConfigError` (naming the profile file) when no issuer results.
    """
    spec = snapshot.profiles[slug]
    defaults = snapshot.gateway.security.oauth
    own = spec.oauth
    if defaults is None and own is None:
        return None
    merged: dict[str, Any] = defaults.model_dump() if defaults is not None else {}
    if own is not None:
        merged.update({key: getattr(own, key) for key in own.model_fields_set})
    if not merged.get("issuer"):
        raise ConfigError(
            ConfigIssue(
                spec.file,
                "oauth needs an issuer: set oauth.issuer here or security.oauth.issuer in gateway.yaml",
                path="oauth.issuer",
            )
        )
    resource = f"{public_url.rstrip('/')}/mcp/{slug}"
    origin, path = _split(resource)
    return ResourceSettings(
        slug=slug,
        resource=resource,
        metadata_url=f"{origin}{METADATA_PREFIX}{path}",
        issuer=merged["issuer"],
        jwks_uri=merged.get("jwks_uri"),
        audience=merged.get("audience") or resource,
        required_scopes=tuple(merged.get("required_scopes") or ()),
        rule_scopes=tuple(sorted({scope for rule in spec.access for scope in rule.scopes})),
    )


def _split(url: str) -> tuple[str, str]:
    """`https://host:port/path` -> (`https://host:port`, `/path`)."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}", slash + path
