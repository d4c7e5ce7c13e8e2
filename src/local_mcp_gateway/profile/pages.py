"""List pages serialised once per catalog: the answers to `tools/list`, `prompts/list`, `resources/list` and
`resources/templates/list` depend only on the catalog, the cursor, the caller's protocol line and (for tools)
what the caller may see, so each is built, validated and dumped once and then served as it is.

    request --> ... audit --> cached_lists --hit--> the stored wire dict (copied at the top)
                                  |
                                  +--miss--> the SDK's own path (params checked, handler, result sieved for the
                                             caller's line) --> stored in `catalog.memo`, the items with their
                                             JSON text (`transport.SerialisedList`, written out as it is)

The store lives in the catalog object (`Catalog.memo`): a reload, a list-changed notice from an upstream or a
per-session server starting makes a new catalog, so a page never outlives the listings it was made from. The
middleware is the innermost one: redaction, metrics, traces, the traffic log and the audit log see every
request, hit or miss.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp_types import methods as _methods

from local_mcp_gateway.catalog import Catalog
from local_mcp_gateway.identity import access_key, note_denied, tool_allowed
from local_mcp_gateway.transport import SerialisedList

__all__ = ["MAX_PAGES_PER_CATALOG", "cached_lists", "visible_tools"]

LIST_METHODS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list"})

MAX_PAGES_PER_CATALOG = 512
"""Bound of the pages kept per catalog (pages x protocol lines x distinct access rights); past it the store
starts again empty, so callers with ever new scope sets cannot grow it without limit."""

ITEMS = frozenset({"tools", "prompts", "resources", "resourceTemplates"})
"""The keys of list results holding the items; stored as `SerialisedList`, written into answers as stored text."""

_UNCACHEABLE = object()


def visible_tools(catalog: Catalog, ctx: Any) -> list[Any]:
    """The catalog's tools the caller of `ctx` may see, worked out once per catalog and access right.

    A caller from whom something is hidden gets its audit note marked (`note_denied`) on every listing, as the
    tool-by-tool check did.
    """
    key = ("visible", access_key(ctx))
    found = catalog.memo.get(key)
    if found is None:
        if key[1] is None:
            found = (catalog.tools, False)
        else:
            tools = [tool for tool in catalog.tools if tool_allowed(ctx, tool.name)]
            found = (tools, len(tools) < len(catalog.tools))
        _remember(catalog, key, found)
    tools, denied = found
    if denied:
        note_denied()
    return tools


def _cursor(params: Mapping[str, Any] | None) -> Any:
    """The request's cursor (None for the first page), or `_UNCACHEABLE` when the params are not plainly valid."""
    if params is None:
        return None
    if not isinstance(params, Mapping):
        return _UNCACHEABLE
    cursor = params.get("cursor")
    return cursor if cursor is None or isinstance(cursor, str) else _UNCACHEABLE


def _remember(catalog: Catalog, key: Any, value: Any) -> None:
    if len(catalog.memo) >= MAX_PAGES_PER_CATALOG:
        catalog.memo.clear()
    catalog.memo[key] = value


def cached_lists(profile: Any) -> Callable[[Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]:
    """The MCP server middleware serving `profile`'s list pages from its catalogs' stores."""

    async def middleware(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        method = ctx.method
        if method not in LIST_METHODS:
            return await call_next(ctx)
        cursor = _cursor(ctx.params)
        connection = getattr(ctx.session, "_connection", None)
        if cursor is _UNCACHEABLE or connection is None or not connection.initialize_accepted:
            return await call_next(ctx)  # the SDK's path answers with its own error
        try:
            _methods.validate_client_request(method, ctx.protocol_version, ctx.params)
        except Exception:
            return await call_next(ctx)
        view = await profile._view(ctx)
        catalog = profile._catalog_of(view)
        access = access_key(ctx) if method == "tools/list" else None
        key = (method, cursor, ctx.protocol_version, access)
        page = catalog.memo.get(key)
        if page is None:
            result = await call_next(ctx)
            if isinstance(result, dict) and profile._catalog_of(view) is catalog:
                result = {k: SerialisedList(v) if k in ITEMS and isinstance(v, list) else v for k, v in result.items()}
                _remember(catalog, key, result)
                return _copy(result)
            return result
        if method == "tools/list":
            visible_tools(catalog, ctx)  # the audit note, as on the first listing
        return _copy(page)

    return middleware


def _copy(page: dict[str, Any]) -> dict[str, Any]:
    """A copy the rest of the chain may change at the top level (and in `_meta`) without touching the store."""
    copied = dict(page)
    meta = copied.get("_meta")
    if isinstance(meta, dict):
        copied["_meta"] = dict(meta)
    return copied
