"""Fixtures for the secrets tests: real age identities, key files, the `age` binary, config repositories."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local_mcp_gateway.redact import Redactor
from local_mcp_gateway.secrets import Identity
from local_mcp_gateway.state import atomic_write

AGE_BINARY = shutil.which("age") or "/usr/bin/age"


@pytest.fixture
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture
def other_identity() -> Identity:
    return Identity.generate()


@pytest.fixture
def redactor() -> Redactor:
    """A redactor of the test's own, so tests do not see each other's values."""
    return Redactor()


@pytest.fixture
def key_file(tmp_path: Path, identity: Identity) -> Path:
    """The identity in the age tool's format (comments included), mode 0600."""
    path = tmp_path / "key.txt"
    text = f"# created: 2026-11-01T00:00:00Z\n# public key: {identity.recipient}\n{identity.reveal()}\n"
    atomic_write(path, text.encode(), 0o600)
    return path


@pytest.fixture
def age() -> Callable[..., subprocess.CompletedProcess[bytes]]:
    """Run the reference `age` command line tool."""
    if not Path(AGE_BINARY).exists():
        pytest.fail("the `age` command line tool is needed for interoperability tests (apt-get install age)")

    def run(*args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([AGE_BINARY, *args], input=input, capture_output=True, check=True, timeout=30)

    return run


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MCP_GATEWAY_* variables from the outside world."""
    for name in list(os.environ):
        if name.startswith("MCP_GATEWAY_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Write a config repository: gateway.yaml (with recipients and servers) and profiles; returns gateway.yaml."""

    def make(recipients: list[str], servers: str = "", profiles: dict[str, str] | None = None) -> Path:
        root = tmp_path / "repo"
        (root / "profiles").mkdir(parents=True, exist_ok=True)
        (root / "secrets").mkdir(exist_ok=True)
        lines = ["version: 1", "secrets:", f"  recipients: [{', '.join(recipients)}]"]
        if servers:
            lines += ["servers:", *("  " + line for line in servers.strip("\n").splitlines())]
        (root / "gateway.yaml").write_text("\n".join(lines) + "\n")
        for slug, body in (profiles or {}).items():
            (root / "profiles" / f"{slug}.yaml").write_text(body)
        return root / "gateway.yaml"

    return make


@pytest.fixture
def cli(clean_env: pytest.MonkeyPatch) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m local_mcp_gateway ...` in a real subprocess with the given stdin and environment additions."""

    def run(*args: str, stdin: str | bytes = b"", env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
        full_env.update(env or {})
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run([sys.executable, "-m", "local_mcp_gateway", *args], input=data, capture_output=True,
                              env=full_env, cwd=cwd, timeout=60)
        return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())

    return run


@pytest.fixture
def all_logs() -> Iterator[list[logging.LogRecord]]:
    """Every record logged anywhere while the test runs (root handler at DEBUG)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
