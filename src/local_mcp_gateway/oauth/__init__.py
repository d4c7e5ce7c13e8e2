"""OAuth 2.1 towards remote upstream servers: token storage in `state/`, the login flow, the callback.

The flow itself is the SDK's `mcp.client.auth.OAuthClientProvider` (an `httpx2.Auth`): RFC 9728 protected
resource metadata, RFC 8414 authorization-server metadata (OpenID configuration as fallback), RFC 7591 dynamic
registration unless `oauth.client_id` is configured, authorization code + PKCE S256 with a random `state`, and the
RFC 8707 `resource` parameter. This module adds what a long-running gateway needs around it:

- `StateTokenStorage`: the provider's `TokenStorage` on `StateStore` (age-encrypted, atomic, 0600 files under
  `state/oauth/<server-key>/`), which also records *when* tokens were obtained, so an expired token loaded after a
  restart is handed back with an empty access token and the provider refreshes it instead of sending it;
- `GatewayOAuthProvider`: persists and restores the authorization-server and protected-resource metadata (so a
  refresh after a restart goes to the real token endpoint), refreshes *before* expiry, drops tokens the server
  refused (`invalid_grant`: a new login is needed), sends its own requests to the authorization server with a
  bounded timeout, and turns the SDK's errors into `AuthError` (a login is needed) or `UpstreamError` (the server
  or its metadata is wrong);
- `OAuthManager`: one per gateway (and one per `auth login` command). `auth_for(upstream)` gives the provider of
  an upstream; a login in progress puts the upstream in `needs_auth` with the URL to open, and
  `handle_callback(params)` receives the redirect at `{public_url}/oauth/callback`. A login started by the
  `auth login` command while a gateway owns the callback address is *relayed*: the gateway writes the callback
  parameters into an encrypted state entry (`state/oauth/relay/<hash of state>`) that the command polls.

Token values never reach a log line, an error message, `/status` or a repr: they are registered with the
redaction point as soon as they are read or obtained.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from local_mcp_gateway.oauth.common import (
    AS_REQUEST_TIMEOUT,
    CALLBACK_PATH,
    LOGIN_TIMEOUT,
    public_url_for,
    redirect_uri,
    server_key,
    uses_oauth,
)

_LAZY = {
    "OAuthManager": "manager",
    "callback_app": "manager",
    "GatewayOAuthProvider": "provider",
    "revoke_tokens": "revoke",
    "StateTokenStorage": "storage",
    "TokenRecord": "storage",
    "token_summary": "storage",
}
"""Names loaded on first use: the flow brings the SDK's OAuth client, PyJWT and cryptography's X.509 and key types
(about 5 MB), which a configuration without `oauth` never needs."""


def manager_for(snapshot: Any, settings: Any, current: Any = None) -> Any:
    """The gateway's `OAuthManager` for a configuration generation (see `manager.manager_for`); None, without
    loading the flow, while no server uses `oauth`."""
    if not uses_oauth(snapshot):
        return None
    from local_mcp_gateway.oauth.manager import manager_for as build

    return build(snapshot, settings, current)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "AS_REQUEST_TIMEOUT",
    "CALLBACK_PATH",
    "LOGIN_TIMEOUT",
    "GatewayOAuthProvider",
    "OAuthManager",
    "StateTokenStorage",
    "TokenRecord",
    "callback_app",
    "manager_for",
    "public_url_for",
    "redirect_uri",
    "revoke_tokens",
    "server_key",
    "token_summary",
    "uses_oauth",
]
