"""The official MCP conformance suite, run against the gateway with a fixture server behind it, default config.

Two fixtures, each offering every name the suites' scenarios call, behind a profile with `prefix: ""`:

- `conformance_server.py`, era-aware: on 2026-07-28 its tools answer `input_required`, on a handshake session
  they ask with server-initiated requests;
- `conformance_legacy.py`, written the common mcp 2.x way: server-initiated requests only, list changes by
  notification, no `subscriptions/listen`; it still answers `server/discover`, as every SDK 2.3 server does.

Each over stdio and over Streamable HTTP, each judged by the stable suite (0.1.16, every active and pending
scenario) and by 0.2.0-alpha.12 on the 2025-11-25 and the 2026-07-28 line, with no `protocol` pin: every
scenario that passes against the fixture directly passes through the gateway. The only scenarios allowed to
fail are listed in the expected-failures files, which `tests/conformance/test_fixture_direct.py` proves fail
directly too. One more profile pins the era-aware fixture to the handshake line (`protocol: handshake`), where
the gateway itself turns questions into rounds.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conformance.runner import parse_summary, run_conformance
from tests.conftest import FIXTURES, PYTHON, ConfigRepo, fixture_server, start_gateway

HANDSHAKE_EXPECTED_FAILURES = Path(__file__).with_name("conformance-expected-failures-handshake.yml")
LEGACY_EXPECTED_FAILURES = Path(__file__).parents[1] / "conformance" / "expected_failures_legacy_2026.yml"

FIXTURE_FILES = {"era-aware": "conformance_server.py", "legacy": "conformance_legacy.py"}

RUNS = {
    "stable": ("0.1.16", None),
    "2025-11-25": ("next", "2025-11-25"),
    "2026-07-28": ("next", "2026-07-28"),
}


def _over_http(name: str):
    process = subprocess.Popen(
        [PYTHON, str(FIXTURES / FIXTURE_FILES[name]), "--transport", "http", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("READY "), f"the fixture did not start: {line!r}"
        yield line.split(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def era_aware_over_http():
    """The era-aware fixture over Streamable HTTP, as a process of its own (stopped by its pid at the end)."""
    yield from _over_http("era-aware")


@pytest.fixture(scope="module")
def legacy_over_http():
    """The legacy fixture over Streamable HTTP, as a process of its own (stopped by its pid at the end)."""
    yield from _over_http("legacy")


SETUPS = ["era-aware/stdio", "era-aware/http", "legacy/stdio", "legacy/http", "era-aware/stdio-handshake"]


@pytest.fixture(scope="module", params=SETUPS)
def gateway_with_fixture(request, tmp_path_factory):
    """One gateway per setup, shared by the three suite runs (each run's sessions are its own)."""
    name, transport = request.param.split("/")
    if transport.startswith("stdio"):
        server = fixture_server(FIXTURE_FILES[name])
    else:
        server = {"url": request.getfixturevalue(f"{name.replace('-', '_')}_over_http")}
    pinned = transport.endswith("handshake")
    if pinned:
        server["protocol"] = "handshake"
    repo = ConfigRepo(tmp_path_factory.mktemp("conformance"))
    repo.write_gateway()
    repo.write_profile("conformance", {"fixture": {**server, "prefix": ""}})
    gateway = start_gateway(repo.path, tmp_path_factory.mktemp("gateway-log") / "gateway.log")
    try:
        yield gateway, name, pinned
    finally:
        gateway.stop()


def _expected_failures(name: str, pinned: bool, spec_version: str | None) -> Path | None:
    if spec_version != "2026-07-28":
        return None
    if pinned:
        return HANDSHAKE_EXPECTED_FAILURES
    return LEGACY_EXPECTED_FAILURES if name == "legacy" else None


@pytest.mark.parametrize("run", list(RUNS))
def test_the_conformance_suite_passes_through_the_gateway(gateway_with_fixture, run):
    version, spec_version = RUNS[run]
    gateway, name, pinned = gateway_with_fixture
    returncode, output = run_conformance(
        gateway.url("conformance"),
        version=version,
        spec_version=spec_version,
        expected_failures=_expected_failures(name, pinned, spec_version),
    )
    print(output)
    totals = re.findall(r"Total: \d+ passed, \d+ failed", output)
    assert returncode == 0, f"{totals}\n{output[-6000:]}\n--- gateway log ---\n{gateway.log()[-4000:]}"
    results = parse_summary(output)
    assert results and sum(result.passed for result in results.values()) > 0
