"""The official MCP conformance suite, run against the gateway with the project's fixture server behind it.

The fixture (`tests/fixtures/conformance_server.py`) offers every name the suite's scenarios call; a profile
serves it with `prefix: ""`, once over stdio and once over Streamable HTTP, so the suite judges the whole proxy path.
Scenarios that cannot pass are listed with their reason in `expected-failures.yaml` next to this file.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, PYTHON, REPO, fixture_server

NODE_PREFIX = REPO / ".ci" / "node"
SUITE_TIMEOUT = 900
"""Seconds one run of the suite may take."""

EXPECTED_FAILURES = Path(__file__).with_name("expected-failures.yaml")


def conformance(*args: str) -> subprocess.CompletedProcess[str]:
    node_bin = NODE_PREFIX / "node_modules" / "node" / "bin"
    cli = NODE_PREFIX / "node_modules" / ".bin" / "conformance"
    if not cli.exists():
        pytest.fail("the conformance suite is not installed: run `bash .ci/setup-node.sh`")
    env = {**os.environ, "PATH": f"{node_bin}{os.pathsep}{os.environ['PATH']}"}
    command = [str(cli), "server", *args]
    if EXPECTED_FAILURES.exists():
        command += ["--expected-failures", str(EXPECTED_FAILURES)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=SUITE_TIMEOUT)


def summary(output: str) -> str:
    found = re.findall(r"Total: \d+ passed, \d+ failed.*", output)
    return found[-1] if found else "no summary line"


@pytest.fixture(scope="module")
def fixture_over_http():
    """The fixture server over Streamable HTTP, as a process of its own."""
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


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_the_conformance_suite_passes_through_the_gateway(config_repo, gateway_factory, transport, request):
    if transport == "stdio":
        server = fixture_server("conformance_server.py")
    else:
        server = {"url": request.getfixturevalue("fixture_over_http")}
    config_repo.write_profile("conformance", {"fixture": {**server, "prefix": ""}})
    gateway = gateway_factory(config_repo.path)
    result = conformance("--url", gateway.url("conformance"), "--suite", "all")
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, f"{summary(output)}\n{output[-6000:]}\n--- gateway log ---\n{gateway.log()[-4000:]}"
    assert re.search(r"Total: [1-9]\d* passed", output)
