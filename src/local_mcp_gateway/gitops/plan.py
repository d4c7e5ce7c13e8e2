"""`plan`: what a change to the configuration does, per profile, before it is merged.

Servers are compared by fingerprint (the settings whose change restarts an upstream), computed without the age
key: a secret stands for the SHA-256 of its `.age` file, so re-encrypting a secret counts as a change and its
value is never needed. Tools, prompts and resource templates come from each side's lock file when there is one,
else from the upstreams themselves with `--live`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_mcp_gateway.config.load import load_snapshot
from local_mcp_gateway.config.resolve import resolve_server
from local_mcp_gateway.gitops.diff import json_pointer_changes, word_diff
from local_mcp_gateway.gitops.lockfile import lock_path, read_lock
from local_mcp_gateway.gitops.poison import definition_warnings, imitation_warnings, new_secret_parameters
from local_mcp_gateway.gitops.surface import TOOL_FIELDS, Surface

__all__ = ["Side", "build_plan", "load_side"]


class _EnvOrReference(Mapping[str, str]):
    """The environment for fingerprints: a variable that is not set here stands for itself (`${env:NAME}`)."""

    def __getitem__(self, name: str) -> str:
        return os.environ.get(name, f"${{env:{name}}}")

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


@dataclass
class Side:
    """One side of a plan: its configuration, its servers' fingerprints and (where known) its tool surface."""

    label: str
    snapshot: Any
    servers: dict[str, dict[str, str]]
    """Per profile, per server key: `fingerprint` (plus `enabled`) as computed without the key."""
    surfaces: dict[str, Surface] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    """Per profile: where its surface came from, `lock` or `live`."""


def load_side(config_path: Path, label: str) -> Side:
    """Load a configuration for planning (raises `ConfigError`); surfaces come from its lock files."""
    snapshot = load_snapshot(config_path, environ=_EnvOrReference())

    def secret_digest(name: str) -> str:
        file = snapshot.secrets_dir / f"{name}.age"
        try:
            return "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()
        except OSError:
            return "missing"

    servers: dict[str, dict[str, str]] = {}
    side = Side(label, snapshot, servers)
    env = _EnvOrReference()
    for slug, spec in snapshot.profiles.items():
        servers[slug] = {}
        for server in spec.servers:
            resolved = resolve_server(server, secret_digest, env)
            servers[slug][server.name] = f"{resolved.fingerprint}:{resolved.enabled}:{resolved.kind}"
        path = lock_path(snapshot.profiles_dir, slug)
        if path.is_file():
            side.surfaces[slug] = read_lock(path, slug).surface
            side.sources[slug] = "lock"
    return side


def _prefixes(side: Side, slug: str) -> dict[str, str]:
    spec = side.snapshot.profiles.get(slug)
    return {s.name: s.prefix for s in spec.servers} if spec is not None else {}


def _tool_change(name: str, before: Any, after: Any) -> dict[str, Any] | None:
    fields = [f for f in TOOL_FIELDS if before.definition.get(f) != after.definition.get(f)]
    if not fields:
        return None
    change: dict[str, Any] = {"name": name, "server": after.server, "fields": fields}
    if "description" in fields:
        change["description_diff"] = word_diff(before.definition.get("description"), after.definition.get("description"))
    schemas = {
        f: json_pointer_changes(before.definition.get(f), after.definition.get(f))
        for f in ("inputSchema", "outputSchema", "annotations")
        if f in fields
    }
    if schemas:
        change["paths"] = schemas
    return change


def _tools(base: Surface | None, head: Surface | None, prefixes: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    old = base.tools if base is not None else {}
    new = head.tools if head is not None else {}
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = []
    for name in sorted(set(old) & set(new)):
        change = _tool_change(name, old[name], new[name])
        if change is not None:
            changed.append(change)
    warnings = []
    touched = set(added) | {c["name"] for c in changed}
    imitations = imitation_warnings(new, prefixes)
    for name in sorted(touched):
        before = old.get(name)
        after = new[name]
        known = set(definition_warnings(before.definition)) if before else set()
        warnings += [f"tool {name}: {w}" for w in definition_warnings(after.definition) if w not in known]
        warnings += [f"tool {name}: input schema gains a secret-looking parameter {p}"
                     for p in new_secret_parameters(before.definition if before else None, after.definition)]
        warnings += [f"tool {name}: {w}" for w in imitations.get(name, [])]
    return {"added": added, "removed": removed, "changed": changed}, warnings


def _other_kinds(base: Surface | None, head: Surface | None) -> dict[str, Any]:
    out = {}
    for kind in ("prompts", "resource_templates"):
        old = base.kind(kind) if base is not None else {}
        new = head.kind(kind) if head is not None else {}
        out[kind] = {
            "added": sorted(set(new) - set(old)),
            "removed": sorted(set(old) - set(new)),
            "changed": sorted(n for n in set(old) & set(new) if old[n].sha256 != new[n].sha256),
        }
    return out


def build_plan(base: Side, head: Side) -> dict[str, Any]:
    """The plan as plain data (the JSON output); `changed` says whether anything differs."""
    profiles: dict[str, Any] = {}
    any_change = False
    for slug in sorted(set(base.servers) | set(head.servers)):
        old = base.servers.get(slug, {})
        new = head.servers.get(slug, {})
        servers = {
            "added": [n for n in new if n not in old],
            "removed": [n for n in old if n not in new],
            "restarted": [n for n in new if n in old and old[n] != new[n]],
        }
        status = "added" if slug not in base.servers else "removed" if slug not in head.servers else "unchanged"
        known_base = slug in base.surfaces or slug not in base.servers
        known_head = slug in head.surfaces or slug not in head.servers
        entry: dict[str, Any] = {"status": status, "servers": servers}
        warnings: list[str] = []
        if known_base and known_head:
            tools, warnings = _tools(base.surfaces.get(slug), head.surfaces.get(slug), _prefixes(head, slug))
            sources = sorted({s for s in (base.sources.get(slug), head.sources.get(slug)) if s})
            entry["tools"] = {**tools, "source": "+".join(sources) or "none"}
            entry.update(_other_kinds(base.surfaces.get(slug), head.surfaces.get(slug)))
        else:
            entry["tools"] = {"added": [], "removed": [], "changed": [], "source": "unknown"}
            entry["notes"] = [f"tool surface unknown: no {slug}.lock.json on the "
                              f"{'base' if not known_base else 'head'} side; commit one (`local-mcp-gateway lock {slug}`) "
                              "or plan with --live"]
        entry["warnings"] = warnings
        errors = {}
        for side in (base, head):
            surface = side.surfaces.get(slug)
            if surface is not None and surface.errors:
                errors.update({f"{side.label}: {name}": message for name, message in surface.errors.items()})
        entry["errors"] = errors
        changed = any(servers.values()) or any(entry["tools"][k] for k in ("added", "removed", "changed"))
        changed = changed or any(any(v.values()) for k, v in entry.items() if k in ("prompts", "resource_templates"))
        if status == "unchanged" and changed:
            entry["status"] = "changed"
        any_change = any_change or status != "unchanged" or changed
        profiles[slug] = entry
    return {"base": base.label, "head": head.label, "changed": any_change, "profiles": profiles}
