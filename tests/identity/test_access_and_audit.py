"""Per-caller views and the audit log, through a real gateway process: each caller's `tools/list` is its own,
a hidden tool is refused like an unknown one, and every call, prompt and read leaves one redacted JSON line."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import mcp_client
from tests.gateway.test_modern import envelope, post
from tests.identity.conftest import TokenIssuer, Upstream, start_team_gateway

pytestmark = pytest.mark.anyio

RULES = [
    {"tools": ["up__boom", "up__fail"], "scopes": ["github"]},
    {"tools": ["up__add"], "scopes": ["github", "admin"]},
]


async def tool_names(url: str, credential: str) -> set[str]:
    async with mcp_client(url, headers={"Authorization": f"Bearer {credential}"}) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


async def test_each_caller_sees_and_calls_only_what_its_scopes_allow(
    config_repo: Any, gateway_factory: Any, upstream: Upstream, issuer: TokenIssuer
) -> None:
    team = start_team_gateway(config_repo, gateway_factory, upstream, issuer.url, access=RULES)
    url = team.gateway.url("team")
    plain = issuer.mint(team.resource, sub="bob", scope="mcp")
    github = issuer.mint(team.resource, sub="carol", scope="mcp github")
    admin = issuer.mint(team.resource, sub="dave", scope="mcp github admin")

    everything = await tool_names(url, admin)
    assert {"up__echo", "up__boom", "up__fail", "up__add"} <= everything
    assert await tool_names(url, github) == everything - {"up__add"}
    assert await tool_names(url, plain) == everything - {"up__add", "up__boom", "up__fail"}
    assert await tool_names(url, team.key) == await tool_names(url, plain), "an API key holds no scopes"

    async with mcp_client(url, headers={"Authorization": f"Bearer {plain}"}) as client:
        with pytest.raises(MCPError) as hidden:
            await client.call_tool("up__add", {"a": 1, "b": 2})
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("up__no_such_tool", {})
        assert (await client.call_tool("up__echo", {"text": "open"})).content[0].text == "open"  # type: ignore[union-attr]
    assert hidden.value.error.message == "Unknown tool: up__add"
    assert hidden.value.error.code == unknown.value.error.code

    async with mcp_client(url, headers={"Authorization": f"Bearer {admin}"}) as client:
        added = await client.call_tool("up__add", {"a": 1, "b": 2})
        assert added.content[0].text == "3"  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await client.call_tool("up__boom", {})  # allowed, and fails upstream

    # The stateless 2026-07-28 line gives the same per-caller view.
    bearer = {"Authorization": f"Bearer {plain}"}
    listed = post(url, "tools/list", {"_meta": envelope()}, headers=bearer)
    assert {tool["name"] for tool in listed["result"]["tools"]} == everything - {"up__add", "up__boom", "up__fail"}
    params = {"name": "up__add", "arguments": {"a": 1, "b": 2}, "_meta": envelope()}
    refused = post(url, "tools/call", params, name="up__add", headers=bearer)
    assert refused["error"]["message"] == "Unknown tool: up__add"

    calls = [(c["caller"], c["name"], c["server"], c["outcome"]) for c in team.audit_lines()]
    assert calls == [
        ("bob", "up__add", None, "denied"),
        ("bob", "up__no_such_tool", None, "error"),
        ("bob", "up__echo", "up", "ok"),
        ("dave", "up__add", "up", "ok"),
        ("dave", "up__boom", "up", "error"),
        ("bob", "up__add", None, "denied"),
    ]


async def test_prompts_and_reads_are_audited_with_every_field(
    config_repo: Any, gateway_factory: Any, upstream: Upstream, issuer: TokenIssuer
) -> None:
    team = start_team_gateway(config_repo, gateway_factory, upstream, issuer.url)
    async with mcp_client(team.gateway.url("team"), headers={"Authorization": f"Bearer {team.key}"}) as client:
        await client.get_prompt("up__greet", {"name": "Ada"})
        await client.read_resource("echo://static")
        await client.list_tools()  # not audited
    lines = team.audit_lines()
    key_id = "key:" + hashlib.sha256(team.key.encode()).hexdigest()[:8]
    assert [(line["method"], line["name"], line["server"], line["caller"], line["outcome"]) for line in lines] == [
        ("prompts/get", "up__greet", "up", key_id, "ok"),
        ("resources/read", "echo://static", "up", key_id, "ok"),
    ]
    for line in lines:
        assert set(line) == {"time", "profile", "caller", "method", "name", "server", "outcome", "duration_ms"}
        assert line["profile"] == "team"
        assert line["duration_ms"] >= 0
        assert line["time"].endswith("+00:00")
    assert team.key not in team.audit.read_text()
    assert oct(team.audit.stat().st_mode & 0o777) == "0o600"


async def test_the_audit_log_rotates_by_size(
    config_repo: Any, gateway_factory: Any, upstream: Upstream, issuer: TokenIssuer
) -> None:
    team = start_team_gateway(config_repo, gateway_factory, upstream, issuer.url, audit_max_bytes=1024)
    async with mcp_client(team.gateway.url("team"), headers={"Authorization": f"Bearer {team.key}"}) as client:
        for index in range(40):
            await client.call_tool("up__echo", {"text": str(index)})
    folder = team.audit.parent
    assert sorted(path.name for path in folder.iterdir()) == ["calls.jsonl", "calls.jsonl.1", "calls.jsonl.2"]
    kept = [line for path in (team.audit.with_name("calls.jsonl.2"), team.audit.with_name("calls.jsonl.1"), team.audit)
            for line in path.read_text().splitlines()]
    assert all(path.stat().st_size <= 1024 for path in folder.iterdir())
    assert kept[-1].count('"up__echo"') == 1  # whole lines, the newest last
    assert 0 < len(kept) < 40, "the oldest lines were rotated away"
