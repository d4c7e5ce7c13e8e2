"""Which secrets a configuration uses, and whether it needs the age key: one clear line when the key is missing.

`secret_references` lists every `${secret:NAME}` with where it stands (`profile work / server github / headers`);
`require_identity` loads the key from the environment, or says which secrets and OAuth servers need it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_mcp_gateway.errors import SecretError
from local_mcp_gateway.secrets import KEY_ENV, KEY_FILE_ENV, Identity, load_identity
from local_mcp_gateway.settings import EnvSettings

__all__ = ["SecretReference", "needs_key", "require_identity", "secret_references"]


@dataclass(frozen=True, slots=True)
class SecretReference:
    """One `${secret:NAME}` in the configuration: `where` reads like `profile work / server github / headers.Authorization`."""

    name: str
    where: str


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    """(label, child) pairs of a configuration value: model fields, dataclass fields, mapping items, list items."""
    fields = getattr(type(obj), "model_fields", None)
    if isinstance(fields, Mapping):
        for field in fields:
            yield field, getattr(obj, field, None)
        return
    dataclass_fields = getattr(obj, "__dataclass_fields__", None)
    if isinstance(dataclass_fields, Mapping):
        for field in dataclass_fields:
            yield field, getattr(obj, field, None)
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield str(key), value
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for index, value in enumerate(obj):
            yield f"[{index}]", value


def _walk(obj: Any, path: str, seen: set[int]) -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) below `obj`, depth first, each object once."""
    if obj is None or isinstance(obj, (str, bytes, int, float, bool, Path)) or id(obj) in seen:
        return
    seen.add(id(obj))
    yield path, obj
    for label, child in _children(obj):
        joined = f"{path}{label}" if label.startswith("[") else (f"{path}.{label}" if path else label)
        yield from _walk(child, joined, seen)


def _server_entries(servers: Any) -> Iterator[tuple[str, Any]]:
    """(server name, server config) from a catalog mapping or a profile's tuple of ServerSpec."""
    if isinstance(servers, Mapping):
        yield from ((str(name), config) for name, config in servers.items())
        return
    for spec in servers or ():
        yield str(getattr(spec, "name", "?")), getattr(spec, "config", spec)


def _sections(snapshot: Any) -> Iterator[tuple[str, Any]]:
    """(where, value) for the parts of a snapshot that may reference secrets, labelled for people."""
    gateway = getattr(snapshot, "gateway", None)
    for name, config in _server_entries(getattr(gateway, "servers", None)):
        yield f"gateway server {name}", config
    security = getattr(gateway, "security", None)
    if security is not None:
        yield "gateway security", security
    ui = getattr(gateway, "ui", None)
    if ui is not None:
        yield "gateway ui", ui
    for slug, profile in sorted((getattr(snapshot, "profiles", None) or {}).items()):
        for name, config in _server_entries(getattr(profile, "servers", None)):
            yield f"profile {slug} / server {name}", config
        yield f"profile {slug}", {"api_keys": getattr(profile, "api_keys", ())}


def secret_references(snapshot: Any) -> list[SecretReference]:
    """Every `${secret:NAME}` the snapshot's templates hold, with where it is used."""
    found: dict[tuple[str, str], SecretReference] = {}
    for where, section in _sections(snapshot):
        for path, value in _walk(section, "", set()):
            names = getattr(value, "secret_names", None)
            if isinstance(names, (set, frozenset)):
                label = f"{where} / {path}" if path else where
                for name in sorted(names):
                    found.setdefault((name, label), SecretReference(name, label))
    return sorted(found.values(), key=lambda ref: (ref.name, ref.where))


def _oauth_servers(snapshot: Any) -> list[str]:
    """Upstream servers the gateway logs in to (inbound OAuth, `security.oauth`, keeps no state and needs no key)."""
    names: list[str] = []
    for where, section in _sections(snapshot):
        if where != "gateway security" and getattr(section, "oauth", None) is not None:
            names.append(where)
    return names


def needs_key(snapshot: Any) -> bool:
    """True when the configuration references a secret or a server uses OAuth (whose tokens live in `state/`)."""
    return bool(secret_references(snapshot) or _oauth_servers(snapshot))


def require_identity(settings: EnvSettings, snapshot: Any) -> Identity | None:
    """The key from the environment; SecretError (one line) when the configuration needs one and none is set."""
    identity = load_identity(settings)
    if identity is not None or not needs_key(snapshot):
        return identity
    needs = sorted({ref.name for ref in secret_references(snapshot)})
    oauth = sorted({where.rsplit("server ", 1)[-1] for where in _oauth_servers(snapshot)})
    reasons = []
    if needs:
        reasons.append(f"references secrets ({', '.join(needs)})")
    if oauth:
        reasons.append(f"uses OAuth ({', '.join(oauth)})")
    raise SecretError(f"this configuration {' and '.join(reasons)}; set {KEY_ENV} or {KEY_FILE_ENV}")
