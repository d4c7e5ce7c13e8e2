"""The OAuth login waits of an upstream: `needs_auth` while a login is due, a step-up shown while the connection
serves, and the attempt going on once the login is done. Mixed into `Upstream`; the OAuth manager calls these."""

from __future__ import annotations

import anyio

from local_mcp_gateway.upstream.common import Listings, UpstreamState, describe
from local_mcp_gateway.upstream.supervision import first_of

__all__ = ["NEEDS_AUTH_RETRY", "LoginWaits"]

NEEDS_AUTH_RETRY = 5.0
"""Seconds between attempts while a server waits for an OAuth login (tokens may arrive from `auth login`)."""


class LoginWaits:
    """The login half of `Upstream` (it provides `state`, `error`, `_init_scope`, `_authorized`, `_stop`, ...)."""

    def mark_needs_auth(self, url: str) -> None:
        """An OAuth login is needed: show `url` in /status; the connection attempt waits, unbounded by the timeout."""
        self.auth_url = url
        self.state = UpstreamState.NEEDS_AUTH
        self.error = "waiting for an OAuth login"
        if self._init_scope is not None:
            self._init_scope.deadline = float("inf")
        self._ready_or_failed.set()
        self._set_listings(Listings())

    def mark_step_up(self, url: str, scope: str | None) -> None:
        """A call needs a wider `scope`: show the login `url`; the connection keeps serving meanwhile."""
        self.auth_url = url
        self.auth_scope = scope

    def mark_authorized(self) -> None:
        """The login finished: the connection attempt continues, bounded by the timeout again."""
        self.auth_url = None
        self.auth_scope = None
        if self.state == UpstreamState.NEEDS_AUTH:
            self.state = UpstreamState.STARTING
            self.error = None
        if self._init_scope is not None:
            self._init_scope.deadline = anyio.current_time() + self._startup_timeout
        self._authorized.set()

    async def _wait_for_login(self, exc: BaseException) -> None:
        """Stay `needs_auth` until a login completes (or `NEEDS_AUTH_RETRY` passes), without counting a crash."""
        if self.state != UpstreamState.NEEDS_AUTH:
            self.state = UpstreamState.NEEDS_AUTH
        self.error = describe(exc)
        self._ready_or_failed.set()
        self._authorized = anyio.Event()
        with anyio.move_on_after(NEEDS_AUTH_RETRY):
            await first_of(self._stop, self._authorized)
