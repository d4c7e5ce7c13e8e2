"""Streamable HTTP towards clients, answering with plain JSON when nothing but the answer is to be sent.

A POST carrying a request may be answered with one JSON body or with an SSE stream (MCP Streamable HTTP). The
SDK's transport picks one for all requests: SSE (every answer pays for a streaming response: four tasks and the
event framing) or JSON (progress, log messages and server requests of a call are dropped). A gateway passes
through calls that may or may not stream, so this transport decides per request, at the first message it has to
send: if that message is the answer itself, the answer goes out as JSON; if it is anything else (progress, a log
message, a question to the client), the response becomes an SSE stream that starts with that message. Clients
accept both (they send `Accept: application/json, text/event-stream`).

Everything but the SSE branch of `_handle_post_request` is the SDK's own code path (mcp 2.3), kept as it is.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from http import HTTPStatus
from typing import Any
from uuid import uuid4

import anyio
import pydantic_core
from mcp.server.streamable_http import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_SSE,
    MCP_SESSION_ID_HEADER,
    REQUEST_STREAM_BUFFER_SIZE,
    EventMessage,
    StreamableHTTPServerTransport,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.message import SessionMessage
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    ErrorData,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    PARSE_ERROR,
    JSONRPCError,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from local_mcp_gateway.budget import BUSY_CODE, CallBudget

__all__ = ["LazyStreamTransport", "SerialisedList", "SessionManager", "response_json"]

logger = logging.getLogger(__name__)


class SerialisedList(list[Any]):
    """A list of JSON-ready items that carries its own JSON text, made once (a stored list page's items): an
    answer holding one is written around that text instead of serialising the items again."""

    __slots__ = ("json",)

    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.json: str = pydantic_core.to_json(items).decode()


def response_json(message: Any) -> str:
    """`message` as JSON, as `model_dump_json(by_alias=True, exclude_unset=True)` writes it; a `SerialisedList`
    in an answer's result is copied in as its stored text."""
    result = message.result if isinstance(message, JSONRPCResponse) else None
    if isinstance(result, dict):
        for key, value in result.items():
            if isinstance(value, SerialisedList):
                rest = pydantic_core.to_json({k: v for k, v in result.items() if k != key}).decode()
                head = rest[:-1] + ("," if len(rest) > 2 else "")
                ident = pydantic_core.to_json(message.id).decode()
                return f'{{"jsonrpc":"2.0","id":{ident},"result":{head}{pydantic_core.to_json(key).decode()}:{value.json}}}}}'
    return message.model_dump_json(by_alias=True, exclude_unset=True)


class LazyStreamTransport(StreamableHTTPServerTransport):
    """A session's Streamable HTTP transport that streams a request's answer only when it has to."""

    posts_in_flight = 0
    """POSTs being answered right now (the answer fully sent ends one)."""

    budget: CallBudget | None = None
    """The profile's caps on answers held for clients: an answer that does not fit becomes an error."""

    last_active = 0.0
    """Monotonic time a request of this session last began or ended (an open GET stream counts at its start)."""

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.last_active = time.monotonic()
        try:
            await super().handle_request(scope, receive, send)
        finally:
            self.last_active = time.monotonic()

    def _create_json_response(
        self, response_message: Any, status_code: HTTPStatus = HTTPStatus.OK, headers: dict[str, str] | None = None
    ) -> Response:
        body = response_json(response_message) if response_message else None
        if body is not None and isinstance(response_message, JSONRPCResponse):
            body = self._fitting(response_message, body)
        response_headers = {"Content-Type": CONTENT_TYPE_JSON, **(headers or {})}
        if self.mcp_session_id:
            response_headers[MCP_SESSION_ID_HEADER] = self.mcp_session_id
        return Response(body, status_code=status_code, headers=response_headers)

    def _create_event_data(self, event_message: EventMessage) -> Any:
        event = super()._create_event_data(event_message)
        if isinstance(event_message.message, JSONRPCResponse):
            event["data"] = self._fitting(event_message.message, event["data"])
        return event

    def _fitting(self, message: JSONRPCResponse, body: str) -> str:
        """`body`, or an error answer in its place when it does not fit in the profile's buffer for answers."""
        reason = self.budget.too_large(len(body)) if self.budget is not None else None
        if reason is None:
            return body
        self.budget.refused += 1
        logger.warning("answer replaced by an error: %s", reason)
        error = JSONRPCError(jsonrpc="2.0", id=message.id, error=ErrorData(code=BUSY_CODE, message=reason))
        return error.model_dump_json(by_alias=True, exclude_unset=True)

    async def _handle_post_request(self, scope: Scope, request: Request, receive: Receive, send: Send) -> None:
        self.posts_in_flight += 1
        try:
            await self._handle_post(scope, request, receive, send)
        finally:
            self.posts_in_flight -= 1

    async def _handle_post(self, scope: Scope, request: Request, receive: Receive, send: Send) -> None:
        if self.is_json_response_enabled or self._event_store is not None:
            # Resumable streams start with a priming event, and JSON mode never streams: the SDK's path as it is.
            await super()._handle_post_request(scope, request, receive, send)
            return
        writer = self._read_stream_writer
        if writer is None:  # pragma: no cover - connect() runs before any request is handled
            raise ValueError("No read stream writer available. Ensure connect() is called first.")
        try:
            if not await self._validate_accept_header(request, scope, send):
                return
            if not self._check_content_type(request):
                response = self._create_error_response(
                    "Unsupported Media Type: Content-Type must be application/json", HTTPStatus.UNSUPPORTED_MEDIA_TYPE
                )
                await response(scope, receive, send)
                return
            body = await request.body()
            try:
                raw_message = pydantic_core.from_json(body)
            except ValueError:
                response = self._create_error_response("Parse error: the body is not JSON", HTTPStatus.BAD_REQUEST, PARSE_ERROR)
                await response(scope, receive, send)
                return
            try:
                message = jsonrpc_message_adapter.validate_python(raw_message, by_name=False)
            except ValidationError:
                # Not the SDK's wording: pydantic's message quotes the body back, secrets and all.
                response = self._create_error_response(
                    "Validation error: the body is not a JSON-RPC message", HTTPStatus.BAD_REQUEST, INVALID_PARAMS
                )
                await response(scope, receive, send)
                return

            is_initialization_request = isinstance(message, JSONRPCRequest) and message.method == "initialize"
            if is_initialization_request:
                if self.mcp_session_id:
                    request_session_id = self._get_session_id(request)
                    if request_session_id and request_session_id != self.mcp_session_id:  # pragma: no cover
                        response = self._create_error_response(
                            "Not Found: Invalid or expired session ID", HTTPStatus.NOT_FOUND
                        )
                        await response(scope, receive, send)
                        return
            elif not await self._validate_request_headers(request, send):
                return

            if not isinstance(message, JSONRPCRequest):
                response = self._create_json_response(None, HTTPStatus.ACCEPTED)
                await response(scope, receive, send)
                await writer.send(SessionMessage(message, metadata=self._message_metadata(request)))
                return

            protocol_version = (
                str(message.params.get("protocolVersion", DEFAULT_NEGOTIATED_VERSION))
                if is_initialization_request and message.params
                else request.headers.get("mcp-protocol-version", DEFAULT_NEGOTIATED_VERSION)
            )
            request_id = str(message.id)
            await self._answer(scope, receive, send, request, message, request_id, protocol_version)
        except Exception as err:
            logger.exception("Error handling POST request")
            response = self._create_error_response(
                "Error handling POST request", HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR
            )
            await response(scope, receive, send)
            assert writer is not None
            await writer.send(Exception(err))

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request,
        message: JSONRPCRequest,
        request_id: str,
        protocol_version: str,
    ) -> None:
        """Dispatch the request, then answer with JSON or SSE depending on the first message due for it."""
        assert self._read_stream_writer is not None
        self._request_streams[request_id] = anyio.create_memory_object_stream[EventMessage](REQUEST_STREAM_BUFFER_SIZE)
        request_stream_reader = self._request_streams[request_id][1]
        session_message = self._create_session_message(message, request, request_id, protocol_version)
        await self._read_stream_writer.send(session_message)
        try:
            first = await request_stream_reader.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            await self._clean_up_memory_streams(request_id)
            response = self._create_error_response(
                "Session terminated before the request completed", HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR
            )
            await response(scope, receive, send)
            return
        if isinstance(first.message, JSONRPCResponse | JSONRPCError):
            await self._clean_up_memory_streams(request_id)
            response = self._create_json_response(first.message)
            del first  # the parsed answer is not needed while a slow client reads the body
            await response(scope, receive, send)
            return

        sse_stream_writer, sse_stream_reader = anyio.create_memory_object_stream[dict[str, Any]](0)
        self._sse_stream_writers[request_id] = sse_stream_writer
        headers = {
            "Cache-Control": "no-cache, no-transform",
            "Connection": "keep-alive",
            "Content-Type": CONTENT_TYPE_SSE,
            **({MCP_SESSION_ID_HEADER: self.mcp_session_id} if self.mcp_session_id else {}),
        }
        response = EventSourceResponse(
            content=sse_stream_reader,
            data_sender_callable=partial(self._stream_from, request_id, first, sse_stream_writer, request_stream_reader),
            headers=headers,
        )
        try:
            await response(scope, receive, send)
        finally:
            await sse_stream_reader.aclose()

    async def _stream_from(
        self,
        request_id: str,
        first: EventMessage,
        sse_stream_writer: Any,
        request_stream_reader: Any,
    ) -> None:
        """The SSE writer of one POST, starting with the message that made the answer a stream."""
        try:
            async with sse_stream_writer, request_stream_reader:
                await sse_stream_writer.send(self._create_event_data(first))
                async for event_message in request_stream_reader:
                    await sse_stream_writer.send(self._create_event_data(event_message))
                    if isinstance(event_message.message, JSONRPCResponse | JSONRPCError):
                        break
        except anyio.ClosedResourceError:
            logger.debug("SSE stream closed by close_sse_stream()")
        except Exception:
            logger.exception("Error in SSE writer")
        finally:
            self._sse_stream_writers.pop(request_id, None)
            await self._clean_up_memory_streams(request_id)


class SessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, opening each session on a `LazyStreamTransport`.

    At `max_sessions` a new session does not get 503: the idlest open session (no POST being answered, the
    longest since its last request) is closed to make room, so clients that never end their sessions cannot
    lock a profile. The closed session's ID answers 404 from then on (clients initialize again).
    """

    evicted = 0
    """Sessions closed to make room for new ones."""

    budget: CallBudget | None = None
    """The profile's caps on calls and answer bytes, handed to every session's transport."""

    def posts_in_flight(self) -> int:
        """POSTs of this manager's sessions still being answered."""
        return sum(getattr(transport, "posts_in_flight", 0) for transport in list(self._server_instances.values()))

    def open_sessions(self) -> int:
        """Stateful sessions currently open (initialized or opening), whatever they have done since."""
        return len(self._server_instances)

    def _evict_idlest(self) -> None:
        def idleness(item: tuple[str, Any]) -> tuple[bool, float]:
            transport = item[1]
            return (getattr(transport, "posts_in_flight", 0) > 0, getattr(transport, "last_active", 0.0))

        session_id, transport = min(self._server_instances.items(), key=idleness)
        self._server_instances.pop(session_id, None)
        self._session_owners.pop(session_id, None)
        self.evicted += 1
        idle = time.monotonic() - getattr(transport, "last_active", 0.0)
        logger.info(
            "%d sessions open (security.max_sessions): closing the idlest one, idle for %.0f s", self.max_sessions, idle
        )
        assert self._task_group is not None
        self._task_group.start_soon(self._discard_session, session_id, transport)

    def _admit_session(self, requestor: Any) -> StreamableHTTPServerTransport | None:
        while self.max_sessions is not None and self._server_instances and len(self._server_instances) >= self.max_sessions:
            self._evict_idlest()
        http_transport = LazyStreamTransport(
            mcp_session_id=uuid4().hex,
            is_json_response_enabled=self.json_response,
            event_store=self.event_store,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )
        http_transport.last_active = time.monotonic()
        http_transport.budget = self.budget
        session_id = http_transport.mcp_session_id
        assert session_id is not None
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = http_transport
        return http_transport
