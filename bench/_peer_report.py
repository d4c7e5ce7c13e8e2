"""The table of `bench/peers.py`: one row per kind of work, one column per target, figure and ratio to the gateway."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["NOT_APPLICABLE", "render", "summarize"]

NOT_APPLICABLE = {
    ("list_fanout", "mcp-proxy"): "no aggregation: mcp-proxy serves each server at its own /servers/<name>/mcp",
    **{
        ("rss_example", peer): "the bundled example is the gateway's own configuration"
        for peer in ("mcp-hub", "mcp-proxy", "fastmcp")
    },
}
"""Cells that have no figure by design, with the reason printed in their place."""


def _ms(seconds: list[float]) -> float | None:
    return round(1000 * statistics.median(seconds), 2) if seconds else None


def _rows(results: Any, plan: Any) -> list[tuple[str, str, str, dict[str, float | None]]]:
    """(key, label, unit, figure per target) for every row of the table."""
    rows = []
    for concurrency, measures in results.call.items():
        rates = {t: round(m.rate, 1) for t, m in measures.items()}
        rows.append((f"call_c{concurrency}", f"tools/call calls/s, concurrency {concurrency}", "calls/s", rates))
    big = {t: _ms(v) for t, v in results.lists["big"].items()}
    rows.append(("list_big", f"tools/list of one upstream with {plan.big_tools} tools (all pages), p50", "ms", big))
    fanout = {t: _ms(v) for t, v in results.lists["fanout"].items() if t != "gateway-one"}
    rows.append(("list_fanout", f"tools/list over {plan.fanout} upstreams, p50", "ms", fanout))
    cold = {t: _ms(v) for t, v in results.cold_start.items()}
    rows.append(("cold_start", f"cold start with {plan.fanout} upstreams, median", "ms", cold))
    for key, label in (
        ("example", "hop RSS at rest, bundled example"),
        ("one", "hop RSS at rest, bench config with 1 upstream"),
        ("fanout", f"hop RSS at rest, bench config with {plan.fanout} upstreams"),
    ):
        rss = {t: round(v / 1e6, 1) for t, v in results.rss.get(key, {}).items()}
        rows.append((f"rss_{key}", label, "MB", rss))
    per_session = {t: round(v / 1e3, 1) for t, v in results.session_bytes.items()}
    rows.append(("session_kb", f"memory per open session ({plan.sessions} sessions)", "kB", per_session))
    return rows


def summarize(results: Any, plan: Any, targets: list[str]) -> dict[str, Any]:
    """Figures, ratios (target over gateway) and the cells left empty by design, as plain JSON-ready data."""
    summary: dict[str, Any] = {"targets": targets, "rows": {}, "protocols": results.protocols}
    for key, label, unit, figures in _rows(results, plan):
        gateway = figures.get("gateway")
        row: dict[str, Any] = {"label": label, "unit": unit, "values": {}, "ratios": {}, "not_applicable": {}}
        for target in targets:
            reason = NOT_APPLICABLE.get((key, target))
            if reason:
                row["not_applicable"][target] = reason
                continue
            value = figures.get(target)
            row["values"][target] = value
            row["ratios"][target] = round(value / gateway, 2) if value is not None and gateway else None
        summary["rows"][key] = row
    one = _ms(results.lists["fanout"].get("gateway-one", []))
    fan = summary["rows"]["list_fanout"]["values"].get("gateway")
    summary["gateway_one_upstream_list_ms"] = one
    summary["gateway_fanout_over_one_upstream"] = round(fan / one, 2) if fan and one else None
    summary["hop_cpu_ms_per_call"] = {
        str(c): {t: round(m.hop_cpu_ms_per_call, 3) for t, m in measures.items()} for c, measures in results.call.items()
    }
    return summary


def _cell(row: dict[str, Any], target: str) -> str:
    if target in row["not_applicable"]:
        return "n/a"
    value, ratio = row["values"].get(target), row["ratios"].get(target)
    if value is None:
        return "MISSING"
    text = f"{value:.1f}" if value < 1000 else f"{value:.0f}"
    return text if target == "gateway" else f"{text} ({ratio:.2f})"


def render(summary: dict[str, Any], markdown: bool) -> str:
    targets = summary["targets"]
    header = ["work", *targets]
    table = [[f"{row['label']} [{row['unit']}]", *(_cell(row, t) for t in targets)] for row in summary["rows"].values()]
    lines = []
    if markdown:
        lines += ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(targets) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in table]
    else:
        lines.append(header[0].ljust(64) + "".join(h.rjust(17) for h in header[1:]))
        lines += [cells[0].ljust(64) + "".join(c.rjust(17) for c in cells[1:]) for cells in table]
    lines.append("")
    lines.append("(figure (ratio): the ratio is the target's figure over the gateway's)")
    for row in summary["rows"].values():
        for target, reason in row["not_applicable"].items():
            lines.append(f"n/a {target}, {row['label']}: {reason}")
    one, ratio = summary["gateway_one_upstream_list_ms"], summary["gateway_fanout_over_one_upstream"]
    lines.append(f"gateway: one-upstream list with as many tools p50 {one} ms; fan-out over one-upstream: {ratio}")
    for level, cpu in summary["hop_cpu_ms_per_call"].items():
        lines.append(f"hop CPU ms per call, concurrency {level}: " + ", ".join(f"{t} {v}" for t, v in cpu.items()))
    lines.append("protocol negotiated: " + ", ".join(f"{t} {p}" for t, p in summary["protocols"].items()))
    return "\n".join(lines)
