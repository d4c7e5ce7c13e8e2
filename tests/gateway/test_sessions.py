"""Client sessions and per-session upstreams are bounded: at the cap the idlest one goes, nobody is locked out,
and /status counts what is open."""

from __future__ import annotations

import json

import anyio
import httpx2
import pytest

from tests.conftest import fixture_server, mcp_client
from tests.gateway.test_supervision import alive, wait_for

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "burst", "version": "0"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def open_session(http: httpx2.AsyncClient, url: str) -> tuple[int, str | None]:
    """A bare initialize (no notifications/initialized, no DELETE ever): the status and the session id."""
    response = await http.post(url, content=json.dumps(INITIALIZE), headers=HEADERS)
    return response.status_code, response.headers.get("mcp-session-id")


def profile_status(gateway) -> dict:
    return gateway.status()["profiles"]["p"]


async def test_at_the_session_cap_the_idlest_session_is_closed_not_the_newcomer(config_repo, gateway_factory):
    config_repo.write_gateway(security={"max_sessions": 5})
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py"), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    async with httpx2.AsyncClient(timeout=30) as http, mcp_client(url) as active:
        opened = [await open_session(http, url) for _ in range(3)]
        assert [status for status, _ in opened] == [200] * 3
        # Sessions that only initialized are counted too (1 active + 3).
        assert profile_status(gateway)["sessions"] == 4
        assert (await active.call_tool("echo", {"text": "busy"})).content[0].text == "busy"
        # A burst of sessions that never end, from one address, while one client keeps working.
        statuses = []
        for round_ in range(20):
            batch = [await open_session(http, url) for _ in range(2)]
            statuses.extend(status for status, _ in batch)
            assert (await active.call_tool("echo", {"text": f"round {round_}"})).content[0].text == f"round {round_}"
        assert statuses == [200] * 40, "new clients were refused at the session cap"
        status = profile_status(gateway)
        assert status["sessions"] == 5
        assert status["sessions_evicted"] >= 38
        # The oldest idle sessions are gone (404: the client initializes again); the active one still works.
        gone = await http.post(url, content=json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
                               headers={**HEADERS, "mcp-session-id": opened[0][1]})
        assert gone.status_code == 404
        assert (await active.call_tool("echo", {"text": "still here"})).content[0].text == "still here"


async def test_sessions_holding_get_streams_do_not_lock_a_profile(config_repo, gateway_factory):
    config_repo.write_gateway(security={"max_sessions": 3})
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py"), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    ended: list[str] = []
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120)) as http, anyio.create_task_group() as tg:

        async def hold(session_id: str, started: anyio.Event) -> None:
            async with http.stream("GET", url, headers={**HEADERS, "mcp-session-id": session_id}) as stream:
                started.set()
                async for _ in stream.aiter_bytes():
                    pass
            ended.append(session_id)

        holders = []
        for _ in range(3):
            status, session_id = await open_session(http, url)
            assert status == 200
            started = anyio.Event()
            tg.start_soon(hold, session_id, started)
            await started.wait()
            holders.append(session_id)
        # Every slot is held by an open GET stream; a new client still gets in, and the idlest holder is closed.
        status, _ = await open_session(http, url)
        assert status == 200
        with anyio.fail_after(60):
            while not ended:
                await anyio.sleep(0.05)
        assert ended == [holders[0]]
        assert profile_status(gateway)["sessions"] == 3
        tg.cancel_scope.cancel()


async def test_per_session_upstreams_are_capped_and_the_idlest_restarts_on_its_next_call(
    config_repo, gateway_factory
):
    config_repo.write_gateway(security={"max_per_session_upstreams": 2})
    config_repo.write_profile(
        "p", {"own": {**fixture_server("echo_server.py"), "isolation": "per_session", "prefix": ""}}
    )
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    async with mcp_client(url) as first, mcp_client(url) as second, mcp_client(url) as third:
        pid_one = int((await first.call_tool("pid", {})).content[0].text)
        pid_two = int((await second.call_tool("pid", {})).content[0].text)
        assert profile_status(gateway)["per_session_upstreams"] == 2
        pid_three = int((await third.call_tool("pid", {})).content[0].text)
        # The third started one more: the first (unused longest) was stopped, so two are alive.
        wait_for(lambda: not alive(pid_one), timeout=30)
        assert alive(pid_two) and alive(pid_three)
        status = profile_status(gateway)
        assert status["per_session_upstreams"] == 2 and status["servers"]["own"]["upstreams"] == 2
        # The first client's next call starts its upstream again (and the second, now idlest, makes room).
        new_pid = int((await first.call_tool("pid", {})).content[0].text)
        assert new_pid not in (pid_one, pid_two, pid_three)
        wait_for(lambda: not alive(pid_two), timeout=30)
        assert profile_status(gateway)["per_session_upstreams"] == 2


async def test_a_burst_of_initializes_from_one_address_stays_within_the_cap(config_repo, gateway_factory):
    config_repo.write_gateway(security={"max_sessions": 20})
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py"), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    statuses: list[int] = []
    limiter = anyio.CapacityLimiter(20)

    async def one(http: httpx2.AsyncClient) -> None:
        async with limiter:
            statuses.append((await open_session(http, url))[0])

    async with httpx2.AsyncClient(timeout=60, limits=httpx2.Limits(max_connections=20)) as http:
        async with anyio.create_task_group() as tg:
            for _ in range(400):
                tg.start_soon(one, http)
    assert statuses.count(200) == 400, f"refused: {sorted(set(statuses))}"
    status = wait_for(lambda: (s := profile_status(gateway))["sessions"] <= 20 and s, timeout=30)
    assert status["sessions"] == 20 and status["sessions_evicted"] == 380
    async with mcp_client(url) as client:
        assert (await client.call_tool("echo", {"text": "after the burst"})).content[0].text == "after the burst"
