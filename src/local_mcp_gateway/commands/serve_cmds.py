"""`run` (serve the gateway) and `tools` (print the names a profile's clients will see)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from local_mcp_gateway.commands import add_config_option
from local_mcp_gateway.errors import GatewayError
from local_mcp_gateway.settings import EnvSettings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="serve the profiles until SIGINT/SIGTERM (SIGHUP reloads)")
    add_config_option(run)
    run.set_defaults(handler=run_command)

    tools = subparsers.add_parser("tools", help="connect to a profile's servers and print the names clients see")
    tools.add_argument("profile", help="the profile's slug")
    add_config_option(tools)
    tools.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tools.set_defaults(handler=tools_command)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr through the redaction point."""
    from local_mcp_gateway.logs import setup_logging

    setup_logging(level, fmt)


def _error(text: object) -> None:
    """One error line on stderr, through the redaction point."""
    from local_mcp_gateway.redact import redact_text

    print(f"local-mcp-gateway: {redact_text(str(text))}", file=sys.stderr, flush=True)


def run_command(args: argparse.Namespace) -> int:
    from local_mcp_gateway.gateway import Gateway, serve

    settings = EnvSettings()
    config_path = settings.config_path(args.config)
    gateway = Gateway(config_path, settings, watch=settings.watch)
    try:
        generation = gateway.load_first()
    except GatewayError as exc:
        configure_logging("info")
        _error(exc)
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
    except GatewayError as exc:  # the address is taken: said before any upstream started
        _error(exc)
        return 1
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
        listing = anyio.run(list_profile_tools, settings.config_path(args.config), args.profile, settings)
    except GatewayError as exc:
        _error(exc)
        return 1
    try:
        if args.json:
            print(json.dumps(listing.rows, indent=2))
        else:
            width = max((len(row["name"]) for row in listing.rows), default=4)
            for row in listing.rows:
                print(f"{row['name']:<{width}}  {row['server']:<12}  {row['description']}")
        sys.stdout.flush()
    except BrokenPipeError:  # `tools ... | head`: the reader has all it wanted
        _quiet_stdout()
    for failure in listing.failures:
        _error(f"server {failure.server!r} is {failure.state}: {failure.error}")
        if failure.stderr_tail:
            print("  last lines of its stderr:", file=sys.stderr)
            for line in failure.stderr_tail:
                print(f"  | {line}", file=sys.stderr)
    return 1 if listing.failures else 0


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not report the closed pipe again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
