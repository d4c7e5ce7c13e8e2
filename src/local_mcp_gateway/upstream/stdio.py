"""Stdio transport towards a child-process MCP server.

The child runs in its own session (so its own process group) with an allow-listed environment; the gateway's
own environment, which holds the age key, never reaches it. Stopping escalates: close stdin, wait, SIGTERM the
whole group, wait, SIGKILL the group. The group is signalled even when the direct child already exited, because
`npx`/`uvx`-style wrappers leave grandchildren behind. Stderr lines go to the gateway log (through redaction).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import mcp.types as types
from anyio.abc import ObjectSendStream, Process
from anyio.streams.text import TextReceiveStream
from mcp.shared.message import SessionMessage

from local_mcp_gateway.errors import UpstreamError

__all__ = ["INHERITED_ENV_VARS", "StdioProcess", "child_environment", "executable", "stdio_transport"]

logger = logging.getLogger(__name__)

INHERITED_ENV_VARS = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ")
"""The only variables of the gateway's environment a stdio server sees (besides its own `env`)."""

STDIN_CLOSE_GRACE = 2.0
"""Seconds a server gets to exit by itself once its stdin is closed (the MCP shutdown sequence)."""

TERM_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL to the process group."""

REAP_POLL = 0.02
"""How often the group is probed while waiting for it to disappear."""

MAX_LINE_BYTES = 16 * 1024 * 1024
"""A single JSON-RPC line longer than this is treated as garbage (bounded memory)."""


GATEWAY_PYTHON_NAMES = frozenset({"python", "python3"})
"""A bare `python`/`python3` command runs the gateway's own interpreter, so servers installed beside it are found."""


def executable(command: str) -> str:
    """The program to start for `command` (see `GATEWAY_PYTHON_NAMES`)."""
    return sys.executable if command in GATEWAY_PYTHON_NAMES and sys.executable else command


def child_environment(extra: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a stdio server: the allow-list taken from `base` plus the server's own `env`."""
    source = os.environ if base is None else base
    env = {key: source[key] for key in INHERITED_ENV_VARS if key in source}
    env.update(extra)
    return env


@dataclass
class StdioProcess:
    """What the gateway knows about one running stdio server process."""

    pid: int
    returncode: int | None = None
    stderr_tail: list[str] = field(default_factory=list)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _wait_group_gone(process: Process, pgid: int, timeout: float) -> bool:
    with anyio.move_on_after(timeout):
        while True:
            _ = process.returncode  # reaps the leader if it exited
            if process.returncode is not None and not _group_alive(pgid):
                return True
            await anyio.sleep(REAP_POLL)
    return False


async def stop_process_group(process: Process) -> None:
    """Close stdin, then SIGTERM and SIGKILL the whole group, each after a bounded wait."""
    pgid = process.pid
    if process.stdin is not None:
        with suppress(Exception):
            await process.stdin.aclose()
    if await _wait_group_gone(process, pgid, STDIN_CLOSE_GRACE):
        return
    for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, TERM_GRACE)):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        if await _wait_group_gone(process, pgid, grace):
            return
    logger.warning("stdio server process group %d is still alive after SIGKILL", pgid)


class _StdinSender(ObjectSendStream[SessionMessage]):
    """The write side of a stdio transport: each message is written to the child's stdin by the task sending it.

    The pipe's own buffer orders the writes (a write is whole before `send` waits for the pipe to drain), so no
    writer task and no extra hand-over per message are needed. A failed write ends the read side too: the
    session sees the server gone.
    """

    def __init__(self, process: Process, read_writer: ObjectSendStream[SessionMessage | Exception]) -> None:
        self._process = process
        self._read_writer = read_writer
        self._closed = False

    async def send(self, item: SessionMessage) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        assert self._process.stdin is not None
        data = item.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
        try:
            await self._process.stdin.send(data.encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            self._closed = True
            await self._read_writer.aclose()
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        self._closed = True


@asynccontextmanager
async def stdio_transport(
    command: str,
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    *,
    label: str,
    info: StdioProcess | None = None,
) -> AsyncIterator[tuple[anyio.abc.ObjectReceiveStream, anyio.abc.ObjectSendStream]]:
    """Start `command` and yield (read, write) message streams for a `ClientSession`.

    `label` names the server in log lines. `info`, when given, is filled with the pid and stderr tail.
    """
    try:
        process = await anyio.open_process(
            [executable(command), *args],
            env=child_environment(env),
            cwd=cwd,
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        raise UpstreamError(f"cannot start {command!r}: {exc.strerror if isinstance(exc, OSError) else exc}") from exc
    if info is not None:
        info.pid = process.pid
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream = _StdinSender(process, read_writer)
    server_log = logging.getLogger(f"local_mcp_gateway.upstream.{label}")

    async def read_stdout() -> None:
        assert process.stdout is not None
        buffer = b""
        try:
            async with read_writer:
                async for chunk in process.stdout:
                    buffer += chunk
                    if len(buffer) > MAX_LINE_BYTES and b"\n" not in buffer:
                        await read_writer.send(UpstreamError(f"{label}: a message exceeded {MAX_LINE_BYTES} bytes"))
                        buffer = b""
                        continue
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                        except ValueError:
                            server_log.warning("ignored a line on stdout that is not JSON-RPC (%d bytes)", len(line))
                            continue
                        await read_writer.send(SessionMessage(message))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            pass

    async def read_stderr() -> None:
        assert process.stderr is not None
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            async for text in TextReceiveStream(process.stderr, errors="replace"):
                for line in text.splitlines():
                    if line.strip():
                        server_log.info("%s", line)
                        if info is not None:
                            info.stderr_tail = (info.stderr_tail + [line])[-20:]

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stdout)
        tg.start_soon(read_stderr)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                await write_stream.aclose()
                await stop_process_group(process)
                if info is not None:
                    info.returncode = process.returncode
                await read_stream.aclose()
            tg.cancel_scope.cancel()
