"""The dashboard follows the gateway while it is open: a reload brings the new generation onto the page, a
broken reload shows its file and line, and Connect completes an OAuth login against a real authorization
server (tests/oauth/servers.py), after which the server shows ready with its tools. Signing in with an admin
key works in a real browser and leaves only a session cookie behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from local_mcp_gateway.secrets import Identity
from tests.conftest import ConfigRepo, free_port
from tests.oauth.conftest import issued_values
from tests.oauth.servers import AuthServer, ProtectedMcpServer, ThreadedServer
from tests.ui.browser import Browser
from tests.ui.conftest import DOCS, save_screenshots, secret_value, ui_env, write_secret
from tests.ui.test_browser_dashboard import all_text_seen

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


async def test_an_open_page_follows_reloads_and_shows_a_failed_one(
    config_repo: ConfigRepo, gateway_factory: Any, browser: Browser
) -> None:
    config_repo.write_profile("team", {"clock": {"module": "local_mcp_gateway.examples.clock:server"}})
    gateway = gateway_factory(config_repo.path, env=ui_env())
    profile_tab = await browser.new_tab()
    await profile_tab.navigate(f"{gateway.base_url}/ui/profiles/team")
    overview_tab = await browser.new_tab()
    await overview_tab.navigate(f"{gateway.base_url}/ui/")
    for tab in (profile_tab, overview_tab):
        await tab.wait_for("document.getElementById('live').textContent === 'live'")
    assert "hostile__inject" not in await profile_tab.text()

    # A valid change: both pages move to generation 2 by themselves; the profile page lists the new tools.
    config_repo.write_profile("team", {"clock": {"module": "local_mcp_gateway.examples.clock:server"},
                                       "hostile": {"module": "dashboard_upstream:hostile"}})
    await profile_tab.wait_for("document.body.dataset.generation === '2' && document.body.innerText.includes('hostile__inject')")
    await overview_tab.wait_for("document.body.dataset.generation === '2' && !!document.querySelector('tr[data-server-key=\"team/hostile\"]')")

    # An invalid change: generation 2 keeps serving, and the overview says where the error is.
    (config_repo.root / "profiles" / "team.yaml").write_text("servers:\n  clock: {module: 42}\n")
    await overview_tab.wait_for("!document.getElementById('reload-error').hidden")
    shown = await overview_tab.evaluate("document.getElementById('reload-error').innerText")
    assert "team.yaml:2" in shown, shown
    assert await overview_tab.evaluate("document.body.dataset.generation") == "2"
    for tab in (profile_tab, overview_tab):
        assert tab.recorded.console_errors == []


@pytest.fixture
def auth_server() -> Iterator[AuthServer]:
    server = AuthServer()
    with ThreadedServer(server.app()) as running:
        server.base_url = running.base_url
        yield server


@pytest.fixture
def protected(auth_server: AuthServer) -> Iterator[ProtectedMcpServer]:
    server = ProtectedMcpServer(auth_server, "linear")
    running = ThreadedServer(server.app())
    server.base_url = running.base_url
    running.start()
    yield server
    running.stop()


async def test_connect_completes_an_oauth_login(
    config_repo: ConfigRepo, gateway_factory: Any, browser: Browser, auth_server: AuthServer,
    protected: ProtectedMcpServer,
) -> None:
    port = free_port()
    identity = Identity.generate()
    config_repo.write_gateway(public_url=f"http://127.0.0.1:{port}")
    config_repo.write_profile("work", {"linear": {"url": protected.url, "oauth": {"scopes": ["read"]}},
                                       "clock": {"module": "local_mcp_gateway.examples.clock:server"}})
    gateway = gateway_factory(config_repo.path, env=ui_env(identity), port=port)
    tab = await browser.new_tab()
    await tab.navigate(f"{gateway.base_url}/ui/")
    row = "tr[data-server-key=\"work/linear\"]"
    await tab.wait_for(f"!document.querySelector('{row} button.connect').hidden")
    assert await tab.evaluate(f"document.querySelector('{row} [data-field=state]').textContent") == "needs_auth"
    if save_screenshots():
        await tab.screenshot(DOCS / "ui-connect.png", height=600)

    await tab.click(f"{row} button.connect")
    await tab.wait_for(f"document.querySelector('{row} [data-connect-result]').textContent.startsWith('Connected')")
    assert await tab.evaluate(f"document.querySelector('{row} [data-field=state]').textContent") == "ready"
    assert await tab.evaluate(f"document.querySelector('{row} button.connect').hidden")
    assert tab.recorded.popups, "the login opened in a window of its own"
    if save_screenshots():
        await tab.screenshot(DOCS / "ui-connected.png", height=520)
    assert gateway.status()["profiles"]["work"]["servers"]["linear"]["state"] == "ready"

    connect = [r for r in tab.recorded.requests if r["url"].endswith("/ui/oauth/connect")]
    assert [r["method"] for r in connect] == ["POST"]
    # The gateway takes the POST only with the page's own Origin (tests/ui/test_access.py), so this one had it.
    assert tab.recorded.responses[connect[0]["id"]]["status"] == 200
    assert tab.recorded.console_errors == []
    tokens = issued_values(auth_server)
    assert tokens, "the authorization server issued tokens"
    seen = await all_text_seen(tab)
    for token in [*tokens, identity.reveal()]:
        assert token not in seen


async def test_signing_in_with_an_admin_key_keeps_the_key_out_of_everything_after(
    config_repo: ConfigRepo, gateway_factory: Any, browser: Browser
) -> None:
    identity = Identity.generate()
    admin_key = secret_value("uiadmin")
    write_secret(config_repo, identity, "ui_admin", admin_key)
    config_repo.write_gateway(secrets={"recipients": [identity.recipient]},
                              ui={"loopback": False, "admin_keys": ["${secret:ui_admin}"]})
    config_repo.write_profile("team", {"clock": {"module": "local_mcp_gateway.examples.clock:server"}})
    gateway = gateway_factory(config_repo.path, env=ui_env(identity))
    tab = await browser.new_tab()
    await tab.navigate(f"{gateway.base_url}/ui/")
    assert await tab.evaluate("location.pathname") == "/ui/sign-in"
    assert "team" not in await tab.text()
    await tab.evaluate(f"document.querySelector('input[name=key]').value = {admin_key!r}")
    await tab.click("form.sign-in button")
    await tab.wait_for("location.pathname === '/ui/' && document.getElementById('live').textContent === 'live'")
    assert "team" in await tab.text()
    assert await tab.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read the session
    sign_in = [r for r in tab.recorded.requests if r["method"] == "POST" and r["url"].endswith("/ui/sign-in")]
    assert len(sign_in) == 1  # the one request that carries the key, typed by the person
    others = [r for r in tab.recorded.requests if r is not sign_in[0]]
    assert others and all(admin_key not in r["url"] + json.dumps(r["headers"]) + r["postData"] for r in others)
    assert admin_key not in await tab.html()
    assert all(admin_key not in json.dumps(r["headers"]) for r in tab.recorded.responses.values())
    assert tab.recorded.console_errors == []
