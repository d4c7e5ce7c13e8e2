"""Config and secret trust: allowed_commands match the program that runs, the gateway's key variables stay out of
templates, and a secret file may not be a link out of secrets/."""

from __future__ import annotations

import os
from pathlib import Path

from cfgrepo import Repo

from local_mcp_gateway.config.commands import command_problem


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_a_name_in_allowed_commands_is_the_program_path_finds(repo: Repo, at, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tools = tmp_path / "tools"
    real = executable(tools / "uvx")
    executable(repo.root / "bin" / "uvx")  # a script of the same name in the repository
    environ = {"PATH": str(tools)}
    repo.write(
        "gateway.yaml",
        f"""
        version: 1
        security:
          allowed_commands: [uvx]
        servers:
          plain: {{command: uvx}}
          absolute: {{command: {real}}}
          repo_script: {{command: ./bin/uvx, cwd: .}}
          own_path: {{command: uvx, cwd: ., env: {{PATH: ./bin}}}}
        """,
    )
    issues = repo.issues(environ)
    assert [at(issue)[3] for issue in issues] == ["servers.repo_script.command", "servers.own_path.command"]
    script = os.path.normpath(repo.root / "bin" / "uvx")
    assert issues[0].line == 7
    assert issues[0].message == (
        f"'./bin/uvx' runs {script}, which is not allowed by security.allowed_commands (uvx): a name there means "
        f"the program found on PATH; list the absolute path {script} there to allow this file"
    )
    assert "env.PATH" in issues[1].message and script in issues[1].message


def test_an_absolute_entry_allows_exactly_that_file(tmp_path: Path) -> None:
    real = executable(tmp_path / "tools" / "uvx")
    script = executable(tmp_path / "repo" / "bin" / "uvx")
    environ = {"PATH": str(real.parent)}
    allowed = [str(script)]
    assert command_problem("./bin/uvx", allowed, cwd=str(tmp_path / "repo"), environ=environ) is None
    assert command_problem(str(script), allowed, environ=environ) is None
    assert command_problem("uvx", allowed, environ=environ) is not None  # PATH finds the other one
    assert command_problem("uvx", [str(real.parent) + "/*"], environ=environ) is None
    assert command_problem("python3", ["python*"], environ=environ) is None  # the gateway's own interpreter
    assert command_problem("anything", [], environ=environ) is None  # no list: no check


def test_the_gateways_key_variables_cannot_be_referenced(repo: Repo, at) -> None:  # type: ignore[no-untyped-def]
    repo.write(
        "profiles/p.yaml",
        """
        servers:
          s:
            command: srv
            env:
              KEY: "${env:MCP_GATEWAY_AGE_KEY}"
              KEY_FILE: "${env:MCP_GATEWAY_AGE_KEY_FILE}"
              FINE: "${env:HOME}"
        """,
    )
    environ = {"MCP_GATEWAY_AGE_KEY": "AGE-SECRET-KEY-1XYZ", "MCP_GATEWAY_AGE_KEY_FILE": "/k", "HOME": "/h"}
    issues = repo.issues(environ)
    assert [at(issue) for issue in issues] == [
        ("profiles/p.yaml", 5, 7, "servers.s.env.KEY"),
        ("profiles/p.yaml", 6, 7, "servers.s.env.KEY_FILE"),
    ]
    assert issues[0].message.startswith("${env:MCP_GATEWAY_AGE_KEY} is the gateway's own age key")
    assert "secret set NAME" in issues[0].message
    assert "AGE-SECRET-KEY-1XYZ" not in str(issues)


def test_a_secret_file_linking_out_of_secrets_is_refused(repo: Repo, at, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "elsewhere" / "id_ed25519"
    outside.parent.mkdir()
    outside.write_bytes(b"age-encryption.org/v1\n")
    (repo.root / "secrets" / "token.age").symlink_to(outside)
    repo.write("gateway.yaml", 'version: 1\nservers:\n  s: {url: "https://x.example/mcp?t=${secret:token}"}\n')
    issue = repo.only_issue()
    assert at(issue) == ("gateway.yaml", 3, 7, "servers.s.url")
    assert issue.message.startswith("secret 'token': secrets/token.age is a link to a file outside secrets/")
    # A link that stays inside secrets/ is fine.
    (repo.root / "secrets" / "token.age").unlink()
    (repo.root / "secrets" / "real.age").write_bytes(b"age-encryption.org/v1\n")
    (repo.root / "secrets" / "token.age").symlink_to("real.age")
    repo.load()
