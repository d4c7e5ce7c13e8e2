"""The event stream of a real gateway process, read with a plain HTTP client: what it sends, and that a page
going away ends its stream on the server (no loop left running per closed tab)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2
import pytest

from tests.conftest import ConfigRepo, mcp_client
from tests.ui.conftest import ui_env

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

DEADLINE = 60.0


async def read_events(lines: Any, wanted: int) -> list[tuple[str, Any]]:
    """The next `wanted` events from the stream's line iterator."""
    events: list[tuple[str, Any]] = []
    name = None
    async for line in lines:
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: ") and name:
            events.append((name, json.loads(line[len("data: "):])))
            if len(events) >= wanted:
                break
    return events


async def test_status_and_traffic_arrive_and_a_closed_page_ends_its_stream(
    config_repo: ConfigRepo, gateway_factory: Any
) -> None:
    config_repo.write_gateway(logging={"level": "debug", "traffic": {"enabled": True}})
    config_repo.write_profile("team", {"hostile": {"module": "dashboard_upstream:hostile"}})
    gateway = gateway_factory(config_repo.path, env=ui_env())
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60)) as http:
        async with http.stream("GET", f"{gateway.base_url}/ui/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            first = await read_events(lines, 2)
            assert [name for name, _ in first] == ["status", "traffic"]
            status = first[0][1]
            assert status["generation"] == 1 and status["servers"]["team/hostile"]["state"] == "ready"
            async with mcp_client(gateway.url("team")) as client:
                await client.call_tool("hostile__inject", {"text": "x"})
            [(_, data)] = await read_events(lines, 1)
            while not any(row["name"] == "hostile__inject" for row in data.get("rows", [])):
                [(_, data)] = await read_events(lines, 1)
            row = next(row for row in data["rows"] if row["name"] == "hostile__inject")
            assert row["server"] == "hostile" and row["outcome"] == "ok"
            assert [s["tool"] for s in data["stats"]] == ["hostile__inject"]
    deadline = time.monotonic() + DEADLINE
    while "dashboard event stream closed" not in gateway.log():
        assert time.monotonic() < deadline, "the server kept the stream of a closed page running"
        time.sleep(0.1)
    assert gateway.log().count("dashboard event stream opened") == 1


async def test_an_open_page_does_not_hold_up_a_shutdown(config_repo: ConfigRepo, gateway_factory: Any) -> None:
    config_repo.write_gateway(logging={"level": "debug"})
    config_repo.write_profile("team", {"clock": {"module": "local_mcp_gateway.examples.clock:server"}})
    gateway = gateway_factory(config_repo.path, env=ui_env())
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60)) as http:
        async with http.stream("GET", f"{gateway.base_url}/ui/events") as response:
            lines = response.aiter_lines()
            await read_events(lines, 1)
            gateway.process.terminate()
            async for _ in lines:  # the server ends the stream itself, without waiting for Hypercorn's grace period
                pass
    assert gateway.process.wait(30) == 0
    assert "dashboard event stream ended: the gateway is stopping" in gateway.log()


async def test_a_foreign_host_is_refused_by_the_serving_gateway(config_repo: ConfigRepo, gateway_factory: Any) -> None:
    config_repo.write_profile("team", {"clock": {"module": "local_mcp_gateway.examples.clock:server"}})
    gateway = gateway_factory(config_repo.path, env=ui_env())
    async with httpx2.AsyncClient(timeout=30) as http:
        for path in ("/ui/", "/ui/events", "/ui/profiles/team/export.json"):
            response = await http.get(f"{gateway.base_url}{path}", headers={"Host": "rebind.attacker.example:80"})
            assert response.status_code == 421, path
            assert "clock" not in response.text
        assert (await http.get(f"{gateway.base_url}/ui/profiles/team/export.json")).status_code == 200
