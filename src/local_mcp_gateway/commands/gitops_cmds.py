"""`plan`, `lock` and `config`: review what a configuration change does, pin the tool surface, show the effective config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from local_mcp_gateway.commands import add_config_option, reporting
from local_mcp_gateway.errors import ConfigError, GatewayError
from local_mcp_gateway.settings import EnvSettings

__all__ = ["register"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


def register(subparsers: Any) -> None:
    plan = subparsers.add_parser(
        "plan",
        help="show what a configuration change does, per profile (servers and tools)",
        description="Compare two configurations (folders or git refs): per profile the servers added, removed and "
        "restarted, and the tools added, removed and changed (from lock files, or the upstreams with --live). "
        "Exit 0 when nothing changes, 2 when something does, 1 on error.",
    )
    plan.add_argument("--base", required=True, help="a folder, or a git ref (branch, tag, commit) of the config's repository")
    plan.add_argument("--head", help="a folder or git ref (default: the configuration given by -c)")
    add_config_option(plan)
    plan.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    plan.add_argument("--live", action="store_true", help="connect to the upstreams of profiles that have no lock file")
    plan.set_defaults(handler=reporting(run_plan))

    lock = subparsers.add_parser(
        "lock",
        help="write profiles/<slug>.lock.json, or check the upstreams still match it",
        description="Connect to each profile's servers and pin what its clients see: the SHA-256 of the RFC 8785 "
        "canonical JSON of every tool, prompt and resource template, and each server's name and version.",
    )
    lock.add_argument("profiles", nargs="*", metavar="PROFILE", help="profiles to lock (default: all)")
    add_config_option(lock)
    lock.add_argument("--check", action="store_true", help="write nothing; exit 1 and name each drifted item")
    lock.set_defaults(handler=reporting(run_lock))

    config = subparsers.add_parser(
        "config",
        help="print the effective configuration (catalog merged with profiles, defaults filled in)",
        description="Print the configuration as the gateway runs it; secrets stay ${secret:NAME} references.",
    )
    config.add_argument("profile", nargs="?", metavar="PROFILE", help="only this profile")
    add_config_option(config, dest="config_path")
    config.add_argument("--format", choices=("yaml", "json"), default="yaml")
    config.set_defaults(handler=reporting(run_config))


def _quiet_logging() -> None:
    from local_mcp_gateway.logs import setup_logging

    setup_logging(EnvSettings().log_level or "error", "text")


def run_plan(args: argparse.Namespace) -> int:
    import anyio

    from local_mcp_gateway.gitops.plan import load_side
    from local_mcp_gateway.gitops.plan import build_plan
    from local_mcp_gateway.gitops.plan_render import render_markdown, render_text
    from local_mcp_gateway.gitops.source import config_at

    settings = EnvSettings()
    current = settings.config_path(args.config)
    with config_at(args.base, current) as base_path:
        with config_at(args.head, current) if args.head else _as_is(current) as head_path:
            base = load_side(base_path, args.base)
            head = load_side(head_path, args.head or "working tree")
            if args.live:
                _quiet_logging()
                for side, path in ((base, base_path), (head, head_path)):
                    missing = [slug for slug in side.snapshot.profiles if slug not in side.surfaces]
                    if missing:
                        from local_mcp_gateway.gitops.live import live_surfaces

                        found = anyio.run(live_surfaces, path, missing, settings)
                        side.surfaces.update(found)
                        side.sources.update(dict.fromkeys(found, "live"))
            plan = build_plan(base, head)
    if args.format == "json":
        print(json.dumps(plan, indent=2, ensure_ascii=False))
    elif args.format == "markdown":
        print(render_markdown(plan), end="")
    else:
        print(render_text(plan), end="")
    if any(entry["errors"] for entry in plan["profiles"].values()):
        return EXIT_ERROR
    return EXIT_CHANGES if plan["changed"] else EXIT_OK


class _as_is:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        return None


def _poison_lines(slug: str, before: Any, surface: Any, prefixes: dict[str, str]) -> list[str]:
    from local_mcp_gateway.gitops.poison import definition_warnings, imitation_warnings, new_secret_parameters

    lines = []
    imitations = imitation_warnings(surface.tools, prefixes)
    for kind in ("tools", "prompts", "resource_templates"):
        for name, item in surface.kind(kind).items():
            old = before.kind(kind).get(name) if before is not None else None
            if old is not None and old.sha256 == item.sha256:
                continue
            for warning in definition_warnings(item.definition):
                lines.append(f"warning: {slug}: {kind[:-1]} {name}: {warning}")
            if kind == "tools":
                for pointer in new_secret_parameters(old.definition if old else None, item.definition):
                    lines.append(f"warning: {slug}: tool {name}: input schema gains a secret-looking parameter {pointer}")
                for warning in imitations.get(name, []):
                    lines.append(f"warning: {slug}: tool {name}: {warning}")
    return lines


def run_lock(args: argparse.Namespace) -> int:
    import anyio

    from local_mcp_gateway.config.load import load_snapshot
    from local_mcp_gateway.gitops.live import live_surfaces
    from local_mcp_gateway.gitops.lockfile import LOCK_SUFFIX, compare, lock_path, read_lock, write_lock

    settings = EnvSettings()
    config_path = settings.config_path(args.config)
    snapshot = load_snapshot(config_path)
    slugs = args.profiles or list(snapshot.profiles)
    _quiet_logging()
    surfaces = anyio.run(live_surfaces, config_path, slugs, settings)
    status = EXIT_OK
    for slug in slugs:
        surface = surfaces[slug]
        path = lock_path(snapshot.profiles_dir, slug)
        shown = _relative(path)
        for server, message in surface.errors.items():
            print(f"error: {slug}: server {server} did not start: {message}", file=sys.stderr)
            status = EXIT_ERROR
        previous = None
        if path.is_file():
            try:
                previous = read_lock(path, slug)
            except ConfigError as exc:
                if args.check:
                    for issue in exc.issues:
                        print(f"{issue}")
                    status = EXIT_ERROR
                    continue
        prefixes = {server.name: server.prefix for server in snapshot.profiles[slug].servers}
        for line in _poison_lines(slug, previous.surface if previous else None, surface, prefixes):
            print(line, file=sys.stderr)
        if args.check:
            if previous is None:
                print(f"{shown}: missing; run `local-mcp-gateway lock {slug}` and commit it")
                status = EXIT_ERROR
                continue
            drift = compare(previous.surface, surface)
            for item in drift:
                print(f"{shown}: {item}")
            if drift:
                status = EXIT_ERROR
            elif not surface.errors:
                print(f"{shown}: up to date ({len(surface.tools)} tools, {len(surface.prompts)} prompts, "
                      f"{len(surface.resource_templates)} resource templates)")
            continue
        if surface.errors:
            print(f"{shown}: not written, a server of {slug} did not start", file=sys.stderr)
            continue
        write_lock(path, slug, surface)
        print(f"wrote {shown} ({len(surface.tools)} tools, {len(surface.prompts)} prompts, "
              f"{len(surface.resource_templates)} resource templates)")
    if args.check and not args.profiles and snapshot.profiles_dir.is_dir():
        for orphan in sorted(snapshot.profiles_dir.glob(f"*{LOCK_SUFFIX}")):
            slug = orphan.name.removesuffix(LOCK_SUFFIX)
            if slug not in snapshot.profiles:
                print(f"{_relative(orphan)}: a lock for profile {slug!r}, which does not exist; delete it")
                status = EXIT_ERROR
    return status


def _relative(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def run_config(args: argparse.Namespace) -> int:
    from local_mcp_gateway.config.load import load_snapshot
    from local_mcp_gateway.gitops.effective import effective_config

    path = EnvSettings().config_path(args.config_path)
    snapshot = load_snapshot(path)
    if args.profile is not None and args.profile not in snapshot.profiles:
        known = ", ".join(snapshot.profiles) or "none"
        raise GatewayError(f"{path}: no profile {args.profile!r} (profiles: {known})")
    data = effective_config(snapshot, args.profile)
    if args.format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
    return EXIT_OK
