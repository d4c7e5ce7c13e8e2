"""Each client meets the server as a direct connection would show it: under `protocol: auto`, towards a server of
both lines, session clients go over a handshake connection and 2026-07-28 clients over a 2026-07-28 one; and
the bad inputs around that choice (a server that refuses 2026-07-28 after answering `server/discover`, one that
changes its answer across restarts, a client that switches lines within one session, a question asked after
the client's round was abandoned)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
import pytest

from tests.conftest import fixture_server, mcp_client
from tests.gateway.test_modern import MODERN, call, envelope, post

pytestmark = pytest.mark.anyio

DEADLINE = 60.0
"""Generous bound for polls on a loaded machine."""


def text_of(response: dict[str, Any]) -> str:
    assert "result" in response, response
    return "\n".join(block.get("text", "") for block in response["result"].get("content", []))


def wait_for(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {DEADLINE} s (last: {last!r})")


def server_status(gateway: Any, name: str = "echo") -> dict[str, Any]:
    return gateway.status()["profiles"]["p"]["servers"][name]


def all_ready(gateway: Any) -> None:
    wait_for(lambda: all(s["state"] == "ready" for s in gateway.status()["profiles"]["p"]["servers"].values()),
             "every server of the profile to be ready")


async def answer_elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": "from the session client"})


async def session_call(url: str, tool: str, arguments: dict[str, Any] | None = None) -> str:
    callbacks = {"elicitation_callback": answer_elicitation} if tool != "question_outcomes" else {}
    async with mcp_client(url, **callbacks) as session:
        result = await session.call_tool(tool, arguments or {})
        return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_each_client_meets_the_line_it_speaks(config_repo, gateway_factory):
    """The echo server answers server/discover but asks with server-initiated requests, like most mcp 2.x servers."""
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py"), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")

    # A session client is asked the server's own question, as a request, as a direct connection would ask it.
    answered = await session_call(url, "ask", {"question": "colour?"})
    assert json.loads(answered) == {"action": "accept", "content": {"answer": "from the session client"}}

    # The two lines are two connections (for a stdio server, two processes), the catalog is the first one's.
    session_pid = await session_call(url, "pid")
    modern_pid = text_of(call(url, "pid", {}))
    assert session_pid.isdigit() and modern_pid.isdigit() and session_pid != modern_pid
    status = server_status(gateway)
    assert status["protocol"] == "2026-07-28" and status["handshake_connection"] == "ready", status

    # A 2026-07-28 client meets the server's 2026-07-28 line, as it would directly: no back-channel there.
    refused = call(url, "ask", {"question": "colour?"})
    assert refused.get("result", {}).get("resultType") != "input_required", refused


async def test_pinned_servers_speak_one_line_to_everyone(config_repo, gateway_factory):
    config_repo.write_profile("p", {
        "echo": {**fixture_server("echo_server.py"), "prefix": "", "protocol": "handshake"},
        "modern": {**fixture_server("echo_server.py"), "prefix": "m", "protocol": "modern"},
    })
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    all_ready(gateway)
    assert await session_call(url, "pid") == text_of(call(url, "pid", {}))
    assert await session_call(url, "m__pid") == text_of(call(url, "m__pid", {}))
    assert server_status(gateway)["protocol"] == "handshake"
    modern = server_status(gateway, "modern")
    assert modern["protocol"] == "2026-07-28" and "handshake_connection" not in modern, modern


async def test_protocol_modern_towards_a_handshake_only_server_fails_with_a_clear_error(
    config_repo, gateway_factory, tmp_path
):
    missing = tmp_path / "never-created"
    config_repo.write_profile("p", {"old": {
        **fixture_server("echo_server.py", "--discover-file", str(missing)), "protocol": "modern",
    }})
    gateway = gateway_factory(config_repo.path)
    status = wait_for(lambda: (s := server_status(gateway, "old"))["error"] and s, "the start to fail")
    assert "protocol: modern" in status["error"] and "server/discover" in status["error"], status


async def test_a_server_that_refuses_2026_after_discover_is_spoken_to_on_the_handshake_line(
    config_repo, gateway_factory
):
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py", "--refuse-modern"), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    status = wait_for(lambda: (s := server_status(gateway))["state"] == "ready" and s, "the server to be ready")
    assert status["protocol"] == "handshake", status
    assert "refused a 2026-07-28 request" in status["protocol_note"], status
    assert status["tools"] > 0
    # Both kinds of client are served: the session client directly, the 2026-07-28 one through rounds.
    assert json.loads(await session_call(url, "ask", {"question": "?"}))["action"] == "accept"
    assert text_of(call(url, "echo", {"text": "hi"})) == "hi"
    assert call(url, "ask", {"question": "?"})["result"]["resultType"] == "input_required"


async def test_a_server_that_changes_its_discover_answer_across_restarts(config_repo, gateway_factory, tmp_path):
    flag = tmp_path / "speaks-2026"
    flag.touch()
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py", "--discover-file", str(flag)),
                                             "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    first_pid = int(text_of(call(url, "pid", {})))
    assert int(await session_call(url, "pid")) != first_pid
    assert server_status(gateway)["protocol"] == "2026-07-28"

    # The server restarts as a handshake-only server: one connection again, for both kinds of client.
    flag.unlink()
    os.kill(first_pid, signal.SIGKILL)
    wait_for(lambda: server_status(gateway).get("protocol") == "handshake", "a reconnection on the handshake line")
    session_pid = int(await session_call(url, "pid"))
    assert session_pid == int(text_of(call(url, "pid", {}))) != first_pid
    assert wait_for(lambda: server_status(gateway).get("handshake_connection") is None
                    or server_status(gateway)["handshake_connection"] == "stopped", "the second connection to close")
    # The 2026-07-28 client now gets the server's questions as rounds the gateway makes.
    assert call(url, "ask", {"question": "?"})["result"]["resultType"] == "input_required"

    # And back: speaking 2026-07-28 again after the next restart, the session client gets a second connection.
    flag.touch()
    os.kill(session_pid, signal.SIGKILL)
    wait_for(lambda: server_status(gateway).get("protocol") == "2026-07-28", "a reconnection on 2026-07-28")
    assert json.loads(await session_call(url, "ask", {"question": "?"}))["action"] == "accept"
    assert int(await session_call(url, "pid")) != int(text_of(call(url, "pid", {})))


async def test_a_client_switching_lines_within_one_session_gets_each_request_served_on_its_line(
    config_repo, gateway_factory
):
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py"), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "switcher", "version": "1"}}}
    opened = httpx2.post(url, headers=headers, json=initialize, timeout=30)
    session_id = opened.headers["mcp-session-id"]
    session_headers = {**headers, "Mcp-Session-Id": session_id, "Mcp-Protocol-Version": "2025-11-25"}
    httpx2.post(url, headers=session_headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                timeout=30)

    def session_pid() -> str:
        body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "pid", "arguments": {}}}
        response = httpx2.post(url, headers=session_headers, json=body, timeout=30)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            line = next(line for line in response.text.splitlines() if line.startswith("data:"))
            return text_of(json.loads(line[5:]))
        return text_of(response.json())

    on_session = session_pid()
    # The same session id on a 2026-07-28 request: served as the 2026-07-28 request it is, on that line.
    switched = post(url, "tools/call", {"name": "pid", "arguments": {}, "_meta": envelope()}, name="pid",
                    headers={"Mcp-Session-Id": session_id})
    assert text_of(switched) == text_of(call(url, "pid", {})) != on_session
    assert session_pid() == on_session  # and the session goes on, on its own line


async def test_a_question_asked_after_the_round_was_abandoned_is_answered_with_an_error(
    config_repo, gateway_factory
):
    """A server that keeps waiting for its question when its call is given up gets an error, not silence."""
    config_repo.write_gateway(security={"input_round_hold_seconds": 1})  # no retry comes: given up after 1 s
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py"), "prefix": "", "protocol": "handshake"}})
    gateway = gateway_factory(config_repo.path)
    url = gateway.url("p")
    first = call(url, "ask_stubborn", {"question": "colour?"})["result"]
    assert first["resultType"] == "input_required"
    # The first question was pending when the hold ended; the second is asked after it ended. (Polled by a
    # session client without the elicitation capability: a question reaching it is refused, never left waiting.)
    with anyio.fail_after(DEADLINE):
        while (outcomes := await session_call(url, "question_outcomes")).count("error") < 2:
            await anyio.sleep(0.1)
    lines = outcomes.splitlines()
    assert len(lines) == 2 and all(line.startswith("error") for line in lines), lines
    assert "input_required" in lines[0], lines


async def test_a_session_client_gets_resource_updates_of_a_legacy_server_of_both_lines(config_repo, gateway_factory):
    """The legacy fixture sends resources/updated as a notification, which only its handshake line carries."""
    config_repo.write_profile("p", {"legacy": {**fixture_server("conformance_legacy.py"), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    updated = anyio.Event()
    seen: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            seen.append(str(message.params.uri))
            updated.set()

    async with mcp_client(gateway.url("p"), message_handler=on_message) as session:
        await session.subscribe_resource("test://watched-resource")
        result = await session.call_tool("test_update_watched_resource", {})
        assert "Sent resources/updated" in result.content[0].text, result
        with anyio.fail_after(DEADLINE):
            await updated.wait()
    assert seen == ["test://watched-resource"]


@pytest.mark.parametrize("protocol", ["auto", "handshake"])
async def test_two_replicas_serve_the_legacy_fixture_on_the_2026_line(config_repo, gateway_factory, protocol):
    """Under `auto` a 2026-07-28 client meets the legacy fixture's own 2026-07-28 line (its questions fail there, as
    directly); pinned to the handshake line, the gateway's rounds start on one replica and end on the other."""
    from local_mcp_gateway.secrets import Identity

    config_repo.write_profile("p", {"legacy": {**fixture_server("conformance_legacy.py"), "prefix": "",
                                               "protocol": protocol}})
    env = {"MCP_GATEWAY_AGE_KEY": Identity.generate().reveal()}
    first = gateway_factory(config_repo.path, env=env)
    second = gateway_factory(config_repo.path, env=env)
    assert text_of(call(second.url("p"), "test_simple_text", {})) == "This is a simple text response for testing."
    asked = call(first.url("p"), "test_elicitation", {"message": "who?"})["result"]
    if protocol == "auto":
        assert asked.get("isError") is True and "Elicitation failed" in text_of({"result": asked}), asked
        return
    assert asked["resultType"] == "input_required"
    (key, question), = asked["inputRequests"].items()
    assert question["method"] == "elicitation/create" and question["params"]["message"] == "who?"
    answer = {key: {"action": "accept", "content": {"username": "ada", "email": "ada@example.org"}}}
    done = call(second.url("p"), "test_elicitation", {"message": "who?"}, inputResponses=answer,
                requestState=asked["requestState"])["result"]
    assert done["resultType"] == "complete"
    assert "User response: action=accept" in text_of({"result": done}) and "ada" in text_of({"result": done})
