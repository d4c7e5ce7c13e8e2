"""Hot reload with real file edits: a connected SDK client sees exactly the notices it should, and keeps its session."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import anyio
import httpx2
import mcp.types as types
import pytest
import yaml

from local_mcp_gateway.secrets import Identity, encrypt_to
from tests.conftest import fixture_server, mcp_client
from tests.gateway.test_supervision import wait_for

pytestmark = pytest.mark.anyio

NOTICE_WAIT = 15.0
"""Bound on waiting for a reload's effect (quiet period plus load plus upstream start, on a loaded machine)."""


class Notices:
    """Collects the list_changed notices one client session receives."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, message) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.seen.append("tools")
        elif isinstance(message, types.PromptListChangedNotification):
            self.seen.append("prompts")
        elif isinstance(message, types.ResourceListChangedNotification):
            self.seen.append("resources")

    async def wait_for(self, kind: str) -> None:
        with anyio.fail_after(NOTICE_WAIT):
            while kind not in self.seen:
                await anyio.sleep(0.05)


async def pid_of(client, tool: str) -> int:
    return int((await client.call_tool(tool, {})).content[0].text)


def generation_after(gateway, previous: int) -> int:
    return wait_for(lambda: (g := gateway.status()["generation"]) > previous and g, timeout=NOTICE_WAIT)


async def test_adding_a_server_notifies_the_profile_and_touches_nothing_else(config_repo, gateway_factory):
    config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
    config_repo.write_profile("q", {"c": fixture_server("echo_server.py", "--name", "c")})
    gateway = gateway_factory(config_repo.path)
    p_notices, q_notices = Notices(), Notices()
    async with mcp_client(gateway.url("p"), message_handler=p_notices) as p, mcp_client(
        gateway.url("q"), message_handler=q_notices
    ) as q:
        pid_a, pid_c = await pid_of(p, "a__pid"), await pid_of(q, "c__pid")
        generation = gateway.status()["generation"]
        config_repo.write_profile(
            "p", {"a": fixture_server("echo_server.py", "--name", "a"), "b": fixture_server("echo_server.py", "--name", "b")}
        )
        await p_notices.wait_for("tools")
        generation_after(gateway, generation)
        names = {tool.name for tool in (await p.list_tools()).tools}
        assert {"a__pid", "b__pid"} <= names
        assert await pid_of(p, "a__pid") == pid_a
        assert await pid_of(q, "c__pid") == pid_c
        await anyio.sleep(1.0)
        assert q_notices.seen == []


async def test_a_tool_filter_change_restarts_nothing_and_recomputes_the_list(config_repo, gateway_factory):
    config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
    gateway = gateway_factory(config_repo.path)
    notices = Notices()
    async with mcp_client(gateway.url("p"), message_handler=notices) as client:
        pid = await pid_of(client, "a__pid")
        config_repo.write_profile(
            "p",
            {
                "a": {
                    **fixture_server("echo_server.py", "--name", "a"),
                    "tools": {"exclude": ["echo"], "overrides": {"whoami": {"name": "identify"}}},
                }
            },
        )
        await notices.wait_for("tools")
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "a__echo" not in names and "a__identify" in names and "a__whoami" not in names
        assert (await client.call_tool("a__identify", {})).content[0].text == "a"
        assert await pid_of(client, "a__pid") == pid
        assert gateway.status()["profiles"]["p"]["servers"]["a"]["restarts"] == 0


async def test_a_changed_server_is_restarted(config_repo, gateway_factory):
    config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("p")) as client:
        pid = await pid_of(client, "a__pid")
        generation = gateway.status()["generation"]
        config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "renamed")})
        generation_after(gateway, generation)
        await wait_async(lambda: client.call_tool("a__whoami", {}), lambda r: r.content[0].text == "renamed")
        assert await pid_of(client, "a__pid") != pid


async def wait_async(call, accept, timeout: float = NOTICE_WAIT):
    with anyio.fail_after(timeout):
        while True:
            try:
                result = await call()
                if accept(result):
                    return result
            except Exception:
                pass
            await anyio.sleep(0.1)


@pytest.mark.parametrize(
    "breakage",
    ["syntax", "schema", "empty-gateway", "missing-secret"],
)
async def test_an_invalid_change_keeps_the_running_generation(config_repo, gateway_factory, breakage):
    config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("p")) as client:
        pid = await pid_of(client, "a__pid")
        generation = gateway.status()["generation"]
        profile = config_repo.root / "profiles" / "p.yaml"
        if breakage == "syntax":
            profile.write_text("servers:\n  a: {command: [unclosed\n")
            expected_file, expected_line = profile, 3  # where the parser found the flow sequence unclosed
        elif breakage == "schema":
            profile.write_text("servers:\n  a:\n    command: python\n    colour: blue\n")
            expected_file, expected_line = profile, 4
        elif breakage == "empty-gateway":
            config_repo.path.write_text("")
            expected_file, expected_line = config_repo.path, None
        else:
            profile.write_text(
                yaml.safe_dump(
                    {"servers": {"a": {**fixture_server("echo_server.py"), "env": {"T": "${secret:absent}"}}}}
                )
            )
            expected_file, expected_line = profile, None
        error = wait_for(lambda: gateway.status()["last_reload_error"], timeout=NOTICE_WAIT)
        assert Path(error["file"]).name == expected_file.name
        if expected_line is not None:
            assert error["line"] == expected_line
        assert error["message"] and error["at"]
        assert gateway.status()["generation"] == generation
        assert await pid_of(client, "a__pid") == pid
        assert "reload failed" in gateway.log()
        # Fixing the file recovers without a restart.
        config_repo.write_gateway()
        config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
        wait_for(lambda: gateway.status()["last_reload_error"] is None, timeout=NOTICE_WAIT)
        assert await pid_of(client, "a__pid") == pid


async def test_a_new_profile_is_served_and_a_removed_one_answers_404(config_repo, gateway_factory):
    config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("p")) as client:
        generation = gateway.status()["generation"]
        config_repo.write_profile("fresh", {"b": fixture_server("echo_server.py", "--name", "b")})
        generation_after(gateway, generation)
        async with mcp_client(gateway.url("fresh")) as fresh:
            assert (await fresh.call_tool("b__whoami", {})).content[0].text == "b"
        (config_repo.root / "profiles" / "fresh.yaml").unlink()
        wait_for(lambda: "fresh" not in gateway.status()["profiles"], timeout=NOTICE_WAIT)
        response = httpx2.post(
            gateway.url("fresh"),
            headers={"Accept": "application/json, text/event-stream", "Content-Type": "application/json"},
            content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
        )
        assert response.status_code == 404
        assert (await client.call_tool("a__whoami", {})).content[0].text == "a"


async def test_a_changed_secret_restarts_only_the_servers_that_use_it(config_repo, gateway_factory):
    identity = Identity.generate()
    recipient = identity.recipient
    secrets = config_repo.root / "secrets"
    secrets.mkdir()
    (secrets / "token.age").write_bytes(encrypt_to([recipient], b"first-value"))
    config_repo.write_gateway(secrets={"recipients": [recipient]})
    config_repo.write_profile(
        "p",
        {
            "user": {**fixture_server("echo_server.py", "--name", "user"), "env": {"TOKEN": "${secret:token}"}},
            "other": fixture_server("echo_server.py", "--name", "other"),
        },
    )
    gateway = gateway_factory(config_repo.path, env={"MCP_GATEWAY_AGE_KEY": identity.reveal()})
    async with mcp_client(gateway.url("p")) as client:
        user, other = await pid_of(client, "user__pid"), await pid_of(client, "other__pid")
        generation = gateway.status()["generation"]
        (secrets / "token.age").write_bytes(encrypt_to([recipient], b"second-value"))
        generation_after(gateway, generation)
        await wait_async(lambda: pid_of(client, "user__pid"), lambda pid: pid != user)
        assert await pid_of(client, "other__pid") == other
    log = gateway.log()
    assert "first-value" not in log and "second-value" not in log


async def test_a_git_checkout_of_many_files_ends_in_one_consistent_generation(config_repo, gateway_factory):
    root = config_repo.root
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    for slug in ("one", "two", "three"):
        config_repo.write_profile(slug, {"a": fixture_server("echo_server.py", "--name", f"{slug}-v1")})
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    subprocess.run([*git, "checkout", "-qb", "v2"], check=True)
    for slug in ("one", "two", "three"):
        config_repo.write_profile(slug, {"b": fixture_server("echo_server.py", "--name", f"{slug}-v2")})
    config_repo.write_profile("four", {"b": fixture_server("echo_server.py", "--name", "four-v2")})
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "v2"], check=True)
    subprocess.run([*git, "checkout", "-q", "main"], check=True)

    gateway = gateway_factory(config_repo.path)
    generation = gateway.status()["generation"]
    subprocess.run([*git, "checkout", "-q", "v2"], check=True)
    generation_after(gateway, generation)
    wait_for(lambda: set(gateway.status()["profiles"]) == {"one", "two", "three", "four"}, timeout=NOTICE_WAIT)
    time.sleep(1.0)
    status = gateway.status()
    for slug in ("one", "two", "three", "four"):
        assert set(status["profiles"][slug]["servers"]) == {"b"}


async def test_a_burst_of_writes_settles_into_the_last_content(config_repo, gateway_factory):
    config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
    gateway = gateway_factory(config_repo.path)
    profile = config_repo.root / "profiles" / "p.yaml"
    deadline = time.monotonic() + 1.0
    for index in range(100):
        body = yaml.safe_dump({"description": f"write {index}", "servers": {"a": fixture_server("echo_server.py", "--name", "a")}})
        profile.write_text(body)
        if time.monotonic() > deadline:
            break
    final = index
    wait_for(lambda: gateway.status()["profiles"]["p"]["description"] == f"write {final}", timeout=NOTICE_WAIT)
    assert gateway.status()["last_reload_error"] is None


async def test_vim_style_save_and_rename_are_followed(config_repo, gateway_factory):
    config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
    gateway = gateway_factory(config_repo.path)
    profiles = config_repo.root / "profiles"
    # vim: write a swap copy, rename the original away, write the new file, delete the backup.
    backup = profiles / "p.yaml~"
    os.rename(profiles / "p.yaml", backup)
    (profiles / "p.yaml").write_text(yaml.safe_dump({"description": "saved by vim", "servers": {"a": fixture_server("echo_server.py", "--name", "a")}}))
    backup.unlink()
    wait_for(lambda: gateway.status()["profiles"].get("p", {}).get("description") == "saved by vim", timeout=NOTICE_WAIT)
    # A profile renamed: the old slug goes, the new one comes.
    os.rename(profiles / "p.yaml", profiles / "renamed.yaml")
    wait_for(lambda: set(gateway.status()["profiles"]) == {"renamed"}, timeout=NOTICE_WAIT)


async def test_sighup_reloads_when_watching_is_off(config_repo, gateway_factory):
    config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
    gateway = gateway_factory(config_repo.path, env={"MCP_GATEWAY_WATCH": "false"})
    config_repo.write_profile("q", {"a": fixture_server("echo_server.py", "--name", "a")})
    time.sleep(1.5)
    assert set(gateway.status()["profiles"]) == {"p"}
    gateway.process.send_signal(signal.SIGHUP)
    wait_for(lambda: set(gateway.status()["profiles"]) == {"p", "q"}, timeout=NOTICE_WAIT)


MODULE_SOURCE = '''
from mcp.server import MCPServer

server = MCPServer("edited")


@server.tool()
def version() -> str:
    return "{version}"
'''


async def test_editing_an_in_process_server_module_restarts_it(config_repo, gateway_factory, tmp_path):
    package = tmp_path / "pkgs"
    package.mkdir()
    module = package / "edited_server.py"
    module.write_text(MODULE_SOURCE.format(version="v1"))
    config_repo.write_profile("p", {"mod": {"module": "edited_server:server", "prefix": ""}})
    gateway = gateway_factory(config_repo.path, env={"PYTHONPATH": str(package)})
    async with mcp_client(gateway.url("p")) as client:
        assert (await client.call_tool("version", {})).content[0].text == "v1"
        generation = gateway.status()["generation"]
        module.write_text(MODULE_SOURCE.format(version="v2-edited"))
        generation_after(gateway, generation)
        await wait_async(lambda: client.call_tool("version", {}), lambda r: r.content[0].text == "v2-edited")


async def test_a_call_in_flight_on_a_removed_profile_finishes(config_repo, gateway_factory):
    config_repo.write_profile("doomed", {"a": {**fixture_server("echo_server.py"), "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("doomed")) as client, httpx2.AsyncClient(timeout=10) as http:
        outcome: dict[str, object] = {}

        async def slow_call() -> None:
            # send_request, not call_tool: call_tool lists the tools afterwards (to check output schemas), and
            # the profile is gone by then.
            request = types.CallToolRequest(params=types.CallToolRequestParams(name="slow", arguments={"seconds": 2.0}))
            outcome["result"] = await client.send_request(request, types.CallToolResult)

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_call)
            await anyio.sleep(0.3)
            (config_repo.root / "profiles" / "doomed.yaml").unlink()
            with anyio.fail_after(NOTICE_WAIT):
                while "doomed" in (await http.get(f"{gateway.base_url}/status")).json()["profiles"]:
                    await anyio.sleep(0.1)
            assert "result" not in outcome  # removed while the call was still running
        assert outcome["result"].content[0].text == "slept 2.0 s"
