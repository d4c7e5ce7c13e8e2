"""The vocabulary of upstream connections: states, listings, the caller a request is made for, the events an
upstream reports, and small helpers shared by the connection's parts."""

from __future__ import annotations

import enum
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import mcp.types as types
from anyio.abc import ObjectReceiveStream
from mcp import ClientSession
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import CLIENT_CAPABILITIES_META_KEY

from local_mcp_gateway.errors import AuthError, UpstreamError

if TYPE_CHECKING:
    from local_mcp_gateway.upstream.connection import Upstream

__all__ = ["CALLER_CAPABILITIES", "Caller", "Listings", "UpstreamEvents", "UpstreamState", "describe", "is_auth_wait"]


class UpstreamState(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    NEEDS_AUTH = "needs_auth"
    DISABLED = "disabled"
    STOPPED = "stopped"


@dataclass(eq=False)
class Caller:
    """The downstream request a call to an upstream is made for: where its back-channel traffic goes."""

    session: ServerSession
    request_id: types.RequestId | None

    @property
    def metadata(self) -> ServerMessageMetadata | None:
        return ServerMessageMetadata(related_request_id=self.request_id) if self.request_id is not None else None

    async def ask(self, request: types.ServerRequest, result_type: type[Any]) -> Any:
        """Put a server-to-client request (sampling, elicitation, roots) to this caller and return its answer.

        A client that did not declare the capability the request needs is never asked: the upstream gets an
        error at once (rather than waiting for an answer that cannot come until its call times out).
        """
        needed = REQUIRED_CAPABILITY.get(request.method)
        if needed is not None and not self.session.check_client_capability(needed[1]):
            raise MCPError(
                types.INVALID_REQUEST,
                f"{request.method}: the client of this call did not declare the {needed[0]} capability",
            )
        return await self.session.send_request(request, result_type, metadata=self.metadata)


REQUIRED_CAPABILITY: dict[str, tuple[str, types.ClientCapabilities]] = {
    "sampling/createMessage": ("sampling", types.ClientCapabilities(sampling=types.SamplingCapability())),
    "elicitation/create": ("elicitation", types.ClientCapabilities(elicitation=types.ElicitationCapability())),
    "roots/list": ("roots", types.ClientCapabilities(roots=types.RootsCapability())),
}
"""Server-to-client requests and the client capability each needs (name, and the form `check_client_capability` takes)."""


@dataclass
class Listings:
    """What one upstream offers, pagination already followed; each list in the server's own order."""

    tools: list[types.Tool] = field(default_factory=list)
    prompts: list[types.Prompt] = field(default_factory=list)
    resources: list[types.Resource] = field(default_factory=list)
    templates: list[types.ResourceTemplate] = field(default_factory=list)


class UpstreamEvents(Protocol):
    """What an upstream reports to the profile that owns it."""

    def listings_changed(self, upstream: Upstream) -> None: ...

    async def resource_updated(self, upstream: Upstream, params: types.ResourceUpdatedNotificationParams) -> None: ...

    async def log_message(self, upstream: Upstream, params: types.LoggingMessageNotificationParams) -> None: ...


def watch_end(read: Any, closed: anyio.Event) -> Any:
    """`read`, setting `closed` when the transport's read stream ends (the server went away)."""
    return _WatchedEnd(read, closed)


class _WatchedEnd(ObjectReceiveStream[Any]):
    """A read stream passed through as it is, that sets an event when it ends (no task and no extra hand-over)."""

    def __init__(self, read: Any, closed: anyio.Event) -> None:
        self._read = read
        self._closed = closed

    async def receive(self) -> Any:
        try:
            return await self._read.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._closed.set()
            raise anyio.EndOfStream from None

    async def aclose(self) -> None:
        self._closed.set()
        await self._read.aclose()


CALLER_CAPABILITIES: ContextVar[dict[str, Any] | None] = ContextVar("caller_capabilities", default=None)
"""The capabilities a 2026-07-28 caller declared, stamped on the upstream request made for it (None: the gateway's)."""


def stamp_caller_capabilities(session: ClientSession) -> None:
    """Make a 2026-07-28 session declare, per request, the capabilities of the client the request is made for.

    The SDK stamps every request with the session's own capabilities; an upstream deciding what it may ask must
    see the end client's instead (it answers -32021 when the client lacks one).
    """
    stamp = session._stamp  # the SDK keeps its per-request envelope stamp private

    def caller_stamp(data: dict[str, Any], opts: Any) -> None:
        stamp(data, opts)
        capabilities = CALLER_CAPABILITIES.get()
        if capabilities is not None and isinstance(meta := data.get("params", {}).get("_meta"), dict):
            meta[CLIENT_CAPABILITIES_META_KEY] = capabilities

    session._stamp = caller_stamp


def is_auth_wait(exc: BaseException) -> bool:
    """Whether a failed connection attempt ended in an unfinished OAuth login (an `AuthError`)."""
    if isinstance(exc, AuthError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(is_auth_wait(inner) for inner in exc.exceptions)
    return exc.__cause__ is not None and is_auth_wait(exc.__cause__)


def describe(exc: BaseException) -> str:
    """A one-line description of an error for logs and /status (never a traceback)."""
    if isinstance(exc, MCPError):
        return exc.error.message
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, UpstreamError) else text
