"""`/metrics` of a real gateway process: refusals by reason, bounded names, scrapes during reloads, listeners."""

from __future__ import annotations

import threading
import time

import anyio
import httpx2
import pytest
import yaml

from tests.conftest import fixture_server, free_port, mcp_client
from tests.observability.conftest import metric_values, scrape, series, wait_for

pytestmark = pytest.mark.anyio

UNKNOWN_NAMES = 10_000
UNKNOWN_DEADLINE = 500.0
"""Seconds the 10,000 calls may take at most (the loop stops there and the test fails)."""
WORKERS = 16
"""Requests in flight at once (one session): on a loaded machine each takes tens of milliseconds."""

ACCEPT = "application/json, text/event-stream"


def unknown_request(index: int) -> dict:
    """A request naming something no catalog has: a tool, a prompt or a resource, in turn."""
    kind = index % 3
    if kind == 0:
        return {"method": "tools/call", "params": {"name": f"made_up_{index}", "arguments": {}}}
    if kind == 1:
        return {"method": "prompts/get", "params": {"name": f"made_up_{index}"}}
    return {"method": "resources/read", "params": {"uri": f"file:///made/up/{index}"}}


def open_session(base: str, slug: str, client: httpx2.Client) -> dict[str, str]:
    """Initialize a 2025-11-25 session over plain HTTP; the headers later requests need."""
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    response = client.post(f"{base}/mcp/{slug}", json=body, headers={"accept": ACCEPT})
    assert response.status_code == 200, response.text
    headers = {"accept": ACCEPT, "mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    client.post(f"{base}/mcp/{slug}", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


async def test_refused_requests_are_counted_by_reason(config_repo, gateway_factory):
    config_repo.write_gateway(
        security={"api_keys": ["k-0123456789abcdef"], "rate_limit": {"requests_per_minute": 3, "include_loopback": True},
                  "max_request_bytes": 2048}
    )
    config_repo.write_profile("team", {"echo": fixture_server("echo_server.py")})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("team")
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with httpx2.Client(timeout=10) as http:
        assert http.post(url, json=ping, headers={"accept": ACCEPT, "host": "evil.example:80"}).status_code == 421
        assert http.post(url, content=b"x" * 4096, headers={"authorization": "Bearer k-0123456789abcdef"}).status_code == 413
        codes = [http.post(url, json=ping, headers={"accept": ACCEPT}).status_code for _ in range(4)]
    assert codes[-1] == 429 and set(codes[:-1]) <= {401, 429}
    values = scrape(gateway.base_url)
    for reason, count in (("auth", codes.count(401)), ("host", 1), ("size", 1), ("rate_limit", codes.count(429))):
        assert series(values, "mcp_gateway_requests_refused_total", profile="team", reason=reason) == count, reason
    assert "k-0123456789abcdef" not in httpx2.get(f"{gateway.base_url}/metrics").text


@pytest.mark.timeout(UNKNOWN_DEADLINE + 100)
async def test_ten_thousand_unknown_tool_names_make_no_new_series(config_repo, gateway_factory):
    config_repo.write_profile("team", {"echo": fixture_server("echo_server.py")})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("team")) as client:
        assert (await client.call_tool("echo__echo", {"text": "x"})).content[0].text == "x"
    before = {key for key in scrape(gateway.base_url) if key[0].startswith("mcp_server_operation")}

    deadline = time.monotonic() + UNKNOWN_DEADLINE
    with httpx2.Client(timeout=30) as http:
        headers = open_session(gateway.base_url, "team", http)
    answered = 0

    async def worker(http: httpx2.AsyncClient, indices: range) -> None:
        nonlocal answered
        for index in indices:
            assert time.monotonic() < deadline, f"only {answered} calls within {UNKNOWN_DEADLINE} s"
            response = await http.post(
                gateway.url("team"), json={"jsonrpc": "2.0", "id": index + 1, **unknown_request(index)}, headers=headers
            )
            assert response.status_code == 200 and "error" in response.json()
            answered += 1

    async with httpx2.AsyncClient(timeout=30) as http, anyio.create_task_group() as tg:
        for start in range(WORKERS):
            tg.start_soon(worker, http, range(start, UNKNOWN_NAMES, WORKERS))
    assert answered == UNKNOWN_NAMES
    text = httpx2.get(f"{gateway.base_url}/metrics").text
    assert "made_up_" not in text and "/made/up/" not in text
    after = metric_values(text)
    new = {key for key in after if key[0].startswith("mcp_server_operation")} - before
    # Exactly one new series per method (each its `_unknown` name), whatever the 10,000 names were.
    count_series = sorted(dict(labels)["mcp_method_name"] for name, labels in new if name.endswith("_count"))
    assert count_series == ["prompts/get", "resources/read", "tools/call"]
    assert {dict(labels)["gen_ai_tool_name"] for _, labels in new} == {"_unknown"}
    for method in ("tools/call", "prompts/get", "resources/read"):
        total = series(after, "mcp_server_operation_duration_seconds_count", mcp_method_name=method, gen_ai_tool_name="_unknown")
        assert total == len([i for i in range(UNKNOWN_NAMES) if ["tools/call", "prompts/get", "resources/read"][i % 3] == method])


async def test_scrapes_during_reloads_always_answer_and_reloads_are_counted(config_repo, gateway_factory):
    config_repo.write_profile("team", {"echo": fixture_server("echo_server.py")})
    gateway = gateway_factory(config_repo.path)
    failures: list[str] = []
    scrapes = 0
    stop = threading.Event()

    def scrape_loop() -> None:
        nonlocal scrapes
        with httpx2.Client(timeout=10) as http:
            while not stop.is_set() and scrapes < 5000:
                response = http.get(f"{gateway.base_url}/metrics")
                if response.status_code != 200 or not response.text.endswith("\n"):
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                else:
                    metric_values(response.text)  # parses
                scrapes += 1

    scraper = threading.Thread(target=scrape_loop, daemon=True)
    scraper.start()
    try:
        config_repo.write_profile(
            "team", {"echo": fixture_server("echo_server.py"), "more": fixture_server("echo_server.py", "--name", "more")}
        )
        config_repo.write_profile("other", {"echo": fixture_server("echo_server.py")})
        # The two writes are one reload or two, as the watcher sees them.
        wait_for(lambda: series(scrape(gateway.base_url), "mcp_gateway_config_generation") >= 2)
        wait_for(lambda: series(scrape(gateway.base_url), "mcp_gateway_upstream_up", profile="other") == 1)
        generation = series(scrape(gateway.base_url), "mcp_gateway_config_generation")
        (config_repo.root / "profiles" / "broken.yaml").write_text("servers: [not, a, mapping\n")
        wait_for(lambda: series(scrape(gateway.base_url), "mcp_gateway_reloads_total", outcome="failed") == 1)
    finally:
        stop.set()
        scraper.join(30)
    assert not failures, failures[:3]
    values = scrape(gateway.base_url)
    assert series(values, "mcp_gateway_reloads_total", outcome="applied") >= 1
    assert series(values, "mcp_gateway_config_generation") == generation  # the broken file changed nothing
    assert series(values, "mcp_gateway_upstream_up", profile="team", server="more") == 1
    assert scrapes > 0


async def test_metrics_on_their_own_listener_and_switched_off(config_repo, gateway_factory):
    port = free_port()
    config_repo.write_gateway(metrics={"listen": {"host": "127.0.0.1", "port": port}})
    config_repo.write_profile("team", {"echo": fixture_server("echo_server.py")})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("team")) as client:
        await client.call_tool("echo__echo", {"text": "x"})
    assert httpx2.get(f"{gateway.base_url}/metrics", timeout=10).status_code == 404
    own = scrape(f"http://127.0.0.1:{port}")
    assert series(own, "mcp_server_operation_duration_seconds_count", gen_ai_tool_name="echo__echo") == 1
    assert httpx2.get(f"http://127.0.0.1:{port}/status", timeout=10).status_code == 404  # only metrics there
    assert gateway.stop() == 0

    config_repo.write_gateway(metrics={"enabled": False})
    off = gateway_factory(config_repo.path)
    async with mcp_client(off.url("team")) as client:
        assert (await client.call_tool("echo__echo", {"text": "y"})).content[0].text == "y"
    response = httpx2.get(f"{off.base_url}/metrics", timeout=10)
    assert response.status_code == 404 and "metrics are off" in response.json()["message"]


def test_metrics_settings_are_validated(config_repo):
    from local_mcp_gateway.cli import main

    config_repo.write_gateway(metrics={"listen": {"host": "127.0.0.1"}})
    assert main(["validate", "--config", str(config_repo.path)]) == 1
    config_repo.write_gateway(metrics={"listen": {"host": "127.0.0.1", "port": 9464}, "enabled": True})
    assert main(["validate", "--config", str(config_repo.path)]) == 0
    assert yaml.safe_load(config_repo.path.read_text())["metrics"]["listen"]["port"] == 9464
