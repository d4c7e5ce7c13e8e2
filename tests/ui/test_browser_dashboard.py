"""The dashboard in a real browser (headless Chromium over the DevTools protocol) against a real gateway process.

What a person sees: profile names, a tool of each server, a failed server's error, a Unicode server name;
that markup in tool descriptions stays text; that the traffic table fills live and filters; that nothing a
secret holds reaches the page, its scripts, its event stream or its requests; and no console errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local_mcp_gateway.secrets import Identity
from tests.conftest import ConfigRepo, fixture_server, mcp_client
from tests.ui.browser import Browser, Tab
from tests.ui.conftest import DOCS, save_screenshots, secret_value, team_profile, ui_env, write_secret
from tests.ui.dashboard_upstream import HOSTILE_DESCRIPTION

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]


async def all_text_seen(tab: Tab) -> str:
    """Everything the browser got or sent: DOM, response bodies (HTML, JS, CSS, JSON), event-stream messages,
    request URLs, headers and bodies."""
    parts = [await tab.html(), *await tab.response_bodies(), *tab.recorded.sse_messages]
    for request in tab.recorded.requests:
        parts += [request["url"], json.dumps(request["headers"]), request["postData"]]
    for response in tab.recorded.responses.values():
        parts.append(json.dumps(response["headers"]))
    return "\n".join(parts)


async def test_overview_and_profile_pages_show_the_gateway_as_it_serves(
    config_repo: ConfigRepo, gateway_factory: Any, browser: Browser, tmp_path: Path
) -> None:
    identity = Identity.generate()
    api_key, env_token = secret_value("uikey"), secret_value("envtok")
    write_secret(config_repo, identity, "team_key", api_key)
    write_secret(config_repo, identity, "echo_token", env_token)
    config_repo.write_gateway(secrets={"recipients": [identity.recipient]}, logging={"traffic": {"enabled": True}})
    team_profile(config_repo, api_keys=["${secret:team_key}"], description="Team tools",
                 extra={"echo": {**fixture_server("echo_server.py"), "env": {"ECHO_TOKEN": "${secret:echo_token}"}}})
    config_repo.write_profile("solo", {"clock": {"module": "local_mcp_gateway.examples.clock:server"}})
    gateway = gateway_factory(config_repo.path, env=ui_env(identity))

    # Traffic before the page opens, and more while it is open.
    headers = {"Authorization": f"Bearer {api_key}"}
    async with mcp_client(gateway.url("team"), headers=headers) as client:
        await client.call_tool("echo__echo", {"text": "hello"})
        await client.call_tool("echo__fail", {})

    tab = await browser.new_tab()
    await tab.navigate(f"{gateway.base_url}/ui/")
    await tab.wait_for("document.getElementById('live').textContent === 'live'")
    text = await tab.text()
    for expected in ("team", "solo", "Team tools", "wörterbuch", "hostile", "echo", "broken", "clock"):
        assert expected in text, expected
    await tab.wait_for("document.body.innerText.includes(\"cannot start '/nonexistent/mcp-server-for-ui-test'\")")
    state = await tab.evaluate("document.querySelector('tr[data-server-key=\"team/broken\"] [data-field=state]').textContent")
    assert state in ("starting", "failed")

    # The traffic table: rows recorded before the page opened, then one made while it is open.
    await tab.wait_for("document.querySelectorAll('#traffic-body tr').length >= 2")
    async with mcp_client(gateway.url("team"), headers=headers) as client:
        await client.call_tool("w_rterbuch__nachschlagen", {"wort": "Straße"})
    await tab.wait_for("[...document.querySelectorAll('#traffic-body tr')].some(r => r.dataset.name === 'w_rterbuch__nachschlagen')")
    stats = await tab.evaluate("[...document.querySelectorAll('#stats-body tr')].map(r => r.innerText)")
    assert any("echo__echo" in row and "echo" in row for row in stats), stats
    # Filter by outcome: only the tool error stays visible among the tool calls.
    await tab.evaluate("(() => { const s = document.getElementById('filter-outcome'); s.value = 'tool_error';"
                       " s.dispatchEvent(new Event('change')); })()")
    shown = await tab.evaluate("[...document.querySelectorAll('#traffic-body tr')].filter(r => !r.hidden).map(r => r.dataset.name)")
    assert shown == ["echo__fail"], shown
    await tab.evaluate("(() => { const s = document.getElementById('filter-outcome'); s.value = '';"
                       " s.dispatchEvent(new Event('change')); const f = document.getElementById('filter-server');"
                       " f.value = 'wörterbuch'; f.dispatchEvent(new Event('change')); })()")
    shown = await tab.evaluate("[...document.querySelectorAll('#traffic-body tr')].filter(r => !r.hidden).map(r => r.dataset.name)")
    assert shown == ["w_rterbuch__nachschlagen"], shown
    if save_screenshots():
        await tab.evaluate("(() => { const f = document.getElementById('filter-server'); f.value = '';"
                           " f.dispatchEvent(new Event('change')); })()")
        await tab.screenshot(DOCS / "ui-overview.png", height=1100)

    # The profile page: a tool of each serving server, the hostile description as text, client setup.
    await tab.navigate(f"{gateway.base_url}/ui/profiles/team")
    await tab.wait_for("document.getElementById('live').textContent === 'live'")
    text = await tab.text()
    for tool in ("w_rterbuch__nachschlagen", "hostile__inject", "echo__echo"):
        assert tool in text, tool
    assert HOSTILE_DESCRIPTION in text  # shown as the characters it is made of
    assert await tab.evaluate("typeof window.__pwned") == "undefined"
    assert await tab.evaluate("document.querySelectorAll('li.tool img, li.tool script, li.tool b').length") == 0
    assert "gruss" in text and "wort://liste" in text
    setup = await tab.evaluate("document.getElementById('setup-cursor').textContent")
    assert json.loads(setup)["mcpServers"]["gateway-team"]["headers"] == {"Authorization": "Bearer ${env:LOCAL_MCP_GATEWAY_KEY}"}
    exported = await tab.evaluate("fetch('/ui/profiles/team/export.json').then(r => r.json())")
    assert {t["server"] for t in exported["tools"]} >= {"wörterbuch", "hostile", "echo"}
    if save_screenshots():
        await tab.screenshot(DOCS / "ui-profile.png", height=1000)

    assert tab.recorded.console_errors == []
    seen = await all_text_seen(tab)
    assert "echo__echo" in seen  # the search below covers the real traffic
    for value in (api_key, env_token, identity.reveal()):
        assert value not in seen


async def test_a_profile_with_two_thousand_tools_pages_and_searches(
    config_repo: ConfigRepo, gateway_factory: Any, browser: Browser
) -> None:
    config_repo.write_profile("big", {"many": {"module": "dashboard_upstream:many", "prefix": ""}})
    gateway = gateway_factory(config_repo.path, env=ui_env())
    tab = await browser.new_tab()
    await tab.navigate(f"{gateway.base_url}/ui/profiles/big")
    assert "showing 1–50 of 2000" in await tab.text()
    assert await tab.evaluate("document.querySelectorAll('li.tool').length") == 50
    await tab.click("nav.pager a")
    await tab.wait_for("document.body.innerText.includes('showing 51–100 of 2000')")
    assert await tab.evaluate("document.querySelector('li.tool code').textContent") == "tool_0050"
    await tab.evaluate("document.querySelector('form.search input').value = 'number 1999 of'")
    await tab.click("form.search button")
    await tab.wait_for("document.body.innerText.includes('showing 1–1 of 1 matching')")
    assert await tab.evaluate("[...document.querySelectorAll('li.tool code')].map(c => c.textContent)") == ["tool_1999"]
    assert tab.recorded.console_errors == []
