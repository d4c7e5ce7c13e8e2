"""`load_identity` from MCP_GATEWAY_AGE_KEY / MCP_GATEWAY_AGE_KEY_FILE, and `require_identity`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.secrets import Identity, load_identity
from local_mcp_gateway.settings import EnvSettings


def settings(**values: object) -> EnvSettings:
    return EnvSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_no_key_configured_is_none(clean_env: pytest.MonkeyPatch) -> None:
    assert load_identity(settings()) is None


def test_key_from_the_variable(clean_env: pytest.MonkeyPatch, identity: Identity) -> None:
    clean_env.setenv("MCP_GATEWAY_AGE_KEY", identity.reveal() + "\n")
    loaded = load_identity(EnvSettings())
    assert loaded is not None and loaded.recipient == identity.recipient


def test_key_file_in_the_age_tool_format(clean_env: pytest.MonkeyPatch, key_file: Path, identity: Identity,
                                         caplog: pytest.LogCaptureFixture) -> None:
    clean_env.setenv("MCP_GATEWAY_AGE_KEY_FILE", str(key_file))
    with caplog.at_level(logging.WARNING, logger="local_mcp_gateway.secrets"):
        loaded = load_identity(EnvSettings())
    assert loaded is not None and loaded.recipient == identity.recipient
    assert not caplog.records  # mode 0600: no warning


def test_key_file_readable_by_others_warns(key_file: Path, identity: Identity,
                                           caplog: pytest.LogCaptureFixture) -> None:
    os.chmod(key_file, 0o644)
    with caplog.at_level(logging.WARNING, logger="local_mcp_gateway.secrets"):
        loaded = load_identity(settings(age_key_file=key_file))
    assert loaded is not None
    [record] = [r for r in caplog.records if r.name == "local_mcp_gateway.secrets"]
    message = record.getMessage()
    assert "MCP_GATEWAY_AGE_KEY_FILE" in message and "0644" in message and "chmod 600" in message
    assert identity.reveal() not in message


@pytest.mark.parametrize("bad", ["age1notakey", "AGE-SECRET-KEY-1TOOSHORT", "hello", "ssh-ed25519 AAAA"])
def test_wrong_format_in_the_variable_names_it(bad: str) -> None:
    with pytest.raises(SecretError) as caught:
        load_identity(settings(age_key=bad))
    assert "MCP_GATEWAY_AGE_KEY" in str(caught.value)
    assert bad not in str(caught.value)


def test_wrong_format_in_the_file_names_variable_and_file(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text("# a comment\nnot-a-key-at-all\n")
    with pytest.raises(SecretError) as caught:
        load_identity(settings(age_key_file=path))
    assert "MCP_GATEWAY_AGE_KEY_FILE" in str(caught.value) and str(path) in str(caught.value)
    assert "not-a-key-at-all" not in str(caught.value)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="does not exist"):
        load_identity(settings(age_key_file=tmp_path / "absent.txt"))


def test_key_file_with_two_identities_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text(f"{Identity.generate().reveal()}\n{Identity.generate().reveal()}\n")
    with pytest.raises(SecretError, match="exactly one"):
        load_identity(settings(age_key_file=path))


def test_key_file_with_only_comments(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text("# nothing here\n\n")
    with pytest.raises(SecretError, match="no age identity"):
        load_identity(settings(age_key_file=path))


def test_variable_wins_over_file(key_file: Path, other_identity: Identity) -> None:
    loaded = load_identity(settings(age_key=other_identity.reveal(), age_key_file=key_file))
    assert loaded is not None and loaded.recipient == other_identity.recipient
