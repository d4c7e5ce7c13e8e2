"""The conformance fixture passes the official MCP conformance suites when tested directly.

This is the baseline the gateway is measured against: whatever passes here must also pass
with the gateway in between (tests elsewhere put the fixture behind a profile with
``prefix: ""`` and run the same suites through it). Needs ``.ci/setup-node.sh``; without it
these tests fail and say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests.conformance.runner import parse_summary, run_conformance
from tests.fixtures.launch import FixtureProcess, http_fixture

EXPECTED_FAILURES: Final = Path(__file__).with_name("expected_failures.yml")

STABLE_SCENARIOS: Final = frozenset({
    "server-initialize", "logging-set-level", "ping", "completion-complete", "tools-list",
    "tools-call-simple-text", "tools-call-image", "tools-call-audio", "tools-call-embedded-resource",
    "tools-call-mixed-content", "tools-call-with-logging", "tools-call-error", "tools-call-with-progress",
    "tools-call-sampling", "tools-call-elicitation", "json-schema-2020-12", "elicitation-sep1034-defaults",
    "server-sse-polling", "server-sse-multiple-streams", "elicitation-sep1330-enums", "resources-list",
    "resources-read-text", "resources-read-binary", "resources-templates-read", "resources-subscribe",
    "resources-unsubscribe", "prompts-list", "prompts-get-simple", "prompts-get-with-args",
    "prompts-get-embedded-resource", "prompts-get-with-image", "dns-rebinding-protection",
})
"""Every server scenario of conformance 0.1.16 (`conformance list --server`)."""

MODERN_ONLY_SCENARIOS: Final = frozenset({
    "server-stateless", "sep-2164-resource-not-found", "caching", "http-header-validation",
    "http-custom-header-server-validation", "input-required-result-basic-elicitation",
    "input-required-result-basic-sampling", "input-required-result-basic-list-roots",
    "input-required-result-request-state", "input-required-result-multiple-input-requests",
    "input-required-result-multi-round", "input-required-result-missing-input-response",
    "input-required-result-non-tool-request", "input-required-result-result-type",
    "input-required-result-unsupported-methods", "input-required-result-tampered-state",
    "input-required-result-capability-check", "input-required-result-ignore-extra-params",
    "input-required-result-validate-input",
})
"""Scenarios of 0.2.0-alpha.12 that exist only on the 2026-07-28 line."""


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureProcess]:
    log = tmp_path_factory.mktemp("conformance") / "fixture.stderr"
    with http_fixture("conformance_server.py", stderr_path=log) as server:
        yield server


def _report(output: str) -> str:
    return output.rpartition("=== SUMMARY ===")[2] or output[-4000:]


def test_stable_suite_passes_every_scenario(fixture_server: FixtureProcess) -> None:
    returncode, output = run_conformance(fixture_server.url, version="0.1.16", suite="all")
    results = parse_summary(output)
    assert set(results) == STABLE_SCENARIOS, _report(output)
    assert [name for name, result in results.items() if not result.ok] == [], _report(output)
    assert returncode == 0, _report(output)


@pytest.mark.parametrize("spec_version", ["2025-11-25", "2026-07-28"])
def test_next_suite_passes_every_scenario_of_a_protocol_line(fixture_server: FixtureProcess, spec_version: str) -> None:
    returncode, output = run_conformance(fixture_server.url, version="next", spec_version=spec_version, suite="all")
    results = parse_summary(output)
    assert [name for name, result in results.items() if not result.ok] == [], _report(output)
    assert returncode == 0, _report(output)
    if spec_version == "2026-07-28":
        assert MODERN_ONLY_SCENARIOS <= set(results), _report(output)
        assert "server-session-lifecycle" not in results
    else:
        assert STABLE_SCENARIOS | {"server-session-lifecycle"} <= set(results), _report(output)
        assert not MODERN_ONLY_SCENARIOS & set(results)


def test_next_suite_unfiltered_fails_only_where_expected(fixture_server: FixtureProcess) -> None:
    returncode, output = run_conformance(
        fixture_server.url, version="next", suite="all", expected_failures=EXPECTED_FAILURES
    )
    failing = {name for name, result in parse_summary(output).items() if not result.ok}
    listed = {line.strip()[2:] for line in EXPECTED_FAILURES.read_text().splitlines() if line.strip().startswith("- ")}
    assert failing == listed, _report(output)
    assert returncode == 0, _report(output)


# -- the legacy fixture: written the common mcp 2.x way ----------------------------------------------------------

LEGACY_EXPECTED_FAILURES: Final = Path(__file__).with_name("expected_failures_legacy_2026.yml")


@pytest.fixture(scope="module")
def legacy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureProcess]:
    log = tmp_path_factory.mktemp("conformance") / "legacy.stderr"
    with http_fixture("conformance_legacy.py", stderr_path=log) as server:
        yield server


@pytest.mark.parametrize("version, spec_version", [("0.1.16", None), ("next", "2025-11-25")])
def test_the_legacy_fixture_passes_every_handshake_scenario(legacy_server: FixtureProcess, version, spec_version) -> None:
    returncode, output = run_conformance(legacy_server.url, version=version, spec_version=spec_version, suite="all")
    results = parse_summary(output)
    assert STABLE_SCENARIOS <= set(results), _report(output)
    assert [name for name, result in results.items() if not result.ok] == [], _report(output)
    assert returncode == 0, _report(output)


def test_the_legacy_fixture_fails_directly_exactly_what_its_baseline_lists(legacy_server: FixtureProcess) -> None:
    """The expected failures used through the gateway are scenarios the fixture fails directly, and only those."""
    returncode, output = run_conformance(
        legacy_server.url, version="next", spec_version="2026-07-28", expected_failures=LEGACY_EXPECTED_FAILURES
    )
    results = parse_summary(output)
    failing = {name for name, result in results.items() if not result.ok}
    listed = {
        line.strip()[2:].split("#")[0].strip()
        for line in LEGACY_EXPECTED_FAILURES.read_text().splitlines()
        if line.strip().startswith("- ")
    }
    assert failing <= listed, _report(output)
    assert returncode == 0, _report(output)  # the suite also exits 1 when a listed scenario passes
