"""Run the official MCP conformance suite (``@modelcontextprotocol/conformance``) against a URL.

The suites live in ``.ci/node`` (installed by ``.ci/setup-node.sh``) and run on the Node 22
binary installed there, whatever Node the machine has:

    version "0.1.16"   .ci/node        the stable suite (2025-06-18 / 2025-11-25 scenarios)
    version "next"     .ci/node/next   0.2.0-alpha.12, which adds the 2026-07-28 line

    returncode, output = run_conformance("http://127.0.0.1:8080/mcp/demo")
    returncode, output = run_conformance(url, version="next", spec_version="2026-07-28")

The suite exits 0 when every scenario passes (or fails only where the expected-failures
file says it may), else 1; its output ends with one summary line per scenario and
``Total: N passed, M failed``, which `parse_summary` turns into numbers.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "NODE_PREFIX",
    "SETUP_SCRIPT",
    "ConformanceToolingMissing",
    "ScenarioResult",
    "conformance_command",
    "parse_summary",
    "run_conformance",
]

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
SETUP_SCRIPT: Final = REPO_ROOT / ".ci" / "setup-node.sh"
NODE_PREFIX: Final = REPO_ROOT / ".ci" / "node"
NODE_BINARY: Final = NODE_PREFIX / "node_modules" / "node" / "bin" / "node"
SUITE_ENTRY: Final = Path("node_modules") / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
SUITE_PREFIXES: Final[dict[str, Path]] = {"0.1.16": NODE_PREFIX, "next": NODE_PREFIX / "next"}

SUITE_TIMEOUT_SECONDS: Final = 900
"""Upper bound for one whole suite run; a full run takes seconds, a hung one must not hang CI."""

SuiteVersion = Literal["0.1.16", "next"]

_SCENARIO_LINE: Final = re.compile(r"^[✓✗]\s+(?P<name>\S+):\s+(?P<passed>\d+) passed, (?P<failed>\d+) failed", re.M)


class ConformanceToolingMissing(AssertionError):
    """Node 22 or a conformance suite is not installed in ``.ci/node``.

    An AssertionError on purpose: a test that needs the suite fails (never skips) and says
    how to install it.
    """


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One scenario's line from the suite's summary."""

    name: str
    passed: int
    failed: int

    @property
    def ok(self) -> bool:
        return self.failed == 0


def _suite_entry(version: SuiteVersion) -> Path:
    if version not in SUITE_PREFIXES:
        raise ValueError(f"unknown conformance suite version {version!r}: use one of {sorted(SUITE_PREFIXES)}")
    entry = SUITE_PREFIXES[version] / SUITE_ENTRY
    for needed in (NODE_BINARY, entry):
        if not needed.is_file():
            raise ConformanceToolingMissing(
                f"{needed} is missing: run {SETUP_SCRIPT.relative_to(REPO_ROOT)} (from the repository root) "
                "to install Node 22 and the conformance suites into .ci/node; it needs only the npm registry"
            )
    return entry


def conformance_command(
    url: str,
    version: SuiteVersion = "0.1.16",
    spec_version: str | None = None,
    expected_failures: Path | None = None,
    *,
    suite: str | None = "all",
    scenario: str | None = None,
) -> list[str]:
    """The command line that runs the server suite against `url` (checks the tooling is there)."""
    command = [str(NODE_BINARY), str(_suite_entry(version)), "server", "--url", url]
    if scenario is not None:
        command += ["--scenario", scenario]
    elif suite is not None:
        command += ["--suite", suite]
    if spec_version is not None:
        command += ["--spec-version", spec_version]
    if expected_failures is not None:
        command += ["--expected-failures", str(expected_failures)]
    return command


def run_conformance(
    url: str,
    version: SuiteVersion = "0.1.16",
    spec_version: str | None = None,
    expected_failures: Path | None = None,
    *,
    suite: str | None = "all",
    scenario: str | None = None,
    timeout: float = SUITE_TIMEOUT_SECONDS,
) -> tuple[int, str]:
    """Run the server suite against `url`; return its exit status and its combined output.

    `suite` is ``"all"`` (active and pending scenarios) by default; `scenario` runs one
    scenario instead. `expected_failures` is a YAML baseline (``server: [scenario, ...]``).
    Raises `ConformanceToolingMissing` when ``.ci/node`` lacks what is needed.
    """
    command = conformance_command(url, version, spec_version, expected_failures, suite=suite, scenario=scenario)
    environment = {**os.environ, "PATH": f"{NODE_BINARY.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    completed = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
    return completed.returncode, completed.stdout


def parse_summary(output: str) -> dict[str, ScenarioResult]:
    """Scenario name -> passed/failed counts, from the suite's ``=== SUMMARY ===`` lines."""
    summary = output.rpartition("=== SUMMARY ===")[2]
    return {
        match["name"]: ScenarioResult(match["name"], int(match["passed"]), int(match["failed"]))
        for match in _SCENARIO_LINE.finditer(summary)
    }
