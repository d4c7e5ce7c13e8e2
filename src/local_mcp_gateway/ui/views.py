"""What the dashboard shows, shaped from the gateway's status, catalogs and traffic logs (pure functions).

Server fields are rendered generically: the columns the page knows (`state`, `tools`, `restarts`, `sessions`,
`next_retry_at`, `error`) get their own cells, and every other field a server's status carries shows up under
"more" as `name: value`, so a field added to `/status` later appears without a template change. The same holds
for gateway-wide fields. `auth_url` is never shown: the Connect button asks for it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "SERVER_COLUMNS",
    "catalog_digest",
    "gateway_facts",
    "live_status",
    "percentile",
    "profile_extra",
    "server_rows",
    "tool_page",
    "traffic_rows",
    "traffic_stats",
    "uptime_text",
]

SERVER_COLUMNS = ("state", "tools", "restarts", "sessions", "next_retry_at", "error")
"""Server status fields with a column of their own; the rest are listed under "more"."""
_HIDDEN_SERVER_FIELDS = {"auth_url", "kind", "isolation", "description"}
_GATEWAY_FIELDS = {"generation", "config_digest", "loaded_at", "last_reload_error", "profiles", "oauth", "ready",
                   "default_profile"}
_COMMIT_FIELDS = ("config_commit", "git_commit", "commit", "git")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str | int):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def uptime_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def gateway_facts(status: Mapping[str, Any], started_at: float, now: float) -> dict[str, Any]:
    """The overview: generation, digest, git commit, loaded at, uptime, the last reload error, other fields."""
    commit = None
    for name in _COMMIT_FIELDS:
        value = status.get(name)
        if isinstance(value, Mapping):
            value = value.get("commit") or value.get("sha")
        if value:
            commit = str(value)
            break
    extra = {k: _text(v) for k, v in sorted(status.items()) if k not in _GATEWAY_FIELDS and k not in _COMMIT_FIELDS}
    error = status.get("last_reload_error")
    return {
        "generation": status.get("generation"),
        "config_digest": status.get("config_digest") or "",
        "commit": commit or "",
        "loaded_at": status.get("loaded_at") or "",
        "ready": bool(status.get("ready")),
        "default_profile": status.get("default_profile") or "",
        "uptime": uptime_text(now - started_at),
        "started_at": datetime.fromtimestamp(started_at, UTC).isoformat(timespec="seconds"),
        "reload_error": dict(error) if isinstance(error, Mapping) else None,
        "extra": extra,
    }


def server_rows(slug: str, servers: Mapping[str, Mapping[str, Any]], oauth_servers: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One row per server: `key` (profile/server), `name`, the column texts, `more` (other fields), `connect`."""
    oauth = set(oauth_servers)
    rows = []
    for name, entry in servers.items():
        fields = {column: _text(entry.get(column)) for column in SERVER_COLUMNS}
        more = {k: _text(v) for k, v in sorted(entry.items()) if k not in SERVER_COLUMNS and k not in _HIDDEN_SERVER_FIELDS}
        rows.append(
            {
                "key": f"{slug}/{name}",
                "profile": slug,
                "name": name,
                "kind": _text(entry.get("kind")),
                "description": _text(entry.get("description")),
                "fields": fields,
                "more": "; ".join(f"{k}: {v}" for k, v in more.items()),
                "oauth": name in oauth,
                "needs_auth": entry.get("state") == "needs_auth",
            }
        )
    return rows


_PROFILE_FIELDS = {"description", "sessions", "clashes", "servers"}


def profile_extra(entry: Mapping[str, Any]) -> str:
    """A profile's status fields beyond description, sessions, clashes and servers (its lock state, for one),
    as `name: value; ...`."""
    return "; ".join(f"{k}: {_text(v)}" for k, v in sorted(entry.items()) if k not in _PROFILE_FIELDS and v is not None)


def catalog_digest(catalog: Any) -> str:
    """A short fingerprint of what a profile's clients see (names, descriptions, schemas, URIs)."""
    parts = [
        [(t.name, t.description, t.input_schema) for t in catalog.tools],
        [(p.name, p.description) for p in catalog.prompts],
        [str(r.uri) for r in catalog.resources],
        [t.uri_template for t in catalog.templates],
    ]
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


def live_status(status: Mapping[str, Any], digests: Mapping[str, str], oauth: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """What the event stream sends: the generation, each profile's catalog digest (`catalog_digest`), each
    server's field texts."""
    servers: dict[str, Any] = {}
    for slug, profile in (status.get("profiles") or {}).items():
        for row in server_rows(slug, profile.get("servers") or {}, oauth.get(slug, ())):
            servers[row["key"]] = {**row["fields"], "more": row["more"], "needs_auth": row["needs_auth"]}
    error = status.get("last_reload_error")
    return {
        "generation": status.get("generation"),
        "profiles": sorted((status.get("profiles") or {}).keys()),
        "catalogs": dict(sorted(digests.items())),
        "servers": servers,
        "profile_extra": {slug: profile_extra(p) for slug, p in sorted((status.get("profiles") or {}).items())},
        "reload_error": _text(error.get("message")) if isinstance(error, Mapping) else "",
    }


def tool_page(catalog: Any, query: str, page: int, size: int) -> dict[str, Any]:
    """Tools matching `query` (in name, description or server; case-insensitive), one page of them."""
    needle = query.strip().lower()
    matches = []
    for tool in catalog.tools:
        route = catalog.tool_routes.get(tool.name)
        server = route.server if route else ""
        if needle and needle not in f"{tool.name}\n{tool.description or ''}\n{server}".lower():
            continue
        matches.append((tool, server))
    pages = max(1, math.ceil(len(matches) / size))
    page = min(max(1, page), pages)
    start = (page - 1) * size
    shown = [
        {
            "name": tool.name,
            "server": server,
            "title": tool.title or "",
            "description": tool.description or "",
            "schema": json.dumps(tool.input_schema, indent=2, ensure_ascii=False, default=str),
        }
        for tool, server in matches[start : start + size]
    ]
    return {"tools": shown, "total": len(catalog.tools), "matched": len(matches), "page": page, "pages": pages,
            "first": start + 1 if shown else 0, "last": start + len(shown)}


# -- traffic ---------------------------------------------------------------------------------------------------


def _server_of(catalog: Any, method: str, name: str | None) -> str:
    if catalog is None or not name:
        return ""
    if method == "tools/call":
        route = catalog.tool_routes.get(name)
    elif method == "prompts/get":
        route = catalog.prompt_routes.get(name)
    elif method.startswith("resources/"):
        return catalog.server_for_uri(name) or ""
    else:
        return ""
    return route.server if route is not None else ""


def traffic_rows(entries: Iterable[Any], catalog: Any) -> list[dict[str, Any]]:
    """Traffic entries (already redacted by the log) as rows, each with the server its name routes to."""
    rows = []
    for entry in entries:
        rows.append(
            {
                "at": entry.at,
                "profile": entry.profile,
                "method": entry.method,
                "name": entry.name or "",
                "server": _server_of(catalog, entry.method, entry.name),
                "outcome": entry.status,
                "error_code": "" if entry.error_code is None else str(entry.error_code),
                "duration_ms": entry.duration_ms,
            }
        )
    return rows


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (not empty): the smallest value with `fraction` of them at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def traffic_stats(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per profile and tool (tools/call rows only): calls, errors, p50 and p95 of the duration in milliseconds."""
    durations: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], int] = {}
    servers: dict[tuple[str, str], str] = {}
    for row in rows:
        if row["method"] != "tools/call" or not row["name"]:
            continue
        key = (row["profile"], row["name"])
        durations.setdefault(key, []).append(float(row["duration_ms"]))
        errors[key] = errors.get(key, 0) + (row["outcome"] != "ok")
        servers[key] = row["server"]
    return [
        {
            "profile": profile,
            "tool": tool,
            "server": servers[(profile, tool)],
            "calls": len(values),
            "errors": errors[(profile, tool)],
            "p50_ms": round(percentile(values, 0.50), 3),
            "p95_ms": round(percentile(values, 0.95), 3),
        }
        for (profile, tool), values in sorted(durations.items())
    ]
