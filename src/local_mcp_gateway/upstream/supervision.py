"""When a supervised upstream connects again: capped exponential backoff with jitter, and no state it cannot leave.

A connection that ends is tried again, always: after a crash soon after starting the wait doubles (0.5 s, 1 s,
2 s, ... up to `BACKOFF_MAX`), with jitter so that many upstreams that fell together do not come back in
lockstep. A connection that served for `STABLE_AFTER` seconds counts as healthy: its next crash starts the series
from the beginning. After `FAILING_AFTER` crashes in a row the server is shown as `failed` while it keeps being
retried. The wait ends early when asked: a reload (SIGHUP or a file change) retries at once, and a client call
does so too once the last attempt is at least `CALL_RETRY_GAP` seconds ago.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "CALL_RETRY_GAP",
    "FAILING_AFTER",
    "STABLE_AFTER",
    "Backoff",
    "RetrySchedule",
    "first_of",
]

BACKOFF_INITIAL = 0.5
"""Seconds before the first restart after a crash; doubled per consecutive crash."""

BACKOFF_MAX = 30.0
"""Longest wait between two attempts (before jitter): a server that is down is tried at least this often."""

JITTER = 0.25
"""Each wait is spread by up to this fraction either way (never beyond `BACKOFF_MAX`)."""

STABLE_AFTER = 10.0
"""Seconds of uninterrupted service after which the crash count starts again from zero."""

FAILING_AFTER = 5
"""After this many crashes in a row the server shows as `failed` (it is still retried)."""

CALL_RETRY_GAP = 1.0
"""A client call wakes a waiting retry only when the last attempt began at least this long ago: a burst of calls
to a server that is down never becomes a burst of process starts."""


@dataclass
class Backoff:
    """The crash count of one upstream and the wait it earns (a pure policy: no clock, no sleeping)."""

    initial: float = BACKOFF_INITIAL
    maximum: float = BACKOFF_MAX
    stable_after: float = STABLE_AFTER
    failing_after: int = FAILING_AFTER
    jitter: float = JITTER
    rng: Callable[[], float] = field(default=random.random, repr=False)
    crashes: int = 0

    def crashed(self, served_for: float) -> float:
        """Count a crash after `served_for` seconds of service (0: it never became ready); return the wait."""
        if served_for >= self.stable_after:
            self.crashes = 0
        self.crashes += 1
        base = min(self.initial * 2 ** min(self.crashes - 1, 32), self.maximum)
        spread = 1.0 + self.jitter * (2.0 * self.rng() - 1.0)
        return min(base * spread, self.maximum)

    @property
    def failing(self) -> bool:
        """Whether the crashes in a row reached `failing_after` (shown as `failed`)."""
        return self.crashes >= self.failing_after


class RetrySchedule:
    """The wait before the next attempt of one upstream, which a reload or a client call can cut short."""

    def __init__(self) -> None:
        self.next_retry_at: float | None = None
        """Wall-clock time of the next attempt while waiting (for /status), else None."""
        self.last_attempt = 0.0
        """Monotonic time the last attempt began."""
        self._wake = anyio.Event()

    def attempt_started(self) -> None:
        self.last_attempt = time.monotonic()

    async def wait(self, delay: float, stop: anyio.Event) -> None:
        """Sleep `delay` seconds, or until `stop` is set or `wake()` is called."""
        self._wake = anyio.Event()
        self.next_retry_at = time.time() + delay
        try:
            with anyio.move_on_after(delay):
                await first_of(stop, self._wake)
        finally:
            self.next_retry_at = None

    @property
    def waiting(self) -> bool:
        return self.next_retry_at is not None

    def wake(self) -> bool:
        """Retry now (a reload); returns whether a wait was cut short."""
        if self.next_retry_at is None:
            return False
        self._wake.set()
        return True

    def wake_for_call(self) -> bool:
        """Retry now for a client call, unless the last attempt is too recent (`CALL_RETRY_GAP`)."""
        if time.monotonic() - self.last_attempt < CALL_RETRY_GAP:
            return False
        return self.wake()


async def first_of(*events: anyio.Event) -> None:
    """Return as soon as one of `events` is set."""
    async with anyio.create_task_group() as waiters:

        async def until(event: anyio.Event) -> None:
            await event.wait()
            waiters.cancel_scope.cancel()

        for event in events:
            waiters.start_soon(until, event)
