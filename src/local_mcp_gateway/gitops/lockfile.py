"""`profiles/<slug>.lock.json`: the reviewed tool surface of one profile, kept in git next to the profile.

    {"version": 1, "profile": "work",
     "servers": {"<key>": {"name": "...", "version": "..."}},
     "tools": {"<client name>": {"server": "<key>", "sha256": "<hex>", "definition": {...}}},
     "prompts": {...}, "resource_templates": {"<uri template>": {...}}}

`sha256` is the SHA-256 of the definition's RFC 8785 canonical JSON; the definition is kept beside it so a pull
request shows what changed and `plan` can diff it without connecting. Reading checks every entry: a hash that no
longer matches its definition (an edit by hand) is an error naming the file, line and entry.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_mcp_gateway.errors import ConfigError, ConfigIssue
from local_mcp_gateway.gitops.surface import KINDS, Item, Surface, definition_sha256

__all__ = [
    "LOCK_SUFFIX",
    "Drift",
    "Lock",
    "check_locks",
    "compare",
    "effective_policy",
    "lock_path",
    "read_lock",
    "render_lock",
    "write_lock",
]

LOCK_SUFFIX = ".lock.json"
LOCK_VERSION = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_FIELD = {"tools": "name", "prompts": "name", "resource_templates": "uriTemplate"}
_SINGULAR = {"tools": "tool", "prompts": "prompt", "resource_templates": "resource template"}


def lock_path(profiles_dir: Path, slug: str) -> Path:
    return profiles_dir / f"{slug}{LOCK_SUFFIX}"


@dataclass
class Lock:
    """A lock file as read: the profile's pinned surface."""

    profile: str
    surface: Surface
    file: Path
    digest: str = ""
    """SHA-256 of the file's bytes: a changed lock re-evaluates enforcement."""


@dataclass(frozen=True)
class Drift:
    """One difference between a lock and what the upstreams offer now."""

    kind: str
    name: str
    server: str
    reason: str
    """`changed`, `not in lock`, `gone` (locked but no longer offered) or `server version`."""
    fields: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        what = f"{_SINGULAR.get(self.kind, self.kind)} {self.name!r} (server {self.server!r})"
        if self.kind == "servers":
            what = f"server {self.name!r}"
        detail = f": {', '.join(self.fields)}" if self.fields else ""
        return f"{what}: {self.reason}{detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "server": self.server, "reason": self.reason, "fields": list(self.fields)}


def render_lock(slug: str, surface: Surface) -> str:
    """The lock file's text for `surface` (sorted keys, two-space indent, a final newline: stable diffs)."""
    data: dict[str, Any] = {"version": LOCK_VERSION, "profile": slug, "servers": surface.servers}
    for kind in KINDS:
        data[kind] = {
            name: {"server": item.server, "sha256": item.sha256, "definition": item.definition}
            for name, item in surface.kind(kind).items()
        }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_lock(path: Path, slug: str, surface: Surface) -> None:
    """Write atomically (temporary file, rename) so the watching gateway never reads half a lock."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_lock(slug, surface), encoding="utf-8")
    os.replace(tmp, path)


def read_lock(path: Path, slug: str | None = None) -> Lock:
    """Read and check a lock file; raise `ConfigError` naming the file, line and entry of each problem."""
    import hashlib

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(ConfigIssue(path, f"cannot read the lock file: {exc.strerror}")) from None
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            ConfigIssue(path, f"not valid JSON ({exc.msg}); run `local-mcp-gateway lock` to write it again", exc.lineno, exc.colno)
        ) from None
    slug = slug or path.name.removesuffix(LOCK_SUFFIX)
    issues: list[ConfigIssue] = []

    def issue(message: str, key: str | None = None, section: str | None = None, entry: str = "") -> None:
        issues.append(ConfigIssue(path, message, _line_of(text, key, section), None, entry))

    if not isinstance(data, dict):
        raise ConfigError(ConfigIssue(path, "a lock file is a JSON object; run `local-mcp-gateway lock` to write it again", 1))
    if data.get("version") != LOCK_VERSION:
        issue(f"unknown lock version {data.get('version')!r} (expected {LOCK_VERSION})", "version", None, "version")
    if data.get("profile") != slug:
        issue(f"this lock is for profile {data.get('profile')!r}, but its file name says {slug!r}; rename it or lock again", "profile", None, "profile")
    surface = Surface()
    servers = data.get("servers", {})
    if not isinstance(servers, dict) or not all(isinstance(v, dict) for v in servers.values()):
        issue("servers: expected an object of {name, version} per server", "servers", None, "servers")
    else:
        surface.servers = {str(k): dict(v) for k, v in servers.items()}
    for kind in KINDS:
        entries = data.get(kind, {})
        if not isinstance(entries, dict):
            issue(f"{kind}: expected an object", kind, None, kind)
            continue
        for name, entry in entries.items():
            where = f"{kind}.{name}"
            if not isinstance(entry, dict) or not isinstance(entry.get("definition"), dict):
                issue("expected {server, sha256, definition}; run `local-mcp-gateway lock` again", name, kind, where)
                continue
            definition = entry["definition"]
            if definition.get(_KEY_FIELD[kind]) != name:
                issue(f"the definition's {_KEY_FIELD[kind]} is {definition.get(_KEY_FIELD[kind])!r}, not the entry's name; "
                      "the file was edited by hand: run `local-mcp-gateway lock` again", name, kind, where)
                continue
            sha = entry.get("sha256")
            if not isinstance(sha, str) or not _HEX64.match(sha) or sha != definition_sha256(definition):
                issue(f"sha256 does not match the definition of {_SINGULAR[kind]} {name!r} (the file was edited by hand); "
                      f"review the change and run `local-mcp-gateway lock {slug}` to record it", name, kind, where)
                continue
            surface.kind(kind)[name] = Item(str(entry.get("server", "")), definition)
    if issues:
        raise ConfigError(issues)
    return Lock(profile=slug, surface=surface, file=path, digest=hashlib.sha256(raw).hexdigest())


def _line_of(text: str, key: str | None, section: str | None) -> int | None:
    """The line of `"key":` (inside `"section":` when given) in a JSON text, for error positions."""
    if key is None:
        return None
    start = 0
    if section is not None:
        found = text.find(json.dumps(section) + ":")
        if found < 0:
            return None
        start = found
    found = text.find(json.dumps(key, ensure_ascii=False) + ":", start)
    if found < 0:
        found = text.find(json.dumps(key) + ":", start)
    return text.count("\n", 0, found) + 1 if found >= 0 else None


def compare(lock: Surface, now: Surface) -> list[Drift]:
    """Every difference between a locked surface and the current one (servers that failed are left out)."""
    drift: list[Drift] = []
    for kind in KINDS:
        locked, current = lock.kind(kind), now.kind(kind)
        for name, item in current.items():
            pinned = locked.get(name)
            if pinned is None:
                drift.append(Drift(kind, name, item.server, "not in lock"))
            elif pinned.sha256 != item.sha256:
                fields = tuple(f for f in pinned.definition if pinned.definition.get(f) != item.definition.get(f))
                drift.append(Drift(kind, name, item.server, "changed", fields))
        for name, item in locked.items():
            if name not in current and item.server not in now.errors:
                drift.append(Drift(kind, name, item.server, "gone"))
    for name, info in now.servers.items():
        pinned_info = lock.servers.get(name)
        if pinned_info is not None and info and pinned_info != info:
            drift.append(Drift("servers", name, name, "server version",
                               (f"{pinned_info.get('name')} {pinned_info.get('version')} -> {info.get('name')} {info.get('version')}",)))
    return drift


def effective_policy(spec: Any, profiles_dir: Path) -> tuple[str, Path, bool]:
    """`(policy, lock file, exists)`: the written policy, else `warn` when the lock file exists, else `off`."""
    path = lock_path(profiles_dir, spec.slug)
    exists = path.is_file()
    policy = spec.lock_policy if spec.lock_policy is not None else ("warn" if exists else "off")
    return policy, path, exists


def check_locks(snapshot: Any) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """For `validate`: every lock file reads cleanly; a lock without a profile, or an enforced policy without a lock."""
    errors: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []
    folder: Path = snapshot.profiles_dir
    if folder.is_dir():
        for path in sorted(folder.glob(f"*{LOCK_SUFFIX}")):
            slug = path.name.removesuffix(LOCK_SUFFIX)
            if slug not in snapshot.profiles:
                warnings.append(ConfigIssue(path, f"a lock for profile {slug!r}, which does not exist; delete this file", 1))
                continue
            try:
                read_lock(path, slug)
            except ConfigError as exc:
                errors.extend(exc.issues)
    for slug, spec in snapshot.profiles.items():
        policy, path, exists = effective_policy(spec, folder)
        if policy in ("hide", "block") and not exists:
            warnings.append(ConfigIssue(
                spec.file,
                f"lock.policy is {policy} but {path.name} does not exist, so every tool counts as unreviewed; "
                f"run `local-mcp-gateway lock {slug}` and commit the file",
            ))
    return errors, warnings

