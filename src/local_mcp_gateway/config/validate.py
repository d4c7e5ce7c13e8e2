"""Static checks beyond the schema: what can be known without the age key or the network.

`check` runs on the validated models and their documents (for positions) and returns errors and
warnings: `${secret:NAME}` files exist, `${env:NAME}` variables are set, globs are sane, keys fit
the server's kind, `default_profile` exists, stdio commands pass `security.allowed_commands`, and
the client-visible names of a profile that can be known from the files do not clash.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from local_mcp_gateway.config.commands import command_problem
from local_mcp_gateway.config.gateway_models import GatewayConfig
from local_mcp_gateway.config.models import (
    ProfileConfig,
    ProfileServerEntry,
    ServerConfig,
    ToolsConfig,
)
from local_mcp_gateway.config.snapshot import ProfileSpec, ServerSpec
from local_mcp_gateway.config.template import Template
from local_mcp_gateway.config.yamlsafe import Document, Path_
from local_mcp_gateway.errors import ConfigIssue
from local_mcp_gateway.naming import (
    MAX_NAME_LENGTH,
    PREFIX_SEPARATOR,
    client_name,
    matches,
    sanitise,
)

__all__ = ["GATEWAY_KEY_VARIABLES", "ProfileSource", "Sources", "check", "escapes_folder", "glob_problem"]

SECRET_SUFFIX = ".age"
GATEWAY_KEY_VARIABLES = frozenset({"MCP_GATEWAY_AGE_KEY", "MCP_GATEWAY_AGE_KEY_FILE"})
"""The gateway's own key variables: `${env:...}` may not name them (the key must never reach a child)."""
MAX_READABLE_PREFIX = 52
"""Longest prefix that leaves room for a readable name before the 64-character cut."""

_STDIO_ONLY = ("args", "env", "cwd")
_REMOTE_ONLY = ("transport", "headers", "oauth")
_KIND_KEY = {"stdio": "command", "remote": "url", "inprocess": "module"}
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True)
class ProfileSource:
    """One profile file: its slug, its document, and its model (None when it failed the schema)."""

    slug: str
    doc: Document
    config: ProfileConfig | None


@dataclass(frozen=True)
class Sources:
    """What the checks look at: the validated gateway.yaml, the profiles and the merged specs."""

    gateway_doc: Document
    gateway: GatewayConfig
    profiles: tuple[ProfileSource, ...]
    """Every profile file read, valid or not."""
    specs: Mapping[str, ProfileSpec]
    root: Path
    secrets_dir: Path
    environ: Mapping[str, str]


@dataclass
class _Findings:
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)


def check(sources: Sources) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """Every static check; returns (errors, warnings)."""
    found = _Findings()
    documents: list[tuple[Document, BaseModel]] = [(sources.gateway_doc, sources.gateway)]
    documents += [(p.doc, p.config) for p in sources.profiles if p.config is not None]
    for doc, model in documents:
        for path, value in _walk(model, ()):
            _check_value(sources, found, doc, path, value)
    _check_gateway(sources, found)
    for source in sources.profiles:
        if source.config is not None:
            _check_api_keys(found, source.doc, ("api_keys",), source.config.api_keys)
    for slug, spec in sources.specs.items():
        doc = next(p.doc for p in sources.profiles if p.slug == slug)  # every spec comes from a valid profile
        _check_names(sources, found, doc, spec)
    return found.errors, found.warnings


def glob_problem(glob: str) -> str | None:
    """What is wrong with an fnmatch glob, or None: surrounding spaces, an unclosed '['."""
    if glob != glob.strip():
        return "glob has leading or trailing spaces; remove them"
    i = glob.find("[")
    while i >= 0:
        j = i + 1
        if j < len(glob) and glob[j] == "!":
            j += 1
        if j < len(glob) and glob[j] == "]":
            j += 1
        close = glob.find("]", j)
        if close < 0:
            return "glob has an unclosed '['; write '[[]' to match a literal '['"
        i = glob.find("[", close + 1)
    return None


def _walk(value: Any, path: Path_) -> Iterator[tuple[Path_, Any]]:
    yield path, value
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name), (*path, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))


def _check_value(sources: Sources, found: _Findings, doc: Document, path: Path_, value: Any) -> None:
    if isinstance(value, Template):
        _check_template(sources, found, doc, path, value)
    elif isinstance(value, ToolsConfig):
        _check_tools(found, doc, path, value)
    elif isinstance(value, ServerConfig) or (isinstance(value, ProfileServerEntry) and not value.is_reference):
        _check_server(sources, found, doc, path, value)


def escapes_folder(path: Path, folder: Path) -> bool:
    """True when `path`, symlinks followed, is not inside `folder` (symlinks followed too): a secret file that
    is a link to `~/.ssh/id_ed25519` or `/etc/shadow` must not be decrypted or even read."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) != root


def _check_template(sources: Sources, found: _Findings, doc: Document, path: Path_, value: Template) -> None:
    for name in sorted(value.secret_names):
        file = sources.secrets_dir / f"{name}{SECRET_SUFFIX}"
        if (file.is_symlink() or file.exists()) and escapes_folder(file, sources.secrets_dir):
            found.errors.append(
                doc.issue(
                    path,
                    f"secret '{name}': {_shown(sources.root, file)} is a link to a file outside "
                    f"{_shown(sources.root, sources.secrets_dir)}/; secrets are read only from that folder: replace "
                    f"the link with the file itself (`local-mcp-gateway secret set {name}`)",
                )
            )
            continue
        if not file.is_file():
            found.errors.append(
                doc.issue(
                    path,
                    f"secret '{name}' not found: {_shown(sources.root, sources.secrets_dir / (name + SECRET_SUFFIX))} "
                    f"does not exist; create it with `local-mcp-gateway secret set {name}`",
                )
            )
    for name in sorted(value.env_names):
        if name in GATEWAY_KEY_VARIABLES:
            found.errors.append(
                doc.issue(
                    path,
                    f"${{env:{name}}} is the gateway's own age key and never goes to a server or a header; store the "
                    "value the server needs with `local-mcp-gateway secret set NAME` and write ${secret:NAME}",
                )
            )
            continue
        if name not in sources.environ:
            found.errors.append(
                doc.issue(path, f"environment variable {name} is not set; set it before starting the gateway")
            )


def _check_tools(found: _Findings, doc: Document, path: Path_, tools: ToolsConfig) -> None:
    for key in ("include", "exclude"):
        for index, glob in enumerate(getattr(tools, key)):
            problem = glob_problem(glob)
            if problem:
                found.errors.append(doc.issue((*path, key, index), problem))
    if not tools.include:
        found.warnings.append(doc.issue((*path, "include"), "include is empty, so no tool of this server is shown"))
    for upstream, override in tools.overrides.items():
        if not matches(upstream, tools.include, tools.exclude):
            found.warnings.append(
                doc.issue((*path, "overrides", upstream), f"override of '{upstream}' has no effect: include/exclude hide that tool")
            )
        if override.name is not None and sanitise(override.name) != override.name:
            found.warnings.append(
                doc.issue(
                    (*path, "overrides", upstream, "name"),
                    f"characters outside A-Z, a-z, 0-9, '_' and '-' become '_': clients see '{sanitise(override.name)}'",
                )
            )


def _check_server(
    sources: Sources, found: _Findings, doc: Document, path: Path_, server: ServerConfig | ProfileServerEntry
) -> None:
    kind = server.kind
    given = server.model_fields_set
    for keys, wanted in ((_STDIO_ONLY, "stdio"), (_REMOTE_ONLY, "remote")):
        for key in keys:
            if key in given and kind != wanted:
                found.errors.append(
                    doc.issue(
                        (*path, key),
                        f"{key} applies only to {wanted} servers ({_KIND_KEY[wanted]}: ...); "
                        f"this one is {kind} ({_KIND_KEY[kind]}: ...), remove {key}",
                    )
                )
    for name in server.env:
        if not _ENV_KEY.match(name):
            found.errors.append(doc.issue((*path, "env", name), "environment variable names use letters, digits and '_' and do not start with a digit"))
    for name in server.headers:
        if not _HEADER_NAME.match(name):
            found.errors.append(doc.issue((*path, "headers", name), "not a valid HTTP header name (letters, digits and -, no spaces or ':')"))
    if server.url is not None and server.url.is_plain and not server.url.raw.startswith(("http://", "https://")):
        found.errors.append(doc.issue((*path, "url"), "url must start with http:// or https://"))
    _check_command(sources, found, doc, (*path, "command"), server)
    if server.cwd is not None and not (sources.root / os.path.expanduser(server.cwd)).is_dir():
        found.warnings.append(doc.issue((*path, "cwd"), "this folder does not exist (yet); the server cannot start until it does"))


def _check_command(
    sources: Sources, found: _Findings, doc: Document, path: Path_, server: ServerConfig | ProfileServerEntry
) -> None:
    allowed = sources.gateway.security.allowed_commands
    command = server.command
    if not allowed or command is None:
        return
    cwd = str(sources.root / os.path.expanduser(server.cwd)) if server.cwd is not None else None
    env = {name: value.raw for name, value in server.env.items() if value.is_plain}
    problem = command_problem(command.raw, allowed, server_env=env, cwd=cwd, environ=sources.environ)
    if problem is not None:
        if not command.is_plain:
            problem = problem.replace(f"'{command.raw}'", "this command", 1)
        found.errors.append(doc.issue(path, problem))


def _check_gateway(sources: Sources, found: _Findings) -> None:
    doc, gateway = sources.gateway_doc, sources.gateway
    security = gateway.security
    for index, glob in enumerate(security.allowed_commands):
        problem = glob_problem(glob)
        if problem:
            found.errors.append(doc.issue(("security", "allowed_commands", index), problem))
    for index, host in enumerate(security.allowed_hosts):  # only '*' is special here: '[::1]' is literal
        if host != host.strip():
            found.errors.append(doc.issue(("security", "allowed_hosts", index), "host has leading or trailing spaces; remove them"))
    if gateway.default_profile is not None and gateway.default_profile not in {p.slug for p in sources.profiles}:
        slugs = ", ".join(sorted(p.slug for p in sources.profiles)) or "none"
        found.errors.append(
            doc.issue(
                ("default_profile",),
                f"no profile '{gateway.default_profile}': {gateway.profiles_dir}/{gateway.default_profile}.yaml "
                f"does not exist (profiles: {slugs}); create it or change default_profile",
            )
        )
    for key in ("certfile", "keyfile"):
        value = getattr(security.tls, key)
        if value is not None and not (sources.root / os.path.expanduser(value)).is_file():
            found.errors.append(doc.issue(("security", "tls", key), f"file not found: {value} (relative to the folder of gateway.yaml)"))
    _check_api_keys(found, doc, ("security", "api_keys"), security.api_keys)
    _check_api_keys(found, doc, ("ui", "admin_keys"), gateway.ui.admin_keys)


def _check_api_keys(found: _Findings, doc: Document, path: Path_, keys: list[Template]) -> None:
    for index, key in enumerate(keys):
        if key.is_plain:
            found.warnings.append(
                doc.issue(
                    (*path, index),
                    "API key written in plain text ends up in git; store it with `local-mcp-gateway secret set NAME` "
                    "and write ${secret:NAME}",
                )
            )


def _check_names(sources: Sources, found: _Findings, doc: Document, profile: ProfileSpec) -> None:
    """Client names knowable from the files: prefixes and tool overrides of the enabled servers."""
    taken: dict[str, str] = {}  # client name -> "server 'x' tool 'y'"
    prefixes: dict[str, str] = {}
    for spec in profile.servers:
        if not spec.config.enabled:
            continue
        where = _origin(sources, doc, spec)
        if len(sanitise(spec.prefix)) > MAX_READABLE_PREFIX:
            found.errors.append(
                doc.issue(
                    ("servers", spec.name),
                    f"the prefix '{spec.prefix[:20]}...' is {len(spec.prefix)} characters, so every tool name would be cut "
                    f"at {MAX_NAME_LENGTH} characters into the prefix and a hash; set a prefix of at most {MAX_READABLE_PREFIX}",
                )
            )
        if spec.prefix and spec.prefix in prefixes:
            found.warnings.append(
                doc.issue(
                    ("servers", spec.name),
                    f"shares the prefix '{spec.prefix}' with server '{prefixes[spec.prefix]}'; tools with the same name clash "
                    "and the first server wins; set a different prefix",
                )
            )
        prefixes.setdefault(spec.prefix, spec.name)
        tools = spec.config.tools
        for index, glob in enumerate(tools.include):
            if spec.prefix and glob.startswith(spec.prefix + PREFIX_SEPARATOR):
                found.warnings.append(
                    where[0].issue(
                        (*where[1], "tools", "include", index),
                        f"globs match upstream names, without the prefix '{spec.prefix}{PREFIX_SEPARATOR}'; "
                        "this glob probably matches nothing",
                    )
                )
        for upstream, override in tools.overrides.items():
            if not matches(upstream, tools.include, tools.exclude):
                continue
            name = client_name(spec.prefix, override.name or upstream)
            owner = f"server '{spec.name}' tool '{upstream}'"
            if name in taken:
                found.errors.append(
                    where[0].issue(
                        (*where[1], "tools", "overrides", upstream),
                        f"clients would see '{name}' for both {taken[name]} and {owner}; "
                        "rename one with overrides.<tool>.name or change a prefix",
                    )
                )
                continue
            taken[name] = owner


def _origin(sources: Sources, profile_doc: Document, spec: ServerSpec) -> tuple[Document, Path_]:
    """Where a spec's tools settings were written: the profile (inline or overridden) or gateway.yaml."""
    source = next(p for p in sources.profiles if p.slug == spec.profile)
    entry = source.config.servers[spec.name] if source.config else None
    if spec.inline or (entry is not None and "tools" in entry.model_fields_set):
        return profile_doc, ("servers", spec.name)
    return sources.gateway_doc, ("servers", spec.name)


def _shown(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
