"""Configuration files -> `Snapshot`: read, validate against the models, merge, check, freeze.

`load_snapshot` reads gateway.yaml and every `profiles/*.yaml` / `*.yml`, and raises one
`ConfigError` listing every problem found (file:line:col: dotted.path: what is wrong and how to fix
it), so one `validate` run shows everything to fix. Nothing here needs the age key or the network.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError

from local_mcp_gateway.config.gateway_models import GatewayConfig
from local_mcp_gateway.config.issues import validation_issues
from local_mcp_gateway.config.models import OVERRIDABLE_FIELDS, ProfileConfig
from local_mcp_gateway.config.snapshot import ProfileSpec, ServerSpec, Snapshot
from local_mcp_gateway.config.validate import ProfileSource, Sources, check
from local_mcp_gateway.config.yamlsafe import Document, load_yaml
from local_mcp_gateway.errors import ConfigError, ConfigIssue

__all__ = ["PROFILE_SUFFIXES", "SLUG_PATTERN", "load_snapshot"]

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""A profile's slug: its file's stem, also the last part of its URL /mcp/<slug>."""

PROFILE_SUFFIXES = (".yaml", ".yml")

_DEFAULT_DIRS = {"profiles_dir": "profiles", "secrets_dir": "secrets", "state_dir": "state"}

STATE_DIR_ENV = "MCP_GATEWAY_STATE_DIR"
"""Overrides `state_dir` (a shared volume outside a git-synced, read-only configuration checkout)."""


@dataclass
class _Run:
    """Everything one load collects: documents read, errors, warnings."""

    config_path: Path
    root: Path
    environ: Mapping[str, str]
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)

    def read(self, file: Path) -> Document | None:
        try:
            doc = load_yaml(file)
        except ConfigError as exc:
            self.errors.extend(exc.issues)
            return None
        self.documents.append(doc)
        return doc

    def validate(self, doc: Document, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate(doc.data)
        except ValidationError as exc:
            self.errors.extend(validation_issues(exc, doc, model))
            return None


def load_snapshot(config_path: Path, *, environ: Mapping[str, str] | None = None) -> Snapshot:
    """Load and check the configuration rooted at `config_path` (gateway.yaml).

    `environ` is what `${env:NAME}` references are checked against (default: `os.environ`).
    Raises `ConfigError` listing every issue found.
    """
    config_path = Path(os.path.abspath(config_path))
    run = _Run(config_path=config_path, root=config_path.parent, environ=os.environ if environ is None else environ)
    gateway_doc = run.read(config_path)
    gateway: GatewayConfig | None = run.validate(gateway_doc, GatewayConfig) if gateway_doc else None
    dirs = _dirs(run.root, gateway, gateway_doc)
    if run.environ.get(STATE_DIR_ENV):
        dirs["state_dir"] = Path(os.path.abspath(os.path.expanduser(run.environ[STATE_DIR_ENV])))
    profiles = _read_profiles(run, dirs["profiles_dir"])
    catalog_names = _catalog_names(gateway, gateway_doc)

    specs: dict[str, ProfileSpec] = {}
    for source in profiles:
        servers = _profile_servers(run, source, gateway, gateway_doc, catalog_names)
        if source.config is not None and servers is not None:
            specs[source.slug] = ProfileSpec(
                slug=source.slug,
                description=source.config.description,
                servers=servers,
                api_keys=tuple(source.config.api_keys),
                file=source.doc.file,
                lock_policy=source.config.lock.policy if source.config.lock is not None else None,
                oauth=source.config.oauth,
                access=tuple(source.config.access),
            )

    if gateway is not None and gateway_doc is not None:
        errors, warnings = check(
            Sources(
                gateway_doc=gateway_doc,
                gateway=gateway,
                profiles=tuple(profiles),
                specs=specs,
                root=run.root,
                secrets_dir=dirs["secrets_dir"],
                environ=run.environ,
            )
        )
        run.errors.extend(errors)
        run.warnings.extend(warnings)
        run.errors.extend(_oauth_without_issuer(gateway, profiles))

    if run.errors or gateway is None:
        raise ConfigError(run.errors)
    return Snapshot(
        config_path=config_path,
        root=run.root,
        gateway=_absolute_tls(gateway, run.root),
        profiles=MappingProxyType(dict(sorted(specs.items()))),
        profiles_dir=dirs["profiles_dir"],
        secrets_dir=dirs["secrets_dir"],
        state_dir=dirs["state_dir"],
        digest=_digest(run.root, run.documents),
        warnings=tuple(run.warnings),
    )


def _oauth_without_issuer(gateway: GatewayConfig, profiles: Any) -> list[ConfigIssue]:
    """A profile's inbound `oauth` needs an issuer, its own or `security.oauth`'s (see the `identity` package)."""
    default = gateway.security.oauth.issuer if gateway.security.oauth is not None else None
    return [
        source.doc.issue(("oauth",), "needs an issuer: set oauth.issuer here or security.oauth.issuer in gateway.yaml")
        for source in profiles
        if source.config is not None and source.config.oauth is not None and not (source.config.oauth.issuer or default)
    ]


def _dirs(root: Path, gateway: GatewayConfig | None, doc: Document | None) -> dict[str, Path]:
    """The three folders, absolute; from the raw data when the file failed validation elsewhere."""
    raw = doc.data if doc is not None else {}
    out = {}
    for key, default in _DEFAULT_DIRS.items():
        value = getattr(gateway, key) if gateway is not None else raw.get(key, default)
        out[key] = _absolute(root, value if isinstance(value, str) else default)
    return out


def _absolute(root: Path, value: str) -> Path:
    return Path(os.path.normpath(root / os.path.expanduser(value)))


def _read_profiles(run: _Run, profiles_dir: Path) -> list[ProfileSource]:
    """Every profile file, sorted by name, validated as `ProfileConfig` (config None when invalid)."""
    if not profiles_dir.exists():
        run.warnings.append(
            ConfigIssue(profiles_dir, "profiles folder does not exist, so no profile is served; create it and add <slug>.yaml")
        )
        return []
    if not profiles_dir.is_dir():
        run.errors.append(ConfigIssue(profiles_dir, "profiles_dir is not a folder; point profiles_dir at a folder of <slug>.yaml files"))
        return []
    files = sorted(
        p for p in profiles_dir.iterdir() if p.suffix in PROFILE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        run.warnings.append(ConfigIssue(profiles_dir, "no profiles (<slug>.yaml files) found, so none is served"))
    seen: dict[str, Path] = {}
    sources = []
    for file in files:
        slug = file.stem
        if slug in seen:
            run.errors.append(
                ConfigIssue(file, f"profile '{slug}' is defined twice, by {seen[slug].name} and {file.name}; remove one")
            )
            continue
        seen[slug] = file
        if not SLUG_PATTERN.match(slug):
            run.errors.append(
                ConfigIssue(
                    file,
                    f"'{slug}' is not a valid profile name: rename the file to lowercase letters, digits, '_' and '-' "
                    "(starting with a letter or digit, at most 64 characters)",
                )
            )
            continue
        doc = run.read(file)
        if doc is None:
            continue
        sources.append(ProfileSource(slug=slug, doc=doc, config=run.validate(doc, ProfileConfig)))
    return sources


def _catalog_names(gateway: GatewayConfig | None, doc: Document | None) -> frozenset[str] | None:
    if gateway is not None:
        return frozenset(gateway.servers)
    servers = doc.data.get("servers", {}) if doc is not None else None
    return frozenset(str(k) for k in servers) if isinstance(servers, dict) else None


def _profile_servers(
    run: _Run,
    source: ProfileSource,
    gateway: GatewayConfig | None,
    gateway_doc: Document | None,
    catalog_names: frozenset[str] | None,
) -> tuple[ServerSpec, ...] | None:
    """The profile's servers merged with the catalog; None when something is wrong."""
    if source.config is None:
        return None
    specs = []
    ok = True
    for name, entry in source.config.servers.items():
        at = ("servers", name)
        if entry.is_reference:
            if catalog_names is not None and name not in catalog_names:
                run.errors.append(source.doc.issue(at, _missing_catalog(name, catalog_names)))
                ok = False
                continue
            extra = sorted(entry.model_fields_set - set(OVERRIDABLE_FIELDS))
            for key in extra:
                run.errors.append(
                    source.doc.issue(
                        (*at, key),
                        f"'{name}' refers to the catalog server in gateway.yaml, so only "
                        f"{', '.join(OVERRIDABLE_FIELDS)} can be set here; change {key} in gateway.yaml, "
                        "or define an inline server (with command, url or module) under another name",
                    )
                )
            if extra or gateway is None or gateway_doc is None:
                ok = False
                continue
            config = gateway.servers[name].model_copy(update=entry.overrides())
            file, line = gateway_doc.file, _line(gateway_doc, ("servers", name))
        else:
            if catalog_names is not None and name in catalog_names:
                run.errors.append(
                    source.doc.issue(
                        at,
                        f"inline server '{name}' has the name of a catalog server in gateway.yaml; rename it, "
                        "or remove its command/url/module to use the catalog's",
                    )
                )
                ok = False
                continue
            config = entry.to_server()
            file, line = source.doc.file, _line(source.doc, at)
        if config.cwd is not None:
            config = config.model_copy(update={"cwd": str(_absolute(run.root, config.cwd))})
        specs.append(
            ServerSpec(
                name=name,
                config=config,
                prefix=name if config.prefix is None else config.prefix,
                profile=source.slug,
                inline=not entry.is_reference,
                file=file,
                line=line,
            )
        )
    return tuple(specs) if ok else None


def _missing_catalog(name: str, catalog: frozenset[str]) -> str:
    close = difflib.get_close_matches(name, sorted(catalog), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (
        f"no server '{name}' in the catalog (servers: in gateway.yaml){hint}; add it there, "
        "or give it command, url or module to define it here"
    )


def _line(doc: Document, path: tuple[str, ...]) -> int | None:
    where = doc.position(path)
    return where[0] if where else None


def _absolute_tls(gateway: GatewayConfig, root: Path) -> GatewayConfig:
    tls = gateway.security.tls
    if tls.certfile is None or tls.keyfile is None:
        return gateway
    tls = tls.model_copy(update={"certfile": str(_absolute(root, tls.certfile)), "keyfile": str(_absolute(root, tls.keyfile))})
    security = gateway.security.model_copy(update={"tls": tls})
    return gateway.model_copy(update={"security": security})


def _digest(root: Path, documents: list[Document]) -> str:
    """sha256 over each file's path (relative to the root when inside it) and bytes, in reading order."""
    h = hashlib.sha256()
    for doc in documents:
        try:
            name = doc.file.relative_to(root).as_posix()
        except ValueError:
            name = doc.file.as_posix()
        h.update(f"{name}\0{len(doc.raw)}\0".encode())
        h.update(doc.raw)
    return h.hexdigest()

