"""One module per group of commands; each exposes `register(subparsers)`. `reporting` is their shared error edge."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from pydantic import ValidationError

from local_mcp_gateway.errors import GatewayError
from local_mcp_gateway.redact import redact_text

__all__ = ["Handler", "add_config_option", "reporting"]

Handler = Callable[[argparse.Namespace], int]


def add_config_option(parser: argparse.ArgumentParser, *, dest: str = "config", metavar: str | None = None) -> None:
    """`-c/--config`, the configuration file every command reads (see `EnvSettings.config_path`)."""
    parser.add_argument(
        "-c", "--config", dest=dest, metavar=metavar, help="gateway.yaml (default: $MCP_GATEWAY_CONFIG, else ./gateway.yaml)"
    )


def reporting(handler: Handler) -> Handler:
    """Turn the gateway's errors into one `error: ...` line on stderr and exit code 1 (never a traceback)."""

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except GatewayError as exc:
            print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        except ValidationError as exc:
            first = exc.errors()[0]
            print(f"error: invalid MCP_GATEWAY_* environment: {first['loc']}: {first['msg']}", file=sys.stderr)
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            print(f"error: cannot write or read{where}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 1

    return wrapper
