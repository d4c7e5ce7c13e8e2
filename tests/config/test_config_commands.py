"""The `validate` and `schema` commands, run in-process through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from cfgrepo import Repo

from local_mcp_gateway.cli import main
from local_mcp_gateway.config.yamlsafe import load_yaml

REPO = Path(__file__).resolve().parents[2]


def test_validate_valid_config(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("profiles/demo.yaml", "servers: {}\n")
    assert main(["validate", "-c", str(repo.config)]) == 0
    assert capsys.readouterr().out == f"{repo.config}: valid (profiles: demo)\n"


def test_validate_text_format_lists_every_issue(
    repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("gateway.yaml", "version: 1\nlisten: {port: x}\n")
    repo.write("profiles/work.yaml", "servers:\n  gh:\n    url: https://x.example\n    tools: {include: get_*}\n")
    monkeypatch.chdir(repo.root)
    assert main(["validate"]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "gateway.yaml:2:10: listen.port: expected a whole number",
        'profiles/work.yaml:4:13: servers.gh.tools.include: expected a list of globs, e.g. ["get_*"]',
    ]
    assert out.err == "gateway.yaml: invalid, 2 issues\n"


def test_validate_github_format(repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write("gateway.yaml", "version: 1\nsecurity: {api_keys: [plain]}\n")
    repo.write("profiles/p.yaml", "servers: {}\n")
    monkeypatch.chdir(repo.root)
    assert main(["validate", "--format", "github"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "::warning file=gateway.yaml,line=2,col=23::security.api_keys[0]: API key written in plain text ends up in git; "
        "store it with `local-mcp-gateway secret set NAME` and write ${secret:NAME}"
    ]
    repo.write("gateway.yaml", "version: 1\ndefault_profile: nope\n")
    assert main(["validate", "--format", "github"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "::error file=gateway.yaml,line=2,col=1::default_profile: no profile 'nope': profiles/nope.yaml does not exist "
        "(profiles: p); create it or change default_profile"
    ]


def test_validate_text_warnings(repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write("profiles/p.yaml", "servers:\n  a: {module: 'm:a', tools: {include: []}}\n")
    monkeypatch.chdir(repo.root)
    assert main(["validate", "-c", "gateway.yaml"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "profiles/p.yaml:2:30: warning: servers.a.tools.include: include is empty, so no tool of this server is shown",
        "gateway.yaml: valid (profiles: p)",
    ]


def test_validate_config_from_the_environment(
    repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("profiles/p.yaml", "servers: {}\n")
    monkeypatch.setenv("MCP_GATEWAY_CONFIG", str(repo.config))
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith(f"{repo.config}: valid")


def test_schema_writes_checks_and_detects_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "schemas"
    assert main(["schema", "--check", "--out", str(out)]) == 1
    assert "run `local-mcp-gateway schema" in capsys.readouterr().out
    assert main(["schema", "--out", str(out)]) == 0
    first = (out / "gateway.schema.json").read_bytes()
    assert first.endswith(b"}\n")
    assert main(["schema", "--check", "--out", str(out)]) == 0
    assert main(["schema", "--out", str(out)]) == 0
    assert (out / "gateway.schema.json").read_bytes() == first  # deterministic
    (out / "profile.schema.json").write_text("{}\n")
    capsys.readouterr()
    assert main(["schema", "--check", "--out", str(out)]) == 1
    assert capsys.readouterr().out == (
        f"{out / 'profile.schema.json'}: out of date or missing; run `local-mcp-gateway schema --out {out}` "
        "and commit the result\n"
    )


def test_committed_schemas_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--check", "--out", str(REPO / "schemas")]) == 0, capsys.readouterr().out


def test_shipped_examples_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-c", str(REPO / "gateway.yaml.example")]) == 0
    assert capsys.readouterr().out == f"{REPO / 'gateway.yaml.example'}: valid (profiles: demo, solo, work)\n"


def test_shipped_examples_match_the_schemas() -> None:
    gateway_schema = json.loads((REPO / "schemas" / "gateway.schema.json").read_text())
    profile_schema = json.loads((REPO / "schemas" / "profile.schema.json").read_text())
    jsonschema.validate(load_yaml(REPO / "gateway.yaml.example").data, gateway_schema)
    for path in sorted((REPO / "profiles").glob("*.yaml")):
        jsonschema.validate(load_yaml(path).data, profile_schema)
        assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/profile.schema.json\n")
    assert (REPO / "gateway.yaml.example").read_text().startswith(
        "# yaml-language-server: $schema=schemas/gateway.schema.json\n"
    )


def test_demo_profile_runs_offline() -> None:
    """Only servers whose code ships in the package: in-process modules and `python -m` children."""
    from local_mcp_gateway.config import load_snapshot

    snap = load_snapshot(REPO / "gateway.yaml.example", environ={})
    assert snap.gateway.default_profile == "demo"
    for profile in snap.profiles.values():
        for server in profile.servers:
            config = server.config
            assert not any(t.secret_names for t in (config.url, config.command, *config.args) if t is not None)
            assert config.oauth is None
            if config.enabled:
                assert config.kind == "inprocess" or (
                    config.command is not None and config.command.raw == "python" and config.args[0].raw == "-m"
                ), server.name
                module = config.module or config.args[1].raw
                assert module.startswith("local_mcp_gateway.examples."), server.name
