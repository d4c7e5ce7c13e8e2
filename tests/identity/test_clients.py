"""What common MCP clients do against a profile that takes API keys only, run for real: the MCP Inspector's CLI
and mcp-remote (npm, installed by `.ci/setup-ui-clients.sh`), each with the copy-paste configuration from
docs/identity.md that sends the key, and the same clients without it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import REPO, ConfigRepo, GatewayProcess
from tests.identity.conftest import Upstream

pytestmark = pytest.mark.anyio

NODE_BIN = REPO / ".ci" / "node" / "node_modules" / "node" / "bin"
CLIENTS = REPO / ".ci" / "node-extra"
INSPECTOR = CLIENTS / "inspector" / "node_modules" / ".bin" / "mcp-inspector"
MCP_REMOTE = CLIENTS / "mcp-remote" / "node_modules" / ".bin" / "mcp-remote"
KEY = "key-only-profile-0123456789abcdef"
CLIENT_TIMEOUT = 120.0


def _need_clients() -> None:
    missing = [str(p) for p in (NODE_BIN / "node", INSPECTOR, MCP_REMOTE) if not p.exists()]
    if not missing:
        return
    message = f"missing {', '.join(missing)}: run .ci/setup-node.sh and .ci/setup-ui-clients.sh"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(home), **extra}


@pytest.fixture
def keyed(config_repo: ConfigRepo, gateway_factory: Any, upstream: Upstream) -> GatewayProcess:
    _need_clients()
    audit = "audit.jsonl"
    config_repo.write_gateway(servers={"up": {"url": upstream.url}}, logging={"audit": {"file": audit}})
    config_repo.write_profile("team", {"up": {}}, api_keys=[KEY])
    return gateway_factory(config_repo.path)


def inspector(tmp_path: Path, url: str, *headers: str) -> subprocess.CompletedProcess[str]:
    args = [str(INSPECTOR), "--cli", url, "--transport", "http", "--method", "tools/list"]
    for header in headers:
        args += ["--header", header]
    return subprocess.run(args, capture_output=True, text=True, env=_env(tmp_path), timeout=CLIENT_TIMEOUT)


def test_the_inspector_cli_lists_tools_with_the_key_header(keyed: GatewayProcess, tmp_path: Path) -> None:
    done = inspector(tmp_path, keyed.url("team"), f"Authorization: Bearer {KEY}")
    assert done.returncode == 0, done.stderr
    names = {tool["name"] for tool in json.loads(done.stdout)["tools"]}
    assert "up__echo" in names

    # Without the header the Inspector takes the 401 for the start of an OAuth login, and, with no terminal,
    # stops there: docs/identity.md tells users that this message means "send the key".
    refused = inspector(tmp_path, keyed.url("team"))
    assert "Interactive OAuth requires a TTY" in refused.stdout + refused.stderr
    assert "up__echo" not in refused.stdout
    assert KEY not in keyed.log()


async def test_mcp_remote_bridges_a_stdio_client_with_the_key_header(keyed: GatewayProcess, tmp_path: Path) -> None:
    # mcp-remote splits arguments on spaces: the documented form keeps the value in an environment variable.
    params = StdioServerParameters(
        command=str(MCP_REMOTE),
        args=[keyed.url("team"), "--header", "Authorization:${GATEWAY_AUTH}", "--transport", "http-only"],
        env=_env(tmp_path, GATEWAY_AUTH=f"Bearer {KEY}"),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = {tool.name for tool in (await session.list_tools()).tools}
        result = await session.call_tool("up__echo", {"text": "via mcp-remote"})
    assert "up__echo" in names
    assert result.content[0].text == "via mcp-remote"  # type: ignore[union-attr]
    audit = [json.loads(line) for line in (keyed.log_path.parent / "config" / "audit.jsonl").read_text().splitlines()]
    assert [line["caller"] for line in audit] == ["key:" + hashlib.sha256(KEY.encode()).hexdigest()[:8]]


def test_a_key_only_profile_answers_like_before(keyed: GatewayProcess) -> None:
    url = keyed.url("team")
    missing = httpx2.post(url, json={}, timeout=30)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="local-mcp-gateway"'
    assert missing.json()["error"] == "unauthorized"
    wrong = httpx2.post(url, json={}, headers={"Authorization": "Bearer not-the-key"}, timeout=30)
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer realm="local-mcp-gateway", error="invalid_token"'
    assert wrong.json()["error"] == "invalid_key"
    in_query = httpx2.post(url, json={}, params={"api_key": KEY}, timeout=30)
    assert in_query.status_code == 400
    assert KEY not in keyed.log()
    base = keyed.base_url
    assert httpx2.get(f"{base}/.well-known/oauth-protected-resource/mcp/team", timeout=10).status_code == 404
