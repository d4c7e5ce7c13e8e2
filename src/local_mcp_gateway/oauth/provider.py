"""`GatewayOAuthProvider`: the SDK's `OAuthClientProvider` with what a long-running gateway needs around it
(persisted metadata, refresh before expiry, bounded requests to the authorization server, translated errors)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, fields
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
from mcp.client.auth import OAuthClientProvider, OAuthFlowError, OAuthRegistrationError, OAuthTokenError
from mcp.client.auth.oauth2 import OAuthContext
from mcp.client.auth.utils import union_scopes
from mcp.shared._httpx_utils import next_request_within_origin
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import ValidationError

from local_mcp_gateway.errors import AuthError, GatewayError, UpstreamError
from local_mcp_gateway.oauth.common import AS_REDIRECT_LIMIT, AS_REQUEST_TIMEOUT, Clock, refresh_due, shorten
from local_mcp_gateway.oauth.shared import RefreshTurn, state_reachable
from local_mcp_gateway.oauth.storage import StateTokenStorage

logger = logging.getLogger(__name__)

__all__ = ["GatewayOAuthProvider", "LoginHooks"]

# --------------------------------------------------------------------------------------------- the provider


@dataclass
class _Context(OAuthContext):
    """The SDK's context with an injectable clock and expiry moved forward by the refresh margin."""

    clock: Clock = time.time

    def update_token_expiry(self, token: OAuthToken) -> None:
        self.token_expiry_time = refresh_due(self.clock(), token.expires_in)

    def is_token_valid(self) -> bool:
        return bool(
            self.current_tokens
            and self.current_tokens.access_token
            and (self.token_expiry_time is None or self.clock() < self.token_expiry_time)
        )


class LoginHooks:
    """What a provider tells its owner during a login; `OAuthManager` implements it per server."""

    async def begin(self, url: str, state: str, *, step_up: bool = False, scope: str | None = None) -> None:
        """A person must open `url`; `state` identifies the callback; `step_up`: a working connection needs
        the wider `scope` for some of its calls."""

    async def wait(self, state: str) -> AuthorizationCodeResult:
        """The callback's code (raise `AuthError` when none comes in time or the login was refused)."""
        raise AuthError("no login handler")

    def finished(self, state: str | None, error: str | None) -> None:
        """The login of `state` ended: tokens stored (`error` None) or failed."""


class GatewayOAuthProvider(OAuthClientProvider):
    """`OAuthClientProvider` fixed for restarts and long-running use (see the module docstring)."""

    def __init__(
        self,
        server_url: str,
        client_metadata: OAuthClientMetadata,
        storage: StateTokenStorage,
        hooks: LoginHooks,
        *,
        label: str,
        scope: str | None = None,
        clock: Clock = time.time,
        as_timeout: float = AS_REQUEST_TIMEOUT,
        client_metadata_url: str | None = None,
    ) -> None:
        super().__init__(server_url, client_metadata, storage, self._redirect, self._callback,
                         client_metadata_url=client_metadata_url)
        values = {f.name: getattr(self.context, f.name) for f in fields(OAuthContext)}
        self.context = _Context(**values, clock=clock)
        self.storage = storage
        storage.issued_to = lambda: self.context.client_info
        self.hooks = hooks
        self.label = label
        self.scope = scope
        self.as_timeout = as_timeout
        self._login_state: str | None = None
        self.step_up = False
        """Whether the login under way widens the scope of a working connection (a 403 `insufficient_scope`)."""

    def __repr__(self) -> str:
        return f"GatewayOAuthProvider({self.label!r})"

    # -- loading and saving ----------------------------------------------------------------------------------

    async def _initialize(self) -> None:
        """Load tokens (with their real expiry), the client, and the metadata discovered before a restart.

        While the state folder cannot be read (a network volume away), the tokens in memory stay in use and the
        next request reads again."""
        if self.context.current_tokens is not None and not state_reachable(self.storage):
            logger.warning("%s: the state folder cannot be read; using the tokens in memory and trying again",
                           self.label)
            return
        asm, prm, auth_server_url = self.storage.load_metadata()
        if asm is not None:
            self.context.oauth_metadata = asm
        if prm is not None:
            self.context.protected_resource_metadata = prm
        if auth_server_url:
            self.context.auth_server_url = auth_server_url
        record = self.storage.record()
        self.context.current_tokens = await self.storage.get_tokens()
        self.context.token_expiry_time = None
        if record is not None and self.context.current_tokens and self.context.current_tokens.access_token:
            self.context.token_expiry_time = refresh_due(record.obtained_at, record.token.expires_in)
        self.context.client_info = await self.storage.get_client_info()
        if record is not None and record.client is not None and self.storage.configured_client is None:
            # The registration the tokens were issued to: another replica may have registered (and stored) its
            # own client meanwhile, and a refresh with the wrong client is refused.
            self.context.client_info = record.client
        self._initialized = True

    async def _handle_token_response(self, response: httpx2.Response) -> None:
        await super()._handle_token_response(response)
        self.storage.save_metadata(self.context)
        state, self._login_state = self._login_state, None
        logger.info("OAuth login for %s complete; tokens stored", self.label)
        self.hooks.finished(state, None)

    async def _handle_refresh_response(self, response: httpx2.Response) -> bool:
        if response.status_code >= 500 or response.status_code == 429:
            raise UpstreamError(
                f"{self.label}: the authorization server answered HTTP {response.status_code} to a token refresh; "
                "the stored tokens are kept and the gateway tries again"
            )
        if response.status_code != 200:
            await response.aread()
            error = _oauth_error(response)
            self.storage.delete_tokens()
            logger.warning("%s: the authorization server refused the refresh token (%s); a new login is needed",
                           self.label, error)
        ok = await super()._handle_refresh_response(response)
        if ok:
            logger.info("%s: OAuth tokens refreshed", self.label)
        return ok

    async def _perform_authorization_code_grant(self) -> tuple[str, str]:
        if self.scope:  # configured scopes, plus whatever the server asked for (a step-up widens, never narrows)
            self.context.client_metadata.scope = union_scopes(self.scope, self.context.client_metadata.scope)
        return await super()._perform_authorization_code_grant()

    # -- the person in the loop ------------------------------------------------------------------------------

    async def _redirect(self, url: str) -> None:
        state = parse_qs(urlparse(url).query).get("state", [""])[0]
        self._login_state = state
        await self.hooks.begin(url, state, step_up=self.step_up, scope=self.context.client_metadata.scope)

    async def _callback(self) -> AuthorizationCodeResult:
        assert self._login_state is not None
        return await self.hooks.wait(self._login_state)

    # -- driving the flow ------------------------------------------------------------------------------------

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The SDK's flow; its requests to the authorization server go out here, bounded by `as_timeout`."""
        if self._initialized and self.storage.changed_on_disk():
            self._initialized = False  # tokens written by `auth login` or another replica, or removed by logout
        turn = await self._refresh_turn()
        flow = self._auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                if outgoing is request:
                    if turn is not None:  # refreshed (or found fresh) and stored: the other replicas may go on
                        await turn.release()
                    response = yield outgoing
                    self.step_up = response.status_code == 403 and "insufficient_scope" in response.headers.get(
                        "www-authenticate", ""
                    )
                else:
                    response = await self._send_to_authorization_server(outgoing)
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        except GatewayError as exc:
            self._fail_login(str(exc))
            raise
        except (OAuthFlowError, OAuthTokenError, OAuthRegistrationError, ValidationError) as exc:
            error = self._translate(exc)
            self._fail_login(str(error))
            raise error from None
        finally:
            if turn is not None:
                await turn.release()
            await flow.aclose()

    async def _refresh_turn(self) -> RefreshTurn | None:
        """When the token is due for a refresh: wait for this server's refresh lock (another replica may be
        refreshing), then let the flow read the tokens again: fresh ones from another replica are used as they
        are, and only a token still due is refreshed, by the holder of the lock (see `oauth.shared`)."""
        if not self._initialized:
            async with self.context.lock:
                await self._initialize()
        if self.context.is_token_valid() or not self.context.can_refresh_token():
            return None
        turn = RefreshTurn(self.storage, self.label)
        await turn.take()
        self._initialized = False
        return turn

    def _fail_login(self, message: str) -> None:
        state, self._login_state = self._login_state, None
        if state is not None:
            self.hooks.finished(state, message)

    async def _send_to_authorization_server(self, request: httpx2.Request) -> httpx2.Response:
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        try:
            with anyio.fail_after(self.as_timeout):
                async with httpx2.AsyncClient(timeout=self.as_timeout) as client:
                    response = await client.send(request)
                    for _ in range(AS_REDIRECT_LIMIT):
                        follow = next_request_within_origin(response)
                        if follow is None:
                            break
                        response = await client.send(follow)
                    return response
        except TimeoutError:
            raise UpstreamError(f"{self.label}: the authorization server {origin} did not answer within "
                                f"{self.as_timeout:g} s; check that it is up") from None
        except httpx2.HTTPError as exc:
            raise UpstreamError(f"{self.label}: cannot reach the authorization server {origin} "
                                f"({type(exc).__name__}); check that it is up and the URL is right") from None

    def _translate(self, exc: Exception) -> GatewayError:
        text = shorten(exc)
        if isinstance(exc, OAuthRegistrationError):
            return UpstreamError(f"{self.label}: dynamic client registration was refused ({text}); register a "
                                 "client with the authorization server and set oauth.client_id (and client_secret)")
        if isinstance(exc, OAuthTokenError):
            return AuthError(f"{self.label}: the authorization server refused the authorization code ({text}); "
                             "log in again")
        if isinstance(exc, ValidationError):
            return UpstreamError(f"{self.label}: the authorization server sent malformed metadata or tokens "
                                 f"({exc.error_count()} problems); check its configuration")
        if "mismatch" in text or "does not match" in text:
            return UpstreamError(f"{self.label}: inconsistent OAuth metadata: {text}; the server's protected "
                                 "resource metadata or authorization server metadata must be fixed")
        return UpstreamError(f"{self.label}: OAuth failed: {text}")


def _oauth_error(response: httpx2.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    return shorten(error) if isinstance(error, str) else f"HTTP {response.status_code}"
