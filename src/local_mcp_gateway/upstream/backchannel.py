"""The server-to-client channel of an upstream: sampling, elicitation and roots requests routed to the caller
whose call is in flight, log messages, change notices, and the logging level. Mixed into `Upstream`."""

from __future__ import annotations

import logging
from typing import Any

import mcp.types as types
from anyio.abc import TaskGroup
from mcp import ClientSession
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from local_mcp_gateway.upstream.common import Caller, describe

logger = logging.getLogger(__name__)

__all__ = ["BackChannel"]


class BackChannel:
    """The back-channel half of `Upstream` (it provides `_callers`, `_session`, `_capabilities`, `events`)."""

    async def set_log_level(self, level: types.LoggingLevel) -> None:
        """Remember the level clients asked for and pass it on (now and after each reconnect)."""
        self._log_level = level
        if self._session is not None:
            await self._apply_log_level(self._session)

    async def _apply_log_level(self, session: ClientSession) -> None:
        if self._capabilities is None or self._capabilities.logging is None or self._log_level is None:
            return
        try:
            await session.set_logging_level(self._log_level)
        except Exception as exc:
            logger.info("upstream %s refused logging/setLevel: %s", self.label, describe(exc))


    # -- the server-to-client channel ------------------------------------------------------------------------

    def _caller(self) -> Caller | None:
        return self._callers[-1] if self._callers else None

    async def _forward_request(self, request: types.ServerRequest, result_type: type[Any]) -> Any:
        caller = self._caller()
        if caller is None:
            return types.ErrorData(
                code=types.INVALID_REQUEST, message=f"{request.method}: no client call is in flight to answer it"
            )
        try:
            return await caller.ask(request, result_type)
        except MCPError as exc:
            return exc.error
        except Exception as exc:
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"{request.method} failed: {describe(exc)}")

    async def _on_sampling(self, context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        return await self._forward_request(types.CreateMessageRequest(params=params), types.CreateMessageResult)

    async def _on_elicitation(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
        return await self._forward_request(types.ElicitRequest(params=params), types.ElicitResult)

    async def _on_list_roots(self, context: ClientRequestContext) -> Any:
        return await self._forward_request(types.ListRootsRequest(), types.ListRootsResult)

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        caller = self._caller()
        if caller is not None:
            try:
                await caller.session.send_log_message(
                    params.level, params.data, params.logger, related_request_id=caller.request_id
                )
            except Exception as exc:
                logger.debug("could not forward a log message from %s: %s", self.label, describe(exc))
            return
        await self.events.log_message(self, params)

    async def _on_message(self, message: Any, tg: TaskGroup) -> None:
        if isinstance(message, Exception):
            logger.warning("upstream %s: transport error: %s", self.label, describe(message))
            return
        if isinstance(
            message,
            (types.ToolListChangedNotification, types.PromptListChangedNotification, types.ResourceListChangedNotification),
        ):
            tg.start_soon(self._relist)
        elif isinstance(message, types.ResourceUpdatedNotification):
            await self.events.resource_updated(self, message.params)

