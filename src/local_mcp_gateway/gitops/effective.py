"""`config [PROFILE]`: the effective configuration, like `docker compose config`.

Each profile's servers are shown as the gateway runs them: catalog entries merged with the profile's overrides,
every default filled in, the effective prefix and lock policy. Secrets stay references (`${secret:NAME}`); no
value is read, so neither the key nor the network is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from local_mcp_gateway.gitops.lockfile import effective_policy

__all__ = ["effective_config"]


_STDIO = ("command", "args", "env", "cwd")
_REMOTE = ("url", "transport", "headers", "oauth")
_OTHER_KINDS = {"stdio": (*_REMOTE, "module"), "remote": (*_STDIO, "module"), "inprocess": (*_STDIO, *_REMOTE)}
"""Settings that mean nothing for a server of this kind (left out of the output)."""


def _shown(root: Path, path: Path | str) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def effective_config(snapshot: Any, profile: str | None = None) -> dict[str, Any]:
    """The effective configuration as plain data (all profiles, or one); `${secret:}` stays a reference."""
    out: dict[str, Any] = {}
    if profile is None:
        gateway = snapshot.gateway.model_dump(mode="json", exclude={"servers"})
        out["gateway"] = gateway
    profiles = {}
    for slug, spec in snapshot.profiles.items():
        if profile is not None and slug != profile:
            continue
        policy, path, exists = effective_policy(spec, snapshot.profiles_dir)
        servers = {}
        for server in spec.servers:
            data = server.config.model_dump(mode="json")
            data["prefix"] = server.prefix
            data["kind"] = server.config.kind
            data["source"] = "inline" if server.inline else "catalog"
            data["defined_in"] = _shown(snapshot.root, server.file) + (f":{server.line}" if server.line else "")
            for key in _OTHER_KINDS[server.config.kind]:
                data.pop(key, None)
            servers[server.name] = data
        profiles[slug] = {
            "description": spec.description,
            "file": _shown(snapshot.root, spec.file),
            "lock": {"policy": policy, "file": _shown(snapshot.root, path), "exists": exists},
            "api_keys": [str(key) for key in spec.api_keys],
            "servers": servers,
        }
    out["profiles"] = profiles
    return out
