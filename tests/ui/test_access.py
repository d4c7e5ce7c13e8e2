"""Who may open /ui/, and what every answer carries: the real dashboard app behind the gateway's ASGI front,
with a real configuration (secrets decrypted from age files), driven in-process so callers can come from a
non-loopback address without leaving 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from local_mcp_gateway.app import GatewayASGI, create_app
from local_mcp_gateway.gateway import Gateway
from local_mcp_gateway.generation import build_generation
from local_mcp_gateway.secrets import Identity
from local_mcp_gateway.settings import EnvSettings
from local_mcp_gateway.ui.access import SESSION_COOKIE
from tests.conftest import ConfigRepo
from tests.ui.conftest import secret_value, write_secret

pytestmark = pytest.mark.anyio

LOCAL = ("127.0.0.1", 50000)
REMOTE = ("192.0.2.10", 50000)
ORIGIN = "http://127.0.0.1:8080"
HOST = "127.0.0.1:8080"


def loaded_gateway(config_repo: ConfigRepo, identity: Identity | None = None) -> Gateway:
    settings = EnvSettings(age_key=identity.reveal()) if identity is not None else EnvSettings()
    gateway = Gateway(config_repo.path, settings, watch=False)
    gateway.load_first()
    return gateway


@asynccontextmanager
async def client(gateway: Gateway, address: tuple[str, int] = LOCAL) -> AsyncIterator[httpx2.AsyncClient]:
    app = GatewayASGI(gateway, create_app(gateway))
    transport = httpx2.ASGITransport(app=app, client=address)
    async with httpx2.AsyncClient(transport=transport, base_url=f"http://{HOST}") as http:
        yield http


def html(**headers: str) -> dict[str, str]:
    return {"Accept": "text/html", **headers}


@pytest.fixture
def repo(config_repo: ConfigRepo) -> ConfigRepo:
    config_repo.write_profile("team", {"clock": {"module": "local_mcp_gateway.examples.clock:server"}})
    return config_repo


async def test_every_answer_carries_the_policy_and_loopback_is_open_by_default(repo: ConfigRepo) -> None:
    gateway = loaded_gateway(repo)
    async with client(gateway) as http:
        for path in ("/ui/", "/ui/profiles/nope", "/ui/static/ui.js", "/ui/api/status"):
            response = await http.get(path, headers=html())
            policy = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
        page = await http.get("/ui/", headers=html())
        assert page.status_code == 200 and "config digest" in page.text
        assert "The traffic log is off" in page.text
        assert "<script>" not in page.text and " on" + "click=" not in page.text  # no inline script at all
        assert page.text.count("<script") == 1 and 'src="/ui/static/ui.js"' in page.text


async def test_a_foreign_host_or_origin_is_refused(repo: ConfigRepo) -> None:
    gateway = loaded_gateway(repo)
    async with client(gateway) as http:
        assert (await http.get("/ui/", headers={"Host": "attacker.example:8080"})).status_code == 421
        assert (await http.get("/ui/", headers={"Host": "attacker.example"})).status_code == 421
        refused = await http.get("/ui/api/status", headers={"Origin": "http://attacker.example"})
        assert refused.status_code == 403 and refused.json()["error"] == "origin_not_allowed"
        assert (await http.get("/ui/api/status", headers={"Origin": ORIGIN})).status_code == 200


async def test_the_connect_action_needs_post_json_and_the_pages_own_origin(repo: ConfigRepo) -> None:
    gateway = loaded_gateway(repo)
    body = {"profile": "team", "server": "clock"}
    async with client(gateway) as http:
        assert (await http.get("/ui/oauth/connect")).status_code == 405
        no_origin = await http.post("/ui/oauth/connect", json=body)
        assert no_origin.status_code == 403 and no_origin.json()["error"] == "origin_not_allowed"
        foreign = await http.post("/ui/oauth/connect", json=body, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        cross_site = await http.post("/ui/oauth/connect", json=body,
                                     headers={"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"})
        assert cross_site.status_code == 403
        form = await http.post("/ui/oauth/connect", data=body, headers={"Origin": ORIGIN})
        assert form.status_code == 415  # a cross-site HTML form cannot send application/json
        own = await http.post("/ui/oauth/connect", json=body, headers={"Origin": ORIGIN})
        assert own.status_code == 404 and "oauth" in own.json()["message"]  # reached the action: no oauth here
        proxied = await http.post("/ui/oauth/connect", json=body, headers={"Origin": "https://gw.example.com"})
        assert proxied.status_code == 403

    # Behind a TLS-terminating proxy the browser's origin is public_url's.
    repo.write_gateway(public_url="https://gw.example.com")
    async with client(loaded_gateway(repo)) as http:
        proxied = await http.post("/ui/oauth/connect", json=body, headers={"Origin": "https://gw.example.com"})
        assert proxied.status_code == 404


async def test_other_addresses_need_an_admin_key_or_a_sign_in(repo: ConfigRepo) -> None:
    identity = Identity.generate()
    admin_key = secret_value("admin")
    write_secret(repo, identity, "ui_admin", admin_key)
    repo.write_gateway(secrets={"recipients": [identity.recipient]}, ui={"admin_keys": ["${secret:ui_admin}"]})
    gateway = loaded_gateway(repo, identity)
    async with client(gateway, REMOTE) as http:
        assert (await http.get("/ui/api/status")).status_code == 401
        to_sign_in = await http.get("/ui/", headers=html())
        assert to_sign_in.status_code == 303 and to_sign_in.headers["location"] == "/ui/sign-in"
        form = await http.get("/ui/sign-in", headers=html())
        assert form.status_code == 200 and 'type="password"' in form.text
        assert "generation" not in form.text  # nothing about the gateway before signing in
        assert (await http.get("/ui/static/ui.js")).status_code == 200  # the form's own script and style
        assert (await http.get("/ui/api/status", headers={"Authorization": "Bearer wrong"})).status_code == 401
        bearer = await http.get("/ui/api/status", headers={"Authorization": f"Bearer {admin_key}"})
        assert bearer.status_code == 200

        assert (await http.post("/ui/sign-in", data={"key": admin_key})).status_code == 403  # no Origin
        wrong = await http.post("/ui/sign-in", data={"key": "nope"}, headers={"Origin": ORIGIN})
        assert wrong.status_code == 401 and SESSION_COOKIE not in wrong.cookies
        signed = await http.post("/ui/sign-in", data={"key": admin_key}, headers={"Origin": ORIGIN})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
        assert admin_key not in cookie
        token = signed.cookies[SESSION_COOKIE]
        page = await http.get("/ui/", headers=html(), cookies={SESSION_COOKIE: token})
        assert page.status_code == 200 and admin_key not in page.text

        # A new generation without that key ends the session.
        repo.write_gateway(ui={"admin_keys": ["${secret:ui_admin_2}"]})
        write_secret(repo, identity, "ui_admin_2", secret_value("admin2"))
        gateway.generation_info = build_generation(repo.path, gateway.settings, 2)
        assert (await http.get("/ui/api/status", cookies={SESSION_COOKIE: token})).status_code == 401

    async with client(gateway, LOCAL) as http:
        assert (await http.get("/ui/api/status")).status_code == 200  # loopback still needs no key


async def test_without_admin_keys_other_addresses_are_refused_and_loopback_can_be_closed(repo: ConfigRepo) -> None:
    gateway = loaded_gateway(repo)
    async with client(gateway, REMOTE) as http:
        refused = await http.get("/ui/api/status")
        assert refused.status_code == 403 and "loopback" in refused.json()["message"]
    repo.write_gateway(ui={"loopback": False})
    gateway = loaded_gateway(repo)
    async with client(gateway, LOCAL) as http:
        assert (await http.get("/ui/api/status")).status_code == 403
    repo.write_gateway(ui={"enabled": False, "loopback": True})
    gateway = loaded_gateway(repo)
    async with client(gateway, LOCAL) as http:
        assert (await http.get("/ui/", headers=html())).status_code == 404
        assert (await http.get("/healthz")).status_code == 200


async def test_the_dashboard_is_not_loaded_until_asked_for(repo: ConfigRepo) -> None:
    """Not at startup; and with `ui.enabled: false`, not even when /ui/ is asked for."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from local_mcp_gateway.gateway import Gateway\n"
        "from local_mcp_gateway.app import GatewayASGI, create_app\n"
        "from local_mcp_gateway.settings import EnvSettings\n"
        f"g = Gateway(__import__('pathlib').Path({str(repo.path)!r}), EnvSettings(), watch=False); g.load_first()\n"
        "import asyncio, httpx2\n"
        "app = GatewayASGI(g, create_app(g))\n"
        "print(sorted(m for m in sys.modules if m.startswith('local_mcp_gateway.ui')))\n"
        "async def ask():\n"
        "    transport = httpx2.ASGITransport(app=app)\n"
        "    async with httpx2.AsyncClient(transport=transport, base_url='http://127.0.0.1:8080') as http:\n"
        "        print((await http.get('/ui/')).status_code)\n"
        "asyncio.run(ask())\n"
        "print(sorted(m for m in sys.modules if m.startswith('local_mcp_gateway.ui')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    before, status, after = out.stdout.split("\n")[:3]
    assert before == "[]" and status == "200" and "'local_mcp_gateway.ui.routes'" in after, out.stdout
    repo.write_gateway(ui={"enabled": False})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split("\n")[:3] == ["[]", "404", "[]"], out.stdout


async def test_admin_keys_cannot_be_guessed_at_speed(repo: ConfigRepo) -> None:
    identity = Identity.generate()
    admin_key = secret_value("admin")
    write_secret(repo, identity, "ui_admin", admin_key)
    repo.write_gateway(secrets={"recipients": [identity.recipient]}, ui={"admin_keys": ["${secret:ui_admin}"]})
    gateway = loaded_gateway(repo, identity)
    async with client(gateway, REMOTE) as http:
        codes = []
        for attempt in range(100):  # 10 a minute: the limit shows long before 100, however slow the machine
            wrong = await http.post("/ui/sign-in", data={"key": f"guess-{attempt}"}, headers={"Origin": ORIGIN})
            codes.append(wrong.status_code)
            if wrong.status_code == 429:
                assert int(wrong.headers["retry-after"]) >= 1
                break
        assert codes[:10] == [401] * 10 and codes[-1] == 429
        limited = await http.get("/ui/api/status", headers={"Authorization": f"Bearer {admin_key}"})
        assert limited.status_code == 429  # the right key waits too, until the minute has passed
    async with client(gateway, ("192.0.2.11", 50000)) as http:  # another address is not affected
        assert (await http.get("/ui/api/status", headers={"Authorization": f"Bearer {admin_key}"})).status_code == 200
