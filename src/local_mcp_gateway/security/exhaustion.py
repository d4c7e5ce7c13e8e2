"""Running out of file descriptors: log it once per interval, not once per refused connection.

When the process hits its open-file limit, every accept fails with EMFILE (ENFILE for the whole system). asyncio
reports each failure through the loop's exception handler (logger `asyncio`, with a traceback), and Hypercorn
may log the connections it could not serve (`hypercorn.error`): a client flood then writes thousands of traceback
lines while the gateway itself is fine and recovers as soon as descriptors are free. `ExhaustionFilter` lets the
first such record of an interval through (without its traceback, with the number held back since the last one)
and drops the rest of the interval.

asyncio (3.11) also schedules one accept retry per failed accept; retries still pending when the server closes
fail with `ValueError: Invalid file descriptor: -1` ("Exception in callback BaseSelectorEventLoop._start_serving"),
thousands of tracebacks at shutdown after a flood. Only the exhaustion path schedules those retries, so the filter
drops them.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["EXHAUSTION_LOG_INTERVAL", "ExhaustionFilter", "install_accept_error_filter"]

EXHAUSTION_LOG_INTERVAL = 60.0
"""Seconds between two log lines about running out of file descriptors."""

EXHAUSTION_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""The errors asyncio treats as "out of system resource" when accepting."""

FILTERED_LOGGERS = ("asyncio", "hypercorn.error")
"""Where accept failures are logged: asyncio's exception handler and Hypercorn's error log."""

_MARKERS = ("out of system resource", "too many open files")


def _is_stale_accept_retry(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return isinstance(exc, ValueError) and "_start_serving" in str(record.msg)


def _is_exhaustion(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, OSError) and exc.errno in EXHAUSTION_ERRNOS:
        return True
    try:
        message = record.getMessage().lower()
    except Exception:
        return False
    return any(marker in message for marker in _MARKERS)


class ExhaustionFilter(logging.Filter):
    """Passes one descriptor-exhaustion record per `interval` (traceback dropped), and every other record."""

    def __init__(self, interval: float = EXHAUSTION_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if _is_stale_accept_retry(record):
            return False
        if not _is_exhaustion(record):
            return True
        now = self.clock()
        with self._lock:
            if self._last is not None and now - self._last < self.interval:
                self._held += 1
                return False
            held, self._held, self._last = self._held, 0, now
        exc = record.exc_info[1] if record.exc_info else None
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else record.getMessage()
        record.msg = (
            "out of file descriptors, new connections are refused (%s); %d more like this since the last report; "
            "next report in %d s at the earliest; raise the open-file limit (ulimit -n) if this persists"
        )
        record.args = (reason, held, int(self.interval))
        record.exc_info = None
        record.exc_text = None
        return True


def install_accept_error_filter(interval: float = EXHAUSTION_LOG_INTERVAL) -> None:
    """Put one `ExhaustionFilter` on each logger accept failures go to (idempotent)."""
    for name in FILTERED_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(existing, ExhaustionFilter) for existing in target.filters):
            target.addFilter(ExhaustionFilter(interval))
