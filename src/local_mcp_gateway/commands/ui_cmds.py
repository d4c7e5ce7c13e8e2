"""`client-config PROFILE --client NAME` (copy-paste setup for an MCP client) and `export PROFILE --format FMT`
(the profile's tools, prompts and resources as a client sees them)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from local_mcp_gateway.commands import add_config_option, reporting
from local_mcp_gateway.errors import ConfigError, ConfigIssue
from local_mcp_gateway.settings import EnvSettings

__all__ = ["profile_base_url", "register"]

# The same names as `ui.clients.CLIENTS` and `ui.export.FORMATS` (a test holds them equal), written out here so
# that building the command line, which every `run` does, does not load the dashboard's modules.
CLIENT_NAMES = ("claude-desktop", "claude-code", "cursor", "vscode", "inspector", "mcp-remote")
EXPORT_FORMATS = ("markdown", "xml", "toon", "json")


def register(subparsers: Any) -> None:
    config = subparsers.add_parser(
        "client-config",
        help="print the snippet or command that connects an MCP client to a profile",
        description="Print the exact configuration snippet (or command) for one MCP client: the profile's URL, the "
        "Streamable HTTP transport and, where the profile needs a key, an Authorization header that refers to an "
        "environment variable. The key's value is never printed.",
    )
    config.add_argument("profile", help="the profile's slug")
    config.add_argument("--client", required=True, choices=CLIENT_NAMES, help="which client")
    config.add_argument("--key-env", default=None, metavar="NAME",
                        help="environment variable holding the API key (default LOCAL_MCP_GATEWAY_KEY)")
    add_config_option(config)
    config.set_defaults(handler=client_config_command)

    export = subparsers.add_parser(
        "export",
        help="print a profile's tools, prompts and resources as a client sees them",
        description="Connect to the profile's servers like the gateway does and print what a client of the profile "
        "sees (tools with input schemas, prompts, resources, resource templates), to paste into a prompt or feed "
        "to another tool.",
    )
    export.add_argument("profile", help="the profile's slug")
    export.add_argument("--format", default="markdown", choices=EXPORT_FORMATS, help="output format (default markdown)")
    add_config_option(export)
    export.set_defaults(handler=export_command)


def profile_base_url(gateway: Any, settings: EnvSettings | None = None) -> str:
    """Where clients reach the gateway: `public_url`, else the listen address (a wildcard bind shown as 127.0.0.1)."""
    if gateway.public_url:
        return gateway.public_url.rstrip("/")
    host = (settings.host if settings is not None and settings.host else None) or gateway.listen.host
    port = settings.port if settings is not None and settings.port is not None else gateway.listen.port
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    scheme = "https" if gateway.security.tls.certfile else "http"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


@reporting
def client_config_command(args: argparse.Namespace) -> int:
    from local_mcp_gateway.config.load import load_snapshot
    from local_mcp_gateway.ui.clients import DEFAULT_KEY_ENV, client_setup

    settings = EnvSettings()
    config_path = settings.config_path(args.config)
    snapshot = load_snapshot(config_path)
    if args.profile not in snapshot.profiles:
        known = ", ".join(sorted(snapshot.profiles)) or "none"
        raise ConfigError(ConfigIssue(config_path, f"no profile {args.profile!r} (profiles: {known})"))
    key_env = (args.key_env or DEFAULT_KEY_ENV) if snapshot.needs_api_key(args.profile) else None
    url = f"{profile_base_url(snapshot.gateway, settings)}/mcp/{args.profile}"
    try:
        setup = client_setup(args.client, slug=args.profile, url=url, key_env=key_env)
    except ValueError as exc:
        print(f"error: --key-env: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(setup.text)
    print(f"# {setup.title}: {setup.where}. {setup.note}", file=sys.stderr)
    return 0


@reporting
def export_command(args: argparse.Namespace) -> int:
    import anyio

    from local_mcp_gateway.commands.serve_cmds import configure_logging
    from local_mcp_gateway.listing import connected_profile, unavailable_servers
    from local_mcp_gateway.ui.export import profile_document, render

    settings = EnvSettings()
    configure_logging(settings.log_level or "warning")

    async def collect() -> tuple[str, list[tuple[str, str, str]]]:
        async with connected_profile(settings.config_path(args.config), args.profile, settings) as profile:
            document = profile_document(profile.slug, profile.description, profile.catalog)
            return render(document, args.format), unavailable_servers(profile)

    text, missing = anyio.run(collect)
    sys.stdout.write(text)
    for name, state, error in missing:
        print(f"warning: server {name} is {state} and missing from the export: {error}", file=sys.stderr)
    return 0
