"""The gateway as an MCP client, judged by the official suite's client scenarios, beside the plain SDK client.

For every client scenario of each suite run, both clients in `clients/` run it: the SDK baseline (the mcp
SDK's client and OAuth providers, talking to the mock directly) and the gateway adapter (a real gateway
process whose one upstream is the mock, driven through `/mcp/<slug>` by an ordinary MCP client, logins done
through `/status` and the gateway's callback). The gateway must pass every scenario the SDK passes.
`client-expected-failures.yml` lists, per run, the scenarios the SDK baseline fails as well (`sdk`, each with its
reason; an entry the SDK passes is stale and fails the test) and the known gaps of the gateway (`gateway`: the
SDK passes, the gateway does not yet; each with what is missing).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conformance.client_runner import client_scenarios, run_client_scenario

CLIENTS = Path(__file__).resolve().parent / "clients"
SDK_CLIENT = [sys.executable, str(CLIENTS / "sdk_client.py")]
GATEWAY_CLIENT = [sys.executable, str(CLIENTS / "gateway_client.py")]
EXPECTED = yaml.safe_load((Path(__file__).resolve().parent / "client-expected-failures.yml").read_text())

RUNS = {
    "0.1.16": ("0.1.16", None),
    "0.2.0-alpha.12": ("next", None),
    "0.2.0-alpha.12@2026-07-28": ("next", "2026-07-28"),
}
"""Suite runs: the stable suite, the pre-release at each scenario's own version, and at 2026-07-28."""

PARALLEL = 2
"""Scenarios run at once (each starts a mock server, and the adapter a gateway process)."""


def _judge(run: str, version: str, spec: str | None, scenario: str) -> str | None:
    """None when the scenario is as it should be, else what is wrong."""
    sdk_ok, sdk_output = run_client_scenario(version, SDK_CLIENT, scenario, spec)  # type: ignore[arg-type]
    gateway_ok, gateway_output = run_client_scenario(version, GATEWAY_CLIENT, scenario, spec)  # type: ignore[arg-type]
    expected = EXPECTED.get(run) or {}
    if scenario in (expected.get("sdk") or {}):
        return f"{scenario}: listed as an SDK failure, but the SDK baseline passes it" if sdk_ok else None
    if not sdk_ok:
        return f"{scenario}: the SDK baseline fails; list it with its reason\n{sdk_output[-3000:]}"
    if scenario in (expected.get("gateway") or {}):
        print(f"{run} {scenario}: known gap of the gateway; it {'passes now' if gateway_ok else 'still fails'}")
        return None
    if not gateway_ok:
        return f"{scenario}: the SDK passes, the gateway fails\n{gateway_output[-6000:]}"
    return None


@pytest.mark.timeout(2400)
@pytest.mark.parametrize("run", list(RUNS))
def test_gateway_passes_what_the_sdk_client_passes(run: str) -> None:
    version, spec = RUNS[run]
    scenarios = client_scenarios(version, spec)  # type: ignore[arg-type]
    assert len(scenarios) >= 16, scenarios
    with ThreadPoolExecutor(PARALLEL) as pool:
        verdicts = list(pool.map(lambda name: _judge(run, version, spec, name), scenarios))
    problems = [verdict for verdict in verdicts if verdict is not None]
    assert not problems, "\n\n".join(problems)


def test_expected_failures_name_known_runs_and_give_reasons() -> None:
    for run, entries in EXPECTED.items():
        assert run in RUNS, f"unknown suite run {run!r} in client-expected-failures.yml"
        assert set(entries) <= {"sdk", "gateway"}, f"{run}: only `sdk` and `gateway` lists"
        for kind in ("sdk", "gateway"):
            for scenario, reason in (entries.get(kind) or {}).items():
                assert isinstance(reason, str) and len(reason) > 20, f"{run} {kind} {scenario}: give the reason"
