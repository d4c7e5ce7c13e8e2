"""Process handling shared by the benchmarks: own process groups, ready lines, CPU time and memory from /proc.

Every process a benchmark starts goes through `spawn`, into its own process group, and is stopped by that
group (SIGTERM, then SIGKILL) when the benchmark's `ExitStack` closes: a benchmark stops only what it started.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx2

__all__ = [
    "POLL_SECONDS",
    "READY_PREFIX",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "Service",
    "age_identity",
    "child_environment",
    "cpu_seconds",
    "descendants",
    "free_port",
    "read_ready_line",
    "rss_bytes",
    "spawn",
    "wait_http",
]

READY_PREFIX = "READY "
"""The line `upstream.py` and `raw_forwarder.py` print on stdout once they listen."""

START_TIMEOUT = 60.0
"""Seconds a process may take to listen (or, for the gateway, to report its upstreams ready)."""
STOP_TIMEOUT = 10.0
"""Seconds a process group gets after SIGTERM before it is killed."""
POLL_SECONDS = 0.05


@dataclass
class Service:
    """A process this benchmark started in its own process group; `stop()` ends the whole group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the whole process group, then SIGKILL if the leader has not exited in time."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()


def child_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def spawn(
    services: ExitStack,
    name: str,
    argv: list[str],
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    reports_ready: bool = False,
) -> Service:
    """Start `argv` in its own process group; stopped when `services` closes. Output goes to `<name>.log`.

    With `reports_ready`, stdout stays a pipe for `read_ready_line` (those children print nothing else there).
    """
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE if reports_ready else log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env or child_environment(),
            cwd=workdir,
            start_new_session=True,
        )
    service = Service(name, process, log_path)
    services.callback(service.stop)
    return service


def read_ready_line(service: Service) -> str:
    """The URL from the child's ``READY <url>`` line; fails with its log if it exits or takes too long."""
    assert service.process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    buffer = b""
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            break
        ready, _, _ = select.select([service.process.stdout], [], [], POLL_SECONDS)
        if not ready:
            continue
        chunk = os.read(service.process.stdout.fileno(), 4096)
        if not chunk:
            break
        buffer += chunk
        for line in buffer.decode(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
    raise RuntimeError(f"{service.name} did not report ready within {START_TIMEOUT:.0f} s:\n{service.log_tail()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time (user + system) used so far by every thread of these processes, from /proc (nanoseconds)."""
    total_ns = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                    total_ns += int(stat.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total_ns / 1e9


def descendants(pid: int) -> list[int]:
    """Every process below `pid` in the process tree (the stdio upstream of a hop, and its children)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _is_ok(response: httpx2.Response) -> bool:
    return response.status_code == 200


def wait_http(service: Service, url: str, accept: Callable[[httpx2.Response], bool] = _is_ok) -> None:
    """Poll `url` until `accept` likes the answer; fails with the service's log if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}")
        try:
            if accept(httpx2.get(url, timeout=1)):
                return
        except httpx2.TransportError:
            pass
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{service.name} was not ready at {url} within {START_TIMEOUT:.0f} s:\n{service.log_tail()}")


def rss_bytes(pid: int) -> int:
    """The resident set size of this one process (not its children), from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def age_identity() -> str:
    """A fresh age identity (``AGE-SECRET-KEY-1...``) for a gateway's MCP_GATEWAY_AGE_KEY; never printed."""
    from pyrage import x25519

    return str(x25519.Identity.generate())
