"""The running gateway's side of a lock: tools that differ from `profiles/<slug>.lock.json` are flagged, hidden or
have their server taken out of the profile, per `lock.policy`, until a reviewed change updates the lock.

The profile calls `guarded_catalog(entries, guard)` wherever it aggregates its upstreams' listings; with no guard
it is `build_catalog`. The guard keeps the last verdict for `/status` and logs each newly unreviewed tool once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_mcp_gateway.catalog import Catalog, build_catalog
from local_mcp_gateway.gitops.lockfile import Lock, effective_policy, read_lock
from local_mcp_gateway.gitops.surface import definition_sha256, tool_definition

__all__ = ["LockGuard", "guarded_catalog", "load_guard"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class LockGuard:
    """One profile's lock and policy (`warn`, `hide` or `block`) and the last verdict on its catalog."""

    slug: str
    policy: str
    file: Path
    lock: Lock | None
    """None when the lock file does not exist: every tool is unreviewed."""
    unreviewed: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    _reported: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str | None]:
        """Equal keys: the same policy and the same lock file bytes (a reload with an unchanged lock is a no-op)."""
        return self.policy, self.lock.digest if self.lock else None

    def enforce(self, entries: Sequence[tuple[Any, Any]], catalog: Catalog) -> Catalog:
        """The catalog clients may see under this guard's policy; records the verdict for `status()`."""
        pinned = self.lock.surface.tools if self.lock else {}
        unreviewed = []
        for tool in catalog.tools:
            server = catalog.tool_routes[tool.name].server
            item = pinned.get(tool.name)
            definition = tool_definition(tool)
            if item is None:
                unreviewed.append({"tool": tool.name, "server": server, "reason": "not in lock", "fields": []})
            elif item.sha256 != definition_sha256(definition):
                fields = [f for f in definition if item.definition.get(f) != definition.get(f)]
                unreviewed.append({"tool": tool.name, "server": server, "reason": "changed", "fields": fields})
        self.unreviewed = unreviewed
        self._log(unreviewed)
        self.blocked = []
        if not unreviewed or self.policy == "warn":
            return catalog
        if self.policy == "hide":
            hidden = {entry["tool"] for entry in unreviewed}
            return dataclasses.replace(
                catalog,
                tools=[t for t in catalog.tools if t.name not in hidden],
                tool_routes={n: r for n, r in catalog.tool_routes.items() if n not in hidden},
            )
        blocked = {entry["server"] for entry in unreviewed}
        self.blocked = sorted(blocked)
        return build_catalog([(server, listings) for server, listings in entries if server.name not in blocked])

    def _log(self, unreviewed: list[dict[str, Any]]) -> None:
        """Log each unreviewed tool once per guard (a new lock or policy makes a new guard, which logs again)."""
        action = {"warn": "served anyway", "hide": "hidden from clients", "block": "its server is blocked"}[self.policy]
        for entry in unreviewed:
            key = (entry["tool"], entry["reason"], ",".join(entry["fields"]))
            if key not in self._reported:
                self._reported.add(key)
                detail = f" ({', '.join(entry['fields'])})" if entry["fields"] else ""
                logger.warning(
                    "profile %s: tool %s of server %s is %s%s, lock %s; %s",
                    self.slug, entry["tool"], entry["server"], entry["reason"], detail, self.file.name, action,
                )

    def status(self) -> dict[str, Any]:
        """The lock state shown in /status."""
        state = "missing" if self.lock is None else ("drift" if self.unreviewed else "ok")
        return {
            "policy": self.policy,
            "file": self.file.name,
            "state": state,
            "unreviewed": [dict(entry) for entry in self.unreviewed],
            "hidden": [e["tool"] for e in self.unreviewed] if self.policy == "hide" else [],
            "blocked": list(self.blocked),
        }


def load_guard(spec: Any, profiles_dir: Path) -> LockGuard | None:
    """The guard of one profile (None when its policy is `off`); raises `ConfigError` for a broken lock file."""
    policy, path, exists = effective_policy(spec, profiles_dir)
    if policy == "off":
        return None
    return LockGuard(spec.slug, policy, path, read_lock(path, spec.slug) if exists else None)


def guarded_catalog(entries: Sequence[tuple[Any, Any]], guard: LockGuard | None) -> Catalog:
    """`build_catalog(entries)`, then the guard's policy applied (unchanged without a guard)."""
    catalog = build_catalog(entries)
    return catalog if guard is None else guard.enforce(entries, catalog)
