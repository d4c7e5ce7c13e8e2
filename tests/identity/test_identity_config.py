"""The identity keys of gateway.yaml and profiles, through `local-mcp-gateway validate`."""

from __future__ import annotations

from typing import Any

import pytest

from local_mcp_gateway.cli import main
from tests.conftest import ConfigRepo


def validate(repo: ConfigRepo, capsys: Any) -> tuple[int, str]:
    code = main(["validate", "-c", str(repo.path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_complete_identity_configuration_is_valid(config_repo: ConfigRepo, capsys: Any) -> None:
    config_repo.write_gateway(
        security={"oauth": {"issuer": "https://id.example.com", "required_scopes": ["mcp"]}},
        logging={"audit": {"file": "audit/calls.jsonl", "max_bytes": 1048576, "backups": 3}},
    )
    config_repo.write_profile(
        "team",
        {},
        oauth={"audience": "https://mcp.example.com/mcp/team", "jwks_uri": "https://id.example.com/jwks"},
        access=[{"tools": ["github__*"], "scopes": ["github"]}],
    )
    code, output = validate(config_repo, capsys)
    assert code == 0, output


def test_oauth_without_an_issuer_is_refused_at_its_line(config_repo: ConfigRepo, capsys: Any) -> None:
    (config_repo.root / "profiles" / "team.yaml").write_text("servers: {}\noauth:\n  required_scopes: [mcp]\n")
    code, output = validate(config_repo, capsys)
    assert code == 1
    assert "team.yaml:2:1: oauth: needs an issuer: set oauth.issuer here or security.oauth.issuer in gateway.yaml" in output


@pytest.mark.parametrize(
    ("profile", "fragment"),
    [
        ({"access": [{"tools": ["a*"], "scopes": []}]}, "access[0].scopes"),
        ({"access": [{"tools": ["a*"]}]}, "access[0]: required key 'scopes' is missing"),
        ({"access": [{"tools": ["a*"], "scopes": ["two words"]}]}, "access[0].scopes[0]"),
        ({"oauth": {"issuer": "not a url"}}, "oauth.issuer"),
        ({"oauth": {"issuer": "https://id.example.com", "introspection": True}}, "oauth.introspection"),
    ],
)
def test_bad_identity_settings_name_the_key(
    config_repo: ConfigRepo, capsys: Any, profile: dict[str, Any], fragment: str
) -> None:
    config_repo.write_profile("team", {}, **profile)
    code, output = validate(config_repo, capsys)
    assert code == 1
    assert "team.yaml:" in output and fragment in output, output
