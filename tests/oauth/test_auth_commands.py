"""`auth login`, `auth status` and `auth logout` as a person runs them: real processes, real HTTP, real files."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from local_mcp_gateway.oauth import OAuthManager, server_key
from local_mcp_gateway.secrets import Identity
from local_mcp_gateway.state import StateStore
from tests.conftest import free_port
from tests.oauth.conftest import issued_values, state_text
from tests.oauth.servers import ThreadedServer

COMMAND_TIMEOUT = 60.0
"""Seconds an `auth` command may take (a login waits for the test to open the URL)."""


def write_repo(root: Path, protected_url: str, port: int, **oauth: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "profiles").mkdir(exist_ok=True)
    gateway = {
        "version": 1,
        "listen": {"host": "127.0.0.1", "port": port},
        "servers": {"linear": {"url": protected_url, "oauth": {"scopes": ["read"], **oauth}}},
    }
    (root / "gateway.yaml").write_text(yaml.safe_dump(gateway, sort_keys=False))
    (root / "profiles" / "work.yaml").write_text(yaml.safe_dump({"servers": {"linear": {}}}))
    return root / "gateway.yaml"


def environment(identity: Identity | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    if identity is not None:
        env["MCP_GATEWAY_AGE_KEY"] = identity.reveal()
    return env


def run(config: Path, identity: Identity | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "local_mcp_gateway", "auth", *args, "-c", str(config)],
                          capture_output=True, text=True, env=environment(identity), timeout=COMMAND_TIMEOUT)


def login(config: Path, identity: Identity, server: str = "linear") -> tuple[subprocess.CompletedProcess[str], str]:
    """Run `auth login`, open the URL it prints like a browser would, return the finished process and the page."""
    process = subprocess.Popen(
        [sys.executable, "-m", "local_mcp_gateway", "auth", "login", server, "-c", str(config), "--timeout", "30",
         "--no-browser"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(identity),
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        url = ""
        while not url:
            line = lines.get(timeout=COMMAND_TIMEOUT).strip()
            url = line if line.startswith("http") else ""
        page = httpx2.get(url, follow_redirects=True, timeout=COMMAND_TIMEOUT).text
        process.wait(COMMAND_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    stderr = process.stderr.read() if process.stderr else ""
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(rest), stderr), page


@pytest.fixture
def repo(tmp_path, protected):
    return write_repo(tmp_path / "repo", protected.url, free_port())


def test_login_status_logout(repo, identity, auth_server, protected):
    done, page = login(repo, identity)
    assert done.returncode == 0, done.stderr
    assert "Logged in to linear" in page
    assert "Logged in to linear; tokens stored" in done.stdout
    store = StateStore(repo.parent / "state", identity, [])
    raw = state_text(store)
    for value in issued_values(auth_server):
        assert value not in done.stdout + done.stderr
        assert value.encode() not in raw

    status = run(repo, identity, "status")
    assert status.returncode == 0, status.stderr
    assert "linear: authorized, access token expires" in status.stdout
    rows = json.loads(run(repo, identity, "status", "--json").stdout)
    assert rows[0]["server"] == "linear" and rows[0]["authorized"] and rows[0]["refreshable"]
    assert not any(value in json.dumps(rows) for value in issued_values(auth_server))

    refresh_tokens = list(auth_server.refresh)
    out = run(repo, identity, "logout", "linear")
    assert out.returncode == 0, out.stderr
    assert "revoked" in out.stdout
    assert set(refresh_tokens) <= set(auth_server.revoked)
    assert "linear: not logged in" in run(repo, identity, "status").stdout
    key = server_key("linear", protected.url)
    assert store.read(f"oauth/{key}/tokens") is None


def test_login_relayed_by_a_gateway_listening_on_public_url(tmp_path, identity, auth_server, protected):
    """A gateway owns the callback address: it relays the callback through state/, the command finishes."""
    port = free_port()
    config = write_repo(tmp_path / "repo", protected.url, port)
    gateway_store = StateStore(tmp_path / "repo" / "state", identity, [])
    manager = OAuthManager(gateway_store, f"http://127.0.0.1:{port}")

    async def callback(request: Request) -> PlainTextResponse:
        status, text = await manager.handle_callback(dict(request.query_params))
        return PlainTextResponse(text, status_code=status)

    async def status(request: Request) -> JSONResponse:
        return JSONResponse({"profiles": {}})

    app = Starlette(routes=[Route("/oauth/callback", callback), Route("/status", status)])
    with ThreadedServer(app, port=port):
        done, page = login(config, identity)
    assert done.returncode == 0, done.stderr
    assert "relays the callback" in done.stderr
    assert "Login received" in page
    assert "Logged in to linear; tokens stored" in done.stdout
    assert not gateway_store.list("oauth/relay/"), "the relay entry is removed once used"


def test_no_key_is_one_clear_line(repo):
    out = run(repo, None, "status")
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error: ")
    assert "MCP_GATEWAY_AGE_KEY" in out.stderr and "Traceback" not in out.stderr


def test_unknown_server_names_the_known_ones(repo, identity):
    out = run(repo, identity, "login", "nope")
    assert out.returncode == 1
    assert "no server 'nope'" in out.stderr and "linear" in out.stderr


def test_corrupted_token_file_is_reported_and_treated_as_absent(repo, identity, protected):
    store = StateStore(repo.parent / "state", identity, [])
    key = server_key("linear", protected.url)
    store.write_json(f"oauth/{key}/tokens", {"token": {"access_token": "x"}, "obtained_at": 0})
    path = store.path_of(f"oauth/{key}/tokens")
    path.write_bytes(path.read_bytes()[:40])
    out = run(repo, identity, "status")
    assert out.returncode == 0, out.stderr
    assert "linear: not logged in" in out.stdout
    assert "cannot be read" in out.stdout and str(path) in out.stdout


def test_manager_for_a_configuration(repo, identity, monkeypatch):
    from local_mcp_gateway.config.load import load_snapshot
    from local_mcp_gateway.oauth import manager_for
    from local_mcp_gateway.settings import EnvSettings

    for name in list(os.environ):
        if name.startswith("MCP_GATEWAY_"):
            monkeypatch.delenv(name)
    snapshot = load_snapshot(repo)
    with pytest.raises(Exception, match="MCP_GATEWAY_AGE_KEY"):
        manager_for(snapshot, EnvSettings())
    monkeypatch.setenv("MCP_GATEWAY_AGE_KEY", identity.reveal())
    settings = EnvSettings()
    manager = manager_for(snapshot, settings)
    port = snapshot.gateway.listen.port
    assert manager is not None and manager.redirect_uri == f"http://127.0.0.1:{port}/oauth/callback"
    assert manager_for(snapshot, settings, manager) is manager, "kept across reloads that change nothing"
    monkeypatch.setenv("MCP_GATEWAY_PORT", "9999")
    assert manager_for(snapshot, EnvSettings(), manager).redirect_uri == "http://127.0.0.1:9999/oauth/callback"
