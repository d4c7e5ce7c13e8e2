"""Replicas sharing `state/` must hold the same age key: the second with another key refuses to start."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.replicas.keycheck import KEY_CHECK_FILE, check_key
from local_mcp_gateway.secrets import Identity
from tests.conftest import fixture_server, start_gateway

START_WAIT = 60.0


def test_a_replica_with_another_key_refuses_to_start(config_repo, gateway_factory, tmp_path: Path) -> None:
    state = tmp_path / "shared-state"
    config_repo.write_profile("p", {"a": fixture_server("echo_server.py", "--name", "a")})
    first, second = Identity.generate(), Identity.generate()
    env = {"MCP_GATEWAY_STATE_DIR": str(state)}
    running = gateway_factory(config_repo.path, env={**env, "MCP_GATEWAY_AGE_KEY": first.reveal()})
    assert running.status()["ready"]
    sealed = state / KEY_CHECK_FILE
    assert sealed.exists()

    refused = start_gateway(config_repo.path, tmp_path / "second.log", wait=False,
                            env={**env, "MCP_GATEWAY_AGE_KEY": second.reveal()})
    assert refused.process.wait(START_WAIT) == 1
    log = refused.log()
    assert str(sealed) in log and second.recipient in log and "different age key" in log
    assert second.reveal() not in log and first.reveal() not in log

    same = start_gateway(config_repo.path, tmp_path / "third.log", env={**env, "MCP_GATEWAY_AGE_KEY": first.reveal()})
    try:
        assert same.status()["ready"]
    finally:
        same.stop()


def test_the_key_check_is_a_standard_age_file(tmp_path: Path) -> None:
    identity = Identity.generate()
    check_key(tmp_path, identity, [])
    key_file = tmp_path / "key.txt"
    key_file.write_text(identity.reveal() + "\n")
    opened = subprocess.run(["age", "-d", "-i", str(key_file), str(tmp_path / KEY_CHECK_FILE)],
                            capture_output=True, check=True, text=True)
    assert identity.recipient in opened.stdout


def test_a_key_added_to_the_recipients_passes_after_a_reseal(tmp_path: Path) -> None:
    """A key roll: the old key re-seals for the new recipient (on reload), then the new key passes."""
    old, new = Identity.generate(), Identity.generate()
    check_key(tmp_path, old, [])
    with pytest.raises(SecretError, match="different age key"):
        check_key(tmp_path, new, [])
    check_key(tmp_path, old, [new.recipient])  # secrets.recipients now lists the new key
    check_key(tmp_path, new, [old.recipient])


def test_a_state_folder_that_cannot_be_written_is_not_checked(tmp_path: Path, caplog) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    check_key(blocked / "state", Identity.generate(), [])  # the shared volume is away: start, and say so
    assert "not checked" in caplog.text


def test_secret_rotate_reseals_the_key_check_for_a_new_key(tmp_path: Path) -> None:
    """The key roll of docs/deployment.md: add the new recipient, rotate with the old key, start with the new."""
    import os
    import sys

    old, new = Identity.generate(), Identity.generate()
    state = tmp_path / "shared-state"
    check_key(state, old, [])
    config = tmp_path / "gateway.yaml"
    config.write_text(f"version: 1\nsecrets:\n  recipients: [{new.recipient}]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    env.update(MCP_GATEWAY_AGE_KEY=old.reveal(), MCP_GATEWAY_STATE_DIR=str(state))
    rotated = subprocess.run([sys.executable, "-m", "local_mcp_gateway", "secret", "rotate", "-c", str(config)],
                             env=env, capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 state file" in rotated.stdout
    check_key(state, new, [new.recipient])  # the new key opens it now
