"""The optional per-profile traffic log (`logging.traffic`): a bounded ring of redacted request summaries."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from local_mcp_gateway.redact import Redactor, default_redactor

__all__ = ["TrafficEntry", "TrafficLog"]


DEFAULT_TRAFFIC_ENTRIES = 1000
MAX_RECORDED_PARAMS_CHARS = 2048
"""Recorded params are cut to this many characters of (redacted) JSON, so one large call cannot fill memory."""


@dataclass(frozen=True)
class TrafficEntry:
    """One MCP request or notification as seen by a profile, already redacted."""

    at: str
    """When it arrived (UTC, ISO 8601)."""
    profile: str
    method: str
    name: str | None
    """The tool or prompt name, or the resource URI, when the method has one."""
    status: str
    """`ok`, `tool_error` (a tool result with isError), `error` (a JSON-RPC error), or `notification`."""
    error_code: int | None
    duration_ms: float
    params: Any
    """The request's params with secrets masked (`redact.Redactor.redact_mapping`), possibly shortened."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrafficLog:
    """The last `max_entries` MCP requests of one profile, redacted before they are stored.

    Fill it by adding `log.middleware` to the profile's MCP server (`server.middleware`); read it with
    `entries()` / `as_json()`. Nothing is written to disk.
    """

    def __init__(self, profile: str, max_entries: int = DEFAULT_TRAFFIC_ENTRIES, redactor: Redactor | None = None):
        self.profile = profile
        self._entries: deque[TrafficEntry] = deque(maxlen=max_entries)
        self._redactor = redactor if redactor is not None else default_redactor

    @classmethod
    def from_config(cls, profile: str, traffic: Any) -> TrafficLog | None:
        """A log for `logging.traffic` when it is enabled, else None."""
        return cls(profile, traffic.max_entries) if traffic.enabled else None

    @property
    def max_entries(self) -> int:
        return self._entries.maxlen or 0

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TrafficLog({self.profile!r}, {len(self._entries)}/{self.max_entries})"

    def entries(self) -> list[TrafficEntry]:
        return list(self._entries)

    def as_json(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self._entries]

    def record(
        self,
        method: str,
        params: Any,
        *,
        status: str,
        duration: float,
        error_code: int | None = None,
        at: datetime | None = None,
    ) -> TrafficEntry:
        """Redact and store one summary; returns it."""
        name = None
        if isinstance(params, dict):
            raw = params.get("name", params.get("uri"))
            name = self._redactor.redact_text(str(raw)) if raw is not None else None
        entry = TrafficEntry(
            at=(at or datetime.now(UTC)).isoformat(timespec="milliseconds"),
            profile=self.profile,
            method=method,
            name=name,
            status=status,
            error_code=error_code,
            duration_ms=round(duration * 1000, 3),
            params=self._summarise(params),
        )
        self._entries.append(entry)
        return entry

    def _summarise(self, params: Any) -> Any:
        redacted = self._redactor.redact_mapping(params)
        text = json.dumps(redacted, default=str, ensure_ascii=False)
        if len(text) <= MAX_RECORDED_PARAMS_CHARS:
            return redacted
        return {"_truncated": text[:MAX_RECORDED_PARAMS_CHARS]}

    async def middleware(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """An MCP server middleware (`Server.middleware`) recording every request that passes it."""
        started = time.monotonic()
        method = str(getattr(ctx, "method", "?"))
        params = getattr(ctx, "params", None)
        try:
            result = await call_next(ctx)
        except Exception as exc:
            code = getattr(getattr(exc, "error", None), "code", None)
            self.record(method, params, status="error", duration=time.monotonic() - started, error_code=code)
            raise
        if getattr(ctx, "request_id", None) is None:
            status = "notification"
        elif _is_tool_error(result):
            status = "tool_error"
        else:
            status = "ok"
        self.record(method, params, status=status, duration=time.monotonic() - started)
        return result


def _is_tool_error(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("isError") is True
    return getattr(result, "is_error", None) is True
