"""A lock file in the shared state folder: one replica at a time does a thing (an OAuth refresh), the others wait.

Several gateway processes (replicas, or a gateway and an `auth` command) share `state/`, possibly over a network
filesystem where `flock` is absent or unreliable. The lock is therefore a plain file created with `O_CREAT |
O_EXCL` (atomic on local filesystems and NFSv3+), holding who took it and until when (a lease). A holder that is
killed leaves its file behind: once the lease has run out (`stale_after`), another process takes it over by
renaming the file away (only one renamer wins) and checking that what it removed is the stale file it judged
(a fresh lock removed by a late renamer is put back). Within one process an `anyio.Lock` per file queues the
tasks, so the file is only contended between processes.

The lock file holds no secret (an owner id and two times) and is written 0600 like everything in `state/`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio

from local_mcp_gateway.state import FILE_MODE, make_dirs

__all__ = ["LOCK_SUFFIX", "LockTimeout", "StateLock"]

logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"

DEFAULT_STALE_AFTER = 90.0
"""Seconds after which a lock whose holder never released it is taken over (longer than any refresh takes)."""

DEFAULT_WAIT = 120.0
"""Longest wait for a lock before `LockTimeout` (a little more than one stale period)."""

POLL_MIN, POLL_MAX = 0.02, 0.25
"""Polling interval while another process holds the lock: starts short, grows to this bound."""

_local_locks: weakref.WeakValueDictionary[str, anyio.Lock] = weakref.WeakValueDictionary()


class LockTimeout(TimeoutError):
    """The lock stayed held by another process for longer than the caller would wait."""


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class StateLock:
    """A named lock file, `path`, shared by every process that sees the same folder.

    `async with lock.hold():` waits (bounded by `wait`) and holds it; `stale_after` is the lease: a lock older than
    that is considered abandoned and taken over. `clock` is the wall clock (leases are compared across machines,
    so keep their clocks in sync: NTP, as Kubernetes nodes are).
    """

    def __init__(self, path: Path, *, stale_after: float = DEFAULT_STALE_AFTER, wait: float = DEFAULT_WAIT,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.stale_after = stale_after
        self.wait = wait
        self.clock = clock
        self.takeovers = 0
        """How often this lock object took over an abandoned lock file (for tests and the log)."""
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"StateLock({str(self.path)!r}, held={self._token is not None})"

    def _local(self) -> anyio.Lock:
        key = str(self.path)
        lock = _local_locks.get(key)
        if lock is None:
            lock = anyio.Lock()
            _local_locks[key] = lock
        return lock

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold the lock for the body; raises `LockTimeout` when it cannot be had within `wait` seconds."""
        local = self._local()  # a strong reference for as long as this task waits or holds
        deadline = time.monotonic() + self.wait
        with anyio.move_on_after(self.wait) as waited:
            await local.acquire()
        if waited.cancelled_caught:
            raise LockTimeout(f"{self.path}: still held by another task after {self.wait:g} s")
        try:
            await self._acquire_file(deadline)
            try:
                yield
            finally:
                self._release_file()
        finally:
            local.release()

    # -- the file ----------------------------------------------------------------------------------------------

    async def _acquire_file(self, deadline: float) -> None:
        delay = POLL_MIN
        while True:
            try:
                if self._try_create():
                    return
                self._take_over_if_stale()
            except OSError as exc:  # the shared volume is briefly unavailable: keep trying until the deadline
                logger.warning("lock %s cannot be taken (%s); trying again", self.path, type(exc).__name__)
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{self.path}: held by another gateway for more than {self.wait:g} s; if no "
                                  f"gateway is running, delete the file")
            await anyio.sleep(delay)
            delay = min(POLL_MAX, delay * 2)

    def _try_create(self) -> bool:
        make_dirs(self.path.parent)
        token = _owner_id()
        now = self.clock()
        body = json.dumps({"owner": token, "acquired": now, "expires": now + self.stale_after}).encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return False
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._token = token
        return True

    def _read(self, path: Path) -> dict | None:
        try:
            value = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return {}  # being written (or damaged): judged by its age below
        return value if isinstance(value, dict) else {}

    def _expires(self, value: dict, path: Path) -> float | None:
        expires = value.get("expires")
        if isinstance(expires, int | float):
            return float(expires)
        try:  # unreadable content: the file's age decides
            return path.stat().st_mtime + self.stale_after
        except FileNotFoundError:
            return None

    def _take_over_if_stale(self) -> None:
        seen = self._read(self.path)
        if seen is None:
            return  # released meanwhile: the next create attempt may win
        expires = self._expires(seen, self.path)
        if expires is None or self.clock() < expires:
            return
        aside = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another process took it over first
        removed = self._read(aside)
        if removed is not None and seen.get("owner") != removed.get("owner") and removed.get("owner"):
            # We renamed away a lock created after our look (another process took over first): put it back.
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        else:
            self.takeovers += 1
            logger.warning("lock %s was abandoned by %s (lease ran out); taking it over", self.path,
                           seen.get("owner", "an unknown holder"))
        with contextlib.suppress(OSError):
            os.unlink(aside)

    def _release_file(self) -> None:
        token, self._token = self._token, None
        try:
            current = self._read(self.path)
        except OSError:
            logger.warning("lock %s cannot be read to release it; its lease lets it go", self.path)
            return
        if current is None or current.get("owner") != token:
            logger.warning("lock %s was taken over while held (held longer than %g s)", self.path, self.stale_after)
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
