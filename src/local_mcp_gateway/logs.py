"""Logging setup: one stderr handler, text or JSON lines, every record through the redaction point."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from local_mcp_gateway.observability.context import log_fields
from local_mcp_gateway.redact import install_redaction

__all__ = ["JsonFormatter", "setup_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

QUIET_LOGGERS = ("mcp", "httpx2", "hypercorn.access", "sse_starlette", "watchfiles")
"""Libraries whose info-level chatter drowns the gateway's own lines; they log from warning up."""

SILENCED_LOGGERS = ("mcp.client.auth.oauth2",)
"""Loggers that only repeat, with a traceback, a failure the gateway already reports in its own words."""


CONTEXT_FIELDS = ("profile", "server", "session", "trace_id", "span_id")
"""Where a line happened, when known: from `extra=` on the call, else from the request being served."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields (profile, server, session,
    trace_id, span_id) when known, and the exception text when there is one.

    The context comes from the request being served (see `observability.context`); the message has passed the
    redaction filter on the handler before it is formatted here.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(log_fields())
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already rendered (and redacted) by the redaction filter
            entry["exception"] = record.exc_text
        return json.dumps(entry)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger (idempotent): stderr, the given level and format, redaction installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    if root.level > logging.DEBUG:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in SILENCED_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    install_redaction(root)
