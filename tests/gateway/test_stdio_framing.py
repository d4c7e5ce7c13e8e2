"""How a stdio server's stdout is cut into JSON-RPC messages: pieces of one line joined, lines of one piece split,
a line past the size bound reported and dropped, and what follows it still read."""

from __future__ import annotations

import json
import textwrap

import anyio
import pytest

from local_mcp_gateway.errors import UpstreamError
from local_mcp_gateway.upstream import stdio
from tests.conftest import PYTHON

pytestmark = pytest.mark.anyio

READ_TIMEOUT = 30.0


def _writer(script: str) -> list[str]:
    """argv of a child that runs `script` with `out(bytes)` writing to its stdout and flushing at once."""
    prelude = "import sys, json, time\ndef out(data):\n    sys.stdout.buffer.write(data); sys.stdout.buffer.flush()\n"
    return ["-c", prelude + textwrap.dedent(script)]


async def _messages(script: str, count: int) -> list[object]:
    """The first `count` items the transport yields for a child running `script` (messages or errors)."""
    found: list[object] = []
    async with stdio.stdio_transport(PYTHON, _writer(script), {}, None, label="framing") as (read, _write):
        with anyio.fail_after(READ_TIMEOUT):
            while len(found) < count:
                item = await read.receive()
                found.append(item if isinstance(item, Exception) else item.message.model_dump(by_alias=True))
    return found


def _notice(number: int, text: str) -> bytes:
    message = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": text, "n": number}}
    return json.dumps(message).encode()


async def test_a_message_written_in_many_pieces_arrives_whole_and_lines_of_one_piece_are_split() -> None:
    big = "x" * 3_000_000
    script = f"""
        line = json.dumps({{"jsonrpc": "2.0", "method": "notifications/message",
                           "params": {{"level": "info", "data": "x" * {len(big)}, "n": 1}}}}).encode() + b"\\n"
        head, tail = line[:-10], line[-10:]
        for start in range(0, len(head), 4096):
            out(head[start:start + 4096])
        out(tail + {_notice(2, "second")!r} + b"\\n\\n" + {_notice(3, "third")!r} + b"\\n")
        time.sleep(30)
    """
    first, second, third = await _messages(script, 3)
    assert first["params"]["data"] == big and first["params"]["n"] == 1
    assert (second["params"]["n"], third["params"]["n"]) == (2, 3)


async def test_a_line_past_the_bound_is_reported_and_the_next_line_is_still_read(monkeypatch) -> None:
    monkeypatch.setattr(stdio, "MAX_LINE_BYTES", 64 * 1024)
    script = f"""
        for _ in range(40):
            out(b"y" * 4096)
        out(b"\\n" + {_notice(7, "after")!r} + b"\\n")
        time.sleep(30)
    """
    error, after = await _messages(script, 2)
    assert isinstance(error, UpstreamError) and "exceeded 65536 bytes" in str(error)
    assert after["params"]["n"] == 7
