"""The whole MCP authorization flow against the gateway, with real parts: a real OpenID provider (npm
`oidc-provider`, on the Node 22 of `.ci/setup-node.sh`), the SDK client's `OAuthClientProvider`, and a login
completed by posting the provider's development login and consent forms over HTTP.

From the gateway's 401 on, the client finds everything by itself: the RFC 9728 metadata named in
`WWW-Authenticate`, the provider's metadata, dynamic registration, then authorization code with PKCE and the
RFC 8707 resource; the JWT access token it gets lists and calls tools, seeing only what its scopes allow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

from tests.conformance.clients.token_memory import MemoryStorage
from tests.conftest import REPO, free_port
from tests.identity.conftest import IDENTITY_TESTS, Upstream, start_team_gateway

pytestmark = pytest.mark.anyio

NODE = REPO / ".ci" / "node" / "node_modules" / "node" / "bin" / "node"
OIDC_PREFIX = REPO / ".ci" / "node-extra" / "oidc"
PROVIDER_SCRIPT = IDENTITY_TESTS / "oidc_provider.mjs"
REDIRECT_URI = "http://127.0.0.1:9/callback"
"""Never contacted: the test reads the code from the provider's redirect instead of following it."""
START_TIMEOUT = 60.0
BROWSER_STEPS = 20
"""Redirects and forms a login may take before the test gives up."""


def _need_provider() -> None:
    missing = [str(p) for p in (NODE, OIDC_PREFIX / "node_modules" / "oidc-provider") if not p.exists()]
    if not missing:
        return
    message = f"missing {', '.join(missing)}: run .ci/setup-node.sh and .ci/setup-oidc.sh"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[str]:
    """A running oidc-provider; yields its issuer URL. Stopped (its process group) afterwards."""
    _need_provider()
    port = free_port()
    env = {**os.environ, "NODE_PATH": str(OIDC_PREFIX / "node_modules"), "PATH": f"{NODE.parent}{os.pathsep}{os.environ['PATH']}"}
    # ESM ignores NODE_PATH: run the script from inside the prefix so `import 'oidc-provider'` resolves there.
    script = OIDC_PREFIX / "identity_test_provider.mjs"
    shutil.copyfile(PROVIDER_SCRIPT, script)
    log = (tmp_path / "oidc.log").open("w")
    process = subprocess.Popen(
        [str(NODE), str(script), str(port)], stdout=subprocess.PIPE, stderr=log, text=True, env=env, start_new_session=True
    )
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("READY "):
                found.append(line.split(" ", 1)[1].strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    try:
        if not found:
            raise AssertionError(f"oidc-provider did not start:\n{(tmp_path / 'oidc.log').read_text()}")
        yield found[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(10)
        log.close()


class _Forms(HTMLParser):
    """The forms of a page: action, method and the named inputs with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"action": values.get("action") or "", "method": (values.get("method") or "get").lower(), "fields": {}})
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1]["fields"][values["name"]] = values.get("value") or ""


async def log_in(authorization_url: str, login: str) -> AuthorizationCodeResult:
    """Be the person at the browser: follow the provider's redirects, fill its login and consent forms."""
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
        response = await browser.get(authorization_url)
        for _ in range(BROWSER_STEPS):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(REDIRECT_URI):
                    query = parse_qs(urlsplit(target).query)
                    assert "error" not in query, query
                    return AuthorizationCodeResult(
                        code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
                    )
                response = await browser.get(target)
                continue
            assert response.status_code == 200, (response.status_code, response.text[:2000])
            parser = _Forms()
            parser.feed(response.text)
            assert parser.forms, response.text[:2000]
            form = parser.forms[0]
            fields = dict(form["fields"])
            if "login" in fields:
                fields.update(login=login, password="any password")
            response = await browser.post(urljoin(str(response.url), form["action"]), data=fields)
        raise AssertionError("the login did not come back to the redirect URI")


async def test_the_sdk_client_logs_in_from_the_401_and_sees_its_own_tools(
    config_repo: Any, gateway_factory: Any, upstream: Upstream, provider: str
) -> None:
    team = start_team_gateway(
        config_repo, gateway_factory, upstream, provider, access=[{"tools": ["up__boom", "up__fail"], "scopes": ["github"]}]
    )
    storage = MemoryStorage()
    authorization: list[str] = []

    async def redirect_handler(url: str) -> None:
        authorization.append(url)

    async def callback_handler() -> AuthorizationCodeResult:
        return await log_in(authorization[-1], login="alice")

    auth = OAuthClientProvider(
        server_url=team.resource,
        client_metadata=OAuthClientMetadata(
            client_name="identity test",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30, read=120)) as http:
        async with streamable_http_client(team.resource, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                names = {tool.name for tool in (await session.list_tools()).tools}
                echoed = await session.call_tool("up__echo", {"text": "logged in"})
                with pytest.raises(MCPError) as hidden:
                    await session.call_tool("up__boom", {})
                with pytest.raises(MCPError) as unknown:
                    await session.call_tool("up__nonexistent", {})

    assert len(authorization) == 1, "exactly one interactive login"
    assert storage.client is not None and storage.client.client_id, "the client registered itself"
    assert storage.tokens is not None
    token = storage.tokens.access_token
    assert token.count(".") == 2, "a JWT access token"

    assert "up__echo" in names
    assert "up__boom" not in names and "up__fail" not in names, "tools of the github rule are hidden without that scope"
    assert echoed.content[0].text == "logged in"  # type: ignore[union-attr]
    assert hidden.value.error.message == "Unknown tool: up__boom", "a hidden tool is refused like an unknown one"
    assert hidden.value.error.code == unknown.value.error.code
    calls = [line for line in team.audit_lines() if line["method"] == "tools/call"]
    assert [(c["caller"], c["name"], c["outcome"]) for c in calls] == [
        ("alice", "up__echo", "ok"),
        ("alice", "up__boom", "denied"),
        ("alice", "up__nonexistent", "error"),
    ]
    assert token not in team.gateway.log()
    assert all("authorization" not in request["headers"] for request in upstream.requests())
