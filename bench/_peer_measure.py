"""What `bench/peers.py` measures on started targets: readiness by listing, calls, listings, memory.

All traffic goes through `_jsonrpc_client` (the same raw client for every target). Every loop is bounded by
count and by time; a target that fails a check (a wrong echo, a short tool list) fails the run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import httpx2

from _common import POLL_SECONDS, cpu_seconds, descendants, rss_bytes
from _jsonrpc_client import RpcError, Session, new_http_client, open_session
from _peer_targets import Hop

__all__ = [
    "CallMeasure",
    "PAYLOAD",
    "calls_round",
    "echo_name",
    "list_round",
    "open_sessions",
    "rest_rss",
    "session_memory",
    "settle",
    "wait_listing",
]

PAYLOAD = "benchmark payload: " + "x" * 45
"""64 characters, echoed back and checked."""

RSS_SAMPLES = 10
RSS_SAMPLE_SECONDS = 0.1
"""RSS is the median of ten samples a tenth of a second apart (the figure moves with the allocator's timing)."""

READY_ERRORS = (httpx2.TransportError, RpcError, asyncio.TimeoutError, KeyError, ValueError)
"""What a probe of a target that is still starting may see; anything else is a bug and fails the run."""


async def _probe(url: str, transport: str) -> int:
    async with new_http_client() as http:
        session = await open_session(http, url, transport)
        try:
            return len(await session.list_tools())
        finally:
            await session.close()


async def wait_listing(hop: Hop, expected: list[int], timeout: float) -> float:
    """Poll until a fresh session's `tools/list` on each of the hop's URLs lists `expected[i]` tools.

    Returns the `time.perf_counter()` at which the last URL first listed everything (the end of a cold start).
    """
    done: set[str] = set()
    deadline = time.perf_counter() + timeout
    last_error = ""
    while time.perf_counter() < deadline:
        if hop.service.process.poll() is not None:
            raise RuntimeError(f"{hop.target} exited with {hop.service.process.returncode}:\n{hop.service.log_tail()}")
        for url, count in zip(hop.urls, expected):
            if url in done:
                continue
            try:
                listed = await _probe(url, hop.transport)
            except READY_ERRORS as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                break
            if listed != count:
                last_error = f"{url} listed {listed} of {count} tools"
                break
            done.add(url)
        if len(done) == len(hop.urls):
            return time.perf_counter()
        await asyncio.sleep(POLL_SECONDS)
    raise RuntimeError(f"{hop.target} did not list every tool within {timeout:.0f} s ({last_error}):\n{hop.service.log_tail()}")


async def open_sessions(stack: AsyncExitStack, hop: Hop, url: str, count: int) -> list[Session]:
    """`count` initialized sessions, each on its own HTTP client (as separate MCP clients would be)."""
    sessions = []
    for _ in range(count):
        http = await stack.enter_async_context(new_http_client())
        session = await open_session(http, url, hop.transport)
        stack.push_async_callback(session.close)
        sessions.append(session)
    return sessions


def echo_name(tools: list[dict[str, object]]) -> str:
    """The name the hop gives the upstream's `echo` (each hop prefixes differently, or not at all)."""
    names = [str(tool["name"]) for tool in tools if str(tool["name"]).endswith("echo")]
    if len(names) != 1:
        raise RuntimeError(f"expected one echo tool, found {names}")
    return names[0]


async def call_echo(session: Session, name: str) -> None:
    result = await session.call_tool(name, {"text": PAYLOAD})
    content = result.get("content") or [{}]
    if result.get("isError") or content[0].get("text") != PAYLOAD:
        raise RuntimeError(f"{name} answered {result!r}")


@dataclass
class CallMeasure:
    calls: int = 0
    seconds: float = 0.0
    hop_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def hop_cpu_ms_per_call(self) -> float:
        return 1000 * self.hop_cpu / self.calls if self.calls else float("nan")


async def calls_round(hop: Hop, sessions: list[Session], name: str, calls: int, seconds: float, into: CallMeasure) -> None:
    """Up to `calls` calls shared by one worker per session, stopping early after `seconds`."""
    remaining = calls
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def worker(session: Session) -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            started = time.perf_counter()
            await call_echo(session, name)
            latencies.append(time.perf_counter() - started)

    cpu_before = cpu_seconds([hop.pid])
    started = time.perf_counter()
    await asyncio.gather(*(worker(session) for session in sessions))
    into.seconds += time.perf_counter() - started
    into.hop_cpu += cpu_seconds([hop.pid]) - cpu_before
    into.calls += len(latencies)
    into.latencies += latencies


async def list_round(session: Session, expected: int, lists: int, seconds: float, into: list[float]) -> None:
    """Up to `lists` complete listings (every page; at least one, none started after `seconds`), each timed
    and checked for `expected` tools."""
    deadline = time.perf_counter() + seconds
    for number in range(lists):
        if number and time.perf_counter() >= deadline:
            break
        started = time.perf_counter()
        tools = await session.list_tools()
        into.append(time.perf_counter() - started)
        if len(tools) != expected:
            raise RuntimeError(f"tools/list gave {len(tools)} tools, expected {expected}")


SETTLE_SECONDS = 30.0
"""At most this long to wait for a hop's extra child processes to be gone before the next target's round."""


async def settle(hop: Hop, children: int) -> None:
    """Wait (bounded) until the hop has no more child processes than `children`.

    fastmcp's multi-server proxy starts every stdio server anew for each request; those processes are still
    exiting when its answer arrives, and would otherwise load the machine during the next target's round.
    """
    deadline = time.perf_counter() + SETTLE_SECONDS
    while len(descendants(hop.pid)) > children and time.perf_counter() < deadline:
        await asyncio.sleep(POLL_SECONDS)


async def rest_rss(pid: int) -> int:
    """The hop process's own RSS (children not included): the median of a few samples."""
    samples = []
    for _ in range(RSS_SAMPLES):
        samples.append(rss_bytes(pid))
        await asyncio.sleep(RSS_SAMPLE_SECONDS)
    return int(statistics.median(samples))


async def session_memory(hop: Hop, sessions: int) -> float:
    """Bytes of hop RSS per open session: RSS at rest, `sessions` sessions opened and kept, RSS again."""
    before = await rest_rss(hop.pid)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(new_http_client(connections=sessions + 4))
        for _ in range(sessions):
            session = await open_session(http, hop.urls[0], hop.transport)
            stack.push_async_callback(session.close)
        after = await rest_rss(hop.pid)
    return (after - before) / sessions
