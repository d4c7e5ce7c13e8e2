"""Helpers for the dashboard tests: gateways whose profiles use the in-process servers of
`dashboard_upstream.py`, secrets to search for, and a headless Chromium."""

from __future__ import annotations

import os
import secrets as random_source
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from local_mcp_gateway.secrets import Identity, encrypt_to
from tests.conftest import ConfigRepo, fixture_server
from tests.ui.browser import Browser

UI_TESTS = Path(__file__).resolve().parent
DOCS = UI_TESTS.parent.parent / "docs"


def ui_env(identity: Identity | None = None, **extra: str) -> dict[str, str]:
    """Environment for a gateway process that can import `dashboard_upstream` (and decrypt with `identity`)."""
    paths = [str(UI_TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {"PYTHONPATH": os.pathsep.join(paths), **extra}
    if identity is not None:
        env["MCP_GATEWAY_AGE_KEY"] = identity.reveal()
    return env


def write_secret(repo: ConfigRepo, identity: Identity, name: str, value: str) -> None:
    folder = repo.root / "secrets"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.age").write_bytes(encrypt_to([identity.recipient], value.encode()))


def secret_value(prefix: str) -> str:
    return f"{prefix}-{random_source.token_hex(12)}"


def team_profile(repo: ConfigRepo, *, extra: dict[str, Any] | None = None, **settings: Any) -> None:
    """Profile `team`: a Unicode-named server, one with hostile descriptions, an echo over stdio, a broken one."""
    servers: dict[str, Any] = {
        "wörterbuch": {"module": "dashboard_upstream:worded", "description": "Wörter und Sätze"},
        "hostile": {"module": "dashboard_upstream:hostile"},
        "echo": fixture_server("echo_server.py"),
        "broken": {"command": "/nonexistent/mcp-server-for-ui-test"},
    }
    servers.update(extra or {})
    repo.write_profile("team", servers, **settings)


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    running = await Browser(tmp_path / "chromium-profile").start()
    try:
        yield running
    finally:
        await running.stop()


def save_screenshots() -> bool:
    """Whether this run refreshes the screenshots in docs/ (set LMG_UI_SCREENSHOTS=1)."""
    return os.environ.get("LMG_UI_SCREENSHOTS") == "1"
