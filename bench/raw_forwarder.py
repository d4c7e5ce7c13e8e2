"""The reference hop: forward HTTP bytes to one upstream URL, with no MCP parsing at all.

This is the floor of any Python hop built on the libraries the gateway uses: the same server (Hypercorn on
asyncio) and the same client (httpx2) the gateway has, and nothing else. Whatever the gateway costs on top
of this forwarder is the price of understanding MCP (sessions, routing, aggregation, validation), which is
what `bench/overhead.py` sets out to measure.

Every request to any path is sent to ``--upstream`` (query string kept), method, headers and body as they
came, minus the hop-by-hop headers; the response streams back chunk by chunk as it arrives, so Server-Sent
Event streams (the MCP POST answers and the long-lived GET stream) pass through unbuffered.

    python bench/raw_forwarder.py --upstream http://127.0.0.1:8001/mcp --port 0

It prints exactly one line ``READY <url>`` on stdout once its socket listens and stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import sys


import argparse
import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpx2
from hypercorn.asyncio import serve
from hypercorn.config import Config

from local_mcp_gateway.asgi import answer_lifespan

__all__ = ["READY_PREFIX", "RawForwarder", "main"]

READY_PREFIX = "READY "
"""Start of the line printed on stdout once the socket listens; the URL follows."""

HOP_BY_HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
"""Headers that describe one connection, not the message (RFC 9110 section 7.6.1): never forwarded."""

REQUEST_HEADERS_SET_BY_CLIENT = frozenset({b"host", b"content-length"})
"""httpx2 writes these itself from the upstream URL and the body it sends."""

UPSTREAM_MAX_CONNECTIONS = 256
"""Each MCP client session holds one GET stream open besides its POSTs: leave room for many sessions."""

UPSTREAM_TIMEOUT = httpx2.Timeout(30.0, read=None)
"""No read timeout: the GET stream of an MCP session stays silent for as long as the session lives."""

SHUTDOWN_GRACE_SECONDS = 2.0
"""Open event streams never end on their own; do not let them hold a SIGTERM up for longer."""

LISTEN_BACKLOG = 128

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _forwardable(headers: Iterable[tuple[bytes, bytes]], dropped: frozenset[bytes]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name.lower() not in dropped]


class RawForwarder:
    """An ASGI app that sends every HTTP request to `upstream_url` and streams the answer back."""

    def __init__(self, upstream_url: str, client: httpx2.AsyncClient) -> None:
        self.upstream_url = upstream_url
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await self._read_body(receive)
        url = self.upstream_url + (("?" + scope["query_string"].decode("latin-1")) if scope["query_string"] else "")
        request = self.client.build_request(
            scope["method"],
            url,
            headers=_forwardable(scope["headers"], HOP_BY_HOP_HEADERS | REQUEST_HEADERS_SET_BY_CLIENT),
            content=body,
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx2.TransportError:
            await send({"type": "http.response.start", "status": 502, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _forwardable(response.headers.raw, HOP_BY_HOP_HEADERS),
                }
            )
            await self._pump(response, receive, send)
        finally:
            await response.aclose()

    @staticmethod
    async def _read_body(receive: Receive) -> bytes:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    async def _pump(response: httpx2.Response, receive: Receive, send: Send) -> None:
        """Copy the upstream body to the client until it ends, or until the client goes away."""

        async def copy() -> None:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        copying = asyncio.ensure_future(copy())
        watching = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait((copying, watching), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (copying, watching):
                task.cancel()
            await asyncio.gather(copying, watching, return_exceptions=True)
        if copying.done() and not copying.cancelled() and copying.exception() is not None:
            raise copying.exception()  # type: ignore[misc]


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it Nagle's algorithm holds the small second write of a
    # response (headers, then body) until the client's delayed ACK: about 40 ms per call on loopback.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    return sock


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def _run(upstream: str, host: str, port: int) -> None:
    sock = _listen(host, port)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.graceful_timeout = SHUTDOWN_GRACE_SECONDS
    limits = httpx2.Limits(max_connections=UPSTREAM_MAX_CONNECTIONS, max_keepalive_connections=UPSTREAM_MAX_CONNECTIONS)
    async with httpx2.AsyncClient(timeout=UPSTREAM_TIMEOUT, limits=limits) as client:
        bound_host, bound_port = sock.getsockname()[:2]
        # The socket already listens: connections made from now on wait in its backlog until Hypercorn accepts.
        print(f"{READY_PREFIX}http://{bound_host}:{bound_port}", flush=True)
        await serve(RawForwarder(upstream, client), config, shutdown_trigger=_until_signalled)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="URL every request is forwarded to")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    args = parser.parse_args(argv)
    asyncio.run(_run(args.upstream, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
