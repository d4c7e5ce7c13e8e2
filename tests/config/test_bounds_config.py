"""The bounds on sessions, per-session upstreams, calls and buffered answers: malformed values are named by
`validate` with their file and line, and a reload with one never replaces the running configuration."""

from __future__ import annotations

import pytest
from cfgrepo import Repo

from local_mcp_gateway.cli import main


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  max_sessions: 0\n", "gateway.yaml:3:3: security.max_sessions: must be at least 1"),
        ("  max_sessions: lots\n", "gateway.yaml:3:3: security.max_sessions: expected a whole number"),
        ("  session_idle_seconds: -5\n", "gateway.yaml:3:3: security.session_idle_seconds: must be greater than 0"),
        ("  max_per_session_upstreams: 1.5\n", "gateway.yaml:3:3: security.max_per_session_upstreams: expected a whole number"),
        ("  max_calls_in_flight: 0\n", "gateway.yaml:3:3: security.max_calls_in_flight: must be at least 1"),
        ("  max_buffered_result_bytes: 12\n", "gateway.yaml:3:3: security.max_buffered_result_bytes: must be at least 1024"),
    ],
)
def test_malformed_bounds_are_named_with_file_and_line(
    repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    repo.write("gateway.yaml", "version: 1\nsecurity:\n" + text)
    repo.write("profiles/demo.yaml", "servers: {}\n")
    monkeypatch.chdir(repo.root)
    assert main(["validate"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [expected]


def test_well_formed_bounds_are_valid(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(
        "gateway.yaml",
        "version: 1\nsecurity:\n  max_sessions: 50\n  session_idle_seconds: 90\n  max_per_session_upstreams: 4\n"
        "  max_calls_in_flight: 8\n  max_buffered_result_bytes: 33554432\n",
    )
    repo.write("profiles/demo.yaml", "servers: {}\n")
    assert main(["validate", "-c", str(repo.config)]) == 0
