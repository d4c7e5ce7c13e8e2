"""`client-config` and `export` from the command line (in-process `main(argv)`), against real config files and
real upstreams (in-process modules and the stdio echo fixture)."""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import toon

from local_mcp_gateway.cli import main
from local_mcp_gateway.secrets import Identity
from tests.conftest import ConfigRepo, fixture_server
from tests.ui.conftest import UI_TESTS, secret_value, write_secret
from tests.ui.dashboard_upstream import HOSTILE_DESCRIPTION

pytestmark = pytest.mark.timeout(300)

URL = "http://127.0.0.1:9191/mcp/team"


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def keyed(config_repo: ConfigRepo) -> tuple[ConfigRepo, str]:
    """Profile `team` with an API key held in a secret (the commands never need to decrypt it)."""
    identity = Identity.generate()
    key = secret_value("teamkey")
    write_secret(config_repo, identity, "team_key", key)
    config_repo.write_gateway(listen={"host": "127.0.0.1", "port": 9191}, secrets={"recipients": [identity.recipient]})
    config_repo.write_profile("team", {"clock": {"module": "local_mcp_gateway.examples.clock:server"}},
                              api_keys=["${secret:team_key}"])
    config_repo.write_profile("open", {"clock": {"module": "local_mcp_gateway.examples.clock:server"}})
    return config_repo, key


def test_client_config_prints_each_clients_exact_snippet(keyed: tuple[ConfigRepo, str], capsys: Any) -> None:
    repo, key = keyed
    outputs = {}
    for client in ("claude-desktop", "claude-code", "cursor", "vscode", "inspector", "mcp-remote"):
        code, out, _ = run(capsys, "client-config", "team", "--client", client, "-c", str(repo.path))
        assert code == 0, client
        assert key not in out
        outputs[client] = out
    assert json.loads(outputs["claude-code"]) == {
        "mcpServers": {"gateway-team": {"type": "http", "url": URL,
                                        "headers": {"Authorization": "Bearer ${LOCAL_MCP_GATEWAY_KEY}"}}}
    }
    assert json.loads(outputs["cursor"]) == {
        "mcpServers": {"gateway-team": {"url": URL, "headers": {"Authorization": "Bearer ${env:LOCAL_MCP_GATEWAY_KEY}"}}}
    }
    assert json.loads(outputs["vscode"]) == {
        "servers": {"gateway-team": {"type": "http", "url": URL,
                                     "headers": {"Authorization": "Bearer ${env:LOCAL_MCP_GATEWAY_KEY}"}}}
    }
    desktop = json.loads(outputs["claude-desktop"])["mcpServers"]["gateway-team"]
    assert desktop["command"] == "npx"
    assert desktop["args"] == ["-y", "mcp-remote@latest", URL, "--transport", "http-only",
                               "--header", "Authorization:Bearer ${LOCAL_MCP_GATEWAY_KEY}"]
    inspector = shlex.split(outputs["inspector"])
    assert inspector[:4] == ["npx", "-y", "@modelcontextprotocol/inspector@latest", "--cli"]
    assert inspector[4] == URL and inspector[inspector.index("--transport") + 1] == "http"
    assert inspector[-2:] == ["--header", "Authorization: Bearer $LOCAL_MCP_GATEWAY_KEY"]
    bridge = shlex.split(outputs["mcp-remote"])
    assert bridge[:4] == ["npx", "-y", "mcp-remote@latest", URL]
    assert bridge[-2:] == ["--header", "Authorization:Bearer $LOCAL_MCP_GATEWAY_KEY"]


def test_client_config_without_keys_has_no_header_and_honours_public_url(keyed: tuple[ConfigRepo, str], capsys: Any) -> None:
    repo, _ = keyed
    code, out, _ = run(capsys, "client-config", "open", "--client", "claude-code", "-c", str(repo.path))
    assert code == 0
    assert json.loads(out) == {"mcpServers": {"gateway-open": {"type": "http", "url": "http://127.0.0.1:9191/mcp/open"}}}
    repo.write_gateway(public_url="https://gw.example.com")
    code, out, _ = run(capsys, "client-config", "team", "--client", "cursor", "--key-env", "TEAM_KEY", "-c", str(repo.path))
    server = json.loads(out)["mcpServers"]["gateway-team"]
    assert server == {"url": "https://gw.example.com/mcp/team", "headers": {"Authorization": "Bearer ${env:TEAM_KEY}"}}


def test_client_config_errors_name_the_problem(keyed: tuple[ConfigRepo, str], capsys: Any) -> None:
    repo, _ = keyed
    code, out, err = run(capsys, "client-config", "nope", "--client", "cursor", "-c", str(repo.path))
    assert code == 1 and out == "" and "no profile 'nope'" in err and "open, team" in err
    code, _, err = run(capsys, "client-config", "team", "--client", "cursor", "--key-env", "1; rm -rf", "-c", str(repo.path))
    assert code == 2 and "not an environment variable name" in err


def test_export_in_every_format_says_the_same_thing(config_repo: ConfigRepo, capsys: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(UI_TESTS))  # in-process servers are imported by module name
    config_repo.write_profile("team", {
        "wörterbuch": {"module": "dashboard_upstream:worded"},
        "hostile": {"module": "dashboard_upstream:hostile"},
        "echo": fixture_server("echo_server.py"),
    }, description="Team tools")
    path = str(config_repo.path)
    code, out, _ = run(capsys, "export", "team", "--format", "json", "-c", path)
    assert code == 0
    document = json.loads(out)
    names = [tool["name"] for tool in document["tools"]]
    assert "w_rterbuch__nachschlagen" in names and "hostile__inject" in names and "echo__echo" in names
    by_name = {tool["name"]: tool for tool in document["tools"]}
    assert by_name["hostile__inject"]["description"] == HOSTILE_DESCRIPTION
    assert by_name["echo__add"]["inputSchema"]["properties"]["a"]["type"] == "integer"
    assert by_name["w_rterbuch__nachschlagen"]["server"] == "wörterbuch"
    assert {p["name"] for p in document["prompts"]} >= {"w_rterbuch__gruss", "echo__greet"}
    assert {r["uri"] for r in document["resources"]} >= {"wort://liste", "echo://static"}
    assert [t["uriTemplate"] for t in document["resourceTemplates"]] == ["echo://item/{id}"]

    code, out, _ = run(capsys, "export", "team", "--format", "toon", "-c", path)
    assert code == 0 and toon.decode(out) == document

    code, out, _ = run(capsys, "export", "team", "--format", "xml", "-c", path)
    root = ET.fromstring(out.encode())
    tools = {t.get("name"): t for t in root.iter("tool")}
    assert set(tools) == set(names)
    assert tools["hostile__inject"].findtext("description") == HOSTILE_DESCRIPTION
    assert json.loads(tools["echo__add"].findtext("input-schema")) == by_name["echo__add"]["inputSchema"]
    assert root.find("tools").get("count") == str(len(names))

    code, out, _ = run(capsys, "export", "team", "--format", "markdown", "-c", path)
    for name in names:
        assert f"### `{name}`" in out
    assert "- `a` (integer, required)" in out and "Team tools" in out


def test_export_names_a_server_it_could_not_reach(config_repo: ConfigRepo, capsys: Any) -> None:
    config_repo.write_profile("team", {"clock": {"module": "local_mcp_gateway.examples.clock:server"},
                                       "broken": {"command": "/nonexistent/mcp-export-test"}})
    code, out, err = run(capsys, "export", "team", "--format", "json", "-c", str(config_repo.path))
    assert code == 0 and [t["server"] for t in json.loads(out)["tools"]] == ["clock"] * 3
    assert "server broken" in err and "/nonexistent/mcp-export-test" in err


def test_the_command_line_offers_every_client_and_format_without_loading_the_dashboard() -> None:
    import subprocess
    import sys

    from local_mcp_gateway.commands import ui_cmds
    from local_mcp_gateway.ui.clients import CLIENTS
    from local_mcp_gateway.ui.export import FORMATS

    assert ui_cmds.CLIENT_NAMES == CLIENTS and ui_cmds.EXPORT_FORMATS == FORMATS
    code = ("import sys; from local_mcp_gateway.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('local_mcp_gateway.ui')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
