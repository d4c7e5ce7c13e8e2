"""The example in-process server: current time, time zone conversion and date arithmetic.

Referenced from ``gateway.yaml.example`` as ``module: local_mcp_gateway.examples.clock:server``,
so it is loaded inside the gateway process. It is built on the SDK's low-level `Server`,
which (unlike ``MCPServer``) does not configure the process's logging when it is created.

Tools:
    now(timezone="UTC")                              the current date and time in a zone
    convert_time(time, from_timezone, to_timezone)   a wall-clock time seen from another zone
    add_days(date, days)                             a calendar date moved by whole days
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError

__all__ = ["server"]

DEFAULT_TIMEZONE: Final = "UTC"
TIMEZONE_HINT: Final = "use an IANA time zone name such as 'UTC', 'Europe/Paris' or 'America/New_York'"

ToolFunction = Callable[[dict[str, Any]], str]


class ToolInputError(ValueError):
    """An argument the caller can fix; its message says how."""


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolInputError(f"unknown time zone {name!r}: {TIMEZONE_HINT}") from None


def _now(arguments: dict[str, Any]) -> str:
    zone = _zone(arguments.get("timezone", DEFAULT_TIMEZONE))
    return datetime.now(zone).isoformat(timespec="seconds") + f" ({zone.key})"


def _convert_time(arguments: dict[str, Any]) -> str:
    source, target = _zone(arguments.get("from_timezone")), _zone(arguments.get("to_timezone"))
    try:
        moment = datetime.fromisoformat(str(arguments.get("time")))
    except ValueError:
        raise ToolInputError("time must be ISO 8601 without an offset, e.g. '2026-03-01T09:30'") from None
    if moment.tzinfo is not None:
        raise ToolInputError("time must not carry an offset: the zone comes from from_timezone")
    converted = moment.replace(tzinfo=source).astimezone(target)
    return converted.isoformat(timespec="minutes") + f" ({target.key})"


def _add_days(arguments: dict[str, Any]) -> str:
    try:
        start = date.fromisoformat(str(arguments.get("date")))
    except ValueError:
        raise ToolInputError("date must be a calendar date like '2026-03-01'") from None
    days = arguments.get("days")
    if not isinstance(days, int) or isinstance(days, bool):
        raise ToolInputError(f"days must be a whole number, got {days!r}")
    return (start + timedelta(days=days)).isoformat()


def _schema(properties: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


TIMEZONE_PROPERTY: Final = {"type": "string", "description": "IANA time zone name, e.g. 'Europe/Paris'"}

TOOLS: Final[dict[str, tuple[types.Tool, ToolFunction]]] = {
    tool.name: (tool, function)
    for tool, function in (
        (types.Tool(name="now", description="The current date and time in a time zone (default UTC)",
                    input_schema=_schema({"timezone": TIMEZONE_PROPERTY}, [])), _now),
        (types.Tool(name="convert_time", description="Convert a wall-clock time from one time zone to another",
                    input_schema=_schema({"time": {"type": "string", "description": "e.g. '2026-03-01T09:30'"},
                                          "from_timezone": TIMEZONE_PROPERTY, "to_timezone": TIMEZONE_PROPERTY},
                                         ["time", "from_timezone", "to_timezone"])), _convert_time),
        (types.Tool(name="add_days", description="Add (or, if negative, subtract) days to a calendar date",
                    input_schema=_schema({"date": {"type": "string", "description": "e.g. '2026-03-01'"},
                                          "days": {"type": "integer"}}, ["date", "days"])), _add_days),
    )
}


async def _list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                      ) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[tool for tool, _ in TOOLS.values()])


async def _call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    entry = TOOLS.get(params.name)
    if entry is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
    try:
        text, failed = entry[1](params.arguments or {}), False
    except ToolInputError as exc:
        text, failed = str(exc), True
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=failed)


server: Final = Server(
    "clock",
    version="1.0.0",
    instructions="Tells the time in any time zone and does calendar arithmetic.",
    on_list_tools=_list_tools,
    on_call_tool=_call_tool,
)
"""The MCP server object the gateway loads (``local_mcp_gateway.examples.clock:server``)."""
