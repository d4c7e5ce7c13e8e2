"""The baseline for the conformance client scenarios: the plain SDK client (mcp 2.x), no gateway in between.

Run by the suite as `python sdk_client.py <server-url>` with `MCP_CONFORMANCE_SCENARIO` (and, for some
scenarios, `MCP_CONFORMANCE_CONTEXT`) in the environment. It does what an SDK user would write for each
scenario: the scenario's actions (`actions.py`) over a session whose HTTP client carries the matching OAuth
provider from `mcp.client.auth`. Logins are headless: the authorization URL is fetched and the code taken
from the redirect, which is what the suite's authorization server expects of a client.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.auth.utils import build_protected_resource_metadata_discovery_urls
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata
from pydantic import AnyUrl

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from actions import context, run_actions, scenario  # noqa: E402
from token_memory import MemoryStorage  # noqa: E402

REDIRECT_URI = "http://localhost:3000/callback"
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


class HeadlessLogin:
    """Follows the authorization URL without a browser and keeps the code from the redirect."""

    def __init__(self) -> None:
        self.code: str | None = None
        self.state: str | None = None
        self.issuer: str | None = None

    async def redirect(self, url: str) -> None:
        async with httpx2.AsyncClient(timeout=30) as http:
            response = await http.get(url, follow_redirects=False)
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise RuntimeError(f"the authorization server answered {response.status_code}, not a redirect")
        query = parse_qs(urlparse(location).query)
        if "code" not in query:
            raise RuntimeError(f"no code in the redirect: {location}")
        self.code = query["code"][0]
        self.state = query.get("state", [None])[0]
        self.issuer = query.get("iss", [None])[0]

    async def callback(self) -> AuthorizationCodeResult:
        if self.code is None:
            raise RuntimeError("no authorization code was received")
        result = AuthorizationCodeResult(code=self.code, state=self.state, iss=self.issuer)
        self.code = self.state = self.issuer = None
        return result


async def provider_for(name: str, url: str) -> Any:
    ctx = context()
    if name == "auth/client-credentials-basic":
        return ClientCredentialsOAuthProvider(
            server_url=url,
            storage=MemoryStorage(),
            client_id=ctx["client_id"],
            client_secret=ctx["client_secret"],
            token_endpoint_auth_method="client_secret_basic",
        )
    if name == "auth/client-credentials-jwt":
        signer = SignedJWTParameters(
            issuer=ctx["client_id"],
            subject=ctx["client_id"],
            signing_algorithm=ctx.get("signing_algorithm", "ES256"),
            signing_key=ctx["private_key_pem"],
        )
        return PrivateKeyJWTOAuthProvider(
            server_url=url,
            storage=MemoryStorage(),
            client_id=ctx["client_id"],
            assertion_provider=signer.create_assertion_provider(),
        )
    if name in ("auth/enterprise-managed-authorization", "auth/cross-app-access-complete-flow"):
        return await enterprise_provider(url, ctx)
    storage = MemoryStorage()
    if ctx.get("client_id"):
        storage.client = OAuthClientInformationFull(
            client_id=ctx["client_id"],
            client_secret=ctx.get("client_secret"),
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            token_endpoint_auth_method="client_secret_basic" if ctx.get("client_secret") else "none",
        )
    login = HeadlessLogin()
    return OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="sdk-baseline",
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=login.redirect,
        callback_handler=login.callback,
        client_metadata_url=CLIENT_METADATA_URL,
    )


async def enterprise_provider(url: str, ctx: dict[str, Any]) -> IdentityAssertionOAuthProvider:
    """SEP-990 with the SDK's provider: the authorization server named by the resource's metadata, and an
    ID-JAG obtained from the suite's identity provider by RFC 8693 token exchange."""
    async with httpx2.AsyncClient(timeout=30) as http:
        metadata_url = build_protected_resource_metadata_discovery_urls(None, url)[0]
        issuer = (await http.get(metadata_url)).raise_for_status().json()["authorization_servers"][0]

    async def id_jag(audience: str, resource: str) -> str:
        async with httpx2.AsyncClient(timeout=30) as http:
            answer = await http.post(ctx["idp_token_endpoint"], data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                "subject_token": ctx["idp_id_token"],
                "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                "audience": audience,
                "resource": resource,
                "client_id": ctx["idp_client_id"],
            })
        return answer.raise_for_status().json()["access_token"]

    return IdentityAssertionOAuthProvider(
        server_url=url, storage=MemoryStorage(), client_id=ctx["client_id"], client_secret=ctx["client_secret"],
        issuer=issuer, assertion_provider=id_jag, token_endpoint_auth_method="client_secret_basic",
    )


async def main(url: str) -> None:
    name = scenario()
    auth = await provider_for(name, url) if name.startswith("auth/") else None
    async with httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30, read=60)) as http:
        await run_actions(name, url, http)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[-1]))
