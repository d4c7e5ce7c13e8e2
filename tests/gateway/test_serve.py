"""The gateway serves a profile that aggregates real upstream processes, seen by a real SDK client over HTTP."""

from __future__ import annotations

import json

import anyio
import httpx2
import mcp.types as types
import pytest
from mcp.shared.exceptions import MCPError

from local_mcp_gateway.catalog import PAGE_SIZE
from tests.conftest import fixture_server, mcp_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def two_echoes(config_repo, gateway_factory):
    config_repo.write_gateway(default_profile="work")
    # The echo server announces list changes and asks questions the handshake-line way (notifications and
    # server-initiated requests), so it is pinned there; the conformance tests cover the 2026-07-28 upstream line.
    config_repo.write_profile(
        "work",
        {
            "alpha": {**fixture_server("echo_server.py", "--name", "alpha"), "protocol": "handshake"},
            "beta": {**fixture_server("echo_server.py", "--name", "beta"), "prefix": "", "protocol": "handshake"},
        },
    )
    return gateway_factory(config_repo.path)


async def test_tools_prompts_and_resources_are_aggregated_and_routed(two_echoes):
    async with mcp_client(two_echoes.url("work")) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert "alpha__echo" in names and "echo" in names
        assert "alpha__whoami" in names and "whoami" in names

        alpha = await client.call_tool("alpha__whoami", {})
        beta = await client.call_tool("whoami", {})
        assert alpha.content[0].text == "alpha"
        assert beta.content[0].text == "beta"
        assert (await client.call_tool("alpha__echo", {"text": "héllo"})).content[0].text == "héllo"

        prompts = [prompt.name for prompt in (await client.list_prompts()).prompts]
        assert prompts == ["alpha__greet", "greet"]
        greeting = await client.get_prompt("alpha__greet", {"name": "Ada"})
        assert "Ada" in greeting.messages[0].content.text

        resources = await client.list_resources()
        assert [str(r.uri) for r in resources.resources] == ["echo://static"]
        read = await client.read_resource("echo://static")
        assert read.contents[0].text
        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == ["echo://item/{id}"]
        item = await client.read_resource("echo://item/42")
        assert "42" in item.contents[0].text


async def test_default_profile_is_served_at_bare_mcp(two_echoes):
    async with mcp_client(two_echoes.url()) as client:
        assert (await client.call_tool("whoami", {})).content[0].text == "beta"


async def test_arguments_given_as_strings_are_coerced(two_echoes):
    async with mcp_client(two_echoes.url("work")) as client:
        result = await client.call_tool("alpha__add", {"a": "2", "b": "40"})
        assert not result.is_error
        assert result.content[0].text == "42"


async def test_unknown_tool_prompt_and_resource_are_clear_errors(two_echoes):
    async with mcp_client(two_echoes.url("work")) as client:
        with pytest.raises(MCPError, match="Unknown tool: nope"):
            await client.call_tool("nope", {})
        with pytest.raises(MCPError, match="Unknown prompt: nope"):
            await client.get_prompt("nope", {})
        with pytest.raises(MCPError, match="Resource not found: echo://missing") as caught:
            await client.read_resource("echo://missing/x")
        assert caught.value.error.code == types.INVALID_PARAMS  # SEP-2164
        assert caught.value.error.data == {"uri": "echo://missing/x"}
        # The session survives the errors.
        assert (await client.call_tool("whoami", {})).content[0].text == "beta"


async def test_upstream_errors_pass_through(two_echoes):
    async with mcp_client(two_echoes.url("work")) as client:
        failed = await client.call_tool("alpha__fail", {})
        assert failed.is_error
        with pytest.raises(MCPError):
            await client.call_tool("alpha__boom", {})
        assert (await client.call_tool("alpha__whoami", {})).content[0].text == "alpha"


async def test_progress_and_log_messages_reach_the_caller(two_echoes):
    progress: list[float] = []
    logs: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    async with mcp_client(two_echoes.url("work"), logging_callback=on_log) as client:
        result = await client.call_tool("alpha__slow", {"seconds": 0.3}, progress_callback=on_progress)
        assert not result.is_error
        assert len(progress) >= 2 and progress == sorted(progress)
        await client.call_tool("log", {"level": "warning", "message": "from beta"})
        with anyio.fail_after(5):
            while not any("from beta" in line for line in logs):
                await anyio.sleep(0.02)


async def test_sampling_elicitation_and_roots_reach_the_client_that_called(config_repo, gateway_factory):
    asked: list[str] = []

    async def on_sampling(context, params: types.CreateMessageRequestParams):
        asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled answer"), model="test-model"
        )

    async def on_elicitation(context, params: types.ElicitRequestParams):
        asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"answer": "forty-two"})

    async def on_roots(context):
        asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri="file:///tmp/project", name="project")])

    # The echo server asks with server-initiated requests, which the handshake line carries.
    pinned = {**fixture_server("echo_server.py", "--name", "alpha"), "protocol": "handshake"}
    config_repo.write_profile("work", {"alpha": pinned, "beta": {**pinned, "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(
        gateway.url("work"),
        sampling_callback=on_sampling,
        elicitation_callback=on_elicitation,
        list_roots_callback=on_roots,
    ) as client:
        sampled = await client.call_tool("alpha__sample", {"prompt": "hi"})
        assert "sampled answer" in sampled.content[0].text
        answered = await client.call_tool("alpha__ask", {"question": "meaning?"})
        assert "forty-two" in answered.content[0].text
        roots = await client.call_tool("roots", {})
        assert "file:///tmp/project" in roots.content[0].text
    assert asked == ["sampling", "elicitation", "roots"]


async def test_upstream_list_changed_reaches_the_client_and_the_session_survives(two_echoes):
    changed = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with mcp_client(two_echoes.url("work"), message_handler=on_message) as client:
        before = {tool.name for tool in (await client.list_tools()).tools}
        assert "alpha__extra_tool" not in before
        await client.call_tool("alpha__notify_tools_changed", {})
        with anyio.fail_after(10):
            await changed.wait()
        after = {tool.name for tool in (await client.list_tools()).tools}
        assert after - before == {"alpha__extra_tool"}


async def test_a_call_over_timeout_is_an_error_and_is_cancelled_upstream(config_repo, gateway_factory):
    config_repo.write_profile(
        "t", {"echo": {**fixture_server("echo_server.py"), "timeout_seconds": 0.5, "prefix": ""}}
    )
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("t")) as client:
        with anyio.fail_after(10):
            with pytest.raises(MCPError, match="did not answer within 0.5 s") as caught:
                await client.call_tool("slow", {"seconds": 30})
        assert caught.value.error.code == types.REQUEST_TIMEOUT
        with anyio.fail_after(10):
            while (await client.call_tool("cancellations", {})).content[0].text == "0":
                await anyio.sleep(0.1)
        assert (await client.call_tool("echo", {"text": "still here"})).content[0].text == "still here"


async def test_bad_http_input_gets_clear_errors_and_the_gateway_keeps_serving(two_echoes):
    base = two_echoes.url("work")
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(timeout=10) as http:
        assert (await http.post(two_echoes.url("nope"), headers=accept, content=b"{}")).status_code == 404
        unknown_session = {**accept, "Mcp-Session-Id": "0" * 32, "Mcp-Protocol-Version": "2025-11-25"}
        ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert (await http.post(base, headers=unknown_session, content=ping)).status_code == 404
        malformed = await http.post(base, headers=accept, content=b"{not json")
        assert malformed.status_code == 400
        assert malformed.json()["error"]["code"] == types.PARSE_ERROR
        batch = await http.post(base, headers=accept, content=json.dumps([json.loads(ping), json.loads(ping)]))
        assert batch.status_code == 400
        wrong_type = await http.post(base, headers={**accept, "Content-Type": "text/plain"}, content=ping)
        assert wrong_type.status_code in (400, 415)
        wrong_accept = await http.post(base, headers={**accept, "Accept": "text/html"}, content=ping)
        assert wrong_accept.status_code == 406
    async with mcp_client(base) as client:
        assert (await client.call_tool("whoami", {})).content[0].text == "beta"


async def test_a_client_cancelling_its_call_cancels_the_upstream_call(two_echoes):
    async with mcp_client(two_echoes.url("work")) as client:
        before = int((await client.call_tool("alpha__cancellations", {})).content[0].text)
        with anyio.move_on_after(0.5):
            await client.call_tool("alpha__slow", {"seconds": 30})
        with anyio.fail_after(10):
            while int((await client.call_tool("alpha__cancellations", {})).content[0].text) == before:
                await anyio.sleep(0.1)
        assert (await client.call_tool("alpha__whoami", {})).content[0].text == "alpha"


async def test_pagination_is_followed_upstream_and_offered_downstream(config_repo, gateway_factory):
    config_repo.write_profile("many", {"big": {**fixture_server("echo_server.py", "--tools", str(PAGE_SIZE + 60)), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("many")) as client:
        first = await client.list_tools()
        assert first.next_cursor
        second = await client.list_tools(params=types.PaginatedRequestParams(cursor=first.next_cursor))
        names = [tool.name for tool in first.tools + second.tools]
        assert second.next_cursor is None
        assert len(names) == len(set(names))
        assert {f"t{i}" for i in range(PAGE_SIZE + 60)} <= set(names)
        assert len(first.tools) == PAGE_SIZE
        with pytest.raises(MCPError, match="Invalid cursor"):
            await client.list_tools(params=types.PaginatedRequestParams(cursor="bogus"))


async def test_every_kind_of_upstream_in_one_profile(config_repo, gateway_factory):
    from tests.fixtures.launch import http_fixture

    with http_fixture("echo_server.py", "--name", "over-http") as http, http_fixture(
        "echo_server.py", "--name", "over-sse", transport="sse"
    ) as sse:
        config_repo.write_profile(
            "all",
            {
                "stdio": fixture_server("echo_server.py", "--name", "over-stdio"),
                "http": {"url": http.url},
                "sse": {"url": sse.url, "transport": "sse"},
                "inprocess": {"module": "local_mcp_gateway.examples.clock:server"},
            },
        )
        gateway = gateway_factory(config_repo.path)
        async with mcp_client(gateway.url("all")) as client:
            for prefix, expected in (("stdio", "over-stdio"), ("http", "over-http"), ("sse", "over-sse")):
                assert (await client.call_tool(f"{prefix}__whoami", {})).content[0].text == expected
            progress: list[float] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append(value)

            await client.call_tool("http__slow", {"seconds": 0.3}, progress_callback=on_progress)
            assert progress
            now = await client.call_tool("inprocess__now", {"timezone": "UTC"})
            assert not now.is_error
        servers = gateway.status()["profiles"]["all"]["servers"]
        assert {name: server["state"] for name, server in servers.items()} == dict.fromkeys(servers, "ready")
