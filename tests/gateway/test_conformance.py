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
import time
from concurrent.futures import ThreadPoolExecutor
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

MATRIX_WORKERS = 2
"""Setups judged at once: each has its own gateway and fixture, and one suite run keeps about one core busy."""

pytestmark = pytest.mark.timeout(1800)  # the first test builds the whole matrix (minutes on a loaded machine)


def _expected_failures(name: str, pinned: bool, spec_version: str | None) -> Path | None:
    if spec_version != "2026-07-28":
        return None
    if pinned:
        return HANDSHAKE_EXPECTED_FAILURES
    return LEGACY_EXPECTED_FAILURES if name == "legacy" else None


def _judge(setup: str, root: Path, http_urls: dict[str, str]) -> dict[str, tuple[int, str, str]]:
    """Start a gateway for `setup` and run the three suites against it, one after the other."""
    name, transport = setup.split("/")
    server = fixture_server(FIXTURE_FILES[name]) if transport.startswith("stdio") else {"url": http_urls[name]}
    pinned = transport.endswith("handshake")
    if pinned:
        server["protocol"] = "handshake"
    repo = ConfigRepo(root)
    root.mkdir(parents=True)
    repo.write_gateway()
    repo.write_profile("conformance", {"fixture": {**server, "prefix": ""}})
    gateway = start_gateway(repo.path, root / "gateway.log")
    outcomes: dict[str, tuple[int, str, str]] = {}
    try:
        for run, (version, spec_version) in RUNS.items():
            returncode, output = run_conformance(
                gateway.url("conformance"),
                version=version,
                spec_version=spec_version,
                expected_failures=_expected_failures(name, pinned, spec_version),
            )
            outcomes[run] = (returncode, output, gateway.log()[-4000:])
    finally:
        gateway.stop()
    return outcomes


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, era_aware_over_http, legacy_over_http):
    """Every setup judged by every suite run, `MATRIX_WORKERS` setups at a time; the wall time is printed."""
    urls = {"era-aware": era_aware_over_http, "legacy": legacy_over_http}
    root = tmp_path_factory.mktemp("conformance-matrix")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=MATRIX_WORKERS) as pool:
        futures = {setup: pool.submit(_judge, setup, root / setup.replace("/", "-"), urls) for setup in SETUPS}
        results = {setup: future.result() for setup, future in futures.items()}
    print(f"conformance matrix: {len(SETUPS)} setups x {len(RUNS)} suite runs in {time.monotonic() - started:.0f} s")
    return results


@pytest.mark.parametrize("run", list(RUNS))
@pytest.mark.parametrize("setup", SETUPS)
def test_the_conformance_suite_passes_through_the_gateway(matrix, setup, run):
    returncode, output, log = matrix[setup][run]
    print(output)
    totals = re.findall(r"Total: \d+ passed, \d+ failed", output)
    assert returncode == 0, f"{totals}\n{output[-6000:]}\n--- gateway log ---\n{log}"
    results = parse_summary(output)
    assert results and sum(result.passed for result in results.values()) > 0
