"""Run the official suite's client scenarios (``conformance client``) with a client command of ours.

The suite starts a mock MCP server (and, for ``auth/*``, a mock authorization server), runs the command with
the server's URL appended, and judges what reached its mocks:

    names = client_scenarios("next", spec_version="2026-07-28")
    passed, output = run_client_scenario("0.1.16", [python, "clients/gateway_client.py"], "auth/basic-cimd")
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from typing import Final

from tests.conformance.runner import NODE_BINARY, SuiteVersion, _suite_entry

__all__ = ["CLIENT_TIMEOUT_MS", "client_scenarios", "run_client_scenario"]

CLIENT_TIMEOUT_MS: Final = 90_000
"""How long the suite lets one client run take. Its default (30 s) assumes a client that starts in
milliseconds; the gateway adapter starts a whole gateway process, which on a loaded 2-core machine can take
many seconds before the first request. The protocol checks are the same either way."""

SCENARIO_TIMEOUT_SECONDS: Final = 180
"""Upper bound for one scenario run, suite included."""

_LISTED: Final = re.compile(r"^\s+-\s+(?P<name>\S+)\s+\[(?P<versions>[^\]]*)\]", re.M)


def _environment() -> dict[str, str]:
    return {**os.environ, "PATH": f"{NODE_BINARY.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def client_scenarios(version: SuiteVersion, spec_version: str | None = None) -> list[str]:
    """The client scenarios a suite version offers (at `spec_version`, when given)."""
    command = [str(NODE_BINARY), str(_suite_entry(version)), "list", "--client"]
    if spec_version:
        command += ["--spec-version", spec_version]
    listed = subprocess.run(command, capture_output=True, text=True, env=_environment(), timeout=60, check=True)
    return [match["name"] for match in _LISTED.finditer(listed.stdout)]


def run_client_scenario(
    version: SuiteVersion, client: list[str], scenario: str, spec_version: str | None = None
) -> tuple[bool, str]:
    """Run one client scenario against `client` (a command line); returns (passed, the suite's output)."""
    with tempfile.TemporaryDirectory(prefix="conformance-client-") as results:
        command = [
            str(NODE_BINARY), str(_suite_entry(version)), "client",
            "--command", shlex.join(client),
            "--scenario", scenario,
            "--timeout", str(CLIENT_TIMEOUT_MS),
            "--output-dir", results,
        ]
        if spec_version:
            command += ["--spec-version", spec_version]
        completed = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=_environment(), timeout=SCENARIO_TIMEOUT_SECONDS, check=False, cwd=results,
        )
    output = completed.stdout
    return completed.returncode == 0 and "OVERALL: PASSED" in output, output
