"""Grants without a person in the loop: `client_credentials` (client secret or `private_key_jwt`) and the
enterprise-managed `jwt_bearer` grant (an identity token exchanged for an ID-JAG, RFC 8693, then for tokens,
RFC 7523).

`ClientCredentialsProvider` is the gateway's provider (encrypted token storage, persisted metadata, bounded
requests, translated errors) with the SDK's authorization step replaced by a client-credentials token request.
`IdentityAssertionAuth` wraps the SDK's `IdentityAssertionOAuthProvider`, learning the authorization server
from the resource's metadata when `oauth.issuer` is not configured, and fetching a fresh ID-JAG from the
enterprise identity provider for every exchange.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
from mcp.client.auth import OAuthFlowError
from mcp.client.auth.extensions.client_credentials import SignedJWTParameters
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.auth.utils import build_protected_resource_metadata_discovery_urls
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata

from local_mcp_gateway.errors import AuthError, UpstreamError
from local_mcp_gateway.oauth.common import AS_REQUEST_TIMEOUT, shorten
from local_mcp_gateway.oauth.provider import GatewayOAuthProvider, LoginHooks
from local_mcp_gateway.oauth.storage import StateTokenStorage

__all__ = ["ClientCredentialsProvider", "IdentityAssertionAuth", "configured_client"]

logger = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


def auth_method(oauth: Any) -> str:
    """The token endpoint authentication method: as configured, else what the credentials allow."""
    if oauth.token_endpoint_auth_method:
        return oauth.token_endpoint_auth_method
    if oauth.private_key:
        return "private_key_jwt"
    return "client_secret_basic" if oauth.client_secret else "none"


def configured_client(oauth: Any, redirect_uri: str | None) -> OAuthClientInformationFull | None:
    """The pre-registered client of `oauth` settings (None: register dynamically or use CIMD)."""
    if not oauth.client_id:
        return None
    grant_types = {"client_credentials": ["client_credentials"]}.get(oauth.grant, ["authorization_code", "refresh_token"])
    return OAuthClientInformationFull(
        client_id=oauth.client_id,
        client_secret=oauth.client_secret,
        redirect_uris=[redirect_uri] if redirect_uri and oauth.grant == "authorization_code" else None,  # type: ignore[list-item]
        token_endpoint_auth_method=auth_method(oauth),  # type: ignore[arg-type]
        grant_types=grant_types,  # type: ignore[arg-type]
    )


class ClientCredentialsProvider(GatewayOAuthProvider):
    """The gateway's provider for the `client_credentials` grant: no login, no refresh token; a token request
    authenticated with the client secret (basic or post) or a signed JWT (`private_key_jwt`)."""

    def __init__(self, server_url: str, storage: StateTokenStorage, oauth: Any, *, label: str,
                 scope: str | None, clock: Any, as_timeout: float = AS_REQUEST_TIMEOUT) -> None:
        metadata = OAuthClientMetadata(
            redirect_uris=None,
            grant_types=["client_credentials"],
            token_endpoint_auth_method=auth_method(oauth),  # type: ignore[arg-type]
            scope=scope,
        )
        super().__init__(server_url, metadata, storage, LoginHooks(), label=label, scope=scope, clock=clock,
                         as_timeout=as_timeout)
        self._signer = None
        if oauth.private_key:
            self._signer = SignedJWTParameters(
                issuer=oauth.client_id,
                subject=oauth.client_id,
                signing_algorithm=oauth.signing_algorithm,
                signing_key=oauth.private_key,
            ).create_assertion_provider()

    def __repr__(self) -> str:
        return f"ClientCredentialsProvider({self.label!r})"

    async def _perform_authorization(self) -> httpx2.Request:
        if self.scope:
            self.context.client_metadata.scope = self.scope
        data: dict[str, str] = {"grant_type": "client_credentials"}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._signer is not None:
            if self.context.oauth_metadata is None:
                raise OAuthFlowError("no authorization server metadata: private_key_jwt needs its issuer")
            data["client_id"] = self.context.client_info.client_id if self.context.client_info else ""
            data["client_assertion"] = await self._signer(str(self.context.oauth_metadata.issuer))
            data["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        else:
            data, headers = self.context.prepare_token_auth(data, headers)
        if self.context.should_include_resource_param(self.context.protocol_version):
            data["resource"] = self.context.get_resource_url()
        if self.context.client_metadata.scope:
            data["scope"] = self.context.client_metadata.scope
        return httpx2.Request("POST", self._get_token_endpoint(), data=data, headers=headers)

    async def _handle_token_response(self, response: httpx2.Response) -> None:
        if response.status_code in (400, 401):
            await response.aread()
            raise AuthError(f"{self.label}: the authorization server refused the client credentials "
                            f"(HTTP {response.status_code}); check oauth.client_id and its secret or key")
        await super()._handle_token_response(response)


class IdentityAssertionAuth(httpx2.Auth):
    """`jwt_bearer` for one server: the SDK's identity-assertion provider, built on first use."""

    requires_response_body = True

    def __init__(self, server_url: str, storage: StateTokenStorage, oauth: Any, *, label: str,
                 scope: str | None, as_timeout: float = AS_REQUEST_TIMEOUT) -> None:
        self.server_url = server_url
        self.storage = storage
        self.oauth = oauth
        self.label = label
        self.scope = scope
        self.as_timeout = as_timeout
        self._inner: IdentityAssertionOAuthProvider | None = None

    def __repr__(self) -> str:
        return f"IdentityAssertionAuth({self.label!r})"

    async def _issuer(self) -> str:
        if self.oauth.issuer:
            return self.oauth.issuer
        async with httpx2.AsyncClient(timeout=self.as_timeout) as http:
            for url in build_protected_resource_metadata_discovery_urls(None, self.server_url):
                try:
                    response = await http.get(url)
                except httpx2.HTTPError as exc:
                    raise UpstreamError(f"{self.label}: cannot read the resource's metadata ({type(exc).__name__})") from None
                if response.status_code == 200:
                    servers = response.json().get("authorization_servers") or []
                    if servers:
                        return str(servers[0])
        raise UpstreamError(f"{self.label}: the server publishes no authorization server; set oauth.issuer")

    async def _fetch_id_jag(self, audience: str, resource: str) -> str:
        """RFC 8693 at the enterprise identity provider: the identity token for an ID-JAG."""
        oauth = self.oauth
        data = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "requested_token_type": ID_JAG_TOKEN_TYPE,
            "subject_token": oauth.assertion_token,
            "subject_token_type": ID_TOKEN_TYPE,
            "audience": audience,
            "resource": resource,
            "client_id": oauth.assertion_client_id,
        }
        if oauth.assertion_client_secret:
            data["client_secret"] = oauth.assertion_client_secret
        async with httpx2.AsyncClient(timeout=self.as_timeout) as http:
            try:
                response = await http.post(oauth.assertion_endpoint, data=data)
            except httpx2.HTTPError as exc:
                raise UpstreamError(f"{self.label}: cannot reach the identity provider ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise AuthError(f"{self.label}: the identity provider refused the token exchange "
                            f"(HTTP {response.status_code}); check identity_assertion")
        token = response.json().get("access_token")
        if not isinstance(token, str) or not token:
            raise UpstreamError(f"{self.label}: the identity provider sent no ID-JAG")
        return token

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self._inner is None:
            self._inner = IdentityAssertionOAuthProvider(
                server_url=self.server_url,
                storage=self.storage,
                client_id=self.oauth.client_id,
                client_secret=self.oauth.client_secret or "",
                issuer=await self._issuer(),
                assertion_provider=self._fetch_id_jag,
                scope=self.scope,
                token_endpoint_auth_method=(self.oauth.token_endpoint_auth_method or "client_secret_basic"),  # type: ignore[arg-type]
            )
        flow = self._inner.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        except (OAuthFlowError, ValueError) as exc:
            raise UpstreamError(f"{self.label}: enterprise-managed authorization failed: {shorten(exc)}") from None
        finally:
            await flow.aclose()
