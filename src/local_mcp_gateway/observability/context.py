"""What a log line or a span says about where it happened: profile, server, client session, trace.

The MCP server middleware sets the profile and session for the request it wraps; an upstream call adds the
server. These are context variables, so every log record made while serving that request (in that task, or in
tasks it starts) carries them. The session appears as a short hash of its `Mcp-Session-Id`: the id itself lets
whoever knows it talk in that session, so it is never written anywhere.
"""

from __future__ import annotations

import hashlib
import sys
from contextvars import ContextVar
from typing import Any

__all__ = ["LOG_CONTEXT", "SERVER_CONTEXT", "log_fields", "session_tag"]

LOG_CONTEXT: ContextVar[tuple[str, str | None] | None] = ContextVar("mcp_gateway_log_context", default=None)
"""(profile, session tag) of the MCP request being served."""

SERVER_CONTEXT: ContextVar[str | None] = ContextVar("mcp_gateway_server", default=None)
"""The upstream server a call is being made to."""

_tags: dict[str, str] = {}
_TAG_CACHE = 4096


def session_tag(session_id: str | None) -> str | None:
    """A short, stable, non-reversible name for a client session (first 12 hex digits of its SHA-256)."""
    if not session_id:
        return None
    tag = _tags.get(session_id)
    if tag is None:
        if len(_tags) >= _TAG_CACHE:
            _tags.clear()
        tag = _tags[session_id] = hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()[:12]
    return tag


def log_fields() -> dict[str, Any]:
    """The context of the current task for a log line: profile, server, session, trace_id, span_id (when known)."""
    fields: dict[str, Any] = {}
    context = LOG_CONTEXT.get()
    if context is not None:
        fields["profile"] = context[0]
        if context[1] is not None:
            fields["session"] = context[1]
    server = SERVER_CONTEXT.get()
    if server is not None:
        fields["server"] = server
    trace = sys.modules.get("opentelemetry.trace")  # only when something imported it: never imported for this
    if trace is not None:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            fields["trace_id"] = format(span_context.trace_id, "032x")
            fields["span_id"] = format(span_context.span_id, "016x")
    return fields
