"""OAuth with a state folder shared by replicas: a login started on one replica completes through another, an
expiring token is refreshed once for all of them (no refresh token reused), and a state folder that is briefly
unreachable does not cost the tokens held in memory."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from local_mcp_gateway.upstream.connection import UpstreamState
from tests.conftest import free_port
from tests.gateway.test_supervision import wait_for
from tests.oauth.conftest import (  # noqa: F401 - fixtures
    auth_server,
    authorize_only,
    call_whoami,
    gatewayish,
    identity,
    open_login,
    protected,
    remote_server,
    store,
    wait_state,
)
from tests.replicas.cluster import Cluster, haproxy_binary, new_cluster
from tests.replicas.test_replicas import JSON_HEADERS, MODERN, answer_of, modern_body

pytestmark = pytest.mark.anyio

REPLICAS = 3
TOKEN_LIFETIME = 12
"""Seconds the test authorization server's access tokens live: due for refresh after half (6 s)."""
SETTLE = 60.0
"""Bound on logins, connections and the wait for the token to come due (polled, never asserted on)."""


def server_status(gateway: Any) -> dict[str, Any]:
    return gateway.status()["profiles"]["p"]["servers"]["linear"]


async def call_protected(url: str) -> str | None:
    headers = {**JSON_HEADERS, "Mcp-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "linear__whoami"}
    async with httpx2.AsyncClient(timeout=SETTLE) as http:
        answer = answer_of(await http.post(url, headers=headers, json=modern_body("linear__whoami")))
    if answer is None or "result" not in answer or answer["result"].get("isError"):
        return None
    return answer["result"]["content"][0]["text"]


@pytest.fixture
def oauth_cluster(tmp_path: Path, auth_server, protected):  # noqa: F811
    haproxy_binary()
    auth_server.token_lifetime = TOKEN_LIFETIME
    lb_port = free_port()
    gateway = {"version": 1, "public_url": f"http://127.0.0.1:{lb_port}",
               "servers": {"linear": {"url": protected.url, "oauth": {"scopes": ["read"]}}}}
    running = new_cluster(tmp_path, gateway, {"p": {"linear": {}}})
    running.lb_port = lb_port
    try:
        running.start(REPLICAS, tmp_path)
        running.start_lb(tmp_path)
        yield running
    finally:
        running.stop()


async def test_one_login_for_all_replicas_and_one_refresh(oauth_cluster: Cluster, auth_server) -> None:  # noqa: F811
    gateways = oauth_cluster.gateways
    urls = [wait_for(lambda g=g: server_status(g).get("auth_url"), timeout=SETTLE) for g in gateways]
    # The person approves the login replica 0 started; the browser's redirect reaches replica 1.
    params = await authorize_only(urls[0])
    page = httpx2.get(f"{gateways[1].base_url}/oauth/callback", params=params, timeout=SETTLE)
    assert page.status_code == 200 and "Login received" in page.text, page.text
    wait_for(lambda: all(server_status(g)["state"] == "ready" for g in gateways), timeout=SETTLE)
    for gateway in gateways:
        assert await call_protected(gateway.url("p")) == "protected"
    assert not list((oauth_cluster.state / "oauth" / "relay").glob("*.age"))

    # Every replica's cached token comes due together; they all call at once.
    with auth_server.lock:
        due = max(issued.expires_at for issued in auth_server.access.values()) - TOKEN_LIFETIME / 2
    wait_for(lambda: time.time() > due + 0.1, timeout=SETTLE)
    attempts = auth_server.refresh_attempts
    answers: list[str | None] = []

    async def call(gateway: Any) -> None:
        answers.append(await call_protected(gateway.url("p")))

    async with anyio.create_task_group() as tg:
        for gateway in gateways:
            tg.start_soon(call, gateway)
    assert answers == ["protected"] * REPLICAS
    assert auth_server.refresh_attempts - attempts == 1
    assert auth_server.refresh_count >= 1
    for gateway in gateways:
        assert server_status(gateway)["state"] == "ready"
        log = gateway.log()
        assert "refused the refresh token" not in log and "Traceback" not in log


async def test_an_unreachable_state_folder_keeps_the_tokens_in_memory(store, auth_server, protected):  # noqa: F811
    auth_server.token_lifetime = 600
    async with gatewayish(store) as gw, gw.upstream(remote_server(protected.url)) as upstream:
        url = await wait_state(upstream, UpstreamState.NEEDS_AUTH) or upstream.auth_url
        page = await open_login(url)
        assert page.status_code == 200, page.text
        await wait_state(upstream, UpstreamState.READY)
        assert await call_whoami(upstream) == "protected"

        away = store.state_dir.with_name("state-away")
        os.rename(store.state_dir, away)
        store.state_dir.write_text("the volume is not mounted")  # reads below it fail (not a folder)
        try:
            for _ in range(3):
                assert await call_whoami(upstream) == "protected"
            assert upstream.state == UpstreamState.READY
        finally:
            store.state_dir.unlink()
            os.rename(away, store.state_dir)
        assert await call_whoami(upstream) == "protected"
        assert auth_server.authorize_count == 1  # no new login was asked for
