"""Config repositories with `defined_server` upstreams whose tool definitions live in a JSON file the test edits."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES, PYTHON

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null"}


def echo_tool(description: str = "Echo the text back.", **extra: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    return {"name": "echo", "description": description, "inputSchema": schema, **extra}


def write_definitions(path: Path, tools: list[dict[str, Any]], **kinds: Any) -> Path:
    """Write a definitions file (atomically: the watching server must never read half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"tools": tools, **kinds}))
    tmp.replace(path)
    return path


def defined_server(definitions: Path, *, name: str = "defined", version: str = "1.0.0", watch: bool = False) -> dict[str, Any]:
    args = [str(FIXTURES / "defined_server.py"), "--definitions", str(definitions), "--name", name, "--version", version]
    server: dict[str, Any] = {"command": PYTHON, "args": args + (["--watch"] if watch else [])}
    if watch:  # its change notice goes out on the session it listed tools on: the handshake line has one
        server["protocol"] = "handshake"
    return server


def git(root: Path, *args: str) -> str:
    import os

    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env={**os.environ, **GIT_ENV}, check=True)
    return done.stdout.strip()
