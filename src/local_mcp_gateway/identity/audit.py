"""The audit log (`logging.audit`): one JSON line per `tools/call`, `prompts/get` and `resources/read`, with who
called (`sub`, `key:<8 hex>` or `anonymous`), what, on which upstream server, the outcome (`ok`, `error`,
`denied`) and the duration. Lines go through the one redaction point; the file is rotated by size.

`audit_middleware` is an MCP server middleware in every profile's chain: it reads the caller from the request
and writes the line after the handler ran. The handlers add what only they know with `note_server` (where the
call went) and, through `tool_allowed`, `note_denied` (a hidden tool was asked for).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_mcp_gateway.identity.principal import principal_of
from local_mcp_gateway.redact import redact_text

__all__ = ["AUDITED_METHODS", "AuditLog", "audit_middleware", "note_denied", "note_server"]

logger = logging.getLogger(__name__)

AUDITED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
MAX_NAME_CHARS = 512
"""A name or URI longer than this is cut in the record."""


@dataclass
class _Note:
    server: str | None = None
    denied: bool = False


_current: contextvars.ContextVar[_Note | None] = contextvars.ContextVar("local_mcp_gateway_audit", default=None)


def note_server(server: str) -> None:
    """Record the upstream server the current audited request goes to."""
    note = _current.get()
    if note is not None:
        note.server = server


def note_denied() -> None:
    """Record that the current audited request asked for something its caller may not use."""
    note = _current.get()
    if note is not None:
        note.denied = True


class AuditLog:
    """An append-only JSON-lines file rotated at `max_bytes` into `FILE.1` ... `FILE.<backups>`."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, max_bytes={self.max_bytes}, backups={self.backups})"

    def settings(self) -> tuple[str, int, int]:
        return (str(self.path), self.max_bytes, self.backups)

    def write(self, record: dict[str, Any]) -> None:
        line = (redact_text(json.dumps(record, ensure_ascii=False, sort_keys=False)) + "\n").encode()
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self._size() + len(line) > self.max_bytes and self._size() > 0:
                    self._rotate()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            except OSError as exc:
                logger.error("the audit log %s cannot be written: %s", self.path, exc.strerror)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))


async def audit_middleware(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
    """An MCP server middleware writing one audit line per audited request of a caller whose profile audits."""
    method = str(getattr(ctx, "method", ""))
    principal = principal_of(ctx) if method in AUDITED_METHODS else None
    audit = principal.policy.audit if principal is not None else None
    if audit is None:
        return await call_next(ctx)
    note = _Note()
    token = _current.set(note)
    started = time.monotonic()
    outcome = "error"
    try:
        result = await call_next(ctx)
        outcome = "error" if _is_error(result) else "ok"
        return result
    finally:
        _current.reset(token)
        if note.denied:
            outcome = "denied"
        params = getattr(ctx, "params", None) or {}
        name = params.get("name", params.get("uri")) if isinstance(params, dict) else None
        audit.write(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "profile": principal.policy.profile,
                "caller": principal.caller,
                "method": method,
                "name": str(name)[:MAX_NAME_CHARS] if name is not None else None,
                "server": note.server,
                "outcome": outcome,
                "duration_ms": round((time.monotonic() - started) * 1000, 3),
            }
        )


def _is_error(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("isError") is True
    return getattr(result, "is_error", None) is True
