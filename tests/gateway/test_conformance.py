"""The official MCP conformance suite, run against the gateway with the project's fixture server behind it.

The fixture (`tests/fixtures/conformance_server.py`) offers every name the suites' scenarios call; a profile serves
it with `prefix: ""`, once over stdio and once over Streamable HTTP, so the suite judges the whole proxy path:
the stable suite (0.1.16, every active and pending scenario) and 0.2.0-alpha.12 on the 2025-11-25 line and the
2026-07-28 line. Every scenario passes through the gateway, as it does against the fixture directly: the
fixture answers `server/discover`, so the gateway speaks 2026-07-28 to it and passes input_required rounds
through to 2026-07-28 clients (and answers them for session clients). A second profile pins the fixture to the
handshake line (`protocol: handshake`), where the gateway itself turns questions into rounds.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conformance.runner import parse_summary, run_conformance
from tests.conftest import FIXTURES, PYTHON, fixture_server

HANDSHAKE_EXPECTED_FAILURES = Path(__file__).with_name("conformance-expected-failures-handshake.yml")

RUNS = {
    "stable": ("0.1.16", None),
    "2025-11-25": ("next", "2025-11-25"),
    "2026-07-28": ("next", "2026-07-28"),
}


@pytest.fixture(scope="module")
def fixture_over_http():
    """The fixture server over Streamable HTTP, as a process of its own (stopped by its pid at the end)."""
    process = subprocess.Popen(
        [PYTHON, str(FIXTURES / "conformance_server.py"), "--transport", "http", "--host", "127.0.0.1", "--port", "0"],
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


@pytest.fixture(params=["stdio", "http", "stdio-handshake"])
def gateway_with_fixture(request, config_repo, gateway_factory):
    if request.param.startswith("stdio"):
        server = fixture_server("conformance_server.py")
    else:
        server = {"url": request.getfixturevalue("fixture_over_http")}
    if request.param.endswith("handshake"):
        server["protocol"] = "handshake"
    config_repo.write_profile("conformance", {"fixture": {**server, "prefix": ""}})
    return gateway_factory(config_repo.path), request.param.endswith("handshake")


@pytest.mark.parametrize("run", list(RUNS))
def test_the_conformance_suite_passes_through_the_gateway(gateway_with_fixture, run):
    version, spec_version = RUNS[run]
    gateway, pinned = gateway_with_fixture
    returncode, output = run_conformance(
        gateway.url("conformance"),
        version=version,
        spec_version=spec_version,
        expected_failures=HANDSHAKE_EXPECTED_FAILURES if pinned and spec_version == "2026-07-28" else None,
    )
    print(output)
    totals = re.findall(r"Total: \d+ passed, \d+ failed", output)
    assert returncode == 0, f"{totals}\n{output[-6000:]}\n--- gateway log ---\n{gateway.log()[-4000:]}"
    results = parse_summary(output)
    assert results and sum(result.passed for result in results.values()) > 0
