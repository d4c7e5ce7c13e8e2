"""OAuth through a real gateway process: login from /status, tools appearing live, restarts, nothing leaked.

A `local-mcp-gateway run` process serves one profile holding an OAuth-protected remote server (the real
authorization server and protected MCP server of `tests/oauth/servers.py`, on 127.0.0.1) next to the ordinary
echo fixture over stdio. The gateway's `public_url` is its own address, so the authorization server redirects to
the gateway's `/oauth/callback`; an httpx2 client following the authorize URL shown in `/status` plays the
person's browser. A connected SDK client session watches the protected server's tools arrive.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
import mcp.types as types
import pyrage
import pytest

from local_mcp_gateway.oauth import CALLBACK_PATH
from local_mcp_gateway.secrets import Identity
from tests.conftest import ConfigRepo, GatewayProcess, fixture_server, free_port, mcp_client
from tests.oauth.conftest import issued_values
from tests.oauth.servers import AuthServer, ProtectedMcpServer

pytestmark = pytest.mark.anyio

PROFILE = "work"
PROTECTED = "linear"
"""The protected server's name in the profile (and its tool prefix)."""
ECHO = "echo"

SETTLE_TIMEOUT = 30.0
"""Longest wait for a server state, a notice or a login page (the tests poll; nothing asserts on time)."""

POLL_INTERVAL = 0.05
"""Seconds between looks at /status or at the collected notices."""

LONG_TOKEN_LIFETIME = 600
"""Seconds an access token lives when a test wants it still fresh after a restart."""

STATUS_TIMEOUT = 10.0
"""Seconds one GET /status may take."""


# --------------------------------------------------------------------------------------------- setup


def write_config(config_repo: ConfigRepo, protected: ProtectedMcpServer, port: int) -> Path:
    """gateway.yaml with `public_url` at the gateway's own address, and the profile with both servers."""
    config_repo.write_profile(PROFILE, {
        ECHO: fixture_server("echo_server.py"),
        PROTECTED: {"url": protected.url, "oauth": {"scopes": ["read"]}},
    })
    return config_repo.write_gateway(public_url=f"http://127.0.0.1:{port}")


def gateway_env() -> dict[str, str]:
    """A fresh age key (the state files are encrypted to it) and debug logging, so a leak would show."""
    return {"MCP_GATEWAY_AGE_KEY": Identity.generate().reveal(), "MCP_GATEWAY_LOG_LEVEL": "debug"}


async def status_of(gateway: GatewayProcess) -> dict[str, Any]:
    """GET /status without blocking the event loop (a client session reads its stream meanwhile)."""
    async with httpx2.AsyncClient(timeout=STATUS_TIMEOUT) as http:
        response = await http.get(f"{gateway.base_url}/status")
    assert response.status_code == 200, response.text
    return response.json()


def server_status(status: dict[str, Any], name: str = PROTECTED) -> dict[str, Any]:
    return status["profiles"][PROFILE]["servers"][name]


async def wait_server(gateway: GatewayProcess, *states: str, name: str = PROTECTED) -> dict[str, Any]:
    """Poll /status until server `name` is in one of `states` (bounded); returns the whole status."""
    with anyio.fail_after(SETTLE_TIMEOUT):
        while True:
            status = await status_of(gateway)
            entry = server_status(status, name)
            if entry.get("state") in states and (entry["state"] != "needs_auth" or entry.get("auth_url")):
                return status
            assert gateway.process.poll() is None, f"the gateway exited:\n{gateway.log()}"
            await anyio.sleep(POLL_INTERVAL)


async def log_in(gateway: GatewayProcess, auth_url: str) -> httpx2.Response:
    """What a browser does: open the authorize URL and follow the redirect to the gateway's callback."""
    with anyio.fail_after(SETTLE_TIMEOUT):
        async with httpx2.AsyncClient(follow_redirects=True, timeout=SETTLE_TIMEOUT) as http:
            page = await http.get(auth_url)
    assert str(page.url).startswith(f"{gateway.base_url}{CALLBACK_PATH}?"), page.url
    assert [r.status_code for r in page.history] == [302]
    return page


async def start_and_log_in(gateway_factory: Any, config: Path, port: int, env: dict[str, str],
                           auth_server: AuthServer) -> GatewayProcess:
    """Start a gateway, complete the login shown in /status, wait until the protected server is ready."""
    gateway = gateway_factory(config, env=env, port=port)
    status = await wait_server(gateway, "needs_auth")
    page = await log_in(gateway, server_status(status)["auth_url"])
    assert page.status_code == 200 and "Logged in" in page.text, page.text
    await wait_server(gateway, "ready")
    assert auth_server.authorize_count == 1
    return gateway


class ToolNotices:
    """Counts the `notifications/tools/list_changed` one client session receives."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.count += 1

    async def wait_beyond(self, seen: int) -> None:
        """Wait (bounded) until more than `seen` notices arrived."""
        with anyio.fail_after(SETTLE_TIMEOUT):
            while self.count <= seen:
                await anyio.sleep(POLL_INTERVAL)


async def tool_names(client: Any) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def text_of(client: Any, tool: str, arguments: dict[str, Any] | None = None) -> str:
    result = await client.call_tool(tool, arguments or {})
    assert not result.is_error, result
    return result.content[0].text


def assert_no_token_text(state_dir: Path, texts: list[str], auth_server: AuthServer) -> None:
    """No access or refresh token the authorization server ever issued is in `state/oauth` or in `texts`."""
    files = [path for path in sorted((state_dir / "oauth").rglob("*")) if path.is_file()]
    assert files, "tokens, client registration and metadata are stored under state/oauth"
    raw = b"".join(path.read_bytes() for path in files)
    tokens = issued_values(auth_server)
    assert tokens, "the authorization server issued tokens"
    for token in tokens:
        assert token.encode() not in raw, "a token is readable in state/oauth"
        for text in texts:
            assert token not in text, "a token appears in the gateway's output"


def stored_token_text(state_dir: Path, age_key: str) -> str:
    """The decrypted tokens file(s) under state/oauth (proves the token checks above are not vacuous)."""
    identity = pyrage.x25519.Identity.from_str(age_key)
    paths = sorted((state_dir / "oauth").glob("*/tokens.age"))
    assert paths, "a tokens file is stored under state/oauth"
    return "".join(pyrage.decrypt(path.read_bytes(), [identity]).decode() for path in paths)


# --------------------------------------------------------------------------------------------- tests


async def test_login_through_the_gateway_brings_the_tools_to_a_connected_session(
    config_repo: ConfigRepo, gateway_factory: Any, auth_server: AuthServer, protected: ProtectedMcpServer
) -> None:
    port = free_port()
    config = write_config(config_repo, protected, port)
    gateway = gateway_factory(config, env=gateway_env(), port=port)

    # 1. Until authorized: needs_auth with the URL to open; the echo server serves normally.
    status = await wait_server(gateway, "needs_auth")
    entry = server_status(status)
    auth_url = entry["auth_url"]
    assert auth_url.startswith(f"{auth_server.base_url}/oauth2/authorize?")
    query = {name: values[0] for name, values in parse_qs(urlparse(auth_url).query).items()}
    assert query["redirect_uri"] == f"{gateway.base_url}{CALLBACK_PATH}"
    assert query["resource"] == protected.url and query["scope"] == "read"
    assert query["code_challenge_method"] == "S256" and query["state"]
    (oauth_entry,) = [v for v in status["oauth"].values() if v["server"] == PROTECTED]
    assert oauth_entry["auth_url"] == auth_url and not oauth_entry["authorized"]
    await wait_server(gateway, "ready", name=ECHO)

    notices = ToolNotices()
    async with mcp_client(gateway.url(PROFILE), message_handler=notices) as client:
        before = await tool_names(client)
        assert f"{ECHO}__echo" in before
        assert not any(name.startswith(f"{PROTECTED}__") for name in before)
        assert await text_of(client, f"{ECHO}__echo", {"text": "before login"}) == "before login"
        seen = notices.count

        # 2. The login, completed over HTTP through the gateway's own callback.
        page = await log_in(gateway, auth_url)
        assert page.status_code == 200 and "Logged in" in page.text, page.text
        await notices.wait_beyond(seen)
        after = await tool_names(client)
        assert after - before == {f"{PROTECTED}__whoami"}
        assert await text_of(client, f"{PROTECTED}__whoami") == "protected"
        assert await text_of(client, f"{ECHO}__echo", {"text": "same session"}) == "same session"

    status = await wait_server(gateway, "ready")
    entry = server_status(status)
    assert "auth_url" not in entry and entry["tools"] == 1 and entry["error"] is None
    (oauth_entry,) = [v for v in status["oauth"].values() if v["server"] == PROTECTED]
    assert oauth_entry["authorized"] and oauth_entry["auth_url"] is None
    assert auth_server.authorize_count == 1

    # 4. Nothing readable: not in the state files, not in /status, not in the log.
    assert gateway.stop() == 0
    assert_no_token_text(config_repo.root / "state", [gateway.log(), str(status)], auth_server)


@pytest.mark.parametrize("token_lifetime", [LONG_TOKEN_LIFETIME, None], ids=["token-still-fresh", "token-expired"])
async def test_a_restarted_gateway_is_ready_without_a_new_login(
    config_repo: ConfigRepo, gateway_factory: Any, auth_server: AuthServer, protected: ProtectedMcpServer,
    token_lifetime: int | None,
) -> None:
    if token_lifetime is not None:
        auth_server.token_lifetime = token_lifetime
    port = free_port()
    config = write_config(config_repo, protected, port)
    env = gateway_env()
    first = await start_and_log_in(gateway_factory, config, port, env, auth_server)
    assert first.stop() == 0

    if token_lifetime is None:
        # Down until every access token issued so far has expired (they live TOKEN_LIFETIME seconds).
        with anyio.fail_after(SETTLE_TIMEOUT):
            while any(time.time() < issued.expires_at for issued in list(auth_server.access.values())):
                await anyio.sleep(POLL_INTERVAL)
    refreshes = auth_server.refresh_count

    # 3. The same state folder and key: ready from the encrypted state files, no second login.
    second = gateway_factory(config, env=env, port=port)
    status = await wait_server(second, "ready", "needs_auth", "failed")
    entry = server_status(status)
    assert entry["state"] == "ready", entry
    assert "auth_url" not in entry
    async with mcp_client(second.url(PROFILE)) as client:
        assert await text_of(client, f"{PROTECTED}__whoami") == "protected"
        assert await text_of(client, f"{ECHO}__echo", {"text": "hello"}) == "hello"
    assert auth_server.authorize_count == 1, "no second login"
    if token_lifetime is None:
        assert auth_server.refresh_count > refreshes, "the expired token was refreshed"
        assert set(auth_server.token_paths) == {"/oauth2/token"}, "refresh went to the discovered token endpoint"
    else:
        assert auth_server.refresh_count == refreshes == 0, "the stored access token was used as it was"

    # 4. Nothing readable after two runs, in the files or in either log.
    final = await status_of(second)
    assert second.stop() == 0
    state_dir = config_repo.root / "state"
    assert_no_token_text(state_dir, [first.log(), second.log(), str(final)], auth_server)
    stored = stored_token_text(state_dir, env["MCP_GATEWAY_AGE_KEY"])
    assert any(token in stored for token in issued_values(auth_server)), "the encrypted file holds a real token"
