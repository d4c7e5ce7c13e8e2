"""The bundled example runs offline, and the `tools` command shows what clients see; real Node servers as upstreams."""

from __future__ import annotations

import json

import pytest

from local_mcp_gateway.cli import main
from tests.conftest import REPO, mcp_client

pytestmark = pytest.mark.anyio

NODE_BIN = REPO / ".ci" / "node" / "node_modules" / "node" / "bin"
NODE_SERVERS = REPO / ".ci" / "node" / "node_modules" / ".bin"


async def test_the_bundled_example_serves_the_demo_profile_offline(gateway_factory):
    gateway = gateway_factory(REPO / "gateway.yaml.example", env={"MCP_GATEWAY_AGE_KEY": ""})
    status = gateway.status()
    assert status["default_profile"] == "demo"
    for name, server in status["profiles"]["demo"]["servers"].items():
        assert server["state"] in ("ready", "per_session"), (name, server)
    async with mcp_client(gateway.url()) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "clock__now" in names and "pad__add_note" in names
        added = await client.call_tool("pad__add_note", {"text": "buy milk"})
        assert not added.is_error
        listed = await client.call_tool("pad__list_notes", {})
        assert "buy milk" in listed.content[0].text
        now = await client.call_tool("clock__now", {"timezone": "UTC"})
        assert not now.is_error


def test_tools_prints_the_names_clients_see(capsys):
    assert main(["tools", "demo", "--config", str(REPO / "gateway.yaml.example"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {row["name"] for row in rows}
    assert "clock__now" in names
    assert all(row["server"] for row in rows)
    assert main(["tools", "nope", "--config", str(REPO / "gateway.yaml.example")]) == 1
    assert "no profile 'nope'" in capsys.readouterr().err


async def test_node_reference_servers_as_upstreams(config_repo, gateway_factory, tmp_path):
    if not (NODE_SERVERS / "mcp-server-everything").exists():
        pytest.fail("the Node example servers are not installed: run `bash .ci/setup-node.sh`")
    node_env = {"PATH": f"{NODE_BIN}:/usr/bin:/bin"}
    config_repo.write_profile(
        "node",
        {
            "everything": {"command": str(NODE_SERVERS / "mcp-server-everything"), "args": ["stdio"], "env": node_env},
            "memory": {
                "command": str(NODE_SERVERS / "mcp-server-memory"),
                "env": {**node_env, "MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")},
            },
        },
    )
    gateway = gateway_factory(config_repo.path)
    async with mcp_client(gateway.url("node")) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "everything__echo" in names, names
        assert "memory__create_entities" in names, names
        echoed = await client.call_tool("everything__echo", {"message": "through the gateway"})
        assert "through the gateway" in echoed.content[0].text
        created = await client.call_tool(
            "memory__create_entities",
            {"entities": [{"name": "gateway", "entityType": "software", "observations": ["aggregates servers"]}]},
        )
        assert not created.is_error
        graph = await client.call_tool("memory__read_graph", {})
        assert "aggregates servers" in json.dumps(graph.model_dump(mode="json"))
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        assert any(name.startswith("everything__") for name in prompts)
