"""`OAuthManager`: one per gateway (or `auth login` command): providers per upstream, logins in progress, the
callback at `{public_url}/oauth/callback`, and logins relayed between a command and a running gateway."""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx2
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientMetadata,
)

from local_mcp_gateway.asgi import answer_lifespan, respond
from local_mcp_gateway.errors import AuthError
from local_mcp_gateway.oauth.common import (
    AS_REQUEST_TIMEOUT,
    CALLBACK_OUTCOME_WAIT,
    CALLBACK_PATH,
    CONNECTING_STATES,
    DEFAULT_CLIENT_NAME,
    LOGIN_TIMEOUT,
    RELAY_DIR,
    TOKEN_POLL,
    Clock,
    public_url_for,
    redirect_uri,
    server_key,
    shorten,
    uses_oauth,
)
from local_mcp_gateway.oauth.grants import ClientCredentialsProvider, IdentityAssertionAuth, configured_client
from local_mcp_gateway.oauth.provider import GatewayOAuthProvider, LoginHooks
from local_mcp_gateway.oauth.storage import StateTokenStorage, token_summary
from local_mcp_gateway.state import StateStore

logger = logging.getLogger(__name__)

__all__ = ["OAuthManager", "callback_app", "manager_for"]

# --------------------------------------------------------------------------------------------- the manager


@dataclass(eq=False)
class _PendingLogin:
    """A login whose URL was shown and whose callback has not been handled yet."""

    key: str
    label: str
    url: str
    relay: bool
    command: bool = False
    """Started by the `auth login` command (not by an upstream of this gateway)."""
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

    async def begin(self, url: str, state: str, *, step_up: bool = False, scope: str | None = None) -> None:
        await self.manager._begin(self.entry, url, state, self.relay, step_up=step_up, scope=scope)

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

    def _provider(self, entry: _ServerAuth, server: Any, *, fresh: bool = False, relay: bool = False) -> Any:
        """The `httpx2.Auth` of a server, by its grant (tokens in `state/`, shared by its upstreams)."""
        oauth = server.oauth
        storage = StateTokenStorage(self.state, entry.key, configured_client=configured_client(oauth, self.redirect_uri),
                                    clock=self.clock, fresh=fresh, redirect_uri=self.redirect_uri)
        scope = " ".join(oauth.scopes) or None
        if oauth.grant == "client_credentials":
            return ClientCredentialsProvider(server.url, storage, oauth, label=entry.label, scope=scope,
                                             clock=self.clock, as_timeout=self.as_timeout)
        if oauth.grant == "jwt_bearer":
            return IdentityAssertionAuth(server.url, storage, oauth, label=entry.label, scope=scope,
                                         as_timeout=self.as_timeout)
        metadata = OAuthClientMetadata(
            redirect_uris=[self.redirect_uri],  # type: ignore[list-item]
            client_name=oauth.client_name or DEFAULT_CLIENT_NAME,
            scope=scope,
        )
        return GatewayOAuthProvider(
            server.url, metadata, storage, _ManagerHooks(self, entry, relay),
            label=entry.label, scope=scope, clock=self.clock, as_timeout=self.as_timeout,
            client_metadata_url=oauth.client_metadata_url,
        )

    def auth_for(self, upstream: Any) -> httpx2.Auth:
        """The `httpx2.Auth` for a remote upstream with `oauth` settings (called before each connection attempt)."""
        entry = self._entry(upstream.server)
        entry.upstreams.add(upstream)
        if entry.provider is None:
            # Relayed: the callback of a login this replica starts may reach any replica behind the load balancer.
            entry.provider = self._provider(entry, upstream.server, relay=True)
        return entry.provider

    # -- logins ----------------------------------------------------------------------------------------------

    async def _begin(self, entry: _ServerAuth, url: str, state: str, relay: bool, *, step_up: bool = False,
                     scope: str | None = None) -> None:
        waiting = [up for up in list(entry.upstreams) if str(getattr(up, "state", "")) in CONNECTING_STATES]
        if step_up and not waiting:
            # A working connection met a call that needs more scope: it keeps serving its other calls while a
            # person logs in with the union of scopes; the call that asked waits (bounded by its timeout).
            self._pending[state] = _PendingLogin(entry.key, entry.label, url, relay)
            logger.info("OAuth step-up for %s: a call needs scope %r; open the URL shown in /status", entry.label,
                        scope)
            for upstream in list(entry.upstreams):
                upstream.mark_step_up(url, scope)
            if entry.announce is not None:
                entry.announce(url)
            return
        if not waiting and entry.announce is None:
            # A connected upstream's call was refused and its tokens cannot be refreshed: end that connection;
            # its next attempt asks for the login and shows the URL.
            raise AuthError(f"{entry.label}: the server refused the stored tokens and they cannot be refreshed; "
                            "a new login is needed")
        self._pending[state] = _PendingLogin(entry.key, entry.label, url, relay, command=entry.announce is not None)
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
                    if (not pending.relay or not pending.command) and watcher.changed_on_disk():
                        record = watcher.record()
                        if record is not None and record.obtained_at >= started:
                            raise AuthError(f"{entry.label}: tokens arrived from another login; connecting with them")
        finally:
            if not pending.arrived.is_set():
                self._pending.pop(state, None)
            if pending.relay:  # answered here, relayed, or given up: a replay of the callback finds nothing
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
            pending.error = f"the authorization server refused the login ({shorten(error)}" + (
                f": {shorten(description)})" if description else ")")
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
                return 200, ("Login received. The gateway replica (or the `local-mcp-gateway auth login` command) "
                             "that started it finishes it; you can close this page.\n")
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
        """Pass a callback on to the replica or `auth login` command that started it (via `state/`); False if none
        did."""
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
        if server.oauth.grant != "authorization_code":
            raise AuthError(f"{server.name}: grant {server.oauth.grant} needs no login; the gateway obtains tokens "
                            "on its own when it connects")
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
    from local_mcp_gateway.secret_refs import require_identity

    if not uses_oauth(snapshot):
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


# --------------------------------------------------------------------------------------------- the callback app


def callback_app(manager: OAuthManager) -> Callable[..., Awaitable[None]]:
    """A minimal ASGI app serving `GET .../oauth/callback` with `manager` (used by `auth login`)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"].endswith(CALLBACK_PATH):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            status, text = await manager.handle_callback({k: v[0] for k, v in query.items()})
        else:
            status, text = 404, "Not found: this address serves only the OAuth callback during a login.\n"
        await respond(send, status, text.encode(), "text/plain; charset=utf-8")

    return app
