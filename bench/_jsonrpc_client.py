"""One raw HTTP JSON-RPC client for every benchmark target: Streamable HTTP and the legacy HTTP+SSE transport.

No MCP SDK on the client side: the same few lines of httpx2 and JSON talk to every hop, so the client costs
every target the same. Each session does the handshake its transport asks for:

- Streamable HTTP (the gateway, mcp-proxy, fastmcp): ``initialize`` by POST, the ``Mcp-Session-Id`` the answer
  carries on every later request with ``MCP-Protocol-Version``, ``notifications/initialized``; answers come as
  JSON or as a short SSE stream (the response is the event whose ``id`` matches); ``close()`` sends DELETE.
- Legacy HTTP+SSE (mcp-hub 4.2.1 serves only this at ``/mcp``): a GET opens the event stream, whose
  ``endpoint`` event names the URL to POST messages to; POSTs are answered 202 and the JSON-RPC answers arrive
  on the stream, matched here by ``id``; ``close()`` ends the stream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any
from urllib.parse import urljoin

import httpx2

__all__ = ["PROTOCOL_VERSION", "RpcError", "Session", "new_http_client", "open_session"]

PROTOCOL_VERSION = "2025-11-25"
"""What the client asks for; each target answers with the version it speaks (reported per target)."""

REQUEST_TIMEOUT = 60.0
"""Seconds one request may take: a hung target fails the run instead of hanging it."""

CLIENT_INFO = {"name": "local-mcp-gateway-bench", "version": "1"}
ACCEPT_BOTH = "application/json, text/event-stream"


class RpcError(RuntimeError):
    """A JSON-RPC error answer, or an HTTP answer that is not one."""


def _sse_messages(text: str) -> list[dict[str, Any]]:
    """The JSON messages of an SSE body (one per event; multi-line data joined)."""
    messages, data = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            messages.append(json.loads("\n".join(data)))
            data = []
    return messages


def _result(message: dict[str, Any], method: str) -> dict[str, Any]:
    if "error" in message:
        raise RpcError(f"{method}: {message['error']}")
    return message["result"]


class Session:
    """An initialized MCP session over one transport; `request` returns the JSON-RPC result."""

    protocol_version: str = ""
    server_info: dict[str, Any]

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        self.http, self.url = http, url
        self._ids = itertools.count(1)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        raise NotImplementedError

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def initialize(self) -> None:
        params = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
        result = await self.request("initialize", params)
        self.protocol_version = result["protocolVersion"]
        self.server_info = result.get("serverInfo", {})
        await self.notify("notifications/initialized")

    async def list_tools(self) -> list[dict[str, Any]]:
        """Every tool, following ``nextCursor`` page by page."""
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            result = await self.request("tools/list", {"cursor": cursor} if cursor else {})
            tools += result["tools"]
            cursor = result.get("nextCursor")
            if not cursor:
                return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await self.request("tools/call", {"name": name, "arguments": arguments})


class StreamableSession(Session):
    session_id: str | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        number = next(self._ids)
        body = {"jsonrpc": "2.0", "id": number, "method": method, "params": params or {}}
        response = await self.http.post(self.url, content=json.dumps(body), headers=self._headers())
        if response.status_code != 200:
            raise RpcError(f"{method}: HTTP {response.status_code}: {response.text[:200]}")
        if self.session_id is None:
            self.session_id = response.headers.get("mcp-session-id")
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            for message in _sse_messages(response.text):
                if message.get("id") == number:
                    return _result(message, method)
            raise RpcError(f"{method}: no answer with id {number} in the event stream")
        return _result(response.json(), method)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        body = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        response = await self.http.post(self.url, content=json.dumps(body), headers=self._headers())
        if response.status_code not in (200, 202):
            raise RpcError(f"{method}: HTTP {response.status_code}")

    async def close(self) -> None:
        if self.session_id:
            await self.http.delete(self.url, headers=self._headers())


class LegacySseSession(Session):
    """The 2024-11-05 HTTP+SSE transport: answers arrive on the GET stream, matched by id."""

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        super().__init__(http, url)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._endpoint: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async with self.http.stream("GET", self.url, headers={"Accept": "text/event-stream"}) as response:
                if response.status_code != 200:
                    raise RpcError(f"GET {self.url}: HTTP {response.status_code}")
                event, data = "message", []
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:
                        self._dispatch(event, "\n".join(data))
                        event, data = "message", []
            raise RpcError(f"{self.url}: the event stream ended")
        except (asyncio.CancelledError, Exception) as exc:
            # The waiting requests get the failure; the task itself ends quietly (close() reaps it).
            failure = exc if isinstance(exc, Exception) else RpcError("session closed")
            for future in [self._endpoint, *self._pending.values()]:
                if not future.done():
                    future.set_exception(failure)
                    future.exception()  # retrieved here: a request that never got to wait must not log it
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _dispatch(self, event: str, data: str) -> None:
        if event == "endpoint":
            if not self._endpoint.done():
                self._endpoint.set_result(urljoin(self.url, data))
            return
        message = json.loads(data)
        future = self._pending.pop(message.get("id"), None) if "id" in message else None
        if future is not None and not future.done():
            future.set_result(message)

    async def _post(self, body: dict[str, Any]) -> None:
        endpoint = await asyncio.wait_for(asyncio.shield(self._endpoint), REQUEST_TIMEOUT)
        response = await self.http.post(endpoint, content=json.dumps(body), headers={"Content-Type": "application/json"})
        if response.status_code not in (200, 202):
            raise RpcError(f"{body.get('method')}: HTTP {response.status_code}: {response.text[:200]}")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        await self._post({"jsonrpc": "2.0", "id": number, "method": method, "params": params or {}})
        return _result(await asyncio.wait_for(future, REQUEST_TIMEOUT), method)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self._post({"jsonrpc": "2.0", "method": method, "params": params or {}})

    async def close(self) -> None:
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):  # the reader ends by this cancellation or its own error
            pass


async def open_session(http: httpx2.AsyncClient, url: str, transport: str) -> Session:
    """An initialized session on `url`; `transport` is ``streamable-http`` or ``sse``."""
    session: Session = StreamableSession(http, url) if transport == "streamable-http" else LegacySseSession(http, url)
    try:
        await asyncio.wait_for(session.initialize(), REQUEST_TIMEOUT)
    except BaseException:
        await session.close()
        raise
    return session


def new_http_client(connections: int = 4) -> httpx2.AsyncClient:
    """An httpx2 client for one or more sessions: no read timeout (event streams stay open), bounded pool."""
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx2.AsyncClient(timeout=httpx2.Timeout(REQUEST_TIMEOUT, read=None), limits=limits)
