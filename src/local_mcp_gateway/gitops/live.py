"""Connect to a profile's upstreams the way the gateway does (no lock applied) and take what its clients would see."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import anyio

from local_mcp_gateway.config.load import load_snapshot
from local_mcp_gateway.config.resolve import resolve_profile
from local_mcp_gateway.errors import ConfigError, ConfigIssue
from local_mcp_gateway.gitops.surface import Surface, surface_of_catalog
from local_mcp_gateway.settings import EnvSettings

__all__ = ["live_surfaces"]

CONNECT_WAIT = 60.0
"""Longest wait for a profile's servers to come up (or fail)."""


async def live_surfaces(config_path: Path, slugs: Sequence[str] | None, settings: EnvSettings) -> dict[str, Surface]:
    """Per profile (all when `slugs` is None): the surface its clients see now; servers that failed are in `errors`."""
    from local_mcp_gateway.generation import Generation, profile_options
    from local_mcp_gateway.profile import Profile
    from local_mcp_gateway.secret_refs import require_identity
    from local_mcp_gateway.secrets import SecretStore

    snapshot = load_snapshot(config_path, environ=os.environ)
    wanted = list(snapshot.profiles) if slugs is None else list(slugs)
    unknown = [slug for slug in wanted if slug not in snapshot.profiles]
    if unknown:
        known = ", ".join(snapshot.profiles) or "none"
        raise ConfigError(ConfigIssue(config_path, f"no profile {', '.join(map(repr, unknown))} (profiles: {known})"))
    # The key is needed only when the servers of these profiles reference secrets or use OAuth.
    needed = SimpleNamespace(gateway=None, profiles={s: SimpleNamespace(servers=snapshot.profiles[s].servers) for s in wanted})
    identity = require_identity(settings, needed)
    store = SecretStore(snapshot.secrets_dir, identity)
    # Per-session servers are listed through one connection of their own, like shared ones: the lock covers them too.
    servers = {
        slug: tuple(
            dataclasses.replace(server, isolation="shared")
            for server in resolve_profile(snapshot.profiles[slug], store.reveal_lookup, os.environ)
        )
        for slug in wanted
    }
    generation = Generation(0, snapshot, servers, {}, store, "")
    options = profile_options(generation)
    profiles = [Profile(slug, servers[slug], options) for slug in wanted]
    surfaces: dict[str, Surface] = {}
    async with anyio.create_task_group() as tg:
        for profile in profiles:
            await tg.start(profile.run)
        for profile in profiles:
            await profile.wait_settled(CONNECT_WAIT)
        for profile in profiles:
            infos = {}
            errors = {}
            for name, upstream in profile.upstreams.items():
                if upstream.server_info is not None and str(upstream.state) == "ready":
                    infos[name] = {"name": upstream.server_info.name, "version": upstream.server_info.version}
                elif upstream.server.enabled:
                    errors[name] = upstream.error or f"not ready ({upstream.state})"
            surface = surface_of_catalog(profile.catalog, infos)
            surface.errors = errors
            surfaces[profile.slug] = surface
            profile.stop()
    return surfaces
