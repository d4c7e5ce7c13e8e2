"""OAuth 2.1 towards remote upstream servers: token storage in `state/`, the login flow, the callback.

The flow itself is the SDK's `mcp.client.auth.OAuthClientProvider` (an `httpx2.Auth`): RFC 9728 protected
resource metadata, RFC 8414 authorization-server metadata (OpenID configuration as fallback), RFC 7591 dynamic
registration unless `oauth.client_id` is configured, authorization code + PKCE S256 with a random `state`, and the
RFC 8707 `resource` parameter. This module adds what a long-running gateway needs around it:

- `StateTokenStorage`: the provider's `TokenStorage` on `StateStore` (age-encrypted, atomic, 0600 files under
  `state/oauth/<server-key>/`), which also records *when* tokens were obtained, so an expired token loaded after a
  restart is handed back with an empty access token and the provider refreshes it instead of sending it;
- `GatewayOAuthProvider`: persists and restores the authorization-server and protected-resource metadata (so a
  refresh after a restart goes to the real token endpoint), refreshes *before* expiry, drops tokens the server
  refused (`invalid_grant`: a new login is needed), sends its own requests to the authorization server with a
  bounded timeout, and turns the SDK's errors into `AuthError` (a login is needed) or `UpstreamError` (the server
  or its metadata is wrong);
- `OAuthManager`: one per gateway (and one per `auth login` command). `auth_for(upstream)` gives the provider of
  an upstream; a login in progress puts the upstream in `needs_auth` with the URL to open, and
  `handle_callback(params)` receives the redirect at `{public_url}/oauth/callback`. A login started by the
  `auth login` command while a gateway owns the callback address is *relayed*: the gateway writes the callback
  parameters into an encrypted state entry (`state/oauth/relay/<hash of state>`) that the command polls.

Token values never reach a log line, an error message, `/status` or a repr: they are registered with the
redaction point as soon as they are read or obtained.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
from mcp.client.auth import OAuthClientProvider, OAuthFlowError, OAuthRegistrationError, OAuthTokenError
from mcp.client.auth.oauth2 import OAuthContext
from mcp.shared._httpx_utils import next_request_within_origin
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from mcp.shared.auth_utils import resource_url_from_server_url
from pydantic import ValidationError

from local_mcp_gateway.errors import AuthError, GatewayError, UpstreamError
from local_mcp_gateway.redact import default_redactor
from local_mcp_gateway.state import StateStore

__all__ = [
    "AS_REQUEST_TIMEOUT",
    "CALLBACK_PATH",
    "LOGIN_TIMEOUT",
    "GatewayOAuthProvider",
    "OAuthManager",
    "StateTokenStorage",
    "TokenRecord",
    "callback_app",
    "manager_for",
    "public_url_for",
    "redirect_uri",
    "revoke_tokens",
    "server_key",
    "token_summary",
]

logger = logging.getLogger(__name__)

LOGIN_TIMEOUT = 600.0
"""Seconds a login may take from showing its URL to the callback; then the attempt ends with `AuthError`."""

AS_REQUEST_TIMEOUT = 30.0
"""Seconds one request to the authorization server (metadata, registration, token) may take."""

REFRESH_MARGIN = 60.0
"""Tokens are refreshed this many seconds before they expire..."""

REFRESH_FRACTION = 0.5
"""...or after this fraction of their lifetime has passed, whichever comes first (short-lived tokens)."""

TOKEN_POLL = 1.0
"""Seconds between looks at `state/` for tokens written by another process while a login waits."""

CALLBACK_OUTCOME_WAIT = 30.0
"""Seconds the callback page waits for the token exchange, so it can say whether the login worked."""

AS_REDIRECT_LIMIT = 5
"""Redirects (within the origin) followed for one request to the authorization server."""

MESSAGE_LIMIT = 300
"""Longest piece of a foreign error text quoted in our messages."""

CALLBACK_PATH = "/oauth/callback"
STATE_PREFIX = "oauth"
RELAY_DIR = f"{STATE_PREFIX}/relay"
DEFAULT_CLIENT_NAME = "local-mcp-gateway"
_CONNECTING_STATES = ("starting", "needs_auth")
"""Upstream states in which a connection attempt is under way (and may wait for a login)."""
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_KEY_NAME_LENGTH = 48
_KEY_HASH_LENGTH = 10

Clock = Callable[[], float]


# --------------------------------------------------------------------------------------------- small pure pieces


def server_key(name: str, url: str) -> str:
    """The folder of a server's entries under `state/oauth/`: its name plus a hash of its canonical URL.

    Tokens are for a resource (the URL): the same catalog server in several profiles shares them, and two inline
    servers of the same name but different URLs do not.
    """
    digest = hashlib.sha256(resource_url_from_server_url(url).encode()).hexdigest()[:_KEY_HASH_LENGTH]
    return f"{_KEY_UNSAFE.sub('_', name)[:_KEY_NAME_LENGTH]}-{digest}"


def redirect_uri(public_url: str) -> str:
    """`{public_url}/oauth/callback`, the redirect URI registered with every authorization server."""
    return public_url.rstrip("/") + CALLBACK_PATH


def public_url_for(gateway: Any, settings: Any = None) -> str:
    """`public_url` from gateway.yaml, else `http://{host}:{port}` (MCP_GATEWAY_HOST/PORT override `listen`)."""
    if gateway.public_url:
        return str(gateway.public_url).rstrip("/")
    host = (getattr(settings, "host", None) or gateway.listen.host) if settings is not None else gateway.listen.host
    port = getattr(settings, "port", None) if settings is not None else None
    port = port if port is not None else gateway.listen.port
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def refresh_due(obtained_at: float, expires_in: int | None) -> float | None:
    """When a token obtained at `obtained_at` should be refreshed (None: it does not expire)."""
    if expires_in is None:
        return None
    lifetime = max(0, int(expires_in))
    return obtained_at + lifetime - min(REFRESH_MARGIN, lifetime * REFRESH_FRACTION)


def _short(text: object) -> str:
    value = " ".join(str(text).split())
    return value if len(value) <= MESSAGE_LIMIT else value[: MESSAGE_LIMIT - 3] + "..."


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class TokenRecord:
    """Stored tokens plus the time they were obtained (the SDK's `OAuthToken` only knows `expires_in`)."""

    token: OAuthToken
    obtained_at: float

    def __repr__(self) -> str:
        return f"TokenRecord(obtained_at={self.obtained_at!r}, expires_in={self.token.expires_in!r})"

    @property
    def expires_at(self) -> float | None:
        return None if self.token.expires_in is None else self.obtained_at + self.token.expires_in

    def fresh(self, now: float) -> bool:
        """Whether the access token can still be sent (not yet due for a refresh)."""
        due = refresh_due(self.obtained_at, self.token.expires_in)
        return bool(self.token.access_token) and (due is None or now < due)


# --------------------------------------------------------------------------------------------- storage


class StateTokenStorage:
    """The SDK's `TokenStorage` on `StateStore`: `state/oauth/<key>/{tokens,client,metadata}.age`.

    `get_tokens` hands back a token that is due for refresh with an empty access token, so the provider refreshes
    it rather than sending it (the SDK alone would send an expired token after a restart, get a 401 and ask for a
    new login). With `configured_client` (from `oauth.client_id`), that client is used and nothing is registered.
    With `fresh`, stored tokens are ignored (a new login is wanted) but still replaced once new ones arrive.
    A stored registration for another redirect URI than `redirect_uri` (public_url changed) is ignored.
    """

    def __init__(
        self,
        store: StateStore,
        key: str,
        *,
        configured_client: OAuthClientInformationFull | None = None,
        clock: Clock = time.time,
        fresh: bool = False,
        redirect_uri: str | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.redirect_uri = redirect_uri
        self.configured_client = configured_client
        self.clock = clock
        self.fresh = fresh
        self._signature: tuple[int, int, int] | None = None
        self._masked: set[str] = set()

    def __repr__(self) -> str:
        return f"StateTokenStorage({self.key!r})"

    def entry(self, name: str) -> str:
        return f"{STATE_PREFIX}/{self.key}/{name}"

    # -- tokens ----------------------------------------------------------------------------------------------

    def _disk_signature(self) -> tuple[int, int, int] | None:
        try:
            info = self.store.path_of(self.entry("tokens")).stat()
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def changed_on_disk(self) -> bool:
        """Whether the tokens file changed since this storage last read or wrote it (another process, logout)."""
        return self._disk_signature() != self._signature

    def record(self) -> TokenRecord | None:
        """The stored tokens with the time they were obtained; None when absent or unreadable (logged)."""
        self._signature = self._disk_signature()
        if self.fresh:
            return None
        value = self.store.read_json(self.entry("tokens"))
        if not isinstance(value, dict):
            return None
        try:
            record = TokenRecord(OAuthToken.model_validate(value["token"]), float(value["obtained_at"]))
        except (KeyError, TypeError, ValueError, ValidationError):
            logger.warning("state file %s does not hold OAuth tokens; treating it as absent",
                           self.store.path_of(self.entry("tokens")))
            return None
        self._mask(record.token)
        return record

    async def get_tokens(self) -> OAuthToken | None:
        record = self.record()
        if record is None:
            return None
        if record.fresh(self.clock()):
            return record.token
        if record.token.refresh_token:
            return record.token.model_copy(update={"access_token": ""})
        return None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self._mask(tokens)
        payload = {"token": tokens.model_dump(mode="json", exclude_none=True), "obtained_at": self.clock()}
        self.store.write_json(self.entry("tokens"), payload)
        self._signature = self._disk_signature()
        self.fresh = False

    def delete_tokens(self) -> bool:
        """Forget the tokens (logout, or a refresh token the server refused)."""
        existed = self.store.delete(self.entry("tokens"))
        self._signature = self._disk_signature()
        return existed

    def _mask(self, token: OAuthToken) -> None:
        for value in (token.access_token, token.refresh_token):
            if value and value not in self._masked:
                default_redactor.add(value)
                self._masked.add(value)

    # -- client registration ---------------------------------------------------------------------------------

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        if self.configured_client is not None:
            return self.configured_client
        value = self.store.read_json(self.entry("client"))
        if value is None:
            return None
        try:
            client = OAuthClientInformationFull.model_validate(value)
        except ValidationError:
            logger.warning("state file %s does not hold a client registration; treating it as absent",
                           self.store.path_of(self.entry("client")))
            return None
        registered = {str(uri) for uri in client.redirect_uris or ()}
        if self.redirect_uri is not None and registered and self.redirect_uri not in registered:
            logger.info("the stored client registration of %s is for another redirect URI (public_url changed); "
                        "registering again", self.key)
            return None
        return client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        if self.configured_client is None:
            self.store.write_json(self.entry("client"), client_info.model_dump(mode="json", exclude_none=True))

    # -- discovered metadata ---------------------------------------------------------------------------------

    def save_metadata(self, context: OAuthContext) -> None:
        """Keep what discovery found, so a refresh after a restart reaches the real token endpoint."""
        value = {
            "oauth_metadata": None if context.oauth_metadata is None
            else context.oauth_metadata.model_dump(mode="json", exclude_none=True),
            "protected_resource_metadata": None if context.protected_resource_metadata is None
            else context.protected_resource_metadata.model_dump(mode="json", exclude_none=True),
            "auth_server_url": context.auth_server_url,
        }
        self.store.write_json(self.entry("metadata"), value)

    def load_metadata(self) -> tuple[OAuthMetadata | None, ProtectedResourceMetadata | None, str | None]:
        value = self.store.read_json(self.entry("metadata"))
        if not isinstance(value, dict):
            return None, None, None
        try:
            asm = value.get("oauth_metadata")
            prm = value.get("protected_resource_metadata")
            return (
                None if asm is None else OAuthMetadata.model_validate(asm),
                None if prm is None else ProtectedResourceMetadata.model_validate(prm),
                value.get("auth_server_url"),
            )
        except ValidationError:
            logger.warning("state file %s does not hold OAuth metadata; treating it as absent",
                           self.store.path_of(self.entry("metadata")))
            return None, None, None


def token_summary(store: StateStore, key: str, now: float | None = None) -> dict[str, Any]:
    """What is known about a server's tokens, for `/status` and `auth status`: never a token value.

    `authorized`: usable tokens exist (a fresh access token, or a refresh token); `problem`: a state file that
    exists but cannot be read (it is treated as absent).
    """
    storage = StateTokenStorage(store, key)
    record = storage.record()
    now = time.time() if now is None else now
    problem = None
    if record is None and store.path_of(storage.entry("tokens")).exists():
        problem = (f"{store.path_of(storage.entry('tokens'))} cannot be read (corrupted, or encrypted to another "
                   "key); treated as absent: log in again")
    refreshable = bool(record and record.token.refresh_token)
    return {
        "authorized": bool(record and (record.fresh(now) or refreshable)),
        "expires_at": _iso(record.expires_at) if record else None,
        "obtained_at": _iso(record.obtained_at) if record else None,
        "refreshable": refreshable,
        "registered": store.read_json(storage.entry("client")) is not None,
        "problem": problem,
    }


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

    async def begin(self, url: str, state: str) -> None:
        """A person must open `url`; `state` identifies the callback."""

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
    ) -> None:
        super().__init__(server_url, client_metadata, storage, self._redirect, self._callback)
        values = {f.name: getattr(self.context, f.name) for f in fields(OAuthContext)}
        self.context = _Context(**values, clock=clock)
        self.storage = storage
        self.hooks = hooks
        self.label = label
        self.scope = scope
        self.as_timeout = as_timeout
        self._login_state: str | None = None

    def __repr__(self) -> str:
        return f"GatewayOAuthProvider({self.label!r})"

    # -- loading and saving ----------------------------------------------------------------------------------

    async def _initialize(self) -> None:
        """Load tokens (with their real expiry), the client, and the metadata discovered before a restart."""
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
        if self.scope:
            self.context.client_metadata.scope = self.scope
        return await super()._perform_authorization_code_grant()

    # -- the person in the loop ------------------------------------------------------------------------------

    async def _redirect(self, url: str) -> None:
        state = parse_qs(urlparse(url).query).get("state", [""])[0]
        self._login_state = state
        await self.hooks.begin(url, state)

    async def _callback(self) -> AuthorizationCodeResult:
        assert self._login_state is not None
        return await self.hooks.wait(self._login_state)

    # -- driving the flow ------------------------------------------------------------------------------------

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The SDK's flow; its requests to the authorization server go out here, bounded by `as_timeout`."""
        if self._initialized and self.storage.changed_on_disk():
            self._initialized = False  # tokens written by `auth login`, or removed by `auth logout`
        flow = self._auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                if outgoing is request:
                    response = yield outgoing
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
            await flow.aclose()

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
        text = _short(exc)
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
    return _short(error) if isinstance(error, str) else f"HTTP {response.status_code}"


# --------------------------------------------------------------------------------------------- the manager


@dataclass(eq=False)
class _PendingLogin:
    """A login whose URL was shown and whose callback has not been handled yet."""

    key: str
    label: str
    url: str
    relay: bool
    arrived: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: AuthorizationCodeResult | None = None
    error: str | None = None
    outcome: str | None = None


@dataclass(eq=False)
class _ServerAuth:
    """One server's provider, shared by every upstream connecting to it (one refresh, one login at a time)."""

    key: str
    name: str
    url: str
    label: str
    settings: Any
    provider: GatewayOAuthProvider | None = None
    upstreams: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    announce: Callable[[str], None] | None = None


class _ManagerHooks(LoginHooks):
    def __init__(self, manager: OAuthManager, entry: _ServerAuth, relay: bool) -> None:
        self.manager = manager
        self.entry = entry
        self.relay = relay

    async def begin(self, url: str, state: str) -> None:
        await self.manager._begin(self.entry, url, state, self.relay)

    async def wait(self, state: str) -> AuthorizationCodeResult:
        return await self.manager._wait(self.entry, state)

    def finished(self, state: str | None, error: str | None) -> None:
        self.manager._finished(self.entry, state, error)


class OAuthManager:
    """The gateway's OAuth client for every upstream with `oauth` settings (see the module docstring).

    `state` holds tokens, registrations and metadata; `public_url` gives the redirect URI. `login_timeout` bounds
    the wait for a person; `as_timeout` each request to an authorization server; `clock` is the wall clock.
    """

    def __init__(
        self,
        state: StateStore,
        public_url: str,
        *,
        login_timeout: float = LOGIN_TIMEOUT,
        as_timeout: float = AS_REQUEST_TIMEOUT,
        clock: Clock = time.time,
    ) -> None:
        self.state = state
        self.public_url = public_url.rstrip("/")
        self.redirect_uri = redirect_uri(public_url)
        self.login_timeout = login_timeout
        self.as_timeout = as_timeout
        self.clock = clock
        self._servers: dict[str, _ServerAuth] = {}
        self._pending: dict[str, _PendingLogin] = {}

    def __repr__(self) -> str:
        return f"OAuthManager({self.public_url!r}, {len(self._servers)} servers)"

    # -- providers -------------------------------------------------------------------------------------------

    def _entry(self, server: Any) -> _ServerAuth:
        if server.url is None or server.oauth is None:
            raise AuthError(f"server {server.name!r} has no `url` with `oauth` settings; OAuth is for remote servers")
        key = server_key(server.name, server.url)
        entry = self._servers.get(key)
        settings = (server.url, server.oauth)
        if entry is None or entry.settings != settings:
            label = f"{server.profile}/{server.name}" if server.profile else server.name
            entry = _ServerAuth(key, server.name, server.url, label, settings,
                                upstreams=entry.upstreams if entry else weakref.WeakSet())
            self._servers[key] = entry
        return entry

    def _provider(self, entry: _ServerAuth, server: Any, *, fresh: bool = False,
                  relay: bool = False) -> GatewayOAuthProvider:
        oauth = server.oauth
        configured = None
        if oauth.client_id:
            configured = OAuthClientInformationFull(
                client_id=oauth.client_id,
                client_secret=oauth.client_secret,
                redirect_uris=[self.redirect_uri],  # type: ignore[list-item]
                token_endpoint_auth_method="client_secret_basic" if oauth.client_secret else "none",
            )
        storage = StateTokenStorage(self.state, entry.key, configured_client=configured, clock=self.clock,
                                    fresh=fresh, redirect_uri=self.redirect_uri)
        scope = " ".join(oauth.scopes) or None
        metadata = OAuthClientMetadata(
            redirect_uris=[self.redirect_uri],  # type: ignore[list-item]
            client_name=oauth.client_name or DEFAULT_CLIENT_NAME,
            scope=scope,
        )
        return GatewayOAuthProvider(
            server.url, metadata, storage, _ManagerHooks(self, entry, relay),
            label=entry.label, scope=scope, clock=self.clock, as_timeout=self.as_timeout,
        )

    def auth_for(self, upstream: Any) -> httpx2.Auth:
        """The `httpx2.Auth` for a remote upstream with `oauth` settings (called before each connection attempt)."""
        entry = self._entry(upstream.server)
        entry.upstreams.add(upstream)
        if entry.provider is None:
            entry.provider = self._provider(entry, upstream.server)
        return entry.provider

    # -- logins ----------------------------------------------------------------------------------------------

    async def _begin(self, entry: _ServerAuth, url: str, state: str, relay: bool) -> None:
        waiting = [up for up in list(entry.upstreams) if str(getattr(up, "state", "")) in _CONNECTING_STATES]
        if not waiting and entry.announce is None:
            # A connected upstream's call was refused and its tokens cannot be refreshed: end that connection;
            # its next attempt asks for the login and shows the URL.
            raise AuthError(f"{entry.label}: the server refused the stored tokens and they cannot be refreshed; "
                            "a new login is needed")
        self._pending[state] = _PendingLogin(entry.key, entry.label, url, relay)
        if relay:
            self.state.write_json(_relay_entry(state), {"server": entry.key, "created": self.clock()})
        logger.info("OAuth login needed for %s: open the URL shown in /status (or run `local-mcp-gateway auth "
                    "login %s`)", entry.label, entry.name)
        for upstream in waiting:
            upstream.mark_needs_auth(url)
        if entry.announce is not None:
            entry.announce(url)

    async def _wait(self, entry: _ServerAuth, state: str) -> AuthorizationCodeResult:
        pending = self._pending[state]
        watcher = StateTokenStorage(self.state, entry.key, clock=self.clock)
        watcher.record()
        started = self.clock()
        try:
            with anyio.move_on_after(self.login_timeout):
                while not pending.arrived.is_set():
                    with anyio.move_on_after(TOKEN_POLL):
                        await pending.arrived.wait()
                    if pending.relay and not pending.arrived.is_set():
                        self._collect_relay(state, pending)
                    if not pending.relay and watcher.changed_on_disk():
                        record = watcher.record()
                        if record is not None and record.obtained_at >= started:
                            raise AuthError(f"{entry.label}: tokens arrived from another login; connecting with them")
        finally:
            if not pending.arrived.is_set():
                self._pending.pop(state, None)
                if pending.relay:
                    self.state.delete(_relay_entry(state))
        if not pending.arrived.is_set():
            raise AuthError(f"{entry.label}: no OAuth login completed within {self.login_timeout:g} s; open the URL "
                            f"shown in /status or run `local-mcp-gateway auth login {entry.name}`")
        if pending.error is not None:
            raise AuthError(f"{entry.label}: {pending.error}; nothing was stored, log in again")
        assert pending.result is not None
        return pending.result

    def _collect_relay(self, state: str, pending: _PendingLogin) -> None:
        value = self.state.read_json(_relay_entry(state))
        if isinstance(value, dict) and isinstance(value.get("result"), dict):
            self.state.delete(_relay_entry(state))
            self._deliver(pending, {k: str(v) for k, v in value["result"].items()})

    def _finished(self, entry: _ServerAuth, state: str | None, error: str | None) -> None:
        if error is None:
            for upstream in list(entry.upstreams):
                upstream.mark_authorized()
        pending = self._pending.pop(state, None) if state else None
        if pending is not None:
            pending.outcome = error
            pending.done.set()

    @staticmethod
    def _deliver(pending: _PendingLogin, params: dict[str, str]) -> None:
        error = params.get("error")
        if error:
            description = params.get("error_description")
            pending.error = f"the authorization server refused the login ({_short(error)}" + (
                f": {_short(description)})" if description else ")")
        elif not params.get("code"):
            pending.error = "the callback carried no authorization code"
        else:
            pending.result = AuthorizationCodeResult(code=params["code"], state=params.get("state"),
                                                     iss=params.get("iss"))
        pending.arrived.set()

    async def handle_callback(self, params: dict[str, str]) -> tuple[int, str]:
        """Handle `GET /oauth/callback?...`: returns (HTTP status, plain text for the person's browser)."""
        state = params.get("state") or ""
        if not state:
            return 400, "This callback has no `state` parameter. Nothing was stored; start the login again.\n"
        pending = self._pending.get(state)
        if pending is None or pending.arrived.is_set():
            if self._relay(state, params):
                return 200, ("Login received. The `local-mcp-gateway auth login` command that started it finishes "
                             "it; you can close this page.\n")
            return 400, ("Unknown or already used login (`state`). Nothing was stored. Start again: open the URL "
                         "shown in /status, or run `local-mcp-gateway auth login SERVER`.\n")
        self._deliver(pending, params)
        if pending.error is not None:
            self._pending.pop(state, None)
            return 400, f"Login for {pending.label} failed: {pending.error}. Nothing was stored; start again.\n"
        with anyio.move_on_after(CALLBACK_OUTCOME_WAIT):
            await pending.done.wait()
        if not pending.done.is_set():
            return 202, f"Login for {pending.label} received; the token exchange is still running (see /status).\n"
        if pending.outcome is not None:
            return 502, f"Login for {pending.label} failed: {pending.outcome}. Nothing was stored; start again.\n"
        return 200, f"Logged in to {pending.label}. You can close this page.\n"

    def _relay(self, state: str, params: dict[str, str]) -> bool:
        """Pass a callback on to the `auth login` command that started it (via `state/`); False if none did."""
        entry = _relay_entry(state)
        value = self.state.read_json(entry)
        if not isinstance(value, dict) or "result" in value:
            return False
        wanted = ("code", "state", "iss", "error", "error_description")
        value["result"] = {name: params[name] for name in wanted if params.get(name)}
        self.state.write_json(entry, value)
        return True

    async def login(self, server: Any, announce: Callable[[str], None], *, relay: bool = False,
                    connect: Callable[[Any, httpx2.Auth], Awaitable[None]]) -> dict[str, Any]:
        """A new login for `server` (stored tokens are replaced): `announce` shows the URL, `connect` makes the
        MCP request that the server answers with 401. With `relay`, the callback is collected from `state/`
        (a gateway serving `public_url` writes it there). Returns `token_summary`."""
        entry = self._entry(server)
        entry.announce = announce
        provider = self._provider(entry, server, fresh=True, relay=relay)
        try:
            await connect(server, provider)
        finally:
            entry.announce = None
        return token_summary(self.state, entry.key, self.clock())

    # -- status ----------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Per server key: name, url, `authorized`, `expires_at`, `auth_url` while a login waits; never a token."""
        now = self.clock()
        pending = {login.key: login.url for login in self._pending.values()}
        return {
            key: {"server": entry.name, "url": entry.url, **token_summary(self.state, key, now),
                  "auth_url": pending.get(key)}
            for key, entry in sorted(self._servers.items())
        }


def manager_for(snapshot: Any, settings: Any, current: OAuthManager | None = None) -> OAuthManager | None:
    """The gateway's `OAuthManager` for a configuration generation (what `Gateway.oauth` should hold).

    None while no server uses `oauth`; `current` is kept (with its logins in progress) while the state folder,
    the recipients and the public URL stay the same. Raises `SecretError` when the key is missing.
    """
    from local_mcp_gateway.secrets import require_identity

    uses = any(spec.config.oauth is not None for profile in snapshot.profiles.values() for spec in profile.servers)
    if not uses:
        return None
    public_url = public_url_for(snapshot.gateway, settings)
    identity = require_identity(settings, snapshot)
    store = StateStore(snapshot.state_dir, identity, list(snapshot.gateway.secrets.recipients))
    if (current is not None and current.public_url == public_url and current.state.state_dir == store.state_dir
            and current.state.recipients == store.recipients):
        return current
    return OAuthManager(store, public_url)


def _relay_entry(state: str) -> str:
    return f"{RELAY_DIR}/{hashlib.sha256(state.encode()).hexdigest()[:32]}"


# --------------------------------------------------------------------------------------------- logout


async def revoke_tokens(store: StateStore, key: str, *, timeout: float = AS_REQUEST_TIMEOUT,
                        client_secret: str | None = None) -> str:
    """Revoke a server's tokens where its authorization server supports RFC 7009, then delete them.

    Returns a sentence for the person; the tokens are deleted locally whatever the server answers.
    """
    storage = StateTokenStorage(store, key)
    record = storage.record()
    if record is None:
        storage.delete_tokens()
        return "no tokens were stored"
    asm, _, _ = storage.load_metadata()
    client = await storage.get_client_info()
    endpoint = asm.revocation_endpoint if asm is not None else None
    outcome = "the authorization server offers no revocation endpoint; the tokens were deleted here only"
    if endpoint is not None and client is not None:
        outcome = await _revoke(str(endpoint), record.token, client, client_secret, timeout)
    storage.delete_tokens()
    return outcome


async def _revoke(endpoint: str, token: OAuthToken, client: OAuthClientInformationFull, client_secret: str | None,
                  timeout: float) -> str:
    secret = client_secret or client.client_secret
    method = client.token_endpoint_auth_method or ("client_secret_basic" if secret else "none")
    auth: tuple[str, str] | None = None
    problems: list[str] = []
    pairs = [(token.refresh_token, "refresh_token"), (token.access_token, "access_token")]
    try:
        with anyio.fail_after(timeout):
            async with httpx2.AsyncClient(timeout=timeout) as http:
                for value, hint in pairs:
                    if not value:
                        continue
                    data = {"token": value, "token_type_hint": hint}
                    if method == "client_secret_basic" and secret:
                        auth = (client.client_id, secret)
                    else:
                        data["client_id"] = client.client_id
                        if method == "client_secret_post" and secret:
                            data["client_secret"] = secret
                    response = await http.post(endpoint, data=data, auth=auth)
                    if response.status_code != 200:
                        problems.append(f"{hint}: HTTP {response.status_code}")
    except (TimeoutError, httpx2.HTTPError) as exc:
        return (f"revocation at {urlparse(endpoint).netloc} failed ({type(exc).__name__}); the tokens were deleted "
                "here anyway")
    if problems:
        return f"revocation answered {', '.join(problems)}; the tokens were deleted here anyway"
    return f"the tokens were revoked at {urlparse(endpoint).netloc} and deleted here"


# --------------------------------------------------------------------------------------------- the callback app


def callback_app(manager: OAuthManager) -> Callable[..., Awaitable[None]]:
    """A minimal ASGI app serving `GET .../oauth/callback` with `manager` (used by `auth login`)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"].endswith(CALLBACK_PATH):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            status, text = await manager.handle_callback({k: v[0] for k, v in query.items()})
        else:
            status, text = 404, "Not found: this address serves only the OAuth callback during a login.\n"
        body = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app
