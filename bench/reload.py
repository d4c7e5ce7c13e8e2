"""Hot reload: how fast a change reaches a connected client, what a no-op reload costs, and whether restarts leak.

Three measurements, each against its own `local-mcp-gateway run` process on 127.0.0.1:

    latency  A profile file is rewritten (atomically, as editors and git do) while an SDK client is connected.
             The client waits for `notifications/tools/list_changed`, lists the tools, and the time from the
             write to the first listing that shows the new tool is taken. Two kinds of change, reported apart:
             `filter` (a `tools.include` change: no process starts) and `stdio` (a new stdio server is added:
             a process starts). The figure minus the watcher's quiet period (`reload.QUIET_PERIOD_MS`) is
             checked against TARGET_EXCESS_MS. The gateway's log lines split each change into its parts, and
             the gateway's own watcher (`reload.watch_config`) is also timed alone, on a bare folder.
    noop     A gateway serving NOOP_PROFILES profiles of an in-process `module:` server reloads without any
             change: by SIGHUP (signal -> log line "reload: nothing changed") and by rewriting a profile with
             identical bytes (write -> that line). Wall time and the gateway's CPU time per reload, beside a
             one-profile baseline; the load step itself (`gateway.build_generation`) is timed in this process.
    leak     LEAK_CYCLES reloads (SIGHUP, watcher off) that each restart a stdio server, because its `env`
             alternates between two values. The gateway's descendant processes (and zombies), open file
             descriptors, threads and RSS are sampled at the start, after a warm-up, along the way and at the
             end; the verdict compares the end with the warm-up. The loop is bounded by cycles and by time.

    python bench/reload.py                                  # everything, about four minutes on 2 cores
    python bench/reload.py --only latency --repeats 5       # one part, quicker
    python bench/reload.py --only leak --leak-cycles 50 --json leak.json

Every process is started here in its own process group and stopped here by that group (SIGTERM, then SIGKILL);
stdio servers the gateway started and left behind are reported and stopped by their own group. Absolute
figures move with whatever else runs on the machine: each part prints its spread (min/p50/max).
"""

from __future__ import annotations

import os
import sys


import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from _common import cpu_seconds  # bench/ is on sys.path when run as a script

from local_mcp_gateway.reload import QUIET_PERIOD_MS, ConfigWatchFilter, watch_config

REPO = Path(__file__).resolve().parent.parent
ECHO_SERVER = REPO / "tests" / "fixtures" / "echo_server.py"
PYTHON = sys.executable
CLOCK_MODULE = "local_mcp_gateway.examples.clock:server"
"""The in-process server of the no-op part: loading it costs no process, so the reload itself is measured."""

PARTS = ("latency", "noop", "leak")

TARGET_EXCESS_MS = 500.0
"""Latency target: a change is listed by a connected client at most this long beyond the quiet period."""
DEFAULT_REPEATS = 10
"""Changes per kind in the latency part (and watcher-alone writes)."""
SETTLE_SECONDS = 2 * QUIET_PERIOD_MS / 1000 + 0.3
"""Pause before each measured change, so the watcher's previous batch and the previous reload are over."""
CHANGE_TIMEOUT = 30.0
"""Longest wait for one change to show; a hung gateway fails the run instead of hanging it."""

NOOP_PROFILES = (1, 50)
DEFAULT_NOOP_RELOADS = 15
"""No-op reloads per trigger and per gateway."""
LOAD_TIMINGS = 5
"""In-process `build_generation` runs per profile count, for the attribution of the no-op cost."""

LEAK_CYCLES = 200
LEAK_WARMUP_CYCLES = 20
"""Cycles before the baseline sample: imports, pools, caches and allocator arenas settle first."""
LEAK_SAMPLE_EVERY = 50
LEAK_SECONDS = 240.0
"""No leak cycle starts after this long; the verdict is then drawn from the cycles done."""
FD_TOLERANCE = 4
"""Open descriptors the end may have beyond the warm-up sample (sockets of a status poll in flight, ...)."""
RSS_TOLERANCE_KB = 4096
"""RSS growth from the warm-up sample to the end still called flat: 20 KB per cycle over 180 cycles."""
CHILD_SETTLE_SECONDS = 8.0
"""Longest wait for stopped stdio servers to be gone before a sample (stdin close 2 s + TERM 2 s + KILL 2 s)."""

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.005
"""Log and /status polling interval: small against the figures measured."""
STATUS_POLL_SECONDS = 0.02

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
"""The timestamp the gateway's text log format starts each line with (local time, milliseconds)."""


# --- processes -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) for every process, from /proc/<pid>/stat."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            table[int(entry)] = (int(fields[1]), fields[0])
        except (OSError, ValueError, IndexError):
            continue
    return table


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid` (stdio servers and their children), with its state letter (Z: zombie)."""
    table = process_table()
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, state) in table.items():
            if ppid == parent and child not in found:
                found[child] = state
                frontier.append(child)
    return found


def status_field(pid: int, name: str) -> int:
    """An integer field of /proc/<pid>/status (`VmRSS` in kB, `Threads`)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {name}")


@dataclass(frozen=True)
class Sample:
    """The gateway process's footprint at one moment of the leak loop."""

    label: str
    cycles: int
    children: int
    zombies: int
    fds: int
    threads: int
    rss_kb: int

    @classmethod
    def take(cls, pid: int, label: str, cycles: int) -> Sample:
        below = descendants(pid)
        return cls(
            label=label,
            cycles=cycles,
            children=sum(1 for state in below.values() if state != "Z"),
            zombies=sum(1 for state in below.values() if state == "Z"),
            fds=len(os.listdir(f"/proc/{pid}/fd")),
            threads=status_field(pid, "Threads"),
            rss_kb=status_field(pid, "VmRSS"),
        )


class LogCursor:
    """Reads the lines a process appends to its log file, from a remembered position on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def skip_to_end(self) -> None:
        self.offset = self.path.stat().st_size
        self.partial = b""

    def new_lines(self) -> list[str]:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in lines]


def log_time(line: str) -> float | None:
    """The wall-clock time (seconds since the epoch) a gateway log line was written, to the millisecond."""
    match = LOG_TIME.match(line)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def first_time(lines: Sequence[str], needle: str) -> float | None:
    return next((t for line in lines if needle in line and (t := log_time(line)) is not None), None)


@dataclass
class GatewayProcess:
    """A `local-mcp-gateway run` process started here, in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    seen_children: set[int] = field(default_factory=set)
    """Every process found below the gateway while it ran: checked for survivors once it is stopped."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, slug: str) -> str:
        return f"{self.base_url}/mcp/{slug}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def note_children(self) -> dict[int, str]:
        below = descendants(self.pid)
        self.seen_children.update(below)
        return below

    def stop(self) -> list[int]:
        """SIGTERM the group, then SIGKILL; returns the stdio servers that outlived the gateway (now stopped)."""
        self.note_children()
        if self.process.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
            except ProcessLookupError:
                pass
        survivors = [pid for pid in sorted(self.seen_children) if _alive(pid)]
        for pid in survivors:
            try:  # a stdio server leads its own group (the gateway starts it in a new session)
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return survivors


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_gateway(stack: ExitStack, name: str, config: Path, workdir: Path, *, watch: bool) -> GatewayProcess:
    """Start a gateway on a free loopback port; wait until it is ready and every upstream is ready."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    environment.update(
        MCP_GATEWAY_HOST="127.0.0.1",
        MCP_GATEWAY_PORT=str(port),
        MCP_GATEWAY_LOG_LEVEL="info",
        MCP_GATEWAY_WATCH="true" if watch else "false",
        PYTHONUNBUFFERED="1",
    )
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [PYTHON, "-m", "local_mcp_gateway", "run", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            cwd=workdir,
            start_new_session=True,
        )
    gateway = GatewayProcess(name, process, f"http://127.0.0.1:{port}", log_path)
    stack.callback(_stop_and_report, gateway)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{gateway.log_tail()}")
        try:
            if _all_ready(httpx2.get(f"{gateway.base_url}/status", timeout=2)):
                gateway.note_children()
                return gateway
        except httpx2.TransportError:
            pass
        time.sleep(STATUS_POLL_SECONDS)
    raise RuntimeError(f"{name} was not ready within {START_TIMEOUT:.0f} s:\n{gateway.log_tail()}")


def _stop_and_report(gateway: GatewayProcess) -> None:
    survivors = gateway.stop()
    if survivors:
        print(f"{gateway.name}: stdio servers outlived the gateway and were killed: {survivors}", flush=True)


def _all_ready(response: httpx2.Response) -> bool:
    if response.status_code != 200:
        return False
    body = response.json()
    states = [s["state"] for p in body.get("profiles", {}).values() for s in p["servers"].values()]
    return bool(body.get("ready")) and all(state == "ready" for state in states)


# --- configuration repositories --------------------------------------------------------------------------


@dataclass
class ConfigRepo:
    """gateway.yaml plus profiles/*.yaml in a folder; files are replaced atomically, as editors and git do."""

    root: Path

    def __post_init__(self) -> None:
        (self.root / "profiles").mkdir(parents=True, exist_ok=True)
        self.write(self.root / "gateway.yaml", {"version": 1})

    @property
    def path(self) -> Path:
        return self.root / "gateway.yaml"

    def profile_path(self, slug: str) -> Path:
        return self.root / "profiles" / f"{slug}.yaml"

    def write_profile(self, slug: str, servers: dict[str, Any]) -> Path:
        return self.write(self.profile_path(slug), {"servers": servers})

    @staticmethod
    def write(path: Path, content: dict[str, Any]) -> Path:
        """JSON is YAML; the temporary name starts with a dot, which the watcher ignores."""
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(content, indent=1) + "\n")
        os.replace(temporary, path)
        return path


def echo_server(name: str, **settings: Any) -> dict[str, Any]:
    """A stdio server entry running the echo fixture with this interpreter."""
    return {"command": PYTHON, "args": [str(ECHO_SERVER), "--name", name], **settings}


# --- statistics ------------------------------------------------------------------------------------------


def settle_pause(index: int, count: int) -> float:
    """SETTLE_SECONDS plus an offset spread evenly over one quiet period across the `count` changes.

    The watcher wakes every QUIET_PERIOD_MS; a fixed pause (a multiple of it) would land every write at the same
    point of its cycle and measure one phase only. Users' writes come at any phase; so do these.
    """
    return SETTLE_SECONDS + (index % count) / count * QUIET_PERIOD_MS / 1000


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / p50 / max (milliseconds in, milliseconds out), rounded for printing."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": round(min(values), 1),
        "p50": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


def shifted(stats: dict[str, float], by: float) -> dict[str, float]:
    """A spread with `by` added to min, p50 and max."""
    return {key: value if key == "n" else round(value + by, 1) for key, value in stats.items()}


def fmt(stats: dict[str, float]) -> str:
    if not stats.get("n"):
        return "-"
    return f"{stats['min']:7.1f} {stats['p50']:7.1f} {stats['max']:7.1f}"


# --- part 1: latency -------------------------------------------------------------------------------------


class ToolNotices:
    """Counts the `notifications/tools/list_changed` one client session receives."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.count += 1
            self._changed.set()
            self._changed = anyio.Event()

    async def wait_beyond(self, count: int) -> None:
        while self.count <= count:
            await self._changed.wait()


@asynccontextmanager
async def sdk_client(url: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    """An initialized SDK client session against `url` (its GET stream carries the server's notices)."""
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(CHANGE_TIMEOUT, read=None)) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, **callbacks) as session:
                await session.initialize()
                yield session


async def tool_names(client: ClientSession) -> set[str]:
    names: set[str] = set()
    cursor: str | None = None
    while True:
        result = await client.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        names.update(tool.name for tool in result.tools)
        cursor = result.next_cursor
        if not cursor:
            return names


async def call_text(client: ClientSession, tool: str) -> str:
    result = await client.call_tool(tool, {})
    return str(getattr(result.content[0], "text", ""))


@dataclass
class ChangeTiming:
    """One measured change, in milliseconds from the file write."""

    notice_ms: float
    """The first tools/list_changed the client received."""
    listed_ms: float
    """The first listing that shows the new tool: the figure the target is about."""
    applied_ms: float | None
    """The gateway's "generation N serving" log line (quiet period + load + apply)."""
    ready_ms: float | None
    """The new stdio server's "upstream ... ready" log line (started, initialized, listed)."""


async def timed_change(
    client: ClientSession, notices: ToolNotices, cursor: LogCursor, write: Callable[[], object], new_tool: str,
    pause: float,
) -> ChangeTiming:
    """After `pause`, make one change and wait until a listing shows `new_tool`; the gateway log splits the time."""
    await anyio.sleep(pause)
    cursor.new_lines()
    seen = notices.count
    wall_start, start = time.time(), time.perf_counter()
    write()
    notice_ms: float | None = None
    with anyio.fail_after(CHANGE_TIMEOUT):
        while True:
            await notices.wait_beyond(seen)
            seen = notices.count
            if notice_ms is None:
                notice_ms = 1000 * (time.perf_counter() - start)
            if new_tool in await tool_names(client):
                listed_ms = 1000 * (time.perf_counter() - start)
                break
    lines = cursor.new_lines()

    def since_write(moment: float | None) -> float | None:
        return None if moment is None else 1000 * (moment - wall_start)

    return ChangeTiming(
        notice_ms=notice_ms,
        listed_ms=listed_ms,
        applied_ms=since_write(first_time(lines, " serving ")),
        ready_ms=since_write(first_time(lines, " ready: ")),
    )


def summarize_changes(timings: Sequence[ChangeTiming]) -> dict[str, Any]:
    listed = [t.listed_ms for t in timings]
    return {
        "listed_ms": spread(listed),
        "listed_minus_quiet_ms": shifted(spread(listed), -QUIET_PERIOD_MS),
        "notice_ms": spread([t.notice_ms for t in timings]),
        "applied_ms": spread([t.applied_ms for t in timings if t.applied_ms is not None]),
        "applied_to_ready_ms": spread(
            [t.ready_ms - t.applied_ms for t in timings if t.ready_ms is not None and t.applied_ms is not None]
        ),
        "last_log_to_listed_ms": spread(
            [
                t.listed_ms - (t.ready_ms if t.ready_ms is not None else t.applied_ms)
                for t in timings
                if (t.ready_ms if t.ready_ms is not None else t.applied_ms) is not None
            ]
        ),
        "samples_ms": [round(value, 1) for value in listed],
    }


async def watcher_alone(folder: Path, repeats: int) -> list[float]:
    """The gateway's watcher (same quiet period, same filter) on a bare folder: write -> batch yielded, in ms."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "probe.yaml"
    target.write_text("n: 0\n")
    delays: list[float] = []
    batches = anyio.create_memory_object_stream[float](16)
    send, receive = batches
    stop = anyio.Event()

    async def watch() -> None:
        async for _ in watch_config([folder], ConfigWatchFilter(), stop):
            await send.send(time.perf_counter())

    async with anyio.create_task_group() as tg, send, receive:
        tg.start_soon(watch)
        await anyio.sleep(SETTLE_SECONDS)  # the watcher has started and reported nothing yet
        for index in range(repeats):
            await anyio.sleep(settle_pause(index, repeats))
            start = time.perf_counter()
            ConfigRepo.write(target, {"n": index + 1})
            with anyio.fail_after(CHANGE_TIMEOUT):
                yielded = await receive.receive()
            delays.append(1000 * (yielded - start))
        stop.set()
        tg.cancel_scope.cancel()
    return delays


async def stdio_server_alone(repeats: int) -> list[float]:
    """The echo fixture through the gateway's own stdio transport, without a gateway: spawn -> initialize and
    the four listings an upstream connection makes, in ms. What a new stdio server costs before any reload."""
    from local_mcp_gateway.upstream.stdio import stdio_transport

    delays: list[float] = []
    for index in range(repeats):
        start = time.perf_counter()
        server = echo_server(f"alone{index}")
        async with stdio_transport(server["command"], server["args"], {}, None, label="alone") as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(CHANGE_TIMEOUT):
                    await session.initialize()
                    await session.list_tools()
                    await session.list_prompts()
                    await session.list_resources()
                    await session.list_resource_templates()
                delays.append(1000 * (time.perf_counter() - start))
    return delays


async def measure_latency(stack: ExitStack, workdir: Path, repeats: int) -> dict[str, Any]:
    """Part 1: change -> connected client lists the new tool, for a filter change and for a new stdio server."""
    print(f"latency: {repeats} changes per kind, quiet period {QUIET_PERIOD_MS} ms", flush=True)
    watcher_ms = await watcher_alone(workdir / "watch-probe", repeats)
    server_ms = await stdio_server_alone(repeats)
    repo = ConfigRepo(workdir / "latency-config")
    kept = ["echo", "pid"]  # always listed: `pid` proves the filter changes keep the process
    repo.write_profile("lat", {"a": echo_server("a", tools={"include": [*kept, "add"]})})
    gateway = await anyio.to_thread.run_sync(
        lambda: start_gateway(stack, "gateway-latency", repo.path, workdir, watch=True)
    )
    cursor = LogCursor(gateway.log_path)
    notices = ToolNotices()
    filter_runs: list[ChangeTiming] = []
    stdio_runs: list[ChangeTiming] = []
    async with sdk_client(gateway.url("lat"), message_handler=notices) as client:
        pid_before = await call_text(client, "a__pid")
        for index in range(repeats):
            tool = ("whoami", "add")[index % 2]  # the tool swapped in; the other one leaves the list
            servers = {"a": echo_server("a", tools={"include": [*kept, tool]})}
            filter_runs.append(
                await timed_change(
                    client, notices, cursor, partial(repo.write_profile, "lat", servers), f"a__{tool}",
                    settle_pause(index, repeats),
                )
            )
        pid_after = await call_text(client, "a__pid")
        base = {"a": echo_server("a", tools={"include": kept})}
        for index in range(repeats):
            name = f"n{index}"  # replaces n{index-1}: one new stdio server per change, none piling up
            servers = {**base, name: echo_server(name)}
            stdio_runs.append(
                await timed_change(
                    client, notices, cursor, partial(repo.write_profile, "lat", servers), f"{name}__whoami",
                    settle_pause(index, repeats),
                )
            )
        whoami = await call_text(client, f"n{repeats - 1}__whoami")
    if whoami != f"n{repeats - 1}":
        raise RuntimeError(f"the last added server answered whoami with {whoami!r}")
    result = {
        "quiet_period_ms": QUIET_PERIOD_MS,
        "target_excess_ms": TARGET_EXCESS_MS,
        "watcher_alone_ms": spread(watcher_ms),
        "stdio_server_alone_ms": spread(server_ms),
        "filter": summarize_changes(filter_runs),
        "stdio": summarize_changes(stdio_runs),
        "filter_kept_process": pid_before == pid_after,
    }
    for kind in ("filter", "stdio"):
        excess = result[kind]["listed_minus_quiet_ms"]
        result[kind]["meets_target"] = excess["max"] <= TARGET_EXCESS_MS
        result[kind]["p50_meets_target"] = excess["p50"] <= TARGET_EXCESS_MS
    return result


# --- part 2: no-op reload cost ---------------------------------------------------------------------------


def wait_for_line(gateway: GatewayProcess, cursor: LogCursor, needle: str) -> tuple[list[str], float]:
    """Poll the log until a new line contains `needle`; returns the new lines and when it was seen."""
    collected: list[str] = []
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while time.monotonic() < deadline:
        collected += cursor.new_lines()
        if any(needle in line for line in collected):
            return collected, time.perf_counter()
        if gateway.process.poll() is not None:
            break
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{gateway.name}: no {needle!r} in the log within {CHANGE_TIMEOUT:.0f} s:\n{gateway.log_tail()}")


def noop_reloads(gateway: GatewayProcess, repo: ConfigRepo, trigger: str, count: int) -> dict[str, Any]:
    """`count` reloads that change nothing, by SIGHUP or by rewriting a profile with identical bytes."""
    cursor = LogCursor(gateway.log_path)
    profile = repo.profile_path("p00")
    content = profile.read_bytes()
    wall, in_gateway, cpu = [], [], []
    for index in range(count):
        time.sleep(settle_pause(index, count))
        cursor.skip_to_end()
        cpu_before = cpu_seconds([gateway.pid])
        wall_start, start = time.time(), time.perf_counter()
        if trigger == "sighup":
            os.kill(gateway.pid, signal.SIGHUP)
        else:
            temporary = profile.with_name(f".{profile.name}.tmp")
            temporary.write_bytes(content)
            os.replace(temporary, profile)
        lines, seen = wait_for_line(gateway, cursor, "reload: nothing changed")
        cpu.append(1000 * (cpu_seconds([gateway.pid]) - cpu_before))
        wall.append(1000 * (seen - start))
        began = first_time(lines, "SIGHUP received") if trigger == "sighup" else wall_start
        ended = first_time(lines, "reload: nothing changed")
        if began is not None and ended is not None:
            in_gateway.append(1000 * (ended - began))
        if any("generation" in line and " serving " in line for line in lines):
            raise RuntimeError(f"{gateway.name}: a no-op reload built a new generation")
    return {"wall_ms": spread(wall), "logged_ms": spread(in_gateway), "cpu_ms": spread(cpu)}


def time_loads(config: Path, runs: int) -> dict[str, float]:
    """`gateway.build_generation` (load + validate + resolve) in this process: the core of a reload."""
    from local_mcp_gateway.generation import build_generation
    from local_mcp_gateway.settings import EnvSettings

    settings = EnvSettings()
    durations = []
    for index in range(runs):
        start = time.perf_counter()
        build_generation(config, settings, index + 2)
        durations.append(1000 * (time.perf_counter() - start))
    return spread(durations)


def measure_noop(stack: ExitStack, workdir: Path, profile_counts: Sequence[int], reloads: int) -> dict[str, Any]:
    """Part 2: what a reload that changes nothing costs, by number of profiles."""
    results: dict[str, Any] = {}
    for profiles in profile_counts:
        print(f"noop: {profiles} profiles, {reloads} reloads per trigger", flush=True)
        repo = ConfigRepo(workdir / f"noop-{profiles}-config")
        for index in range(profiles):
            repo.write_profile(f"p{index:02d}", {"clock": {"module": CLOCK_MODULE}})
        gateway = start_gateway(stack, f"gateway-noop-{profiles}", repo.path, workdir, watch=True)
        generation = httpx2.get(f"{gateway.base_url}/status", timeout=5).json()["generation"]
        entry = {
            "sighup": noop_reloads(gateway, repo, "sighup", reloads),
            "rewrite": noop_reloads(gateway, repo, "rewrite", reloads),
            "build_generation_ms": time_loads(repo.path, LOAD_TIMINGS),
            "gateway_rss_kb": status_field(gateway.pid, "VmRSS"),
        }
        status = httpx2.get(f"{gateway.base_url}/status", timeout=5).json()
        if status["generation"] != generation or status["last_reload_error"] is not None:
            raise RuntimeError(f"{gateway.name}: no-op reloads changed the generation or failed: {status}")
        entry["rewrite_minus_quiet_ms"] = shifted(entry["rewrite"]["wall_ms"], -QUIET_PERIOD_MS)
        results[str(profiles)] = entry
        _stop_and_report(gateway)  # now, not at the end: the next gateway gets the machine to itself
    return results


# --- part 3: leak check ----------------------------------------------------------------------------------


async def wait_status(http: httpx2.AsyncClient, gateway: GatewayProcess, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    with anyio.fail_after(CHANGE_TIMEOUT):
        while True:
            body = (await http.get(f"{gateway.base_url}/status")).json()
            if accept(body):
                return body
            if gateway.process.poll() is not None:
                raise RuntimeError(f"{gateway.name} exited:\n{gateway.log_tail()}")
            await anyio.sleep(STATUS_POLL_SECONDS)


async def settled_sample(gateway: GatewayProcess, label: str, cycles: int) -> Sample:
    """A sample once the stopped stdio servers are gone (bounded: a leak shows as extra children)."""
    with anyio.move_on_after(CHILD_SETTLE_SECONDS):
        while True:
            below = gateway.note_children()
            if sum(1 for state in below.values() if state != "Z") <= 1 and "Z" not in below.values():
                break
            await anyio.sleep(STATUS_POLL_SECONDS)
    sample = Sample.take(gateway.pid, label, cycles)
    print(
        f"  {label:<10} cycle {cycles:>3}: children {sample.children} zombies {sample.zombies} fds {sample.fds} "
        f"threads {sample.threads} rss {sample.rss_kb} kB",
        flush=True,
    )
    return sample


async def measure_leak(stack: ExitStack, workdir: Path, cycles: int, warmup: int, max_seconds: float) -> dict[str, Any]:
    """Part 3: `cycles` reloads that each restart a stdio server; the gateway's footprint must stay flat."""
    print(f"leak: up to {cycles} restart cycles or {max_seconds:.0f} s, warm-up {warmup}", flush=True)
    repo = ConfigRepo(workdir / "leak-config")
    phases = ("a", "b")

    def write(cycle: int) -> None:
        repo.write_profile("leak", {"x": echo_server("x", env={"RELOAD_BENCH_PHASE": phases[cycle % 2]})})

    write(0)
    gateway = await anyio.to_thread.run_sync(
        lambda: start_gateway(stack, "gateway-leak", repo.path, workdir, watch=False)
    )
    samples: list[Sample] = []
    restart_ms: list[float] = []
    done = 0
    timed_out = False
    async with sdk_client(gateway.url("leak")) as client, httpx2.AsyncClient(timeout=10) as http:
        first_pid = await call_text(client, "x__pid")
        samples.append(await settled_sample(gateway, "start", 0))
        began = time.monotonic()
        generation = (await http.get(f"{gateway.base_url}/status")).json()["generation"]
        while done < cycles:
            if time.monotonic() - began > max_seconds:
                timed_out = True
                break
            write(done + 1)
            start = time.perf_counter()
            os.kill(gateway.pid, signal.SIGHUP)
            expected = generation + 1
            await wait_status(
                http,
                gateway,
                lambda body: body["generation"] >= expected
                and body["profiles"]["leak"]["servers"]["x"]["state"] == "ready",
            )
            restart_ms.append(1000 * (time.perf_counter() - start))
            generation = expected
            done += 1
            if done == warmup:
                samples.append(await settled_sample(gateway, "warm-up", done))
            elif done % LEAK_SAMPLE_EVERY == 0 and done < cycles:
                samples.append(await settled_sample(gateway, "along", done))
        last_pid = await call_text(client, "x__pid")
        samples.append(await settled_sample(gateway, "end", done))
    serving_child = int(last_pid) in descendants(gateway.pid)
    return {
        "cycles": done,
        "stopped_by_time": timed_out,
        "seconds": round(time.monotonic() - began, 1),
        "restart_ms": spread(restart_ms),
        "samples": [asdict(sample) for sample in samples],
        "client_session_kept": True,
        "served_by_new_process": last_pid != first_pid and serving_child,
        "verdict": leak_verdict(samples, warmup),
    }


def leak_verdict(samples: Sequence[Sample], warmup: int) -> dict[str, Any]:
    """Compare the end with the warm-up sample (the start when the run ended before the warm-up)."""
    start, end = samples[0], samples[-1]
    baseline = next((s for s in samples if s.label == "warm-up"), start)
    rss_growth = end.rss_kb - baseline.rss_kb
    cycles_after = max(1, end.cycles - baseline.cycles)
    verdict = {
        "baseline": baseline.label,
        "children_flat": end.children == start.children and end.zombies == 0,
        "fds_flat": end.fds - baseline.fds <= FD_TOLERANCE,
        "fd_growth": end.fds - baseline.fds,
        "threads_growth": end.threads - baseline.threads,
        "rss_flat": rss_growth <= RSS_TOLERANCE_KB,
        "rss_growth_kb": rss_growth,
        "rss_growth_kb_per_cycle": round(rss_growth / cycles_after, 2),
    }
    middle = min(samples, key=lambda s: abs(s.cycles - (baseline.cycles + end.cycles) / 2))
    if baseline.cycles < middle.cycles < end.cycles:
        verdict["rss_growth_kb_second_half"] = end.rss_kb - middle.rss_kb
        verdict["second_half_from_cycle"] = middle.cycles
    verdict["flat"] = verdict["children_flat"] and verdict["fds_flat"] and verdict["rss_flat"]
    return verdict


# --- report ----------------------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    out: list[str] = []
    if "latency" in results:
        lat = results["latency"]
        out.append(f"== latency: file write -> connected client lists the new tool (quiet period {QUIET_PERIOD_MS} ms)")
        out.append(f"{'':36}{'min':>7} {'p50':>7} {'max':>7}   (ms)")
        out.append(f"{'watcher alone: write -> batch':36}{fmt(lat['watcher_alone_ms'])}")
        out.append(f"{'stdio server alone: spawn -> lists':36}{fmt(lat['stdio_server_alone_ms'])}")
        for kind, title in (("filter", "tools filter change (no process)"), ("stdio", "new stdio server")):
            part = lat[kind]
            out.append(f"-- {title}")
            out.append(f"{'  write -> listed':36}{fmt(part['listed_ms'])}")
            out.append(f"{'  listed minus quiet period':36}{fmt(part['listed_minus_quiet_ms'])}")
            out.append(f"{'  write -> first list_changed':36}{fmt(part['notice_ms'])}")
            out.append(f"{'  write -> generation applied (log)':36}{fmt(part['applied_ms'])}")
            if part["applied_to_ready_ms"].get("n"):
                out.append(f"{'  applied -> server ready (log)':36}{fmt(part['applied_to_ready_ms'])}")
            out.append(f"{'  last log line -> listed':36}{fmt(part['last_log_to_listed_ms'])}")
            verdict = "met" if part["meets_target"] else ("met at p50, missed at max" if part["p50_meets_target"] else "MISSED")
            out.append(f"  target <= {TARGET_EXCESS_MS:.0f} ms beyond the quiet period: {verdict}")
        out.append(f"  filter change kept the server's process: {'yes' if lat['filter_kept_process'] else 'NO'}")
    if "noop" in results:
        out.append("== no-op reload (nothing changed): wall and gateway CPU per reload")
        out.append(f"{'':36}{'min':>7} {'p50':>7} {'max':>7}   (ms)")
        for profiles, entry in results["noop"].items():
            out.append(f"-- {profiles} profile(s) of `module: {CLOCK_MODULE}`, gateway RSS {entry['gateway_rss_kb']} kB")
            out.append(f"{'  SIGHUP -> log line (wall)':36}{fmt(entry['sighup']['wall_ms'])}")
            out.append(f"{'  SIGHUP -> log line (log stamps)':36}{fmt(entry['sighup']['logged_ms'])}")
            out.append(f"{'  SIGHUP: gateway CPU':36}{fmt(entry['sighup']['cpu_ms'])}")
            out.append(f"{'  rewrite -> log line (wall)':36}{fmt(entry['rewrite']['wall_ms'])}")
            out.append(f"{'  rewrite minus quiet period':36}{fmt(entry['rewrite_minus_quiet_ms'])}")
            out.append(f"{'  rewrite: gateway CPU':36}{fmt(entry['rewrite']['cpu_ms'])}")
            out.append(f"{'  build_generation (this process)':36}{fmt(entry['build_generation_ms'])}")
    if "leak" in results:
        leak = results["leak"]
        out.append(
            f"== leak check: {leak['cycles']} stdio restart cycles in {leak['seconds']} s"
            + (" (stopped by the time bound)" if leak["stopped_by_time"] else "")
        )
        out.append(f"  SIGHUP -> restarted server ready (ms): {fmt(leak['restart_ms'])}")
        out.append(f"  {'sample':<10} {'cycle':>5} {'children':>8} {'zombies':>7} {'fds':>5} {'threads':>7} {'rss kB':>8}")
        for s in leak["samples"]:
            out.append(
                f"  {s['label']:<10} {s['cycles']:>5} {s['children']:>8} {s['zombies']:>7} {s['fds']:>5} "
                f"{s['threads']:>7} {s['rss_kb']:>8}"
            )
        v = leak["verdict"]
        out.append(
            f"  verdict (end vs {v['baseline']}): children {'flat' if v['children_flat'] else 'GROWING'}, "
            f"fds {'flat' if v['fds_flat'] else 'GROWING'} ({v['fd_growth']:+d}), "
            f"rss {'flat' if v['rss_flat'] else 'GROWING'} ({v['rss_growth_kb']:+d} kB, "
            f"{v['rss_growth_kb_per_cycle']:+.1f} kB/cycle"
            + (
                f"; {v['rss_growth_kb_second_half']:+d} kB from cycle {v['second_half_from_cycle']}"
                if "rss_growth_kb_second_half" in v
                else ""
            )
            + f"), threads {v['threads_growth']:+d}: "
            + ("NO LEAK" if v["flat"] else "LEAK")
        )
        out.append(f"  the client session lived through every cycle and reached the newest process: "
                   f"{'yes' if leak['served_by_new_process'] else 'NO'}")
    return "\n".join(out)


# --- main ------------------------------------------------------------------------------------------------


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="reload-bench-") as folder:
        path = Path(folder)
        try:
            yield path
        finally:
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                for log in path.glob("*.log"):
                    (keep / log.name).write_bytes(log.read_bytes())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="parts to run")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="latency: changes per kind")
    parser.add_argument("--noop-profiles", type=int, nargs="+", default=list(NOOP_PROFILES), help="profile counts")
    parser.add_argument("--noop-reloads", type=int, default=DEFAULT_NOOP_RELOADS, help="no-op reloads per trigger")
    parser.add_argument("--leak-cycles", type=int, default=LEAK_CYCLES)
    parser.add_argument("--leak-warmup", type=int, default=LEAK_WARMUP_CYCLES)
    parser.add_argument("--leak-seconds", type=float, default=LEAK_SECONDS, help="no leak cycle starts after this")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--keep-logs", type=Path, help="copy the gateways' logs into this folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the parts asked for, print the figures; 0 when measured (missed targets are reported, not fatal)."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # so the exit stack stops everything
    results: dict[str, Any] = {}
    started = time.monotonic()
    with _workdir(args.keep_logs) as workdir, ExitStack() as stack:
        try:
            parts: dict[str, Callable[[], dict[str, Any]]] = {
                "latency": lambda: anyio.run(measure_latency, stack, workdir, args.repeats),
                "noop": lambda: measure_noop(stack, workdir, args.noop_profiles, args.noop_reloads),
                "leak": lambda: anyio.run(
                    measure_leak, stack, workdir, args.leak_cycles, args.leak_warmup, args.leak_seconds
                ),
            }
            durations: dict[str, float] = {}
            for part in PARTS:
                if part in args.only:
                    part_started = time.monotonic()
                    results[part] = parts[part]()
                    durations[part] = round(time.monotonic() - part_started, 1)
        except RuntimeError as exc:
            print(f"reload: {exc}", file=sys.stderr)
            return 1
    results["seconds"] = {"total": round(time.monotonic() - started, 1), **durations}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(render(results))
    print("(seconds: " + ", ".join(f"{name} {value}" for name, value in results["seconds"].items()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
