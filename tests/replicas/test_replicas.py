"""Three gateway processes sharing one configuration and one state folder behind HAProxy (the shipped example):
2026-07-28 calls spread over all replicas and survive a replica being killed with one retry; 2025-line sessions
stick to their replica, and get 404 elsewhere so that their clients start anew; a symlink swap reaches all three."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.conftest import fixture_server, mcp_client
from tests.gateway.test_supervision import wait_for
from tests.replicas.cluster import Cluster, haproxy_binary, new_cluster

pytestmark = pytest.mark.anyio

REPLICAS = 3
MODERN = "2026-07-28"
CALL_TIMEOUT = 20.0
"""Bound on one call (a call caught on the killed replica fails fast or times out here)."""
LOAD_TIMEOUT = 180.0
"""Bound on the whole load phase."""
MODERN_WORKERS, MODERN_CALLS = 4, 40
SESSION_WORKERS, SESSION_CALLS = 3, 30
KILL_AFTER = 40
"""Successful calls (all clients together) before one replica is killed."""
SWAP_WAIT = 30.0
"""Bound on a symlink swap reaching every replica (measured figures are in docs/deployment.md, not asserted)."""

PROFILES = {"p": {"a": fixture_server("echo_server.py", "--name", "a")}}
JSON_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def cluster(tmp_path: Path):
    haproxy_binary()
    running = new_cluster(tmp_path, {"version": 1}, PROFILES)
    try:
        running.start(REPLICAS, tmp_path)
        running.start_lb(tmp_path)
        yield running
    finally:
        running.stop()


def modern_body(tool: str, request_id: int = 1) -> dict[str, Any]:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "load", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": tool, "arguments": {}, "_meta": meta}}


def answer_of(response: httpx2.Response) -> dict[str, Any] | None:
    if response.status_code != 200:
        return None
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and '"result"' in line:
                return json.loads(line[5:])
        return None
    return response.json()


async def modern_pid(http: httpx2.AsyncClient, url: str) -> int | None:
    """One 2026-07-28 call of `a__pid`; the pid of the echo server of the replica that answered, or None."""
    headers = {**JSON_HEADERS, "Mcp-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "a__pid"}
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            response = await http.post(url, headers=headers, json=modern_body("a__pid"))
    except (httpx2.HTTPError, TimeoutError):
        return None
    answer = answer_of(response)
    if answer is None or "result" not in answer or answer["result"].get("isError"):
        return None
    return int(answer["result"]["content"][0]["text"])


async def replica_pids(cluster: Cluster) -> list[int]:
    """The echo server's pid behind each replica, asked directly (not through the load balancer)."""
    async with httpx2.AsyncClient() as http:
        pids = [await modern_pid(http, gateway.url("p")) for gateway in cluster.gateways]
    assert all(pids), pids
    return pids  # type: ignore[return-value]


async def test_a_session_unknown_to_a_replica_gets_404_never_500(cluster: Cluster) -> None:
    first, second = cluster.gateways[0], cluster.gateways[1]
    # A session opened by hand on the first replica, so its id is known to the test.
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    opened = httpx2.post(first.url("p"), headers=JSON_HEADERS, json=init, timeout=30)
    session_id = opened.headers["mcp-session-id"]
    headers = {**JSON_HEADERS, "Mcp-Session-Id": session_id, "Mcp-Protocol-Version": "2025-11-25"}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "a__whoami", "arguments": {}}}
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx2.post(first.url("p"), headers=headers, json=note, timeout=30).status_code == 202
    assert httpx2.post(first.url("p"), headers=headers, json=call, timeout=30).status_code == 200
    other = second.url("p")
    assert httpx2.post(other, headers=headers, json=call, timeout=30).status_code == 404
    assert httpx2.post(other, headers=headers, json=note, timeout=30).status_code == 404
    assert httpx2.delete(other, headers=headers, timeout=30).status_code == 404
    with httpx2.stream("GET", other, headers={**headers, "Accept": "text/event-stream"}, timeout=30) as stream:
        assert stream.status_code == 404
    for gateway in cluster.gateways:
        assert "Traceback" not in gateway.log()


async def test_a_symlink_swap_reaches_every_replica(cluster: Cluster) -> None:
    before = [g.status() for g in cluster.gateways]
    assert len({(s["config_digest"], s["config_commit"]) for s in before}) == 1
    started = time.monotonic()
    commit = cluster.publish({"version": 1}, {**PROFILES, "q": {"b": fixture_server("echo_server.py", "--name", "b")}})

    def agreed() -> bool:
        statuses = [g.status() for g in cluster.gateways]
        return all(s["config_commit"] == commit for s in statuses) and len({s["config_digest"] for s in statuses}) == 1

    wait_for(agreed, timeout=SWAP_WAIT, interval=0.02)
    print(f"symlink swap seen by all {REPLICAS} replicas after {time.monotonic() - started:.2f} s")
    assert before[0]["config_digest"] != cluster.gateways[0].status()["config_digest"]
    async with mcp_client(f"{cluster.lb_url}/mcp/q") as client:
        assert (await client.call_tool("b__whoami", {})).content[0].text == "b"


async def test_a_replica_killed_under_load(cluster: Cluster) -> None:
    pids = await replica_pids(cluster)
    replica_of = {pid: n for n, pid in enumerate(pids)}
    url = f"{cluster.lb_url}/mcp/p"
    done = {"calls": 0}
    kill_now, killed = anyio.Event(), anyio.Event()
    modern: dict[str, Any] = {"lost": 0, "retried": 0, "replicas": set(), "ok": 0}
    sessions: list[dict[str, int]] = [{"calls": 0, "restarts": 0} for _ in range(SESSION_WORKERS)]
    first_session_replica: dict[str, int] = {}

    def count() -> None:
        done["calls"] += 1
        if done["calls"] >= KILL_AFTER:
            kill_now.set()

    async def modern_worker() -> None:
        async with httpx2.AsyncClient() as http:
            for _ in range(MODERN_CALLS):
                pid = await modern_pid(http, url)
                if pid is None:  # caught on the killed replica: one retry
                    modern["retried"] += 1
                    pid = await modern_pid(http, url)
                if pid is None:
                    modern["lost"] += 1
                else:
                    modern["ok"] += 1
                    if not killed.is_set():
                        modern["replicas"].add(replica_of.get(pid))
                    count()
                await anyio.sleep(0.01)

    async def session_worker(n: int) -> None:
        record = sessions[n]
        while record["calls"] < SESSION_CALLS:
            try:
                async with mcp_client(url) as client:
                    with anyio.fail_after(CALL_TIMEOUT):
                        pid = int((await client.call_tool("a__pid", {})).content[0].text)
                    first_session_replica.setdefault(str(n), replica_of[pid])
                    while record["calls"] < SESSION_CALLS:
                        with anyio.fail_after(CALL_TIMEOUT):
                            result = await client.call_tool("a__whoami", {})
                        assert result.content[0].text == "a"
                        record["calls"] += 1
                        count()
                        await anyio.sleep(0.01)
            except Exception:  # the session's replica went away: 404 (or a broken stream), start a new one
                record["restarts"] += 1
                if record["restarts"] > 5:
                    raise

    async def killer() -> None:
        await kill_now.wait()
        # The replica holding the first session, so at least one 2025-line client must start anew.
        with anyio.fail_after(CALL_TIMEOUT):
            while "0" not in first_session_replica:
                await anyio.sleep(0.01)
        cluster.kill(cluster.gateways[first_session_replica["0"]])
        killed.set()

    with anyio.fail_after(LOAD_TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            for _ in range(MODERN_WORKERS):
                tg.start_soon(modern_worker)
            for n in range(SESSION_WORKERS):
                tg.start_soon(session_worker, n)

    victim = first_session_replica["0"]
    print(f"killed replica {victim}; 2026-07-28: {modern['ok']} calls, {modern['retried']} retried; "
          f"2025 sessions restarted: {[s['restarts'] for s in sessions]}")
    assert killed.is_set()
    assert modern["lost"] == 0 and modern["ok"] == MODERN_WORKERS * MODERN_CALLS
    assert modern["replicas"] == set(range(REPLICAS))  # round robin reached every replica before the kill
    assert all(s["calls"] == SESSION_CALLS for s in sessions)
    assert sessions[0]["restarts"] >= 1
    for n, gateway in enumerate(cluster.gateways):
        if n != victim:
            assert gateway.status()["ready"]
            assert "Traceback" not in gateway.log()
