"""`run` (serve the gateway) and `tools` (print the names a profile's clients will see)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from local_mcp_gateway.errors import GatewayError
from local_mcp_gateway.settings import EnvSettings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="serve the profiles until SIGINT/SIGTERM (SIGHUP reloads)")
    run.add_argument("-c", "--config", help="gateway.yaml (default: $MCP_GATEWAY_CONFIG, else ./gateway.yaml)")
    run.set_defaults(handler=run_command)

    tools = subparsers.add_parser("tools", help="connect to a profile's servers and print the names clients see")
    tools.add_argument("profile", help="the profile's slug")
    tools.add_argument("-c", "--config", help="gateway.yaml (default: $MCP_GATEWAY_CONFIG, else ./gateway.yaml)")
    tools.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tools.set_defaults(handler=tools_command)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr through the redaction point."""
    from local_mcp_gateway.logs import setup_logging

    setup_logging(level, fmt)


def run_command(args: argparse.Namespace) -> int:
    from local_mcp_gateway.gateway import Gateway, serve

    settings = EnvSettings()
    config_path = settings.config_path(args.config)
    gateway = Gateway(config_path, settings, watch=settings.watch)
    try:
        generation = gateway.load_first()
    except GatewayError as exc:
        configure_logging("info")
        print(f"local-mcp-gateway: {exc}", file=sys.stderr)
        return 1
    gw = generation.snapshot.gateway
    configure_logging(settings.log_level or gw.logging.level, gw.logging.format)
    from local_mcp_gateway import observability

    observability.setup(
        gateway, metrics=gw.metrics.enabled, listen=gw.metrics.listen, log_context=gw.logging.format == "json"
    )
    host = settings.host or gw.listen.host
    port = settings.port if settings.port is not None else gw.listen.port

    def listening(url: str) -> None:
        print(f"local-mcp-gateway serving {url}/mcp/<profile> (profiles: {', '.join(sorted(generation.servers))})",
              file=sys.stderr, flush=True)

    try:
        anyio.run(
            lambda: serve(
                gateway,
                host=host,
                port=port,
                certfile=gw.security.tls.certfile,
                keyfile=gw.security.tls.keyfile,
                on_listening=listening,
            )
        )
    except KeyboardInterrupt:
        pass
    finally:
        observability.shutdown()
    return 0


def tools_command(args: argparse.Namespace) -> int:
    from local_mcp_gateway.listing import list_profile_tools

    settings = EnvSettings()
    configure_logging(settings.log_level or "warning")
    try:
        rows = anyio.run(list_profile_tools, settings.config_path(args.config), args.profile, settings)
    except GatewayError as exc:
        print(f"local-mcp-gateway: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max((len(row["name"]) for row in rows), default=4)
        for row in rows:
            print(f"{row['name']:<{width}}  {row['server']:<12}  {row['description']}")
    return 0
