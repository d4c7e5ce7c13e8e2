"""How much one profile's clients can make the gateway hold at once: requests being answered, and bytes of
answers not yet read.

Every POST to a profile's endpoint counts as a call in flight until its answer has been handed to the client's
connection in full; each body chunk of an answer counts as buffered while it is being sent (a client that does not
read keeps it there). When either reaches its cap (`security.max_calls_in_flight`,
`security.max_buffered_result_bytes`), a new request gets a JSON-RPC error at once, naming the cap; `initialize`,
`ping`, notifications and answers to the server's own questions still pass (a cancellation is how calls end). An answer that would not
fit in the bytes left is replaced by an error before it is sent (`LazyStreamTransport`). Once the clients go, what
they held is released.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CallBudget"]

logger = logging.getLogger(__name__)

BUSY_CODE = -32000
"""JSON-RPC code of the "profile busy" and "answer too large" errors (server error range: retry later)."""


BIG_ALLOCATION = 1024 * 1024
"""Allocations at least this big get pages of their own (glibc `M_MMAP_THRESHOLD`), so they go back to the system
when freed instead of staying in the heap: memory held for a big answer returns once the answer is gone."""

_M_MMAP_THRESHOLD = -3
_tuned = False


def tune_allocator() -> None:
    """Give big allocations pages of their own (glibc only; elsewhere nothing happens). Idempotent."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, BIG_ALLOCATION)
    except OSError:  # pragma: no cover - not glibc
        pass


class CallBudget:
    """The calls in flight and answer bytes buffered of one profile, against their caps."""

    def __init__(self, slug: str, max_calls: int, max_bytes: int) -> None:
        tune_allocator()
        self.slug = slug
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self.calls = 0
        self.buffered = 0
        self.refused = 0

    def configure(self, max_calls: int, max_bytes: int) -> None:
        self.max_calls = max_calls
        self.max_bytes = max_bytes

    def status(self) -> dict[str, int]:
        return {"calls_in_flight": self.calls, "buffered_result_bytes": self.buffered, "calls_refused": self.refused}

    def refusal(self) -> str | None:
        """Why a new request cannot be taken now (None: it can)."""
        if self.calls >= self.max_calls:
            return (
                f"profile {self.slug} is answering {self.calls} requests already "
                f"(security.max_calls_in_flight = {self.max_calls}); retry when some have finished"
            )
        if self.buffered >= self.max_bytes:
            return (
                f"profile {self.slug} holds {self.buffered} bytes of answers its clients have not read yet "
                f"(security.max_buffered_result_bytes = {self.max_bytes}); retry later"
            )
        return None

    def too_large(self, size: int) -> str | None:
        """Why an answer of `size` bytes cannot be sent now (None: it fits in what is left)."""
        room = self.max_bytes - self.buffered
        if size <= room:
            return None
        return (
            f"the answer ({size} bytes) does not fit in the {max(room, 0)} bytes left for answers not yet read by "
            f"clients of profile {self.slug} (security.max_buffered_result_bytes = {self.max_bytes}); "
            "ask for less, or retry later"
        )

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request of the profile's endpoint through `app`, counted against the caps."""
        if scope.get("method") != "POST":
            await app(scope, receive, _counted_send(self, send))
            return
        reason = self.refusal()
        if reason is not None:
            body = await _read_body(receive)
            request_id = _request_id(body)
            if request_id is not _NOT_A_REQUEST:
                self.refused += 1
                logger.warning("refusing a request: %s", reason)
                await _error(send, request_id, reason)
                return
            receive = _replay(body, receive)
        self.calls += 1
        try:
            await app(scope, receive, _counted_send(self, send))
        finally:
            self.calls -= 1


def _counted_send(budget: CallBudget, send: Send) -> Send:
    async def counted(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        size = len(message.get("body", b""))
        budget.buffered += size
        try:
            await send(message)
        finally:
            budget.buffered -= size

    return counted


_NOT_A_REQUEST = object()

ALWAYS_ADMITTED = ("initialize", "ping")
"""Requests that hold nothing big, taken even at the caps (a client can still connect, and learn why it waits)."""


def _request_id(body: bytes) -> Any:
    """The id of a JSON-RPC request body; `_NOT_A_REQUEST` for notifications, answers and anything unparsable."""
    try:
        message = json.loads(body)
    except ValueError:
        return _NOT_A_REQUEST
    if isinstance(message, dict) and "id" in message and message.get("method") not in (None, *ALWAYS_ADMITTED):
        return message["id"]
    return _NOT_A_REQUEST


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _error(send: Send, request_id: Any, message: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": BUSY_CODE, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
