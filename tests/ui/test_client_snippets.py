"""The `client-config` snippets, run for real against a gateway that needs an API key: the Inspector CLI command
(through a shell, which expands the key's variable) and the Claude Desktop entry (mcp-remote started as a stdio
server by the SDK's stdio client, expanding the variable itself). Both reach the profile's tools with the key
from the environment, and the Inspector is refused without it. The clients come from `.ci/setup-ui-clients.sh`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from local_mcp_gateway.secrets import Identity
from tests.conftest import REPO, ConfigRepo, free_port
from tests.ui.conftest import secret_value, ui_env, write_secret

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

NODE_BIN = REPO / ".ci" / "node" / "node_modules" / "node" / "bin"
INSPECTOR = REPO / ".ci" / "node-extra" / "inspector" / "node_modules" / ".bin" / "mcp-inspector"
MCP_REMOTE = REPO / ".ci" / "node-extra" / "mcp-remote" / "node_modules" / ".bin" / "mcp-remote"
RUN_TIMEOUT = 120


def installed(path: Path) -> Path:
    if path.exists() and (NODE_BIN / "node").exists():
        return path
    reason = f"{path.name} is not installed: run .ci/setup-node.sh and .ci/setup-ui-clients.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def snippet(config: Path, client: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "local_mcp_gateway", "client-config", "team", "--client", client, "-c", str(config)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=True,
    )
    return out.stdout


@pytest.fixture
def keyed_gateway(config_repo: ConfigRepo, gateway_factory: Any) -> tuple[Any, str]:
    identity = Identity.generate()
    key = secret_value("clientkey")
    write_secret(config_repo, identity, "team_key", key)
    config_repo.write_profile("team", {"clock": {"module": "local_mcp_gateway.examples.clock:server"}},
                              api_keys=["${secret:team_key}"])
    port = free_port()  # the snippets name the listen address of gateway.yaml
    config_repo.write_gateway(listen={"host": "127.0.0.1", "port": port})
    gateway_factory(config_repo.path, env=ui_env(identity), port=port)
    return config_repo, key


def client_env(tmp_path: Path, key: str | None) -> dict[str, str]:
    env = {"PATH": f"{NODE_BIN}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    if key is not None:
        env["LOCAL_MCP_GATEWAY_KEY"] = key
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def test_the_inspector_command_lists_the_tools_with_the_key_from_the_environment(
    keyed_gateway: tuple[ConfigRepo, str], tmp_path: Path
) -> None:
    repo, key = keyed_gateway
    binary = installed(INSPECTOR)
    command = snippet(repo.path, "inspector").strip()
    assert key not in command
    prefix = "npx -y @modelcontextprotocol/inspector@latest "
    assert command.startswith(prefix)
    runnable = f"{binary} {command[len(prefix):]}"  # the same arguments, without fetching the package again
    done = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          env=client_env(tmp_path, key))
    assert done.returncode == 0, done.stderr + done.stdout
    assert [tool["name"] for tool in json.loads(done.stdout)["tools"]] == [
        "clock__now", "clock__convert_time", "clock__add_days"]
    refused = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                             env=client_env(tmp_path, None))
    assert "clock__now" not in refused.stdout


async def test_the_claude_desktop_entry_bridges_with_the_key_from_the_environment(
    keyed_gateway: tuple[ConfigRepo, str], tmp_path: Path
) -> None:
    repo, key = keyed_gateway
    binary = installed(MCP_REMOTE)
    entry = json.loads(snippet(repo.path, "claude-desktop"))["mcpServers"]["gateway-team"]
    assert key not in json.dumps(entry)
    assert entry["command"] == "npx" and entry["args"][:2] == ["-y", "mcp-remote@latest"]
    params = StdioServerParameters(command=str(binary), args=entry["args"][2:], env=client_env(tmp_path, key))
    with (tmp_path / "mcp-remote.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
    assert [tool.name for tool in tools.tools] == ["clock__now", "clock__convert_time", "clock__add_days"]
