"""Which configurations need the age key, and the one line said when it is missing (real `load_snapshot`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_mcp_gateway.config.load import load_snapshot
from local_mcp_gateway.config.resolve import resolve_profile
from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.secret_refs import needs_key, require_identity, secret_references
from local_mcp_gateway.secrets import Identity, SecretStore, encrypt_to
from local_mcp_gateway.settings import EnvSettings

PLAIN = """
memory:
  command: python
  args: [-m, some_server]
"""
WITH_SECRET = """
github:
  url: https://example.invalid/mcp
  headers: {Authorization: "Bearer ${secret:github_token}"}
"""
WITH_OAUTH = """
linear:
  url: https://example.invalid/mcp
  oauth: {scopes: [read]}
"""
PROFILE = "servers:\n  github: {}\napi_keys: [\"${secret:work_key}\"]\n"


def no_key() -> EnvSettings:
    return EnvSettings(age_key=None, age_key_file=None)


def add_secret(config: Path, identity: Identity, name: str, value: str) -> None:
    (config.parent / "secrets" / f"{name}.age").write_bytes(encrypt_to([identity.recipient], value.encode()))


def test_plain_configuration_needs_no_key(make_repo, clean_env, identity: Identity) -> None:
    snapshot = load_snapshot(make_repo([identity.recipient], PLAIN, {"demo": "servers:\n  memory: {}\n"}))
    assert not needs_key(snapshot)
    assert require_identity(no_key(), snapshot) is None


def test_secret_references_without_a_key_give_one_clear_line(make_repo, clean_env, identity: Identity) -> None:
    config = make_repo([identity.recipient], WITH_SECRET, {"work": PROFILE})
    add_secret(config, identity, "github_token", "gh-value-123")
    add_secret(config, identity, "work_key", "work-value-456")
    snapshot = load_snapshot(config)
    assert needs_key(snapshot)
    with pytest.raises(SecretError) as caught:
        require_identity(no_key(), snapshot)
    assert str(caught.value) == (
        "this configuration references secrets (github_token, work_key); "
        "set MCP_GATEWAY_AGE_KEY or MCP_GATEWAY_AGE_KEY_FILE"
    )
    wheres = {(ref.name, ref.where) for ref in secret_references(snapshot)}
    assert ("github_token", "profile work / server github / headers.Authorization") in wheres
    assert ("work_key", "profile work / api_keys[0]") in wheres


def test_oauth_needs_a_key(make_repo, clean_env, identity: Identity) -> None:
    snapshot = load_snapshot(make_repo([identity.recipient], WITH_OAUTH, {"work": "servers:\n  linear: {}\n"}))
    assert needs_key(snapshot)
    with pytest.raises(SecretError, match=r"uses OAuth \(linear\); set MCP_GATEWAY_AGE_KEY"):
        require_identity(no_key(), snapshot)


def test_with_the_key_the_store_resolves_a_profile(make_repo, clean_env, identity: Identity) -> None:
    config = make_repo([identity.recipient], WITH_SECRET, {"work": PROFILE})
    add_secret(config, identity, "github_token", "gh-value-123")
    add_secret(config, identity, "work_key", "work-value-456")
    snapshot = load_snapshot(config)
    key = require_identity(EnvSettings(age_key=identity.reveal()), snapshot)
    assert key is not None and key.recipient == identity.recipient
    store = SecretStore(snapshot.secrets_dir, key)
    [server] = resolve_profile(snapshot.profiles["work"], secret=store.reveal_lookup, env={})
    assert "gh-value-123" not in repr(server)
    assert store.names() == ["github_token"]  # work_key is only needed by the HTTP front, and was not decrypted
