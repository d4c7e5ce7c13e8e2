"""`keygen`, `secret set`, `secret list` and `secret rotate`, run as a user runs them."""

from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import pytest

from local_mcp_gateway.cli import main
from local_mcp_gateway.secrets import Identity, encrypt_to, load_identity
from local_mcp_gateway.settings import EnvSettings
from local_mcp_gateway.state import StateStore, atomic_write

GITHUB = """
github:
  url: https://example.invalid/mcp
  headers: {Authorization: "Bearer ${secret:github_token}"}
"""
WORK_PROFILE = """
servers:
  github: {}
  scratch:
    command: python
    env: {TOKEN: "${secret:scratch}"}
api_keys: ["${secret:work_key}"]
"""


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: bytes = b"") -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    return main(argv)


def write_key(path: Path, identity: Identity) -> Path:
    atomic_write(path, f"{identity.reveal()}\n".encode())
    return path


def snapshot_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------- keygen


def test_keygen_prints_an_identity_the_age_tool_reads(age, tmp_path: Path, cli) -> None:
    done = cli("keygen")
    assert done.returncode == 0, done.stderr
    comments = [line for line in done.stdout.splitlines() if line.startswith("#")]
    assert comments[0].startswith("# created: ") and comments[1].startswith("# public key: age1")
    recipient = comments[1].removeprefix("# public key: ")
    assert recipient in done.stderr
    key = tmp_path / "printed.txt"
    atomic_write(key, done.stdout.encode())
    ciphertext = encrypt_to([recipient], b"hello")
    assert age("-d", "-i", str(key), input=ciphertext).stdout == b"hello"


def test_keygen_out_writes_a_private_file_and_never_overwrites(tmp_path: Path, cli) -> None:
    out = tmp_path / "keys" / "gateway.key"
    done = cli("keygen", "--out", str(out))
    assert done.returncode == 0, done.stderr
    recipient = done.stdout.strip()
    assert recipient.startswith("age1") and "AGE-SECRET-KEY" not in done.stdout + done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    loaded = load_identity(EnvSettings(age_key_file=out))
    assert loaded is not None and loaded.recipient == recipient
    before = out.read_bytes()
    again = cli("keygen", "--out", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["gateway.key"]


# --------------------------------------------------------------------------------------------- secret set


def test_secret_set_writes_a_file_the_age_tool_opens(age, tmp_path: Path, make_repo, cli, identity: Identity,
                                                     key_file: Path) -> None:
    config = make_repo([identity.recipient], GITHUB, {"work": WORK_PROFILE})  # references secrets not yet made
    value = "ghp_fromStdin_123"
    done = cli("secret", "set", "github_token", "-c", str(config), stdin=f"{value}\n")
    assert done.returncode == 0, done.stderr
    path = config.parent / "secrets" / "github_token.age"
    assert age("-d", "-i", str(key_file), str(path)).stdout == value.encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for file in config.parent.rglob("*"):  # no plaintext anywhere, no temporary left behind
        if file.is_file():
            assert value.encode() not in file.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == ["github_token.age"]
    assert value not in done.stdout + done.stderr


def test_secret_set_replaces_and_uses_every_recipient(tmp_path: Path, make_repo, monkeypatch: pytest.MonkeyPatch,
                                                      clean_env, identity: Identity, other_identity: Identity) -> None:
    config = make_repo([identity.recipient, other_identity.recipient])
    monkeypatch.setenv("MCP_GATEWAY_CONFIG", str(config))
    assert run(["secret", "set", "tok"], monkeypatch, b"first\n") == 0
    assert run(["secret", "set", "tok"], monkeypatch, b"second line\n\n") == 0
    data = (config.parent / "secrets" / "tok.age").read_bytes()
    assert identity.decrypt(data) == b"second line\n"  # only one final newline is dropped
    assert other_identity.decrypt(data) == b"second line\n"


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "x..y", "has space"])
def test_secret_set_refuses_invalid_names(make_repo, monkeypatch: pytest.MonkeyPatch, clean_env, identity: Identity,
                                          capsys: pytest.CaptureFixture[str], name: str) -> None:
    config = make_repo([identity.recipient])
    assert run(["secret", "set", name, "-c", str(config)], monkeypatch, b"value\n") == 1
    assert "not a valid secret name" in capsys.readouterr().err
    assert snapshot_of(config.parent / "secrets") == {}
    assert not (config.parent / "escape.age").exists()


@pytest.mark.parametrize("stdin", [b"", b"\n"], ids=["nothing", "newline"])
def test_secret_set_refuses_empty_input(make_repo, monkeypatch: pytest.MonkeyPatch, clean_env, identity: Identity,
                                        capsys: pytest.CaptureFixture[str], stdin: bytes) -> None:
    config = make_repo([identity.recipient])
    assert run(["secret", "set", "tok", "-c", str(config)], monkeypatch, stdin) == 1
    assert "empty value" in capsys.readouterr().err
    assert snapshot_of(config.parent / "secrets") == {}


def test_secret_set_without_recipients_says_what_to_do(make_repo, monkeypatch: pytest.MonkeyPatch, clean_env,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = make_repo([])
    assert run(["secret", "set", "tok", "-c", str(config)], monkeypatch, b"value\n") == 1
    err = capsys.readouterr().err
    assert "recipients" in err and "keygen" in err and str(config) in err
    assert snapshot_of(config.parent / "secrets") == {}


def test_secret_set_with_a_broken_gateway_yaml_names_the_line(make_repo, monkeypatch: pytest.MonkeyPatch, clean_env,
                                                              identity: Identity,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = make_repo([identity.recipient])
    config.write_text(config.read_text() + "bogus_key: 1\n")
    assert run(["secret", "set", "tok", "-c", str(config)], monkeypatch, b"value\n") == 1
    assert f"{config}:4:1: " in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- secret list


def test_secret_list_shows_uses_missing_and_unused(make_repo, monkeypatch: pytest.MonkeyPatch, clean_env,
                                                   identity: Identity, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_repo([identity.recipient], GITHUB, {"work": WORK_PROFILE})
    secrets_dir = config.parent / "secrets"
    for name in ("github_token", "scratch", "leftover"):
        (secrets_dir / f"{name}.age").write_bytes(encrypt_to([identity.recipient], b"v"))
    assert run(["secret", "list", "-c", str(config)], monkeypatch) == 1
    out, err = capsys.readouterr()
    lines = {line.split()[0]: line.split(None, 2)[1:] for line in out.splitlines()[:-1]}
    assert lines == {
        "github_token": ["ok", "gateway server github / headers.Authorization"],
        "leftover": ["UNUSED", "-"],
        "scratch": ["ok", "profile work / server scratch / env.TOKEN"],
        "work_key": ["MISSING", "profile work / api_keys[0]"],
    }
    assert "1 missing, 1 unused" in out.splitlines()[-1]
    assert "work_key.age does not exist" in err and "secret set work_key" in err

    (secrets_dir / "work_key.age").write_bytes(encrypt_to([identity.recipient], b"v"))
    assert run(["secret", "list", "-c", str(config)], monkeypatch) == 0


# --------------------------------------------------------------------------------------------- secret rotate


def test_rotate_moves_secrets_and_state_to_the_new_recipients(tmp_path: Path, make_repo, cli, identity: Identity,
                                                              other_identity: Identity) -> None:
    config = make_repo([identity.recipient], GITHUB)
    secrets_dir = config.parent / "secrets"
    (secrets_dir / "github_token.age").write_bytes(encrypt_to([identity.recipient], b"tok-1"))
    (secrets_dir / "armored.age").write_bytes(encrypt_to([identity.recipient], b"tok-2", armored=True))
    state = StateStore(config.parent / "state", identity, [])
    state.write("oauth/linear/tokens", b'{"a": 1}')
    # the team replaces the old recipient by a new one, then rotates with the old key
    config.write_text(config.read_text().replace(identity.recipient, other_identity.recipient))
    key = write_key(tmp_path / "old.key", identity)
    done = cli("secret", "rotate", "-c", str(config), env={"MCP_GATEWAY_AGE_KEY_FILE": str(key)})
    assert done.returncode == 0, done.stderr
    assert "2 secret files" in done.stdout and "1 state file" in done.stdout
    assert "not in secrets.recipients" in done.stderr

    token = (secrets_dir / "github_token.age").read_bytes()
    armored = (secrets_dir / "armored.age").read_bytes()
    assert other_identity.decrypt(token) == b"tok-1"
    assert armored.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----") and other_identity.decrypt(armored) == b"tok-2"
    with pytest.raises(Exception):
        identity.decrypt(token)
    tokens_file = state.path_of("oauth/linear/tokens")
    assert identity.decrypt(tokens_file.read_bytes()) == b'{"a": 1}'  # the running key keeps its state
    assert StateStore(state.state_dir, other_identity, []).read("oauth/linear/tokens") == b'{"a": 1}'
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
    assert not [p for p in config.parent.rglob(".*") if p.is_file()]  # no temporaries left


@pytest.mark.parametrize("broken", ["secret not for this key", "truncated state file"])
def test_rotate_is_all_or_nothing(tmp_path: Path, make_repo, monkeypatch: pytest.MonkeyPatch, clean_env,
                                  identity: Identity, other_identity: Identity, capsys: pytest.CaptureFixture[str],
                                  broken: str) -> None:
    config = make_repo([identity.recipient, other_identity.recipient])
    secrets_dir = config.parent / "secrets"
    for name in ("a", "b", "c"):
        (secrets_dir / f"{name}.age").write_bytes(encrypt_to([identity.recipient], name.encode()))
    state = StateStore(config.parent / "state", identity, [])
    state.write("oauth/x", b"state")
    if broken == "secret not for this key":
        bad = secrets_dir / "b.age"
        bad.write_bytes(encrypt_to([Identity.generate().recipient], b"b"))
    else:
        bad = state.path_of("oauth/x")
        bad.write_bytes(bad.read_bytes()[:-9])
    before = snapshot_of(config.parent)
    monkeypatch.setenv("MCP_GATEWAY_AGE_KEY", identity.reveal())
    assert run(["secret", "rotate", "-c", str(config)], monkeypatch) == 1
    err = capsys.readouterr().err
    assert "changed nothing" in err and str(bad) in err
    assert snapshot_of(config.parent) == before


def test_rotate_needs_the_key(make_repo, monkeypatch: pytest.MonkeyPatch, clean_env, identity: Identity,
                              capsys: pytest.CaptureFixture[str]) -> None:
    config = make_repo([identity.recipient])
    assert run(["secret", "rotate", "-c", str(config)], monkeypatch) == 1
    assert "MCP_GATEWAY_AGE_KEY" in capsys.readouterr().err


def test_secret_files_are_not_world_readable_and_folder_is_made(make_repo, monkeypatch: pytest.MonkeyPatch,
                                                                clean_env, identity: Identity) -> None:
    config = make_repo([identity.recipient])
    os.rmdir(config.parent / "secrets")
    assert run(["secret", "set", "tok", "-c", str(config)], monkeypatch, b"v4lue") == 0
    assert stat.S_IMODE((config.parent / "secrets" / "tok.age").stat().st_mode) == 0o600
