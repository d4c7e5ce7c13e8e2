"""Resolution: rendered values, fingerprints that follow connection settings only, reprs without secrets."""

from __future__ import annotations

import pytest
from cfgrepo import Repo

from local_mcp_gateway.config.resolve import resolve_profile, resolve_snapshot
from local_mcp_gateway.errors import ConfigError

GATEWAY = """
version: 1
servers:
  api:
    url: "https://api.example/mcp?team=${env:TEAM}"
    headers: {Authorization: "Bearer ${secret:api_token}"}
    oauth: {scopes: [read], client_id: gw, client_secret: "${secret:api_client}"}
  tool:
    command: srv
    args: [--token, "${secret:api_token}", "$${literal}"]
    env: {TOKEN: "${secret:api_token}"}
    cwd: data
"""

SECRET_VALUE = "s3cr3t-value-never-shown"


def secrets(name: str) -> str:
    return f"{SECRET_VALUE}-{name}"


@pytest.fixture
def loaded(repo: Repo) -> Repo:
    repo.write("gateway.yaml", GATEWAY)
    repo.write_bytes("secrets/api_token.age", b"x")
    repo.write_bytes("secrets/api_client.age", b"x")
    repo.write("profiles/p.yaml", "servers:\n  api: {}\n  tool: {prefix: t}\n")
    return repo


def test_every_reference_is_rendered(loaded: Repo) -> None:
    snap = loaded.load({"TEAM": "core"})
    api, tool = resolve_profile(snap.profiles["p"], secrets, {"TEAM": "core"})
    assert api.url == "https://api.example/mcp?team=core"
    assert dict(api.headers) == {"Authorization": f"Bearer {SECRET_VALUE}-api_token"}
    assert api.oauth is not None and api.oauth.client_secret == f"{SECRET_VALUE}-api_client"
    assert (api.kind, api.prefix, api.profile, api.name) == ("remote", "api", "p", "api")
    assert tool.command == "srv"
    assert tool.args == ("--token", f"{SECRET_VALUE}-api_token", "${literal}")
    assert tool.env_map == {"TOKEN": f"{SECRET_VALUE}-api_token"}
    assert tool.cwd == str(loaded.root / "data")
    assert tool.prefix == "t"


def test_repr_hides_values(loaded: Repo) -> None:
    snap = loaded.load({"TEAM": "core"})
    for server in resolve_snapshot(snap, secrets, {"TEAM": "core"})["p"]:
        assert SECRET_VALUE not in repr(server) and SECRET_VALUE not in str(server)
        assert server.oauth is None or SECRET_VALUE not in repr(server.oauth)


def test_fingerprint_follows_connection_settings_only(loaded: Repo) -> None:
    env = {"TEAM": "core"}
    before = {s.name: s.fingerprint for s in resolve_profile(loaded.load(env).profiles["p"], secrets, env)}
    loaded.write("profiles/p.yaml", "servers:\n  api: {tools: {exclude: [x]}, prefix: other}\n  tool: {prefix: t, enabled: false}\n")
    after = {s.name: s.fingerprint for s in resolve_profile(loaded.load(env).profiles["p"], secrets, env)}
    assert after == before
    changed = resolve_profile(loaded.load(env).profiles["p"], lambda n: "rotated", env)
    assert {s.name: s.fingerprint for s in changed} != before  # a rotated secret restarts the server
    loaded.write("profiles/p.yaml", "servers:\n  api: {timeout_seconds: 5}\n  tool: {isolation: per_session}\n")
    again = {s.name: s.fingerprint for s in resolve_profile(loaded.load(env).profiles["p"], secrets, env)}
    assert again["api"] != before["api"] and again["tool"] != before["tool"]


def test_unset_environment_at_resolve_time_names_the_server(loaded: Repo) -> None:
    snap = loaded.load({"TEAM": "core"})
    with pytest.raises(ConfigError) as caught:
        resolve_profile(snap.profiles["p"], secrets, {})
    issue = caught.value.issues[0]
    assert issue.file == loaded.config and issue.line == 3
    assert issue.message == "server 'api': ${env:TEAM} is not set; set TEAM in the gateway's environment"
