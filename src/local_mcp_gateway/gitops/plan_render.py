"""The plan for people: text for a terminal, Markdown for a pull-request comment (JSON is the data itself)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MARKDOWN_MARKER", "render_markdown", "render_text"]

MARKDOWN_MARKER = "<!-- local-mcp-gateway plan -->"
"""First line of the Markdown plan, so a workflow can find and update its own comment."""


def _summary(plan: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for entry in plan["profiles"].values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    verdict = "changes" if plan["changed"] else "no changes"
    return f"Plan {plan['base']} -> {plan['head']}: {verdict} ({', '.join(parts) or 'no profiles'})"


def render_text(plan: dict[str, Any]) -> str:
    lines = []
    for slug, entry in plan["profiles"].items():
        if entry["status"] == "unchanged" and not entry["warnings"] and not entry["errors"] and not entry.get("notes"):
            continue
        lines.append(f"profile {slug} ({entry['status']})")
        servers = entry["servers"]
        for mark, key in (("+", "added"), ("-", "removed"), ("~", "restarted")):
            for name in servers[key]:
                lines.append(f"  {mark} server {name}" + (" (restarts)" if key == "restarted" else ""))
        tools = entry["tools"]
        for name in tools["added"]:
            lines.append(f"  + tool {name}")
        for name in tools["removed"]:
            lines.append(f"  - tool {name}")
        for change in tools["changed"]:
            lines.append(f"  ~ tool {change['name']}: {', '.join(change['fields'])}")
            if "description_diff" in change:
                lines.append(f"      description: {change['description_diff']}")
            for field_name, paths in change.get("paths", {}).items():
                shown = "; ".join(f"{p['op']} {p['path']}" for p in paths)
                lines.append(f"      {field_name}: {shown}")
        for kind in ("prompts", "resource_templates"):
            for key, mark in (("added", "+"), ("removed", "-"), ("changed", "~")):
                for name in entry.get(kind, {}).get(key, []):
                    lines.append(f"  {mark} {kind[:-1].replace('_', ' ')} {name}")
        for note in entry.get("notes", []):
            lines.append(f"  note: {note}")
        for warning in entry["warnings"]:
            lines.append(f"  warning: {warning}")
        for where, message in entry["errors"].items():
            lines.append(f"  error: server {where} did not start: {message}")
    lines.append(_summary(plan))
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """Inline code for a name: its text cannot end the code span, start HTML or split a table cell."""
    return "<code>" + _md(text) + "</code>"


def _md(text: str) -> str:
    """Text from upstreams, shown in a comment: no HTML, no mentions, no table breaks, no code spans."""
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("@", "&#64;"), ("|", "&#124;"), ("`", "&#96;")):
        text = text.replace(old, new)
    return " ".join(text.split())


def _fence(lines: list[str]) -> str:
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(plan: dict[str, Any]) -> str:
    lines = [MARKDOWN_MARKER, f"### {_summary(plan)}", ""]
    for slug, entry in plan["profiles"].items():
        if entry["status"] == "unchanged" and not entry["warnings"] and not entry["errors"] and not entry.get("notes"):
            continue
        lines.append(f"#### Profile `{slug}` ({entry['status']})")
        lines.append("")
        rows = []
        servers = entry["servers"]
        for key, label in (("added", "added"), ("removed", "removed"), ("restarted", "restarts")):
            rows += [f"| server | {_code(name)} | {label} |" for name in servers[key]]
        tools = entry["tools"]
        rows += [f"| tool | {_code(name)} | added |" for name in tools["added"]]
        rows += [f"| tool | {_code(name)} | removed |" for name in tools["removed"]]
        rows += [f"| tool | {_code(c['name'])} | changed: {', '.join(c['fields'])} |" for c in tools["changed"]]
        for kind in ("prompts", "resource_templates"):
            for key in ("added", "removed", "changed"):
                rows += [f"| {kind[:-1].replace('_', ' ')} | {_code(n)} | {key} |" for n in entry.get(kind, {}).get(key, [])]
        if rows:
            lines += ["| kind | name | change |", "|---|---|---|", *rows, ""]
        for change in tools["changed"]:
            details = []
            if "description_diff" in change:
                details.append(f"description: {change['description_diff']}")
            for field_name, paths in change.get("paths", {}).items():
                details.append(f"{field_name}: " + "; ".join(f"{p['op']} {p['path']}" for p in paths))
            if details:
                fence = _fence(details)
                lines += [f"<details><summary>{_code(change['name'])}</summary>", "", fence + "text", *details, fence,
                          "</details>", ""]
        for note in entry.get("notes", []):
            lines.append(f"> {_md(note)}")
        for warning in entry["warnings"]:
            lines.append(f"- :warning: {_md(warning)}")
        for where, message in entry["errors"].items():
            lines.append(f"- :x: server {_code(where)} did not start: {_md(message)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
