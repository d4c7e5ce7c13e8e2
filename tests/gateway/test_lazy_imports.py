"""Optional features cost nothing while unused: the gateway serving the bundled example (no OAuth, no inbound
tokens, no tracing, nobody on the dashboard) never loads the OAuth flow, PyJWT, Authlib, the dashboard's routes or
the OpenTelemetry SDK. The gateway runs in a child process, serves a listing, and reports its own `sys.modules`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, free_port

NOT_LOADED = (
    "local_mcp_gateway.oauth.manager",
    "local_mcp_gateway.oauth.provider",
    "local_mcp_gateway.identity.tokens",
    "local_mcp_gateway.ui.routes",
    "mcp.client.auth",
    "jwt",
    "authlib",
    "joserfc",
    "opentelemetry.sdk",
)

RUN_TIMEOUT = 120

# Runs `local-mcp-gateway run` in this process; a thread waits until it serves, lists the demo profile's tools,
# prints the loaded modules and stops the gateway with SIGINT (as a user's Ctrl-C).
SCRIPT = r"""
import json, os, signal, sys, threading, time, urllib.request
from local_mcp_gateway.cli import main

PORT = int(os.environ["MCP_GATEWAY_PORT"])
BASE = f"http://127.0.0.1:{PORT}"

def post(path, body, headers):
    request = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.headers, answer.read().decode()

def probe():
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(BASE + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    headers, _ = post("/mcp/demo", init, {})
    session = {"Mcp-Session-Id": headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    post("/mcp/demo", {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    _, listing = post("/mcp/demo", {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
    print("RESULT " + json.dumps({"listing": listing, "modules": sorted(sys.modules)}), flush=True)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=probe, daemon=True).start()
sys.exit(main(["run", "--config", "gateway.yaml.example"]))
"""


def test_the_bundled_example_runs_without_loading_unused_features(tmp_path: Path) -> None:
    shutil.copy(REPO / "gateway.yaml.example", tmp_path / "gateway.yaml.example")
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_GATEWAY_", "OTEL_"))}
    environment |= {"MCP_GATEWAY_HOST": "127.0.0.1", "MCP_GATEWAY_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=environment, capture_output=True, text=True,
        timeout=RUN_TIMEOUT,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the gateway did not serve the example (exit {done.returncode}):\n{done.stderr[-3000:]}"
    result = json.loads(lines[0][len("RESULT "):])
    assert "clock__now" in result["listing"]  # it really served the demo profile
    loaded = set(result["modules"])
    assert "local_mcp_gateway.gateway" in loaded
    unwanted = sorted(name for name in loaded if name in NOT_LOADED or name.startswith(tuple(f"{m}." for m in NOT_LOADED)))
    assert unwanted == []
