"""Commands `validate` and `schema`: check a configuration, and keep its JSON Schemas current."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from local_mcp_gateway.commands import add_config_option
from local_mcp_gateway.config.load import load_snapshot
from local_mcp_gateway.config.schema import check_schemas, write_schemas
from local_mcp_gateway.errors import ConfigError, ConfigIssue
from local_mcp_gateway.settings import EnvSettings

__all__ = ["register"]

EXIT_OK = 0
EXIT_INVALID = 1
DEFAULT_SCHEMA_DIR = "schemas"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `validate` and `schema` to the command line."""
    validate = subparsers.add_parser(
        "validate",
        help="check the configuration without the key or the network",
        description="Check YAML syntax, the schema, references (catalog names, ${secret:} files, ${env:} "
        "variables), profile names, globs and client-visible name clashes. Exit 0 when valid, 1 when not.",
    )
    add_config_option(validate)
    validate.add_argument(
        "--format", choices=("text", "github", "json", "sarif"), default="text",
        help="text: file:line:col: path: message; github: workflow annotations; json: {valid, errors, warnings}; "
        "sarif: SARIF 2.1.0 for code scanning",
    )
    validate.set_defaults(handler=run_validate)

    schema = subparsers.add_parser(
        "schema",
        help="write the JSON Schemas of gateway.yaml and profiles",
        description="Write gateway.schema.json and profile.schema.json, generated from the code.",
    )
    schema.add_argument("--out", default=DEFAULT_SCHEMA_DIR, help="folder to write to (default: schemas)")
    schema.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files differ from the code")
    schema.set_defaults(handler=run_schema)


def _shown(issue: ConfigIssue) -> ConfigIssue:
    """The issue with its file relative to the current folder when inside it (as CI annotations need)."""
    file = Path(issue.file)
    if file.is_absolute():
        try:
            file = file.relative_to(Path.cwd())
        except ValueError:
            pass
    return ConfigIssue(file.as_posix(), issue.message, issue.line, issue.column, issue.path)


def _format(issue: ConfigIssue, fmt: str, *, warning: bool) -> str:
    issue = _shown(issue)
    if fmt == "github":
        line = issue.github()
        return "::warning " + line.removeprefix("::error ") if warning else line
    if not warning:
        return str(issue)
    location = str(ConfigIssue(issue.file, "", issue.line, issue.column)).removesuffix(": ")
    path = f"{issue.path}: " if issue.path else ""
    return f"{location}: warning: {path}{issue.message}"


def run_validate(args: argparse.Namespace) -> int:
    """Load and check the configuration (lock files included); print every issue, one per line."""
    path = EnvSettings().config_path(args.config)
    profiles: list[str] = []
    try:
        snapshot = load_snapshot(path, environ=os.environ)
    except ConfigError as exc:
        errors, warnings = list(exc.issues), []
    else:
        from local_mcp_gateway.gitops.lockfile import check_locks

        errors, warnings = check_locks(snapshot)
        warnings = [*snapshot.warnings, *warnings]
        profiles = list(snapshot.profiles)
    if args.format in ("json", "sarif"):
        from local_mcp_gateway.gitops.report import json_report, sarif_report

        shown_errors, shown_warnings = [_shown(i) for i in errors], [_shown(i) for i in warnings]
        report = (
            sarif_report(shown_errors, shown_warnings)
            if args.format == "sarif"
            else json_report(shown_errors, shown_warnings, profiles)
        )
        print(json.dumps(report, indent=2))
        return EXIT_INVALID if errors else EXIT_OK
    for issue in errors:
        print(_format(issue, args.format, warning=False))
    if errors:
        if args.format == "text":
            count = len(errors)
            print(f"{path}: invalid, {count} issue{'s' if count != 1 else ''}", file=sys.stderr)
        return EXIT_INVALID
    for warning in warnings:
        print(_format(warning, args.format, warning=True))
    if args.format == "text":
        print(f"{path}: valid (profiles: {', '.join(profiles) or 'none'})")
    return EXIT_OK


def run_schema(args: argparse.Namespace) -> int:
    """Write the schema files, or with --check report the ones that drifted."""
    out = Path(args.out)
    if args.check:
        stale = check_schemas(out)
        for path in stale:
            print(f"{path}: out of date or missing; run `local-mcp-gateway schema --out {out}` and commit the result")
        return EXIT_INVALID if stale else EXIT_OK
    for path in write_schemas(out):
        print(f"wrote {path}")
    return EXIT_OK
