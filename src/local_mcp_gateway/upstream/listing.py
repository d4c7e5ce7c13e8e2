"""Keeping an upstream's listings current: listing with pagination, re-listing on change notices, and the
`subscriptions/listen` stream (or polling) of a 2026-07-28 connection. Mixed into `Upstream`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp.types as types
from anyio.abc import TaskGroup
from mcp import ClientSession
from mcp.client.subscriptions import listen
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated

from local_mcp_gateway.upstream.common import Listings, describe

logger = logging.getLogger(__name__)

__all__ = ["ListingsKeeper"]

MAX_LIST_PAGES = 1000
"""Upper bound on pages followed when listing (a server that paginates forever is cut off)."""

LIST_POLL_INTERVAL = 30.0
"""Seconds between re-listings of a 2026-07-28 server that offers no change notices."""

UNDECLARED_LIST_SECONDS = 5.0
"""Seconds a server that declares no `tools` capability has to answer `tools/list` anyway."""

LISTEN_RETRY = 1.0
"""Seconds before a lost `subscriptions/listen` stream towards a 2026-07-28 upstream is opened again."""


class ListingsKeeper:
    """The listing half of `Upstream` (it provides `_session`, `_capabilities`, `_stop`, `events`, `label`)."""

    # -- listings --------------------------------------------------------------------------------------------

    async def _list_all(self, session: ClientSession) -> Listings:
        caps = self._capabilities or types.ServerCapabilities()
        listings = Listings()
        if caps.tools is not None:
            listings.tools = await self._paginate(session.list_tools, "tools")
        else:
            listings.tools = await self._undeclared_tools(session)
        if caps.prompts is not None:
            listings.prompts = await self._paginate(session.list_prompts, "prompts")
        if caps.resources is not None:
            listings.resources = await self._paginate(session.list_resources, "resources")
            listings.templates = await self._paginate(session.list_resource_templates, "resource_templates")
        return listings

    async def _undeclared_tools(self, session: ClientSession) -> list[Any]:
        """Tools of a server that declares no `tools` capability: SDK clients call `tools/list` anyway, so do we.

        A server that has none answers with an error (or not at all, within `UNDECLARED_LIST_SECONDS`): no tools.
        """
        with anyio.move_on_after(UNDECLARED_LIST_SECONDS):
            try:
                return await self._paginate(session.list_tools, "tools")
            except MCPError:
                return []
        return []

    async def _paginate(self, method: Callable[..., Awaitable[Any]], attribute: str) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            try:
                page = await method(params=params)
            except MCPError as exc:
                if exc.error.code == types.METHOD_NOT_FOUND:
                    return items
                raise
            items.extend(getattr(page, attribute))
            cursor = page.next_cursor
            if not cursor:
                break
        return items

    def _set_listings(self, listings: Listings) -> None:
        changed = listings != self.listings
        self.listings = listings
        if changed:
            self.events.listings_changed(self)

    async def _relist(self) -> None:
        session = self._session
        if session is None:
            return
        try:
            listings = await self._list_all(session)
        except Exception as exc:
            logger.warning("upstream %s: re-listing after a change notice failed: %s", self.label, describe(exc))
            return
        self._set_listings(listings)

    # -- change notices on 2026-07-28 connections ----------------------------------------------------------

    async def _follow_changes(self, session: ClientSession, tg: TaskGroup) -> None:
        """Keep a `subscriptions/listen` stream open for list changes and the subscribed resource URIs."""
        caps = self._capabilities or types.ServerCapabilities()
        # On 2026-07-28 a server advertises listChanged / subscribe exactly when it serves subscriptions/listen.
        wanted = {
            "tools_list_changed": bool(caps.tools and caps.tools.list_changed),
            "prompts_list_changed": bool(caps.prompts and caps.prompts.list_changed),
            "resources_list_changed": bool(caps.resources and caps.resources.list_changed),
        }
        if not any(wanted.values()) and not (caps.resources and caps.resources.subscribe):
            await self._poll_listings()
            return
        while not self._stop.is_set():
            changed = self._uris_changed
            uris = sorted(self._resource_uris)
            try:
                async with anyio.create_task_group() as watch:

                    async def reopen_on_change() -> None:
                        await changed.wait()
                        watch.cancel_scope.cancel()

                    watch.start_soon(reopen_on_change)
                    async with listen(session, resource_subscriptions=uris, **wanted) as subscription:
                        async for event in subscription:
                            if isinstance(event, ResourceUpdated):
                                params = types.ResourceUpdatedNotificationParams(uri=event.uri)
                                await self.events.resource_updated(self, params)
                            else:
                                tg.start_soon(self._relist)
                    watch.cancel_scope.cancel()
            except MCPError as exc:
                if exc.error.code == types.METHOD_NOT_FOUND:
                    await self._poll_listings()
                    return
                logger.info("upstream %s: change stream ended: %s", self.label, describe(exc))
                tg.start_soon(self._relist)
                await anyio.sleep(LISTEN_RETRY)
            except Exception as exc:  # a lost stream is opened again; the listings may have moved meanwhile
                logger.info("upstream %s: change stream ended: %s", self.label, describe(exc))
                tg.start_soon(self._relist)
                await anyio.sleep(LISTEN_RETRY)

    async def _poll_listings(self) -> None:
        """A 2026-07-28 server without `subscriptions/listen` cannot announce changes: list it again now and then."""
        logger.info(
            "upstream %s sends no change notices on 2026-07-28; its lists are refreshed every %g s "
            "(protocol: handshake lets it send list_changed)",
            self.label,
            LIST_POLL_INTERVAL,
        )
        while not self._stop.is_set():
            await anyio.sleep(LIST_POLL_INTERVAL)
            await self._relist()

    async def subscribe(self, uri: str) -> None:
        """Receive `notifications/resources/updated` for `uri` (resources/subscribe, or the listen stream)."""
        if not self.modern:
            await self.request(types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)))
            return
        self._resource_uris[uri] = self._resource_uris.get(uri, 0) + 1
        if self._resource_uris[uri] == 1:
            self._uris_changed.set()
            self._uris_changed = anyio.Event()

    async def unsubscribe(self, uri: str) -> None:
        if not self.modern:
            await self.request(types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri)))
            return
        count = self._resource_uris.get(uri, 0) - 1
        if count <= 0:
            self._resource_uris.pop(uri, None)
            self._uris_changed.set()
            self._uris_changed = anyio.Event()
        else:
            self._resource_uris[uri] = count

