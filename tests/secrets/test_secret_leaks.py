"""Provoke every error with a known secret value around and look for it everywhere: zero hits.

Everything a person or a log collector could see is gathered (stdout, stderr, exception texts and reprs,
log records as formatted by a handler with the redaction filter) and searched for the value, raw and
URL-encoded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

from local_mcp_gateway.errors import GatewayError
from local_mcp_gateway.redact import RedactingFilter
from local_mcp_gateway.secrets import Identity, SecretStore, encrypt_to, load_identity
from local_mcp_gateway.settings import EnvSettings
from local_mcp_gateway.state import StateStore, atomic_write

SENTINEL = "s3ntinel-Value_9f27c1"
"""The secret value whose every appearance in any output is a leak."""

GITHUB = """
github:
  url: https://example.invalid/mcp
  headers: {Authorization: "Bearer ${secret:github_token}"}
"""


def assert_no_leak(texts: list[str], *values: str) -> None:
    seen = "\n".join(texts)
    for value in values:
        for form in {value, quote(value, safe="")}:
            assert form not in seen, f"leaked: {form!r} appears in the output"


def render(records: list[logging.LogRecord]) -> list[str]:
    """Records as a handler with the redaction filter writes them (the way the gateway installs its handlers)."""
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    redacting = RedactingFilter()
    lines = []
    for record in records:
        redacting.filter(record)
        lines.append(formatter.format(record))
    return lines


def test_library_errors_never_carry_the_value(tmp_path: Path, identity: Identity, other_identity: Identity,
                                              all_logs: list[logging.LogRecord]) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    good = encrypt_to([identity.recipient], SENTINEL.encode())
    cases = {
        "wrong_key": encrypt_to([other_identity.recipient], SENTINEL.encode()),
        "truncated": good[:-6],
        "flipped": good[:-3] + bytes([good[-3] ^ 1]) + good[-2:],
        "empty": b"",
        "good": good,
    }
    for name, data in cases.items():
        (secrets_dir / f"{name}.age").write_bytes(data)
    store = SecretStore(secrets_dir, identity)
    texts: list[str] = []
    for name in [*cases, "missing"]:
        try:
            secret = store.get(name)
            texts += [repr(secret), str(secret), f"{secret}", repr(store), repr(store.values())]
        except GatewayError as exc:
            texts += [str(exc), repr(exc)]
    try:
        store.load(cases)
    except GatewayError as exc:
        texts += [str(exc), repr(exc)]

    state = StateStore(tmp_path / "state", identity, [])
    state.write("oauth/x", SENTINEL.encode())
    damaged = state.path_of("oauth/x")
    damaged.write_bytes(damaged.read_bytes()[:-4])
    assert state.read("oauth/x") is None
    state.write("oauth/y", SENTINEL.encode())
    texts += [repr(state), repr(StateStore(tmp_path / "state", other_identity, [])), repr(identity)]
    assert StateStore(tmp_path / "state", other_identity, []).read("oauth/y") is None

    bad_key = "AGE-SECRET-KEY-1" + SENTINEL.upper()
    for key in (bad_key, SENTINEL):
        try:
            load_identity(EnvSettings(age_key=key))
        except GatewayError as exc:
            texts += [str(exc), repr(exc)]
        texts.append(repr(EnvSettings(age_key=key)))
    key_file = tmp_path / "bad.key"
    atomic_write(key_file, f"# comment\n{bad_key}\n".encode(), 0o644)
    try:
        load_identity(EnvSettings(age_key_file=key_file))
    except GatewayError as exc:
        texts += [str(exc), repr(exc)]

    logging.getLogger("local_mcp_gateway.test").error("upstream answered %s with header Authorization: Bearer %s",
                                                      SENTINEL, "other-token-value")
    texts += render(all_logs)
    texts += [record.getMessage() for record in all_logs]
    assert_no_leak(texts, SENTINEL, bad_key, "other-token-value")


def test_commands_never_print_the_value(tmp_path: Path, make_repo, cli, identity: Identity,
                                        other_identity: Identity) -> None:
    key = tmp_path / "key.txt"
    atomic_write(key, f"{identity.reveal()}\n".encode())
    outputs: list[str] = []

    def record(done) -> None:
        outputs.extend([done.stdout, done.stderr])

    config = make_repo([identity.recipient], GITHUB, {"work": "servers:\n  github: {}\n"})
    record(cli("secret", "set", "../bad", "-c", str(config), stdin=SENTINEL))
    record(cli("secret", "set", "github_token", "-c", str(config), stdin=SENTINEL + "\n"))
    record(cli("secret", "list", "-c", str(config)))
    (config.parent / "secrets" / "foreign.age").write_bytes(encrypt_to([other_identity.recipient], SENTINEL.encode()))
    record(cli("secret", "rotate", "-c", str(config), env={"MCP_GATEWAY_AGE_KEY_FILE": str(key)}))
    record(cli("secret", "rotate", "-c", str(config), env={"MCP_GATEWAY_AGE_KEY": "AGE-SECRET-KEY-1" + SENTINEL}))
    (config.parent / "secrets" / "foreign.age").unlink()
    record(cli("secret", "rotate", "-c", str(config), env={"MCP_GATEWAY_AGE_KEY": identity.reveal()}))
    record(cli("keygen", "--out", str(key)))  # refuses: exists

    empty = make_repo([])
    record(cli("secret", "set", "tok", "-c", str(empty), stdin=SENTINEL))
    assert_no_leak(outputs, SENTINEL, identity.reveal())
