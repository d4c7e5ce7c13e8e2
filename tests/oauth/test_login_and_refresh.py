"""An upstream behind OAuth: login through the callback, refresh before expiry, refresh after a restart.

Everything is real: the authorization server and the protected MCP server run under uvicorn on 127.0.0.1, the
gateway's `Upstream` connects with the SDK's Streamable HTTP client, the login is completed by an HTTP client
following the authorization server's redirect to the callback, and tokens live two seconds.
"""

from __future__ import annotations

import anyio
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from local_mcp_gateway.oauth import StateTokenStorage, server_key
from local_mcp_gateway.upstream.connection import UpstreamState
from local_mcp_gateway.upstream.transports import open_transport
from tests.conftest import free_port
from tests.oauth.conftest import (
    call_whoami,
    gatewayish,
    issued_values,
    open_login,
    remote_server,
    state_text,
    wait_auth_url,
    wait_state,
)
from tests.oauth.servers import TOKEN_LIFETIME

pytestmark = pytest.mark.anyio


async def login_through_upstream(gw, server, auth_server):
    """Start an upstream, see it ask for a login, complete the login like a browser; returns the upstream cm."""
    cm = gw.upstream(server)
    upstream = await cm.__aenter__()
    url = await wait_auth_url(upstream)
    assert url.startswith(auth_server.base_url)
    page = await open_login(url)
    assert page.status_code == 200, page.text
    assert "Logged in" in page.text
    await wait_state(upstream, UpstreamState.READY)
    return cm, upstream


async def test_login_then_refresh_before_expiry_and_nothing_readable_in_state(store, auth_server, protected):
    async with gatewayish(store) as gw:
        server = remote_server(protected.url)
        cm, upstream = await login_through_upstream(gw, server, auth_server)
        try:
            assert await call_whoami(upstream) == "protected"
            status = gw.manager.status()[server_key("linear", protected.url)]
            assert status["authorized"] and status["refreshable"] and status["auth_url"] is None
            # Age the token into its refresh window (half its lifetime) but call before it expires.
            refused_before = protected.unauthorized
            await anyio.sleep(TOKEN_LIFETIME * 0.6)
            assert await call_whoami(upstream) == "protected"
            assert auth_server.refresh_count >= 1
            # The server never had to refuse a token: the refresh came first.
            assert protected.unauthorized == refused_before
            assert auth_server.authorize_count == 1
        finally:
            await cm.__aexit__(None, None, None)
    raw = state_text(store)
    assert raw, "tokens, client and metadata are stored"
    for value in issued_values(auth_server):
        assert value.encode() not in raw
    assert b"client_id" not in raw and b"token_endpoint" not in raw
    names = store.list("oauth/")
    key = server_key("linear", protected.url)
    assert {f"oauth/{key}/tokens", f"oauth/{key}/client", f"oauth/{key}/metadata"} <= set(names)
    for path in store.state_dir.rglob("*.age"):
        assert path.stat().st_mode & 0o777 == 0o600


async def test_restart_refreshes_without_a_new_login(store, auth_server, protected):
    server = remote_server(protected.url)
    port = free_port()
    async with gatewayish(store, port) as gw:
        cm, upstream = await login_through_upstream(gw, server, auth_server)
        await cm.__aexit__(None, None, None)
    # The gateway is down long enough for the access token to expire.
    await anyio.sleep(TOKEN_LIFETIME + 0.5)
    refreshes = auth_server.refresh_count
    async with gatewayish(store, port) as gw:  # a new manager on the same state folder: a restart
        async with gw.upstream(server) as upstream:
            await wait_state(upstream, UpstreamState.READY, UpstreamState.NEEDS_AUTH)
            assert upstream.state == UpstreamState.READY, upstream.error
            assert await call_whoami(upstream) == "protected"
    assert auth_server.authorize_count == 1, "no second login"
    assert auth_server.refresh_count == refreshes + 1
    assert set(auth_server.token_paths) == {"/oauth2/token"}, "refresh went to the discovered token endpoint"


class PlainStorage:
    """What an application writes with the SDK alone: the token and the client, as received."""

    def __init__(self, store, key):
        self.store, self.key = store, key

    async def get_tokens(self):
        value = self.store.read_json(f"plain/{self.key}/tokens")
        return None if value is None else OAuthToken.model_validate(value)

    async def set_tokens(self, tokens):
        self.store.write_json(f"plain/{self.key}/tokens", tokens.model_dump(mode="json", exclude_none=True))

    async def get_client_info(self):
        value = self.store.read_json(f"plain/{self.key}/client")
        return None if value is None else OAuthClientInformationFull.model_validate(value)

    async def set_client_info(self, info):
        self.store.write_json(f"plain/{self.key}/client", info.model_dump(mode="json", exclude_none=True))


@pytest.mark.parametrize("storage_kind", ["plain", "with_obtained_at"])
async def test_the_sdk_provider_alone_needs_a_new_login_after_a_restart(store, auth_server, protected, storage_kind):
    """The control: the SDK's own provider, restarted, asks a person again (the defects the gateway fixes).

    `plain` storage: the expired token is sent as it is (defect 1). `with_obtained_at`: the gateway's storage
    hands back a refreshable token, but the SDK forgot the token endpoint and refreshes at the MCP server's
    origin (defect 2). Either way the next step is a new authorization.
    """
    redirect = f"http://127.0.0.1:9/oauth/callback"
    metadata = OAuthClientMetadata(redirect_uris=[redirect], scope="read")
    key = "control"

    def storage():
        return PlainStorage(store, key) if storage_kind == "plain" else StateTokenStorage(store, key)

    asked: list[str] = []

    async def redirect_handler(url: str) -> None:
        asked.append(url)

    async def callback_handler() -> AuthorizationCodeResult:
        from tests.oauth.conftest import authorize_only

        params = await authorize_only(asked[-1])
        if len(asked) > 1:
            raise LookupError("a second login was needed")
        return AuthorizationCodeResult(code=params["code"], state=params["state"])

    async def connect(provider) -> None:
        from mcp import ClientSession

        async with open_transport(remote_server(protected.url), auth=provider) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()

    first = OAuthClientProvider(protected.url, metadata, storage(), redirect_handler, callback_handler)
    await connect(first)
    assert len(asked) == 1
    await anyio.sleep(TOKEN_LIFETIME + 0.5)
    restarted = OAuthClientProvider(protected.url, metadata, storage(), redirect_handler, callback_handler)
    with pytest.raises(BaseException) as caught:
        await connect(restarted)
    assert "a second login was needed" in repr(caught.value) or len(asked) == 2
    assert len(asked) == 2


async def test_refused_refresh_token_goes_back_to_needs_auth(store, auth_server, protected):
    async with gatewayish(store) as gw:
        server = remote_server(protected.url)
        cm, upstream = await login_through_upstream(gw, server, auth_server)
        try:
            auth_server.expire_refresh_tokens()
            await anyio.sleep(TOKEN_LIFETIME * 0.6)
            # The call triggers a refresh, the server answers invalid_grant: a person must log in again.
            with pytest.raises(Exception):
                await call_whoami(upstream)
            url = await wait_auth_url(upstream)
            key = server_key("linear", protected.url)
            assert not gw.manager.status()[key]["authorized"]
            assert gw.manager.status()[key]["auth_url"] == url
            # Logging in again brings it back.
            page = await open_login(url)
            assert page.status_code == 200, page.text
            await wait_state(upstream, UpstreamState.READY)
            assert await call_whoami(upstream) == "protected"
        finally:
            await cm.__aexit__(None, None, None)
