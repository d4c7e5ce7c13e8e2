"""Command line: `local-mcp-gateway COMMAND ...`.

Each command lives in `local_mcp_gateway.commands.<module>` and registers itself with `register(subparsers)`;
its handler takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from local_mcp_gateway import __version__

__all__ = ["build_parser", "entrypoint", "main"]

# Modules under local_mcp_gateway.commands, each with `register(subparsers) -> None`.
COMMAND_MODULES = ("config_cmds", "secret_cmds", "serve_cmds", "auth_cmds", "gitops_cmds", "ui_cmds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local-mcp-gateway",
        description="Serve profiles of MCP servers, declared in YAML, as Streamable HTTP endpoints.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"local_mcp_gateway.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"local_mcp_gateway.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


def entrypoint() -> None:
    sys.exit(main())
