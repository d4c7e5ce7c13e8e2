"""Open the message streams towards one upstream server, whatever its kind.

Each transport is an async context manager yielding `(read, write)` streams for an `mcp.ClientSession`:
stdio (a child process, see `stdio.py`), Streamable HTTP, legacy HTTP+SSE, or in-process (`module`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from mcp.client._memory import InMemoryTransport
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.mcpserver import MCPServer

from local_mcp_gateway import observability
from local_mcp_gateway.errors import UpstreamError
from local_mcp_gateway.upstream.stdio import StdioProcess, stdio_transport

__all__ = ["HTTP_CONNECT_TIMEOUT", "load_module_server", "open_transport"]

HTTP_CONNECT_TIMEOUT = 10.0
"""Seconds to open a TCP/TLS connection to a remote server."""

HTTP_STREAM_READ_TIMEOUT = 300.0
"""Seconds an open response stream may stay silent (SSE streams idle between events)."""


_imported_stamps: dict[str, tuple[int, int]] = {}
"""Per imported server module: (mtime_ns, size) of its source when it was (re)imported."""


def _import_current(module_name: str) -> Any:
    """Import a module, or re-import it when its source changed since (so an edited in-process server runs anew)."""
    module = importlib.import_module(module_name)
    source = getattr(module, "__file__", None)
    if source is None:
        return module
    try:
        stat = os.stat(source)
    except OSError:
        return module
    stamp = (stat.st_mtime_ns, stat.st_size)
    previous = _imported_stamps.setdefault(module_name, stamp)
    if previous != stamp:
        module = importlib.reload(module)
        _imported_stamps[module_name] = stamp
    return module


def load_module_server(spec: str) -> Server[Any]:
    """Import `package.module:attribute` and return the low-level MCP server it names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UpstreamError(f"module {spec!r} must read 'package.module:attribute'")
    try:
        module = _import_current(module_name)
    except Exception as exc:
        raise UpstreamError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    try:
        obj: Any = module
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise UpstreamError(f"{module_name!r} has no attribute {attribute!r}") from exc
    if callable(obj) and not isinstance(obj, (Server, MCPServer)):
        obj = obj()
    if isinstance(obj, MCPServer):
        return obj._lowlevel_server  # the SDK keeps the low-level server private
    if isinstance(obj, Server):
        return obj
    raise UpstreamError(f"{spec!r} is a {type(obj).__name__}, not an MCP server (mcp.server.Server or MCPServer)")


DRAIN_LIMIT = 0.05
"""Seconds a closed response may take to deliver its last bytes, so its connection can be used again."""


class _DrainingStream(httpx2.AsyncByteStream):
    """A response body that reads what is left (bounded) before closing.

    The SDK closes an SSE response as soon as the JSON-RPC answer arrived, before the final chunk; the
    connection pool then has to drop the connection, and every call pays for a new TCP connection.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._iterator: Any = None

    async def __aiter__(self) -> Any:
        self._iterator = self._inner.__aiter__()
        async for chunk in self._iterator:
            yield chunk

    async def aclose(self) -> None:
        if self._iterator is not None:
            with anyio.move_on_after(DRAIN_LIMIT):
                try:
                    async for _ in self._iterator:
                        pass
                except Exception:  # the connection is dropped below either way
                    pass
        await self._inner.aclose()


class DrainingTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport whose responses drain before they close (see `_DrainingStream`)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        observability.trace_header(request)
        response = await self._inner.handle_async_request(request)
        response.stream = _DrainingStream(response.stream)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def http_client(headers: dict[str, str], auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
    """An httpx2 client for one remote server, with its configured headers and reusable connections."""
    timeout = httpx2.Timeout(HTTP_CONNECT_TIMEOUT, read=HTTP_STREAM_READ_TIMEOUT)
    return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, transport=DrainingTransport())


@asynccontextmanager
async def open_transport(
    server: Any, *, process: StdioProcess | None = None, auth: httpx2.Auth | None = None
) -> AsyncIterator[tuple[Any, Any]]:
    """Yield `(read, write)` for `server` (a resolved server setting)."""
    if server.kind == "stdio":
        async with stdio_transport(
            server.command,
            list(server.args),
            dict(server.env),
            server.cwd,
            label=f"{server.profile}.{server.name}",
            info=process,
        ) as streams:
            yield streams
    elif server.kind == "remote":
        headers = dict(server.headers)
        if server.transport == "sse":
            async with sse_client(
                server.url,
                headers=headers,
                timeout=HTTP_CONNECT_TIMEOUT,
                sse_read_timeout=HTTP_STREAM_READ_TIMEOUT,
                auth=auth,
            ) as streams:
                yield streams
        else:
            async with http_client(headers, auth) as client, streamable_http_client(
                server.url, http_client=client
            ) as streams:
                yield streams
    elif server.kind == "inprocess":
        async with InMemoryTransport(load_module_server(server.module)) as streams:
            yield streams
    else:  # pragma: no cover - the config models admit no other kind
        raise UpstreamError(f"unknown server kind {server.kind!r}")
