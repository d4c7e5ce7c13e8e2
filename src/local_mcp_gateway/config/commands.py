"""`security.allowed_commands`: does an entry allow the program a stdio command will actually run?

An entry is either a *name* (no `/`, a glob such as `uvx` or `mcp-server-*`) or an *absolute path* (a glob
such as `/usr/bin/*` or `/opt/tools/uvx`). A name means "the program that name finds on the gateway's own
`PATH`", so:

* a bare command (`uvx`) passes a matching name entry when it runs the program the gateway's `PATH` gives for
  it: a server `env` that puts its own `PATH` first (`./bin:...`) runs another program, and does not pass;
* a command with a `/` (`./bin/uvx`, `/usr/bin/uvx`) is the file at that path (relative ones from the server's
  `cwd`, else the gateway's working folder); it passes a name entry only when that file *is* what the name finds
  on `PATH` (so a `./bin/uvx` script in the repository is not `uvx`), and an absolute entry when its absolute,
  normalised path matches the glob;
* `python` / `python3` run the gateway's own interpreter (see `upstream.stdio.executable`) and pass the entries
  `python` / `python3` by name.

`validate` and `run` both use `command_problem`; `run` checks again after `${...}` references are rendered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from local_mcp_gateway.errors import ConfigError, ConfigIssue

__all__ = ["check_resolved_commands", "command_problem", "program_for"]

GATEWAY_PYTHON_NAMES = frozenset({"python", "python3"})
"""Mirrors `upstream.stdio.GATEWAY_PYTHON_NAMES`: these names run the gateway's own interpreter."""


def _lookup(name: str, path: str, cwd: str) -> str | None:
    """The first executable file called `name` in the `PATH`-style list `path` (relative folders from `cwd`)."""
    for folder in path.split(os.pathsep):
        candidate = os.path.join(cwd, folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.normpath(os.path.abspath(candidate))
    return None


def program_for(command: str, *, path: str, cwd: str) -> str | None:
    """The absolute path of the program `command` starts with `PATH` = `path` in folder `cwd`; None if not found."""
    if "/" in command:
        return os.path.normpath(os.path.join(cwd, os.path.expanduser(command)))
    return _lookup(command, path, cwd)


def command_problem(
    command: str,
    allowed: Sequence[str],
    *,
    server_env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Why `allowed` does not allow `command`, or None when it does (or when `allowed` is empty)."""
    if not allowed:
        return None
    environ = os.environ if environ is None else environ
    trusted_path = environ.get("PATH", os.defpath)
    folder = cwd or os.getcwd()
    names = [entry for entry in allowed if "/" not in entry]
    paths = [entry for entry in allowed if entry.startswith("/")]
    listed = ", ".join(allowed)
    if "/" not in command:
        child_path = (server_env or {}).get("PATH", trusted_path)
        runs = program_for(command, path=child_path, cwd=folder)
        if runs is not None and any(fnmatchcase(runs, entry) for entry in paths):
            return None
        if not any(fnmatchcase(command, entry) for entry in names):
            return f"'{command}' is not allowed by security.allowed_commands ({listed}); add a glob for it there, or use an allowed command"
        if command in GATEWAY_PYTHON_NAMES or child_path == trusted_path:
            return None
        if runs != _lookup(command, trusted_path, folder):
            return (
                f"'{command}' would be looked up on the server's own env.PATH and start {runs or 'nothing'}, "
                "not the program the gateway's PATH finds; remove env.PATH, or list the program's absolute path "
                "in security.allowed_commands"
            )
        return None
    program = program_for(command, path=trusted_path, cwd=folder)
    assert program is not None
    if any(fnmatchcase(program, entry) for entry in paths):
        return None
    base = os.path.basename(program)
    for entry in names:
        if fnmatchcase(base, entry) and _lookup(base, trusted_path, folder) == program:
            return None
    return (
        f"'{command}' runs {program}, which is not allowed by security.allowed_commands ({listed}): a name there "
        f"means the program found on PATH; list the absolute path {program} there to allow this file"
    )


def check_resolved_commands(servers: Mapping[str, Sequence[Any]], allowed: Sequence[str]) -> None:
    """`run`'s check of every stdio server, with its references rendered; `ConfigError` names file and line."""
    issues = []
    for resolved in servers.values():
        for server in resolved:
            if server.kind != "stdio" or server.command is None:
                continue
            problem = command_problem(server.command, allowed, server_env=dict(server.env), cwd=server.cwd)
            if problem is not None:
                issues.append(ConfigIssue(server.file, f"server '{server.name}': {problem}", server.line))
    if issues:
        raise ConfigError(issues)
