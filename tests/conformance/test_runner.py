"""The suite runner finds the suites in .ci/node, fails loudly without them, and reads summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import runner

SAMPLE_OUTPUT = """
=== Running scenario: ping ===
✓ not a summary line: 9 passed, 9 failed

=== SUMMARY ===
✓ server-initialize: 1 passed, 0 failed
✗ tools-call-with-progress: 0 passed, 1 failed
✓ server-sse-polling: 0 passed, 0 failed

Total: 1 passed, 1 failed
"""


def test_missing_tooling_fails_with_the_setup_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(runner.SUITE_PREFIXES, "next", tmp_path / "absent")
    with pytest.raises(AssertionError, match=r"run \.ci/setup-node\.sh") as caught:
        runner.run_conformance("http://127.0.0.1:9/mcp", version="next")
    assert isinstance(caught.value, runner.ConformanceToolingMissing)
    assert str(tmp_path / "absent") in str(caught.value)


def test_unknown_suite_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown conformance suite version '0.0.1'"):
        runner.conformance_command("http://127.0.0.1:9/mcp", version="0.0.1")  # type: ignore[arg-type]


def test_command_carries_the_options() -> None:
    command = runner.conformance_command(
        "http://127.0.0.1:9/mcp", "next", "2026-07-28", Path("baseline.yml"), suite="all"
    )
    assert command[0] == str(runner.NODE_BINARY)
    assert command[2:] == [
        "server", "--url", "http://127.0.0.1:9/mcp", "--suite", "all",
        "--spec-version", "2026-07-28", "--expected-failures", "baseline.yml",
    ]
    single = runner.conformance_command("http://127.0.0.1:9/mcp", scenario="ping")
    assert single[-2:] == ["--scenario", "ping"] and "--suite" not in single


def test_summary_is_read_from_the_summary_block_only() -> None:
    results = runner.parse_summary(SAMPLE_OUTPUT)
    assert list(results) == ["server-initialize", "tools-call-with-progress", "server-sse-polling"]
    assert results["server-initialize"].ok
    assert not results["tools-call-with-progress"].ok
    assert results["server-sse-polling"] == runner.ScenarioResult("server-sse-polling", 0, 0)
