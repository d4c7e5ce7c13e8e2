"""`SecretStore` against real age files, including ones made by the `age` command line tool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_mcp_gateway.config.template import Template
from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.redact import Redactor
from local_mcp_gateway.secrets import Identity, SecretStore, encrypt_to

VALUE = "ghp_3xampleT0kenValue"


def put(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.age"
    path.write_bytes(data)
    return path


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
def test_file_made_by_the_age_tool_decrypts(age, secrets_dir: Path, identity: Identity, redactor: Redactor,
                                           armor: bool) -> None:
    args = ["-r", identity.recipient] + (["-a"] if armor else [])
    data = age(*args, input=f"{VALUE}\n".encode()).stdout  # as `echo VALUE | age -r ...` makes it
    put(secrets_dir, "github_token", data)
    store = SecretStore(secrets_dir, identity, redactor)
    assert store.get("github_token").reveal() == VALUE  # the final newline is not part of the value
    assert VALUE in redactor


def test_load_decrypts_exactly_the_referenced_names(secrets_dir: Path, identity: Identity,
                                                    redactor: Redactor) -> None:
    put(secrets_dir, "used", encrypt_to([identity.recipient], b"used-value"))
    put(secrets_dir, "unused", b"this is not an age file at all")  # would fail if it were decrypted
    store = SecretStore(secrets_dir, identity, redactor)
    loaded = store.load(["used"])
    assert {name: secret.reveal() for name, secret in loaded.items()} == {"used": "used-value"}
    assert store.names() == ["used"]
    assert [secret.reveal() for secret in store.values()] == ["used-value"]


def test_lookup_renders_templates(secrets_dir: Path, identity: Identity, redactor: Redactor) -> None:
    put(secrets_dir, "github_token", encrypt_to([identity.recipient], VALUE.encode()))
    store = SecretStore(secrets_dir, identity, redactor)
    template = Template("Bearer ${secret:github_token}")
    assert template.render(secret=store.reveal_lookup, env={}) == f"Bearer {VALUE}"
    assert template.render(secret=store.lookup, env={}) == f"Bearer {VALUE}"


def test_a_rewritten_file_is_decrypted_again(secrets_dir: Path, identity: Identity, redactor: Redactor) -> None:
    path = put(secrets_dir, "tok", encrypt_to([identity.recipient], b"first-value"))
    store = SecretStore(secrets_dir, identity, redactor)
    assert store.get("tok").reveal() == "first-value"
    replacement = secrets_dir / "tok.age.new"
    replacement.write_bytes(encrypt_to([identity.recipient], b"second-value"))
    os.replace(replacement, path)  # as `secret set` does it: a new inode
    assert store.get("tok").reveal() == "second-value"
    assert "second-value" in redactor and "first-value" not in redactor
    store.forget()
    assert "second-value" not in redactor


def test_missing_file(secrets_dir: Path, identity: Identity, redactor: Redactor) -> None:
    with pytest.raises(SecretError) as caught:
        SecretStore(secrets_dir, identity, redactor).get("absent")
    message = str(caught.value)
    assert str(secrets_dir / "absent.age") in message and "secret set absent" in message


def test_empty_file(secrets_dir: Path, identity: Identity, redactor: Redactor) -> None:
    path = put(secrets_dir, "empty", b"")
    with pytest.raises(SecretError, match="is empty") as caught:
        SecretStore(secrets_dir, identity, redactor).get("empty")
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "garbage"])
def test_damaged_file(secrets_dir: Path, identity: Identity, redactor: Redactor, damage: str) -> None:
    good = encrypt_to([identity.recipient], VALUE.encode())
    data = {
        "truncated": good[: len(good) - 10],
        "flipped": good[:-5] + bytes([good[-5] ^ 0xFF]) + good[-4:],
        "garbage": b"age-encryption.org/v1\n-> nonsense\n",
    }[damage]
    path = put(secrets_dir, "tok", data)
    with pytest.raises(SecretError) as caught:
        SecretStore(secrets_dir, identity, redactor).get("tok")
    assert str(path) in str(caught.value) and "secret set tok" in str(caught.value)


def test_not_encrypted_to_this_key(secrets_dir: Path, identity: Identity, other_identity: Identity,
                                   redactor: Redactor) -> None:
    path = put(secrets_dir, "tok", encrypt_to([other_identity.recipient], VALUE.encode()))
    with pytest.raises(SecretError) as caught:
        SecretStore(secrets_dir, identity, redactor).get("tok")
    assert str(caught.value) == (
        f"{path} is not encrypted to this key; re-encrypt it with `local-mcp-gateway secret set tok` "
        "or `secret rotate`"
    )


def test_no_key_at_all(secrets_dir: Path, identity: Identity, redactor: Redactor) -> None:
    put(secrets_dir, "tok", encrypt_to([identity.recipient], VALUE.encode()))
    with pytest.raises(SecretError, match="MCP_GATEWAY_AGE_KEY"):
        SecretStore(secrets_dir, None, redactor).get("tok")


def test_load_reports_every_failing_file(secrets_dir: Path, identity: Identity, redactor: Redactor) -> None:
    put(secrets_dir, "empty", b"")
    with pytest.raises(SecretError) as caught:
        SecretStore(secrets_dir, identity, redactor).load(["empty", "absent"])
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and "absent.age" in lines[0] and "empty.age" in lines[1]


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "x..y", "back\\slash"])
def test_invalid_names_never_touch_the_disk(secrets_dir: Path, identity: Identity, redactor: Redactor,
                                            name: str) -> None:
    with pytest.raises(SecretError, match="not a valid secret name"):
        SecretStore(secrets_dir, identity, redactor).get(name)


def test_encrypt_to_validates_recipients(identity: Identity) -> None:
    with pytest.raises(SecretError, match="not an age recipient"):
        encrypt_to([identity.recipient, "age1bogus"], b"x")
    with pytest.raises(SecretError, match="no recipients"):
        encrypt_to([], b"x")
    armored = encrypt_to([identity.recipient], b"x", armored=True)
    assert armored.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert identity.decrypt(armored) == b"x"


def test_short_values_are_decrypted_but_cannot_be_masked(secrets_dir: Path, identity: Identity,
                                                         redactor: Redactor, caplog: pytest.LogCaptureFixture) -> None:
    put(secrets_dir, "pin", encrypt_to([identity.recipient], b"123"))
    assert SecretStore(secrets_dir, identity, redactor).get("pin").reveal() == "123"
    assert any("too short to be masked" in record.getMessage() for record in caplog.records)


def test_a_secret_file_linking_out_of_the_folder_is_never_read(secrets_dir: Path, identity: Identity,
                                                                redactor: Redactor, tmp_path: Path) -> None:
    outside = put(tmp_path / "elsewhere", "key", encrypt_to([identity.recipient], VALUE.encode()))
    (secrets_dir / "token.age").symlink_to(outside)
    store = SecretStore(secrets_dir, identity, redactor)
    with pytest.raises(SecretError, match="is a link to a file outside"):
        store.get("token")
    (secrets_dir / "token.age").unlink()
    put(secrets_dir, "real", encrypt_to([identity.recipient], VALUE.encode()))
    (secrets_dir / "token.age").symlink_to("real.age")  # a link inside the folder is fine
    assert store.get("token").reveal() == VALUE
