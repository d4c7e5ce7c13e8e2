"""Logins and servers that go wrong: clear errors, nothing half-written, other servers unaffected."""

from __future__ import annotations

import anyio
import pytest

from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.oauth import OAuthManager, StateTokenStorage, server_key, token_summary
from local_mcp_gateway.state import StateStore
from local_mcp_gateway.upstream.connection import UpstreamState
from tests.oauth.conftest import (
    authorize_only,
    call_whoami,
    gatewayish,
    open_login,
    remote_server,
    start_protected,
    wait_auth_url,
    wait_state,
)

pytestmark = pytest.mark.anyio


def stored(store: StateStore, url: str) -> set[str]:
    key = server_key("linear", url)
    return {name.rsplit("/", 1)[-1] for name in store.list(f"oauth/{key}/")}


async def test_wrong_and_reused_state_and_refusal(store, auth_server, protected):
    async with gatewayish(store) as gw, gw.upstream(remote_server(protected.url)) as upstream:
        url = await wait_auth_url(upstream)
        params = await authorize_only(url)
        status, text = await gw.manager.handle_callback({**params, "state": "forged"})
        assert status == 400 and "Unknown or already used" in text
        status, text = await gw.manager.handle_callback({"code": params["code"]})
        assert status == 400 and "no `state`" in text
        assert "tokens" not in stored(store, protected.url)
        # The real callback works once...
        status, text = await gw.manager.handle_callback(params)
        assert status == 200 and "Logged in" in text
        await wait_state(upstream, UpstreamState.READY)
        # ...and a replay of it is refused and changes nothing.
        before = store.path_of(f"oauth/{server_key('linear', protected.url)}/tokens").read_bytes()
        status, text = await gw.manager.handle_callback(params)
        assert status == 400 and "already used" in text
        assert store.path_of(f"oauth/{server_key('linear', protected.url)}/tokens").read_bytes() == before


async def test_access_denied_is_reported_and_stores_nothing(store, auth_server, protected):
    auth_server.deny = True
    async with gatewayish(store) as gw, gw.upstream(remote_server(protected.url)) as upstream:
        url = await wait_auth_url(upstream)
        page = await open_login(url)
        assert page.status_code == 400
        assert "access_denied" in page.text and "Nothing was stored" in page.text
        # The upstream keeps waiting for a login, with a new URL, and counts no crash.
        auth_server.deny = False
        with anyio.fail_after(30):
            while upstream.auth_url in (None, url):
                await anyio.sleep(0.05)
        assert upstream.state == UpstreamState.NEEDS_AUTH and upstream.restarts == 0
        assert "tokens" not in stored(store, protected.url)


async def test_replayed_code_fails_the_exchange_and_stores_nothing(store, auth_server, protected):
    async with gatewayish(store) as gw, gw.upstream(remote_server(protected.url)) as upstream:
        first = await authorize_only(await wait_auth_url(upstream))
        assert (await gw.manager.handle_callback(first))[0] == 200
        await wait_state(upstream, UpstreamState.READY)
    key = server_key("linear", protected.url)
    store.delete(f"oauth/{key}/tokens")
    async with gatewayish(store) as gw, gw.upstream(remote_server(protected.url)) as upstream:
        second = await authorize_only(await wait_auth_url(upstream))
        status, text = await gw.manager.handle_callback({**second, "code": first["code"]})
        assert status == 502 and "refused the authorization code" in text
        assert "tokens" not in stored(store, protected.url)


async def test_unfinished_login_expires_and_its_state_is_then_unknown(store, auth_server, protected):
    async with gatewayish(store, login_timeout=0.5) as gw, gw.upstream(remote_server(protected.url)) as upstream:
        url = await wait_auth_url(upstream)
        params = await authorize_only(url)
        with anyio.fail_after(30):
            while not (upstream.error and "no OAuth login completed" in upstream.error):
                await anyio.sleep(0.05)
        assert upstream.state == UpstreamState.NEEDS_AUTH and upstream.restarts == 0
        status, text = await gw.manager.handle_callback(params)
        assert status == 400 and "Unknown or already used" in text
        assert "tokens" not in stored(store, protected.url)


async def test_tokens_from_auth_login_elsewhere_are_picked_up(store, identity, auth_server, protected):
    """While the gateway waits for a login, tokens written to state/ by another process end the wait."""
    async with gatewayish(store) as gw, gw.upstream(remote_server(protected.url)) as upstream:
        await wait_auth_url(upstream)
        other = OAuthManager(StateStore(store.state_dir, identity, []), gw.public_url)
        seen: list[str] = []

        async def connect(server, auth) -> None:
            from mcp import ClientSession

            from local_mcp_gateway.upstream.transports import open_transport

            async with open_transport(server, auth=auth) as (read, write), ClientSession(read, write) as session:
                await session.initialize()

        async def complete() -> None:
            while not seen:
                await anyio.sleep(0.02)
            params = await authorize_only(seen[0])
            await other.handle_callback(params)

        async with anyio.create_task_group() as tg:
            tg.start_soon(complete)
            await other.login(remote_server(protected.url), seen.append, connect=connect)
        await wait_state(upstream, UpstreamState.READY)
        assert await call_whoami(upstream) == "protected"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("issuer", "inconsistent OAuth metadata"),
        ("resource", "inconsistent OAuth metadata"),
        ("registration", "dynamic client registration was refused"),
        ("slow", "did not answer within"),
        ("down", "cannot reach the authorization server"),
    ],
)
async def test_broken_authorization_side_fails_clearly_and_others_keep_serving(
    store, auth_server, protected, breakage, message
):
    from tests.oauth.servers import AuthServer, ThreadedServer

    broken_auth = AuthServer()
    running = ThreadedServer(broken_auth.app()).start()
    broken_auth.base_url = running.base_url
    broken, broken_running = start_protected(broken_auth, "broken")
    if breakage == "issuer":
        broken_auth.issuer_override = "http://127.0.0.1:1"
    elif breakage == "resource":
        broken.resource_override = "http://elsewhere.example/mcp"
    elif breakage == "registration":
        broken_auth.refuse_registration = True
    elif breakage == "slow":
        broken_auth.slow_seconds = 3
    elif breakage == "down":
        running.stop()
    try:
        async with gatewayish(store, as_timeout=1.0) as gw:
            async with gw.upstream(remote_server(protected.url)) as good, \
                    gw.upstream(remote_server(broken.url, "broken")) as bad:
                page = await open_login(await wait_auth_url(good))
                assert page.status_code == 200
                await wait_state(good, UpstreamState.READY)
                with anyio.fail_after(30):
                    while not (bad.error and message in bad.error):
                        await anyio.sleep(0.05)
                assert bad.state != UpstreamState.READY
                assert await call_whoami(good) == "protected"
        assert "tokens" not in stored(store, broken.url)
    finally:
        broken_running.stop()
        if breakage != "down":
            running.stop()


async def test_confidential_client_from_configuration(store, auth_server, protected):
    async with gatewayish(store) as gw:
        from local_mcp_gateway.oauth import redirect_uri

        auth_server.add_client("gateway-app", "s3cret-value-for-tests", redirect_uri(gw.public_url))
        server = remote_server(protected.url, client_id="gateway-app", client_secret="s3cret-value-for-tests")
        async with gw.upstream(server) as upstream:
            assert (await open_login(await wait_auth_url(upstream))).status_code == 200
            await wait_state(upstream, UpstreamState.READY)
    assert "client" not in stored(store, protected.url), "nothing registered: the configured client is used"
    assert b"s3cret" not in b"".join(p.read_bytes() for p in store.state_dir.rglob("*.age"))


def test_storage_hands_back_an_expired_token_for_refresh(store):
    from mcp.shared.auth import OAuthToken

    now = [1000.0]
    storage = StateTokenStorage(store, "x-1", clock=lambda: now[0])
    anyio.run(storage.set_tokens, OAuthToken(access_token="a" * 20, expires_in=100, refresh_token="r" * 20))
    assert anyio.run(storage.get_tokens).access_token == "a" * 20
    now[0] += 60  # past the refresh point (half of a short lifetime)
    token = anyio.run(storage.get_tokens)
    assert token.access_token == "" and token.refresh_token == "r" * 20
    summary = token_summary(store, "x-1", now[0])
    assert summary["authorized"] and summary["refreshable"] and summary["expires_at"].startswith("1970-01-01T00:18")
    assert "a" * 20 not in repr(storage) + repr(summary)


def test_no_key_is_a_clear_error(tmp_path):
    with pytest.raises(SecretError, match="MCP_GATEWAY_AGE_KEY"):
        StateStore(tmp_path, None, [])  # type: ignore[arg-type]


def test_manager_repr_and_status_hold_no_tokens(store):
    manager = OAuthManager(store, "http://127.0.0.1:1/")
    assert manager.redirect_uri == "http://127.0.0.1:1/oauth/callback"
    assert manager.status() == {}
    assert "127.0.0.1" in repr(manager)
