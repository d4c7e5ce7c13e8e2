"""`tools PROFILE` and `export PROFILE`: connect to a profile's servers the way the gateway does and list what
clients will see.

Servers with `isolation: per_session` are connected too (once, as a client session would open them), so their
tools are listed like the others. A server that is not ready once the first attempts are over is a `Failure`,
with its error and the tail of its stderr: `tools` prints them and exits non-zero.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from local_mcp_gateway.errors import ConfigError, ConfigIssue
from local_mcp_gateway.generation import build_generation, profile_options
from local_mcp_gateway.profile import Profile
from local_mcp_gateway.redact import redact_text
from local_mcp_gateway.settings import EnvSettings

__all__ = ["Failure", "Listing", "connected_profile", "list_profile_tools", "unavailable_servers"]

CONNECT_WAIT = 60.0
"""Longest wait for the profile's servers to come up."""

SETTLED_STATES = ("ready", "disabled")


@dataclass(frozen=True)
class Failure:
    """A server that did not come up: its state, its last error and the last lines it wrote to stderr."""

    server: str
    state: str
    error: str
    stderr_tail: tuple[str, ...] = ()


@dataclass
class Listing:
    """What `tools PROFILE` found: rows `{name, server, upstream_name, description}` and the servers that failed."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


@asynccontextmanager
async def connected_profile(config_path: Path, slug: str, settings: EnvSettings) -> AsyncIterator[Profile]:
    """The profile `slug`, its servers connected (or failed) as in the gateway; stopped on exit.

    A per-session server is opened once here, as the first call of a client session would open it.
    """
    generation = build_generation(config_path, settings, 0)
    if slug not in generation.servers:
        known = ", ".join(sorted(generation.servers)) or "none"
        raise ConfigError(ConfigIssue(config_path, f"no profile {slug!r} (profiles: {known})"))
    spec = generation.snapshot.profiles[slug]
    servers = tuple(
        dataclasses.replace(server, isolation="shared") if server.isolation == "per_session" else server
        for server in generation.servers[slug]
    )
    profile = Profile(slug, servers, profile_options(generation), description=spec.description)
    async with anyio.create_task_group() as tg:
        await tg.start(profile.run)
        await profile.wait_settled(CONNECT_WAIT)
        try:
            yield profile
        finally:
            profile.stop()


def failures(profile: Profile) -> list[Failure]:
    """The profile's servers that are not serving, with their error and stderr tail (redacted)."""
    found = []
    for name, upstream in profile.upstreams.items():
        state = str(upstream.state)
        if state in SETTLED_STATES:
            continue
        tail = tuple(redact_text(line) for line in upstream.process.stderr_tail) if upstream.process else ()
        found.append(Failure(name, state, upstream.error or "did not become ready", tail))
    return found


def unavailable_servers(profile: Profile) -> list[tuple[str, str, str]]:
    """(server, state, error) of the profile's servers that are not serving."""
    return [(failure.server, failure.state, failure.error) for failure in failures(profile)]


async def list_profile_tools(config_path: Path, slug: str, settings: EnvSettings) -> Listing:
    """The tools the profile offers, in the order clients see them, and the servers that failed to start."""
    listing = Listing()
    async with connected_profile(config_path, slug, settings) as profile:
        for tool in profile.catalog.tools:
            route = profile.catalog.tool_routes[tool.name]
            description = (tool.description or "").strip().splitlines()[0] if (tool.description or "").strip() else ""
            listing.rows.append(
                {"name": tool.name, "server": route.server, "upstream_name": route.upstream_name,
                 "description": description}
            )
        listing.failures = failures(profile)
    return listing
