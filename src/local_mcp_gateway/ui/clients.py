"""Copy-paste setup for MCP clients: the snippet or command that connects each client to one profile.

Every snippet names the profile's URL and the Streamable HTTP transport. Where the profile needs an API key,
the `Authorization: Bearer` header refers to an environment variable (default `LOCAL_MCP_GATEWAY_KEY`) in the
client's own syntax; the key's value never appears (the gateway does not even look it up to build these).

| client         | where it goes                                   | how the key is referenced            |
|----------------|-------------------------------------------------|--------------------------------------|
| claude-desktop | claude_desktop_config.json (stdio via mcp-remote) | `${VAR}` expanded by mcp-remote      |
| claude-code    | .mcp.json in the project                        | `${VAR}` expanded by Claude Code     |
| cursor         | ~/.cursor/mcp.json or .cursor/mcp.json          | `${env:VAR}` expanded by Cursor      |
| vscode         | .vscode/mcp.json                                | `${env:VAR}` expanded by VS Code     |
| inspector      | a shell command (Inspector CLI)                 | `$VAR` expanded by the shell         |
| mcp-remote     | a shell command (stdio bridge)                  | `$VAR` expanded by the shell         |
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

__all__ = ["CLIENTS", "DEFAULT_KEY_ENV", "INSPECTOR_PACKAGE", "ClientSetup", "client_setup", "client_setups"]

CLIENTS = ("claude-desktop", "claude-code", "cursor", "vscode", "inspector", "mcp-remote")
DEFAULT_KEY_ENV = "LOCAL_MCP_GATEWAY_KEY"
INSPECTOR_PACKAGE = "@modelcontextprotocol/inspector@latest"
"""Pinned to the newest release on purpose: on Node 20 a bare `npx @modelcontextprotocol/inspector` can pick an
old cached release that drops the path and connects to `/mcp` instead of `/mcp/<slug>`."""
MCP_REMOTE_PACKAGE = "mcp-remote@latest"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ClientSetup:
    """One client's setup: a title, where the text goes, its language (`json` or `shell`), the text, a note."""

    client: str
    title: str
    where: str
    language: str
    text: str
    note: str


def client_setup(client: str, *, slug: str, url: str, key_env: str | None) -> ClientSetup:
    """The setup of `client` for profile `slug` at `url`; `key_env` names the variable holding the API key (None:
    the profile needs no key)."""
    if key_env is not None and not _ENV_NAME.fullmatch(key_env):
        raise ValueError(f"{key_env!r} is not an environment variable name (letters, digits, _; not first a digit)")
    name = f"gateway-{slug}"
    bearer = f"Bearer ${{{key_env}}}" if key_env else None
    env_note = f"Set {key_env} to the profile's API key in the environment the client starts in." if key_env else ""
    if client == "claude-desktop":
        args = ["-y", MCP_REMOTE_PACKAGE, url, "--transport", "http-only"]
        if key_env:
            args += ["--header", f"Authorization:Bearer ${{{key_env}}}"]
        server: dict[str, Any] = {"command": "npx", "args": args}
        note = ("Claude Desktop starts local (stdio) servers from this file; mcp-remote bridges to the gateway over "
                "Streamable HTTP and expands ${...} in --header from its environment.")
        return ClientSetup(client, "Claude Desktop", "claude_desktop_config.json", "json",
                           _json({"mcpServers": {name: server}}), _join(note, env_note))
    if client == "claude-code":
        server = {"type": "http", "url": url}
        if bearer:
            server["headers"] = {"Authorization": bearer}
        note = "Project scope: Claude Code expands ${VAR} in url and headers of .mcp.json."
        return ClientSetup(client, "Claude Code", ".mcp.json", "json", _json({"mcpServers": {name: server}}),
                           _join(note, env_note))
    if client == "cursor":
        server = {"url": url}
        if key_env:
            server["headers"] = {"Authorization": f"Bearer ${{env:{key_env}}}"}
        return ClientSetup(client, "Cursor", "~/.cursor/mcp.json (or .cursor/mcp.json in a project)", "json",
                           _json({"mcpServers": {name: server}}), _join("Cursor expands ${env:VAR}.", env_note))
    if client == "vscode":
        server = {"type": "http", "url": url}
        if key_env:
            server["headers"] = {"Authorization": f"Bearer ${{env:{key_env}}}"}
        return ClientSetup(client, "VS Code", ".vscode/mcp.json", "json", _json({"servers": {name: server}}),
                           _join("VS Code expands ${env:VAR} in mcp.json.", env_note))
    if client == "inspector":
        words = ["npx", "-y", INSPECTOR_PACKAGE, "--cli", url, "--transport", "http", "--method", "tools/list"]
        text = _shell(words, key_env)
        note = ("The Inspector CLI needs --transport http for a Streamable HTTP URL; the package is pinned to "
                "@latest because an older cached release drops the /mcp/<profile> path.")
        return ClientSetup(client, "MCP Inspector (CLI)", "shell", "shell", text, _join(note, env_note))
    if client == "mcp-remote":
        words = ["npx", "-y", MCP_REMOTE_PACKAGE, url, "--transport", "http-only"]
        text = _shell(words, key_env, header_flag="--header", compact=True)
        note = "A stdio bridge for clients that only start local servers."
        return ClientSetup(client, "mcp-remote (stdio bridge)", "shell", "shell", text, _join(note, env_note))
    raise ValueError(f"unknown client {client!r}; use one of {', '.join(CLIENTS)}")


def client_setups(*, slug: str, url: str, key_env: str | None) -> list[ClientSetup]:
    """Every client's setup, in `CLIENTS` order."""
    return [client_setup(client, slug=slug, url=url, key_env=key_env) for client in CLIENTS]


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _shell(words: list[str], key_env: str | None, *, header_flag: str = "--header", compact: bool = False) -> str:
    text = " ".join(shlex.quote(word) for word in words)
    if key_env:
        # Double quotes: the shell expands the variable when the command runs; the value is never written here.
        header = f"Authorization:Bearer ${key_env}" if compact else f"Authorization: Bearer ${key_env}"
        text += f' {header_flag} "{header}"'
    return text + "\n"


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)
