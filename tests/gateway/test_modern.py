"""The stateless 2026-07-28 line on the same endpoints: discovery, calls, input_required rounds, change notices,
two replicas sharing one round trip, and the bad requests the specification names."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import mcp
import mcp.types as types
import pytest

from local_mcp_gateway.secrets import Identity
from tests.conftest import fixture_server

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
CAPABILITIES = {"elicitation": {"form": {}}, "sampling": {}, "roots": {}}


def envelope(capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": CAPABILITIES if capabilities is None else capabilities,
    }


def send(url: str, method: str, params: dict[str, Any], *, name: str | None = None,
         headers: dict[str, str] | None = None, request_id: int = 1) -> httpx2.Response:
    """One 2026-07-28 request over plain HTTP."""
    sent = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Mcp-Protocol-Version": MODERN,
        "Mcp-Method": method,
    }
    if name is not None:
        sent["Mcp-Name"] = name
    sent.update(headers or {})
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    return httpx2.post(url, headers=sent, json=body, timeout=30)


def _events(response: httpx2.Response) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def post(url: str, method: str, params: dict[str, Any], *, name: str | None = None, headers: dict[str, str] | None = None,
         request_id: int = 1) -> dict[str, Any]:
    """One 2026-07-28 request over plain HTTP; returns the JSON-RPC response object (SSE or JSON body)."""
    response = send(url, method, params, name=name, headers=headers, request_id=request_id)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for message in _events(response):
            if message.get("id") == request_id:
                return message
        raise AssertionError(f"no response in the stream: {response.text!r}")
    return {"status": response.status_code, **response.json()}


def stream(url: str, tool: str, arguments: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    """Every message a 2026-07-28 `tools/call` is answered with: its notifications, then the response."""
    params = {"name": tool, "arguments": arguments, "_meta": envelope(), **extra}
    response = send(url, "tools/call", params, name=tool)
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        return [response.json()]
    return _events(response)


def call(url: str, tool: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    params = {"name": tool, "arguments": arguments, "_meta": envelope(extra.pop("capabilities", None)), **extra}
    return post(url, "tools/call", params, name=tool)


@pytest.fixture
def echo_profile(config_repo):
    # The echo server's `ask` asks with a server-initiated request, which only the handshake line carries: pinned
    # there, the gateway itself turns the question into input_required rounds for 2026-07-28 clients.
    config_repo.write_profile("p", {"echo": {**fixture_server("echo_server.py"), "prefix": "", "protocol": "handshake"}})
    return config_repo


async def test_a_modern_sdk_client_lists_calls_and_answers_questions(echo_profile, gateway_factory):
    gateway = gateway_factory(echo_profile.path)

    async def on_elicitation(context, params):
        return types.ElicitResult(action="accept", content={"answer": "modern answer"})

    async with mcp.Client(gateway.url("p"), elicitation_callback=on_elicitation) as client:
        assert client.session.protocol_version == MODERN
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "ask", "pid"} <= names
        assert (await client.call_tool("echo", {"text": "hi"})).content[0].text == "hi"
        # The upstream asks mid-call; the gateway turns it into an input_required round the client answers.
        answered = await client.call_tool("ask", {"question": "?"})
        assert "modern answer" in answered.content[0].text


async def test_an_input_required_round_trip_can_end_on_another_replica(echo_profile, gateway_factory):
    identity = Identity.generate()
    env = {"MCP_GATEWAY_AGE_KEY": identity.reveal()}
    first = gateway_factory(echo_profile.path, env=env)
    second = gateway_factory(echo_profile.path, env=env)
    listed = post(second.url("p"), "tools/list", {"_meta": envelope()})
    assert "ask" in {tool["name"] for tool in listed["result"]["tools"]}

    round_one = call(first.url("p"), "ask", {"question": "colour?"})
    result = round_one["result"]
    assert result["resultType"] == "input_required"
    (key, question), = result["inputRequests"].items()
    assert question["method"] == "elicitation/create"
    answers = {key: {"action": "accept", "content": {"answer": "blue"}}}
    round_two = call(second.url("p"), "ask", {"question": "colour?"}, inputResponses=answers,
                     requestState=result["requestState"])
    assert round_two["result"]["resultType"] == "complete"
    assert "blue" in round_two["result"]["content"][0]["text"]


async def test_a_round_trip_on_one_gateway_continues_the_upstream_call_it_held(echo_profile, gateway_factory):
    """The retry's answers go to the question the upstream is waiting on: the tool runs once, as over a session."""
    gateway = gateway_factory(echo_profile.path)
    url = gateway.url("p")
    result = call(url, "ask_stubborn", {"question": "colour?"})["result"]
    for colour in ("blue", "green"):  # it asks twice: two rounds, each answering the question it waits on
        assert result["resultType"] == "input_required", result
        assert gateway.status()["profiles"]["p"]["held_calls"] == 1  # the upstream call waits for the retry
        answers = {key: {"action": "accept", "content": {"answer": colour}} for key in result["inputRequests"]}
        result = call(url, "ask_stubborn", {"question": "colour?"}, inputResponses=answers,
                      requestState=result["requestState"])["result"]
    assert result["resultType"] == "complete", result
    assert gateway.status()["profiles"]["p"]["held_calls"] == 0
    # Run once: both of its questions were answered, none was abandoned by a cancelled first run.
    assert result["content"][0]["text"].splitlines() == ["answered: accept", "answered: accept"]


async def test_a_held_calls_progress_goes_to_the_retry_that_waits_on_it(echo_profile, gateway_factory):
    url = gateway_factory(echo_profile.path).url("p")
    first = stream(url, "ask_stubborn", {"question": "colour?"}, _meta={**envelope(), "progressToken": "first"})
    assert [message.get("method") for message in first] == [None]  # no progress before the first answer
    result = first[-1]["result"]
    tokens = []
    for number, token in ((1, "retry-1"), (2, "retry-2")):
        answers = {key: {"action": "accept", "content": {"answer": "blue"}} for key in result["inputRequests"]}
        messages = stream(url, "ask_stubborn", {"question": "colour?"}, inputResponses=answers,
                          requestState=result["requestState"], _meta={**envelope(), "progressToken": token})
        progress = [m["params"] for m in messages if m.get("method") == "notifications/progress"]
        assert [(p["progress"], p.get("message")) for p in progress] == [(number, f"answer {number} of 2")]
        tokens += [p["progressToken"] for p in progress]
        result = messages[-1]["result"]
    assert result["resultType"] == "complete"
    assert tokens == ["retry-1", "retry-2"]  # each under the token of the request it reached, none dropped


async def test_a_tampered_or_foreign_request_state_is_refused(echo_profile, gateway_factory):
    gateway = gateway_factory(echo_profile.path)
    result = call(gateway.url("p"), "ask", {"question": "x"})["result"]
    state = result["requestState"]
    answers = {key: {"action": "accept", "content": {"answer": "y"}} for key in result["inputRequests"]}
    tampered = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
    refused = call(gateway.url("p"), "ask", {"question": "x"}, inputResponses=answers, requestState=tampered)
    assert refused["error"]["code"] == types.INVALID_PARAMS
    assert refused["error"]["message"] == "Invalid or expired requestState"
    # Bound to the tool and its arguments: the same state for another call is refused too.
    moved = call(gateway.url("p"), "ask", {"question": "other"}, inputResponses=answers, requestState=state)
    assert moved["error"]["code"] == types.INVALID_PARAMS


async def test_answers_to_questions_never_asked_are_ignored_and_asked_again(echo_profile, gateway_factory):
    gateway = gateway_factory(echo_profile.path)
    result = call(gateway.url("p"), "ask", {"question": "x"},
                  inputResponses={"invented": {"action": "accept", "content": {"answer": "sneaky"}}})["result"]
    assert result["resultType"] == "input_required"
    assert "invented" not in result["inputRequests"]


async def test_a_question_the_client_cannot_answer_is_refused_with_its_capability(echo_profile, gateway_factory):
    gateway = gateway_factory(echo_profile.path)
    refused = call(gateway.url("p"), "ask", {"question": "x"}, capabilities={})
    assert refused["error"]["code"] == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert "elicitation" in refused["error"]["message"]


async def test_bad_modern_requests_get_the_errors_the_specification_names(echo_profile, gateway_factory):
    gateway = gateway_factory(echo_profile.path)
    url = gateway.url("p")
    before = call(url, "pid", {})["result"]["content"][0]["text"]
    mismatch = post(url, "tools/call", {"name": "pid", "arguments": {}, "_meta": envelope()}, name="echo")
    assert mismatch["error"]["code"] == types.HEADER_MISMATCH
    missing_meta = post(url, "tools/call", {"name": "pid", "arguments": {}}, name="pid")
    assert "error" in missing_meta
    future = {**envelope(), "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    unknown_version = post(url, "tools/list", {"_meta": future}, headers={"Mcp-Protocol-Version": "2099-01-01"})
    assert unknown_version["error"]["code"] == types.UNSUPPORTED_PROTOCOL_VERSION
    disagreeing = post(url, "tools/list", {"_meta": envelope()}, headers={"Mcp-Protocol-Version": "2099-01-01"})
    assert disagreeing["error"]["code"] == types.HEADER_MISMATCH
    # Nothing reached the upstream: it is the same process, still answering.
    assert call(url, "pid", {})["result"]["content"][0]["text"] == before


async def test_change_notices_reach_a_listen_stream(echo_profile, gateway_factory):
    gateway = gateway_factory(echo_profile.path)
    async with mcp.Client(gateway.url("p")) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            await client.call_tool("notify_tools_changed", {})
            with anyio.fail_after(15):
                async for event in subscription:
                    assert type(event).__name__ == "ToolsListChanged"
                    break
        assert "extra_tool" in {tool.name for tool in (await client.list_tools()).tools}


async def test_listings_carry_cache_hints(echo_profile, gateway_factory):
    gateway = gateway_factory(echo_profile.path)
    listed = post(gateway.url("p"), "tools/list", {"_meta": envelope()})["result"]
    assert listed["ttlMs"] == 0 and listed["cacheScope"] == "private"
    read = post(gateway.url("p"), "resources/read", {"uri": "echo://static", "_meta": envelope()}, name="echo://static")
    assert read["result"]["contents"] and read["result"]["cacheScope"] == "private"


async def test_rounds_of_a_2026_upstream_pass_through_across_replicas(config_repo, gateway_factory):
    """The conformance fixture answers server/discover: its own questions and state pass through the gateway."""
    config_repo.write_profile("p", {"fixture": {**fixture_server("conformance_server.py"), "prefix": ""}})
    identity = Identity.generate()
    env = {"MCP_GATEWAY_AGE_KEY": identity.reveal()}
    first = gateway_factory(config_repo.path, env=env)
    second = gateway_factory(config_repo.path, env=env)
    tool = "test_input_required_result_elicitation"
    result = call(first.url("p"), tool, {})["result"]
    assert result["resultType"] == "input_required"
    assert list(result["inputRequests"]) == ["user_name"]  # the upstream's own key, passed through
    answers = {"user_name": {"action": "accept", "content": {"name": "Ada"}}}
    done = call(second.url("p"), tool, {}, inputResponses=answers, requestState=result["requestState"])["result"]
    assert done["resultType"] == "complete"
    assert "Ada" in json.dumps(done["content"])
    # Without the elicitation capability the upstream itself refuses, as it would to the client directly.
    refused = call(first.url("p"), "test_missing_capability", {}, capabilities={"elicitation": {"form": {}}})
    assert refused["error"]["code"] == types.MISSING_REQUIRED_CLIENT_CAPABILITY
