"""Logout: RFC 7009 revocation of stored tokens at the authorization server."""

from __future__ import annotations

from urllib.parse import urlparse

import anyio
import httpx2
from mcp.shared.auth import (
    OAuthClientInformationFull,
    OAuthToken,
)

from local_mcp_gateway.oauth.common import AS_REQUEST_TIMEOUT
from local_mcp_gateway.oauth.storage import StateTokenStorage
from local_mcp_gateway.state import StateStore

__all__ = ["revoke_tokens"]

# --------------------------------------------------------------------------------------------- logout


async def revoke_tokens(store: StateStore, key: str, *, timeout: float = AS_REQUEST_TIMEOUT,
                        client_secret: str | None = None) -> str:
    """Revoke a server's tokens where its authorization server supports RFC 7009, then delete them.

    Returns a sentence for the person; the tokens are deleted locally whatever the server answers.
    """
    storage = StateTokenStorage(store, key)
    record = storage.record()
    if record is None:
        storage.delete_tokens()
        return "no tokens were stored"
    asm, _, _ = storage.load_metadata()
    client = await storage.get_client_info()
    endpoint = asm.revocation_endpoint if asm is not None else None
    outcome = "the authorization server offers no revocation endpoint; the tokens were deleted here only"
    if endpoint is not None and client is not None:
        outcome = await _revoke(str(endpoint), record.token, client, client_secret, timeout)
    storage.delete_tokens()
    return outcome


async def _revoke(endpoint: str, token: OAuthToken, client: OAuthClientInformationFull, client_secret: str | None,
                  timeout: float) -> str:
    secret = client_secret or client.client_secret
    method = client.token_endpoint_auth_method or ("client_secret_basic" if secret else "none")
    auth: tuple[str, str] | None = None
    problems: list[str] = []
    pairs = [(token.refresh_token, "refresh_token"), (token.access_token, "access_token")]
    try:
        with anyio.fail_after(timeout):
            async with httpx2.AsyncClient(timeout=timeout) as http:
                for value, hint in pairs:
                    if not value:
                        continue
                    data = {"token": value, "token_type_hint": hint}
                    if method == "client_secret_basic" and secret:
                        auth = (client.client_id, secret)
                    else:
                        data["client_id"] = client.client_id
                        if method == "client_secret_post" and secret:
                            data["client_secret"] = secret
                    response = await http.post(endpoint, data=data, auth=auth)
                    if response.status_code != 200:
                        problems.append(f"{hint}: HTTP {response.status_code}")
    except (TimeoutError, httpx2.HTTPError) as exc:
        return (f"revocation at {urlparse(endpoint).netloc} failed ({type(exc).__name__}); the tokens were deleted "
                "here anyway")
    if problems:
        return f"revocation answered {', '.join(problems)}; the tokens were deleted here anyway"
    return f"the tokens were revoked at {urlparse(endpoint).netloc} and deleted here"
