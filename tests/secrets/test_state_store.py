"""`StateStore`: encrypted, atomic, private state files that the `age` tool can open."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.secrets import Identity
from local_mcp_gateway.state import StateStore, atomic_write


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def store(tmp_path: Path, identity: Identity, other_identity: Identity) -> StateStore:
    return StateStore(tmp_path / "state", identity, [other_identity.recipient])


def test_write_read_delete_list(store: StateStore) -> None:
    assert store.read("oauth/linear/tokens") is None
    store.write("oauth/linear/tokens", b"token-data")
    store.write("oauth/github/client", b"client-data")
    store.write("misc", b"m")
    assert store.read("oauth/linear/tokens") == b"token-data"
    assert store.list("oauth/") == ["oauth/github/client", "oauth/linear/tokens"]
    assert store.list() == ["misc", "oauth/github/client", "oauth/linear/tokens"]
    store.write("oauth/linear/tokens", b"newer")
    assert store.read("oauth/linear/tokens") == b"newer"
    assert store.delete("oauth/linear/tokens") is True
    assert store.delete("oauth/linear/tokens") is False
    assert store.read("oauth/linear/tokens") is None


def test_files_are_private_and_leave_no_temporaries(store: StateStore) -> None:
    store.write("oauth/linear/tokens", b"x")
    path = store.path_of("oauth/linear/tokens")
    assert path == store.state_dir / "oauth" / "linear" / "tokens.age"
    assert mode(path) == 0o600
    for folder in (store.state_dir, store.state_dir / "oauth", store.state_dir / "oauth" / "linear"):
        assert mode(folder) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["tokens.age"]


def test_files_open_with_the_age_tool_for_the_key_and_extra_recipients(
    age, tmp_path: Path, store: StateStore, key_file: Path, other_identity: Identity
) -> None:
    store.write("oauth/linear/tokens", b'{"access_token": "x"}')
    path = store.path_of("oauth/linear/tokens")
    assert age("-d", "-i", str(key_file), str(path)).stdout == b'{"access_token": "x"}'
    other_key = tmp_path / "other.txt"
    atomic_write(other_key, (other_identity.reveal() + "\n").encode())
    assert age("-d", "-i", str(other_key), str(path)).stdout == b'{"access_token": "x"}'


def test_json_round_trip(store: StateStore) -> None:
    value = {"access_token": "a", "expires_at": 1234.5, "scopes": ["read"]}
    store.write_json("oauth/linear/tokens", value)
    assert store.read_json("oauth/linear/tokens") == value
    assert store.read_json("oauth/absent") is None


def test_corrupted_file_is_logged_and_read_as_absent(store: StateStore, caplog: pytest.LogCaptureFixture) -> None:
    store.write("oauth/linear/tokens", b"x")
    path = store.path_of("oauth/linear/tokens")
    path.write_bytes(path.read_bytes()[:-7])
    with caplog.at_level(logging.WARNING, logger="local_mcp_gateway.state"):
        assert store.read("oauth/linear/tokens") is None
    assert any(str(path) in record.getMessage() for record in caplog.records)


def test_file_for_another_key_is_read_as_absent(tmp_path: Path, store: StateStore,
                                                caplog: pytest.LogCaptureFixture) -> None:
    store.write("oauth/x", b"x")
    stranger = StateStore(store.state_dir, Identity.generate(), [])
    with caplog.at_level(logging.WARNING, logger="local_mcp_gateway.state"):
        assert stranger.read("oauth/x") is None
    assert any("cannot be decrypted" in record.getMessage() for record in caplog.records)


def test_non_json_entry_is_read_as_absent(store: StateStore, caplog: pytest.LogCaptureFixture) -> None:
    store.write("oauth/x", b"{not json")
    with caplog.at_level(logging.WARNING, logger="local_mcp_gateway.state"):
        assert store.read_json("oauth/x") is None
    assert any("does not hold JSON" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("relpath", ["../out", "/abs", "a/../../b", ".hidden", "a/.b", "", "a\\b"])
def test_entry_names_cannot_escape_the_folder(store: StateStore, relpath: str) -> None:
    with pytest.raises(ValueError):
        store.write(relpath, b"x")


def test_state_needs_a_key_and_valid_recipients(tmp_path: Path, identity: Identity) -> None:
    with pytest.raises(SecretError, match="MCP_GATEWAY_AGE_KEY"):
        StateStore(tmp_path, None, [])  # type: ignore[arg-type]
    with pytest.raises(SecretError, match="not an age recipient"):
        StateStore(tmp_path, identity, ["age1nope"])


def test_atomic_write_exclusive_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "file"
    atomic_write(path, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write(path, b"second", exclusive=True)
    assert path.read_bytes() == b"first"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file"]
    atomic_write(path, b"third")
    assert path.read_bytes() == b"third" and mode(path) == 0o600
