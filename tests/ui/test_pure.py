"""The pure parts: the TOON encoder (checked by an independent decoder, `python-toon`), percentiles and the
per-tool figures, and the generic rendering of status fields."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import toon
from hypothesis import given, settings
from hypothesis import strategies as st

from local_mcp_gateway.ui.toon import encode
from local_mcp_gateway.ui.views import (
    gateway_facts,
    percentile,
    profile_extra,
    server_rows,
    traffic_rows,
    traffic_stats,
)

keys = st.text(min_size=1, max_size=8)
scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12) | st.floats(
    allow_nan=False, allow_infinity=False, width=32).filter(lambda f: not f.is_integer())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=5))
def test_toon_round_trips_through_an_independent_decoder(document: dict[str, Any]) -> None:
    assert toon.decode(encode(document)) == document


def test_toon_uses_tables_for_uniform_rows_and_quotes_what_needs_it() -> None:
    text = encode({"rows": [{"id": 1, "name": "a,b"}, {"id": 2, "name": "true"}], "tags": ["x", "- y", ""]})
    assert text == 'rows[2]{id,name}:\n  1,"a,b"\n  2,"true"\ntags[3]: x,"- y",""\n'


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.95) == 95.0
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0


def entry(name: str, status: str, ms: float, method: str = "tools/call") -> Any:
    return SimpleNamespace(at="2026-01-01T00:00:00.000+00:00", profile="team", method=method, name=name,
                           status=status, error_code=None, duration_ms=ms)


def test_traffic_rows_name_the_server_and_stats_count_per_tool() -> None:
    catalog = SimpleNamespace(tool_routes={"echo__echo": SimpleNamespace(server="echo")}, prompt_routes={},
                              server_for_uri=lambda uri: "files" if uri.startswith("file:") else None)
    entries = [entry("echo__echo", "ok", float(ms)) for ms in range(1, 21)]
    entries += [entry("echo__echo", "tool_error", 100.0), entry("file:///a", "ok", 5.0, "resources/read"),
                entry("", "notification", 0.0, "notifications/initialized")]
    rows = traffic_rows(entries, catalog)
    assert [r["server"] for r in rows[-3:]] == ["echo", "files", ""]
    assert traffic_stats(rows) == [{"profile": "team", "tool": "echo__echo", "server": "echo", "calls": 21,
                                    "errors": 1, "p50_ms": 11.0, "p95_ms": 20.0}]


def test_unknown_status_fields_show_up_without_template_changes() -> None:
    rows = server_rows("team", {"gh": {"state": "failed", "error": "boom", "restarts": 3, "next_retry_at": "soon",
                                       "lock": {"held": True}, "auth_url": "https://as/authorize?x", "kind": "remote"}},
                       ["gh"])
    row = rows[0]
    assert row["fields"]["state"] == "failed" and row["fields"]["next_retry_at"] == "soon"
    assert row["more"] == 'lock: {"held": true}' and "auth_url" not in row["more"] and row["oauth"]
    facts = gateway_facts({"generation": 3, "git": {"commit": "abc123"}, "lock_state": "locked", "profiles": {}},
                          started_at=0.0, now=3725.0)
    assert facts["commit"] == "abc123" and facts["extra"] == {"lock_state": "locked"} and facts["uptime"] == "1h 2m"
    facts = gateway_facts({"generation": 1, "config_commit": "0123abcd", "config_source": "git"}, 0.0, 1.0)
    assert facts["commit"] == "0123abcd" and facts["extra"] == {"config_source": "git"}


def test_profile_fields_beyond_the_known_ones_are_listed() -> None:
    entry = {"description": "d", "sessions": 2, "clashes": [], "servers": {}, "lock": {"policy": "warn", "ok": True}}
    assert profile_extra(entry) == 'lock: {"ok": true, "policy": "warn"}'
