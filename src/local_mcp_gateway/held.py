"""Upstream calls held open while a 2026-07-28 client answers an `input_required` round (see `mrtr.py`).

A held call runs in the profile's task group, not in the request that started it: the request ends with the
`input_required` result while the upstream keeps waiting for its answer. The client's retry finds the call by
the id sealed into its `requestState` and hands over the answers. A held call is bounded twice: it is given up
(the upstream's questions answered with an error, the call cancelled upstream) when no retry comes within the
hold, and when more calls than `MAX_HELD_CALLS` wait in one profile, the one waiting longest is given up. A retry
that finds no held call (another replica, a restart, after the hold) runs the call again from the answers.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

if TYPE_CHECKING:
    from local_mcp_gateway.mrtr import InputRound

__all__ = ["DEFAULT_HOLD_SECONDS", "MAX_HELD_CALLS", "HeldCall", "HeldCalls", "settle"]

logger = logging.getLogger(__name__)

DEFAULT_HOLD_SECONDS = 300.0
"""How long a call waits for the client's retry (`security.input_round_hold_seconds`)."""

MAX_HELD_CALLS = 256
"""Most calls of one profile waiting for a client's answers at once; past it the longest waiting is given up."""


class HeldCall:
    """One upstream call, run by `HeldCalls.start`, and the round of questions it waits on."""

    def __init__(self, round_: InputRound) -> None:
        self.id = secrets.token_urlsafe(16)
        self.round = round_
        self.done = anyio.Event()
        self.outcome: dict[str, Any] = {}
        self.scope = anyio.CancelScope()
        self.expires = float("inf")

    def give_up(self) -> None:
        self.round.end()
        self.scope.cancel()


class HeldCalls:
    """The calls of one profile that wait for a client's retry, by id; bounded in time and count."""

    def __init__(self, hold: float = DEFAULT_HOLD_SECONDS, limit: int = MAX_HELD_CALLS) -> None:
        self.hold = hold
        self.limit = limit
        self._waiting: OrderedDict[str, HeldCall] = OrderedDict()

    def __len__(self) -> int:
        return len(self._waiting)

    def waiting(self) -> int:
        """Calls held for a retry that has not come yet, within their hold (shown in `/status`)."""
        now = anyio.current_time()
        return sum(1 for held in self._waiting.values() if held.expires > now)

    def start(self, tg: TaskGroup, round_: InputRound, call: Callable[[Any], Awaitable[dict[str, Any]]]) -> HeldCall:
        """Run `call(round_)` in `tg`, outside the request that starts it."""
        held = HeldCall(round_)

        async def run() -> None:
            try:
                with held.scope:
                    try:
                        held.outcome["result"] = await call(round_)
                    except Exception as exc:  # handed to the request that is waiting, if any
                        held.outcome["error"] = exc
            finally:  # also when the profile's task group is cancelled (the profile stops)
                round_.end()
                held.done.set()  # a call still kept waits with its outcome for the retry (or the hold's end)

        tg.start_soon(run)
        return held

    def keep(self, held: HeldCall) -> None:
        """Hold `held` for the client's retry, for at most `hold` seconds."""
        self._sweep()
        held.expires = anyio.current_time() + self.hold
        held.scope.deadline = held.expires
        self._waiting[held.id] = held
        while len(self._waiting) > self.limit:
            _, oldest = self._waiting.popitem(last=False)
            logger.warning(
                "%d calls wait for clients' answers (most %d): the one waiting longest is given up",
                len(self._waiting) + 1, self.limit,
            )
            oldest.give_up()

    def take(self, held_id: str) -> HeldCall | None:
        """The call a retry continues, if this process holds it still."""
        self._sweep()
        held = self._waiting.pop(held_id, None)
        if held is not None:
            held.expires = float("inf")
            held.scope.deadline = float("inf")
        return held

    def stop(self, held: HeldCall) -> None:
        self._waiting.pop(held.id, None)
        held.expires = float("inf")
        held.give_up()

    def stop_all(self) -> None:
        """Give up every waiting call (the profile stops)."""
        while self._waiting:
            _, held = self._waiting.popitem()
            held.give_up()

    def _sweep(self) -> None:
        now = anyio.current_time()
        for held_id in [held_id for held_id, held in self._waiting.items() if held.expires <= now]:
            self._waiting.pop(held_id).give_up()


async def settle(held: HeldCall, collect_window: float) -> None:
    """Wait until the call completes or asks; questions asked together within `collect_window` form one round."""
    if held.done.is_set():
        return
    async with anyio.create_task_group() as tg:

        async def completed() -> None:
            await held.done.wait()
            tg.cancel_scope.cancel()

        async def asked() -> None:
            await held.round.need_input.wait()
            await anyio.sleep(collect_window)
            tg.cancel_scope.cancel()

        tg.start_soon(completed)
        tg.start_soon(asked)
