"""OAuth state shared by gateway replicas: one refresh at a time across processes, the others reuse its result.

Authorization servers rotate refresh tokens and treat a reused one as theft (the whole grant is revoked). Replicas
sharing `state/` therefore refresh a server's tokens under a lock file next to them
(`state/oauth/<key>/.refresh.lock`, see `replicas.lock`): the first to find the token due takes the lock and
refreshes; the others wait for the lock, read the tokens again, find them fresh and send them. A replica killed
mid-refresh leaves the lock behind; its lease runs out and the next one takes it over.

The state folder may be briefly unreachable (a network volume): the tokens in memory keep being used, and reading
is tried again on the next request.
"""

from __future__ import annotations

import os
from contextlib import AbstractAsyncContextManager
from typing import Any

from local_mcp_gateway.errors import UpstreamError
from local_mcp_gateway.replicas.lock import LockTimeout, StateLock

__all__ = ["REFRESH_LOCK_NAME", "RefreshTurn", "refresh_lock", "state_reachable"]

REFRESH_LOCK_NAME = ".refresh.lock"
"""The lock file in a server's state folder (a leading dot: `secret rotate` and listings skip it)."""

REFRESH_LEASE = 90.0
"""Seconds after which a refresh lock left by a killed replica is taken over (a refresh takes at most the
authorization-server timeout, 30 s)."""

REFRESH_WAIT = 120.0
"""Longest wait for another replica's refresh before the request fails (it is retried like any upstream error)."""


def refresh_lock(storage: Any) -> StateLock:
    """The lock guarding the refresh of the tokens `storage` (a `StateTokenStorage`) holds."""
    folder = storage.store.path_of(storage.entry("tokens")).parent
    return StateLock(folder / REFRESH_LOCK_NAME, stale_after=REFRESH_LEASE, wait=REFRESH_WAIT)


def state_reachable(storage: Any) -> bool:
    """Whether the tokens file of `storage` can be looked at now (absent is fine; an I/O error is not)."""
    try:
        os.stat(storage.store.state_dir)
        storage.store.path_of(storage.entry("tokens")).stat()
    except FileNotFoundError:
        return os.path.isdir(storage.store.state_dir)
    except OSError:
        return False
    return True


class RefreshTurn:
    """Holds a server's refresh lock from the moment a refresh is found due until the refreshed tokens are stored."""

    def __init__(self, storage: Any, label: str) -> None:
        self.lock = refresh_lock(storage)
        self.label = label
        self._held: AbstractAsyncContextManager[None] | None = None

    async def take(self) -> None:
        held = self.lock.hold()
        try:
            await held.__aenter__()
        except LockTimeout:
            raise UpstreamError(f"{self.label}: another gateway has been refreshing the OAuth tokens for more than "
                                f"{REFRESH_WAIT:g} s; trying again") from None
        self._held = held

    async def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await held.__aexit__(None, None, None)
