"""`tools PROFILE` and `export PROFILE`: connect to a profile's servers the way the gateway does and list what
clients will see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from local_mcp_gateway.errors import ConfigError, ConfigIssue
from local_mcp_gateway.gateway import build_generation, profile_options
from local_mcp_gateway.profile import Profile
from local_mcp_gateway.settings import EnvSettings

__all__ = ["connected_profile", "list_profile_tools", "unavailable_servers"]

CONNECT_WAIT = 60.0
"""Longest wait for the profile's servers to come up."""


@asynccontextmanager
async def connected_profile(config_path: Path, slug: str, settings: EnvSettings) -> AsyncIterator[Profile]:
    """The profile `slug`, its servers connected (or failed) as in the gateway; stopped on exit."""
    generation = build_generation(config_path, settings, 0)
    if slug not in generation.servers:
        known = ", ".join(sorted(generation.servers)) or "none"
        raise ConfigError(ConfigIssue(config_path, f"no profile {slug!r} (profiles: {known})"))
    spec = generation.snapshot.profiles[slug]
    profile = Profile(slug, generation.servers[slug], profile_options(generation), description=spec.description)
    async with anyio.create_task_group() as tg:
        await tg.start(profile.run)
        await profile.wait_settled(CONNECT_WAIT)
        try:
            yield profile
        finally:
            profile.stop()


def unavailable_servers(profile: Profile) -> list[tuple[str, str, str]]:
    """(server, state, error) of the profile's servers that are not serving."""
    return [
        (name, str(server.get("state")), server.get("error") or "")
        for name, server in profile.status()["servers"].items()
        if server.get("state") not in ("ready", "disabled", "per_session")
    ]


async def list_profile_tools(config_path: Path, slug: str, settings: EnvSettings) -> list[dict[str, Any]]:
    """Rows `{name, server, description}` of the tools the profile offers, in the order clients see them."""
    async with connected_profile(config_path, slug, settings) as profile:
        rows = [
            {
                "name": tool.name,
                "server": profile.catalog.tool_routes[tool.name].server,
                "upstream_name": profile.catalog.tool_routes[tool.name].upstream_name,
                "description": (tool.description or "").strip().splitlines()[0] if tool.description else "",
            }
            for tool in profile.catalog.tools
        ]
        for name, state, error in unavailable_servers(profile):
            rows.append({"name": f"({name}: {state})", "server": name, "description": error})
    return rows
