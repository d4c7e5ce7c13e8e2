"""What the gateway keeps and shows of GitOps: the lock guards of a generation, its git commit, the lock state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from local_mcp_gateway.gitops.enforce import LockGuard, load_guard
from local_mcp_gateway.gitops.source import config_commit

__all__ = ["gitops_state", "lock_keys", "lock_status"]


def gitops_state(snapshot: Any) -> tuple[dict[str, LockGuard], dict[str, Any] | None]:
    """Per profile its lock guard (profiles with policy `off` have none), and the configuration's git commit.

    Raises `ConfigError` when a lock file is broken, so a hand-edited lock never replaces a working generation.
    """
    guards = {}
    for slug, spec in snapshot.profiles.items():
        guard = load_guard(spec, snapshot.profiles_dir)
        if guard is not None:
            guards[slug] = guard
    return guards, config_commit(snapshot.root)


def lock_keys(guards: Mapping[str, LockGuard]) -> dict[str, Any]:
    """What decides whether enforcement must be evaluated again: each profile's policy and lock file bytes."""
    return {slug: guard.key for slug, guard in guards.items()}


def lock_status(guard: LockGuard | None) -> dict[str, Any]:
    """A profile's lock state for /status: `{"policy": "off"}` without a guard."""
    return {"policy": "off", "state": "off"} if guard is None else guard.status()
