"""The benchmark's upstream: a tiny MCP server with one `echo(text)` tool, over stdio or Streamable HTTP.

Every target in `bench/overhead.py` ends at this same server, so the only thing that differs between
targets is the hop in front of it. It is built on the SDK's high-level `MCPServer` (mcp 2.3.0), the way a
typical Python MCP server is written, and served by uvicorn over HTTP.

    python bench/upstream.py                               # stdio (the default)
    python bench/upstream.py --transport http --port 0     # Streamable HTTP at /mcp

Over HTTP it prints exactly one line ``READY <url>`` on stdout once its socket listens (``--port 0`` lets
the operating system pick a free port), so the benchmark learns the URL without guessing a port.
"""

from __future__ import annotations

import sys


import argparse
import socket
from collections.abc import Sequence

import anyio
import uvicorn
from mcp.server import MCPServer

__all__ = ["READY_PREFIX", "build_server", "main"]

READY_PREFIX = "READY "
"""Start of the line printed on stdout once the HTTP transport listens; the URL follows."""

STREAMABLE_HTTP_PATH = "/mcp"

STARTUP_POLL_SECONDS = 0.01
"""How often to look whether uvicorn finished its startup before printing READY."""

GRACEFUL_SHUTDOWN_SECONDS = 2
"""Open SSE streams never end on their own; do not let them hold a SIGTERM up for longer."""

LISTEN_BACKLOG = 128

LOG_LEVEL = "WARNING"
"""Quiet: a log line per call would add the same cost to every target and only blur the comparison."""


def build_server() -> MCPServer:
    """The MCP server every benchmark target ends at: one tool, `echo`, that returns its input."""
    server = MCPServer("bench-upstream", log_level=LOG_LEVEL)

    @server.tool()
    def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    return server


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it Nagle's algorithm holds the small second write of a
    # response (headers, then body) until the client's delayed ACK: about 40 ms per call on loopback.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    return sock


async def _serve_http(server: MCPServer, host: str, port: int) -> None:
    app = server.streamable_http_app(streamable_http_path=STREAMABLE_HTTP_PATH, host=host)
    sock = _bind(host, port)
    config = uvicorn.Config(
        app, log_level=LOG_LEVEL.lower(), access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS
    )
    http_server = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: http_server.serve(sockets=[sock]))
        while not http_server.started:
            if http_server.should_exit:
                return
            await anyio.sleep(STARTUP_POLL_SECONDS)
        bound_host, bound_port = sock.getsockname()[:2]
        print(f"{READY_PREFIX}http://{bound_host}:{bound_port}{STREAMABLE_HTTP_PATH}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (http)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (http); 0 picks a free one")
    args = parser.parse_args(argv)
    server = build_server()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        anyio.run(_serve_http, server, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
