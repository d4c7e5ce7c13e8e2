"""The identity package's pure parts: access rules, effective settings, challenges, the audit file, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from local_mcp_gateway.config.models import AccessRule, InboundOAuthConfig
from local_mcp_gateway.errors import ConfigError
from local_mcp_gateway.identity import AccessPolicy, AuditLog, key_caller_id, resource_settings


def test_a_tool_matched_by_rules_needs_every_scope_of_every_matching_rule() -> None:
    policy = AccessPolicy.from_rules(
        "team",
        [
            AccessRule(tools=["github__*"], scopes=["github"]),
            AccessRule(tools=["github__delete_*"], scopes=["github", "admin"]),
        ],
    )
    assert policy.allows("notes__read", frozenset())
    assert not policy.allows("github__search", frozenset({"mcp"}))
    assert policy.allows("github__search", frozenset({"github"}))
    assert not policy.allows("github__delete_repo", frozenset({"github"}))
    assert policy.allows("github__delete_repo", frozenset({"github", "admin", "more"}))
    assert policy.allows("GITHUB__search", frozenset())  # globs are case-sensitive: no rule matches, so it is open
    assert policy.scopes() == ["admin", "github"]


def test_key_ids_tell_keys_apart_without_revealing_them() -> None:
    first, second = key_caller_id("secret-key-one"), key_caller_id("secret-key-two")
    assert first != second
    assert first.startswith("key:") and len(first) == 12
    assert "secret" not in first


def _snapshot(defaults: InboundOAuthConfig | None, own: InboundOAuthConfig | None, tmp_path: Path) -> SimpleNamespace:
    profile = SimpleNamespace(oauth=own, access=(AccessRule(tools=["a*"], scopes=["extra"]),), file=tmp_path / "team.yaml")
    return SimpleNamespace(
        profiles={"team": profile}, gateway=SimpleNamespace(security=SimpleNamespace(oauth=defaults))
    )


def test_a_profile_overrides_single_fields_of_the_gateway_defaults(tmp_path: Path) -> None:
    defaults = InboundOAuthConfig(issuer="https://id.example", required_scopes=["mcp"])
    own = InboundOAuthConfig(required_scopes=["team"])
    settings = resource_settings(_snapshot(defaults, own, tmp_path), "team", "https://gw.example/base/")
    assert settings is not None
    assert settings.issuer == "https://id.example"
    assert settings.required_scopes == ("team",)
    assert settings.resource == settings.audience == "https://gw.example/base/mcp/team"
    assert settings.metadata_url == "https://gw.example/.well-known/oauth-protected-resource/base/mcp/team"
    assert settings.metadata()["scopes_supported"] == ["extra", "team"]
    assert settings.challenge("insufficient_scope", 'say "no"') == (
        'Bearer error="insufficient_scope", error_description="say \'no\'", scope="team", '
        'resource_metadata="https://gw.example/.well-known/oauth-protected-resource/base/mcp/team"'
    )
    assert resource_settings(_snapshot(None, None, tmp_path), "team", "http://x") is None


def test_oauth_without_an_issuer_names_the_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resource_settings(_snapshot(None, InboundOAuthConfig(required_scopes=["mcp"]), tmp_path), "team", "http://x")
    assert str(caught.value).startswith(f"{tmp_path / 'team.yaml'}: oauth.issuer: oauth needs an issuer")


def test_the_audit_file_rotates_whole_lines_and_keeps_the_configured_backups(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=1024, backups=1)
    for index in range(60):
        log.write({"n": index, "padding": "x" * 40})
    files = sorted(tmp_path.iterdir())
    assert [path.name for path in files] == ["audit.jsonl", "audit.jsonl.1"]
    numbers = [json.loads(line)["n"] for path in reversed(files) for line in path.read_text().splitlines()]
    assert numbers == list(range(numbers[0], 60)), "whole lines, in order, the newest kept"
    assert all(path.stat().st_size <= 1024 for path in files)

    without_backups = AuditLog(tmp_path / "only" / "audit.jsonl", max_bytes=1024, backups=0)
    for index in range(60):
        without_backups.write({"n": index, "padding": "x" * 40})
    assert [path.name for path in (tmp_path / "only").iterdir()] == ["audit.jsonl"]


def _loaded_after(code: str) -> list[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps([m for m in ('joserfc', 'authlib') if m in sys.modules]))"
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def test_the_token_library_loads_only_where_tokens_are_accepted() -> None:
    prelude = (
        "import local_mcp_gateway.gateway\n"
        "from local_mcp_gateway.identity import AccessPolicy, Authenticator, ResourceSettings\n"
    )
    assert _loaded_after(prelude + "Authenticator(AccessPolicy('p'), ['key'])") == []
    oauth = "ResourceSettings('p', 'http://g/mcp/p', 'http://g/m', 'http://i', None, 'http://g/mcp/p', ())"
    assert _loaded_after(prelude + f"Authenticator(AccessPolicy('p'), [], {oauth})") == ["joserfc"]
