"""Rate limiting: a token bucket per client address, with a bounded number of tracked clients."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from local_mcp_gateway.security.limits import MAX_TRACKED_CLIENTS

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per client address: `per_minute` requests in a burst, refilled at `per_minute`/60 a second.

    At most `max_clients` buckets are kept, least recently seen dropped first. `clock` returns seconds (monotonic).
    """

    def __init__(
        self, per_minute: int, *, max_clients: int = MAX_TRACKED_CLIENTS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive (0 means no limiter at all)")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, client: str) -> int | None:
        """Take one token for `client`: None when allowed, else the whole seconds to wait (>= 1)."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(self.capacity, now)
            self._buckets[client] = bucket
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))

    def __len__(self) -> int:
        return len(self._buckets)

    def __repr__(self) -> str:
        return f"RateLimiter({int(self.capacity)}/min, {len(self._buckets)} clients)"
