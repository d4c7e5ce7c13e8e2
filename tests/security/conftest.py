"""Helpers for the security tests: the in-process upstream, raw HTTP over sockets, and "is it still serving?"."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from tests.conftest import GatewayProcess, mcp_client

SECURITY_TESTS = Path(__file__).resolve().parent

UPSTREAM = {"module": "guarded_upstream:build"}
"""A profile's server entry for the in-process `echo` upstream (see guarded_upstream.py)."""

RAW_READ_LIMIT = 64 * 1024
"""Bytes of a raw response read before giving up on its end: every answer the tests expect is far smaller."""


def upstream_env(**extra: str) -> dict[str, str]:
    """Environment for a gateway process that can import `guarded_upstream`."""
    paths = [str(SECURITY_TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), **extra}


def gateway_port(gateway: GatewayProcess) -> int:
    return int(gateway.base_url.rsplit(":", 1)[1])


def raw_exchange(port: int, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send `request` as is over a fresh connection, then read until the server closes or the answer is whole."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_response(sock)


def read_response(sock: socket.socket) -> bytes:
    """Read one HTTP response (head plus a Content-Length body), or everything until the server closes."""
    data = b""
    while len(data) < RAW_READ_LIMIT:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = _content_length(head)
            if length is not None and len(body) >= length:
                return data
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return data


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP/1.1 response."""
    return int(response.split(b" ", 2)[1])


def raw_get(port: int, target: str, host: str = "127.0.0.1", extra: str = "") -> bytes:
    """A GET for `target` exactly as written (no normalisation of dots or escapes)."""
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}Connection: close\r\n\r\n"
    return raw_exchange(port, request.encode("latin-1"))


async def echo_through(url: str, headers: dict[str, str] | None = None, text: str = "still serving") -> str:
    """A full MCP session (initialize, tools/call, end) against `url`; returns what the echo tool answered."""
    async with mcp_client(url, headers=headers) as client:
        result = await client.call_tool("up__echo", {"text": text})
    assert not result.is_error, result
    content: Any = result.content[0]
    return content.text
