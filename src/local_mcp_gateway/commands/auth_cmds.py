"""`auth login SERVER`, `auth status` and `auth logout SERVER`: OAuth for remote servers from the command line.

`auth login` runs the same flow as the gateway and stores the tokens in `state/`, where a running gateway picks
them up on its next connection attempt. The redirect goes to `{public_url}/oauth/callback`:

- no gateway listens there: the command serves the callback itself on the configured listen address for the
  duration of the login;
- a gateway already listens there: it receives the redirect and relays the parameters through an encrypted
  state entry (`state/oauth/relay/...`) that this command polls, then this command exchanges the code (it holds
  the PKCE verifier) and writes the tokens.

Either way the command prints the URL and waits, so it works on a headless host: open the URL in any browser
that can reach `public_url` (an SSH tunnel to the gateway's port will do).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from typing import Any

import anyio
import httpx2

from local_mcp_gateway.commands import add_config_option, reporting
from local_mcp_gateway.config.load import load_snapshot
from local_mcp_gateway.config.resolve import ResolvedServer, resolve_server
from local_mcp_gateway.config.snapshot import ServerSpec, Snapshot
from local_mcp_gateway.errors import AuthError, GatewayError
from local_mcp_gateway.oauth import LOGIN_TIMEOUT, public_url_for, server_key  # the flow: imported where used
from local_mcp_gateway.secret_refs import require_identity
from local_mcp_gateway.secrets import SecretStore
from local_mcp_gateway.settings import EnvSettings
from local_mcp_gateway.state import StateStore

__all__ = ["register"]

PROBE_TIMEOUT = 2.0
"""Seconds to wait for a gateway's /healthz (or /status) at public_url before deciding none is there."""





# --------------------------------------------------------------------------------------------- configuration


class _Setup:
    """The configuration, the key, the state store and the public URL, as every auth command needs them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.settings = EnvSettings()
        self.snapshot: Snapshot = load_snapshot(self.settings.config_path(args.config), environ=os.environ)
        identity = require_identity(self.settings, self.snapshot)
        if identity is None:
            raise AuthError("OAuth tokens are stored encrypted in state/; set MCP_GATEWAY_AGE_KEY or "
                            "MCP_GATEWAY_AGE_KEY_FILE")
        self.secrets = SecretStore(self.snapshot.secrets_dir, identity)
        self.store = StateStore(self.snapshot.state_dir, identity, list(self.snapshot.gateway.secrets.recipients))
        self.public_url = public_url_for(self.snapshot.gateway, self.settings)

    def specs(self) -> list[tuple[str, ServerSpec]]:
        """(how to name it on the command line, spec) of every server with `oauth`: catalog, then inline."""
        found: list[tuple[str, ServerSpec]] = []
        for name, config in self.snapshot.gateway.servers.items():
            if config.oauth is not None:
                found.append((name, ServerSpec(name, config, name, "", False, self.snapshot.config_path, None)))
        for slug, profile in self.snapshot.profiles.items():
            for spec in profile.servers:
                if spec.inline and spec.config.oauth is not None:
                    found.append((f"{slug}/{spec.name}", spec))
        return found

    def resolve(self, spec: ServerSpec) -> ResolvedServer:
        return resolve_server(spec, self.secrets.reveal_lookup, os.environ)

    def find(self, wanted: str) -> ResolvedServer:
        specs = self.specs()
        for label, spec in specs:
            if label == wanted:
                return self.resolve(spec)
        if "/" in wanted:
            slug, _, name = wanted.partition("/")
            profile = self.snapshot.profiles.get(slug)
            for spec in profile.servers if profile else ():
                if spec.name == name and spec.config.oauth is not None:
                    return self.resolve(spec)
        known = ", ".join(label for label, _ in specs) or "none"
        raise AuthError(f"no server {wanted!r} with `oauth` settings in {self.snapshot.config_path}; name a catalog "
                        f"server or PROFILE/SERVER (servers with oauth: {known})")


def _gateway_status(public_url: str) -> dict[str, Any] | None:
    """A running gateway's /status at public_url, or None when nothing (or something else) answers there."""
    try:
        response = httpx2.get(f"{public_url}/status", timeout=PROBE_TIMEOUT)
        if response.status_code == 200 and "profiles" in response.json():
            return response.json()
    except (httpx2.HTTPError, ValueError):
        return None
    return None


# --------------------------------------------------------------------------------------------- login


async def _connect(server: ResolvedServer, auth: httpx2.Auth) -> None:
    """Initialize an MCP session with the server: the 401 it answers starts the login."""
    from mcp import ClientSession

    from local_mcp_gateway.upstream.transports import open_transport

    async with open_transport(server, auth=auth) as (read, write), ClientSession(read, write) as session:
        await session.initialize()


async def _login(setup: _Setup, server: ResolvedServer, timeout: float, browser: bool = False) -> dict[str, Any]:
    from local_mcp_gateway.oauth import OAuthManager, callback_app

    manager = OAuthManager(setup.store, setup.public_url, login_timeout=timeout)
    relay = _gateway_status(setup.public_url) is not None

    def announce(url: str) -> None:
        print("Open this URL in a browser to log in (it redirects to "
              f"{manager.redirect_uri}):\n\n  {url}\n", flush=True)
        if browser:
            _open_browser(url)
        where = "the running gateway relays the callback here" if relay else "this command serves the callback"
        print(f"Waiting up to {timeout:g} s ({where}) ...", file=sys.stderr, flush=True)

    if relay:
        return await manager.login(server, announce, relay=True, connect=_connect)
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    listen = setup.snapshot.gateway.listen
    host = setup.settings.host or listen.host
    port = setup.settings.port if setup.settings.port is not None else listen.port
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    stop = anyio.Event()
    result: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(callback_app(manager), config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        try:
            result = await manager.login(server, announce, connect=_connect)
        finally:
            stop.set()
    return result


def _first_gateway_error(exc: BaseException) -> GatewayError | None:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _first_gateway_error(inner)) is not None:
                return found
    return None if exc.__cause__ is None else _first_gateway_error(exc.__cause__)


@reporting
def _open_browser(url: str) -> None:
    """Open `url` in the desktop's browser when there is one; on a headless host the printed URL is the way."""
    import webbrowser

    desktop = sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    try:  # without a desktop, webbrowser would start a console browser in this terminal: never do that
        opened = desktop and webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        print("(no browser could be opened here: open the URL above yourself)", file=sys.stderr, flush=True)


def run_login(args: argparse.Namespace) -> int:
    setup = _Setup(args)
    server = setup.find(args.server)
    try:
        summary = anyio.run(_login, setup, server, args.timeout, args.browser)
    except BaseException as exc:  # the transport's task group wraps what the flow raised
        if isinstance(exc, KeyboardInterrupt):
            print("error: login interrupted; nothing was stored", file=sys.stderr)
            return 1
        found = _first_gateway_error(exc)
        if found is None:
            raise AuthError(f"login for {args.server} failed: {type(exc).__name__}: {exc}") from None
        raise found from None
    print(f"Logged in to {args.server}; tokens stored (encrypted) under "
          f"{setup.store.state_dir / 'oauth' / server_key(server.name, server.url or '')}; "
          f"access token expires {summary['expires_at'] or 'never'}.")
    return 0


# --------------------------------------------------------------------------------------------- status, logout


@reporting
def run_status(args: argparse.Namespace) -> int:
    from local_mcp_gateway.oauth import token_summary

    setup = _Setup(args)
    running = _gateway_status(setup.public_url)
    pending = _pending_urls(running)
    rows = []
    now = time.time()
    for label, spec in setup.specs():
        server = setup.resolve(spec)
        key = server_key(server.name, server.url or "")
        summary = token_summary(setup.store, key, now)
        rows.append({"server": label, "url": server.url, "key": key, **summary,
                     "auth_url": pending.get(server.name)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no server in this configuration uses oauth")
        return 0
    for row in rows:
        if row["authorized"]:
            state = f"authorized, access token expires {row['expires_at'] or 'never'}"
            state += " (refreshable)" if row["refreshable"] else " (no refresh token)"
        else:
            state = "not logged in" + (" (access token expired, no refresh token)" if row["expires_at"] else "")
        print(f"{row['server']}: {state}")
        if row["problem"]:
            print(f"  problem: {row['problem']}")
        if row["auth_url"]:
            print(f"  the running gateway waits for a login: {row['auth_url']}")
        elif not row["authorized"]:
            print(f"  log in with: local-mcp-gateway auth login {row['server']}")
    return 0


def _pending_urls(status: dict[str, Any] | None) -> dict[str, str]:
    urls: dict[str, str] = {}
    for profile in (status or {}).get("profiles", {}).values():
        for name, server in (profile.get("servers") or {}).items():
            if isinstance(server, dict) and server.get("auth_url"):
                urls.setdefault(name, server["auth_url"])
    return urls


@reporting
def run_logout(args: argparse.Namespace) -> int:
    from local_mcp_gateway.oauth import revoke_tokens

    setup = _Setup(args)
    server = setup.find(args.server)
    key = server_key(server.name, server.url or "")
    secret = server.oauth.client_secret if server.oauth else None
    outcome = anyio.run(functools.partial(revoke_tokens, setup.store, key, client_secret=secret))
    print(f"{args.server}: {outcome}")
    return 0


# --------------------------------------------------------------------------------------------- wiring


def register(subparsers: Any) -> None:
    """Add `auth login|status|logout` to the command line."""
    auth = subparsers.add_parser("auth", help="OAuth logins for remote servers with `oauth` settings",
                                 description="Log in to, inspect and log out of remote servers that use OAuth. "
                                             "Tokens are stored age-encrypted under state/oauth/.")
    actions = auth.add_subparsers(dest="auth_command", metavar="ACTION", required=True)

    login = actions.add_parser("login", help="print the login URL and wait for the callback",
                               description="Run the OAuth authorization-code flow (PKCE) for SERVER: print the URL "
                                           "to open and wait for the redirect to {public_url}/oauth/callback.")
    login.add_argument("server", metavar="SERVER", help="a catalog server, or PROFILE/SERVER for an inline one")
    login.add_argument("--timeout", type=float, default=LOGIN_TIMEOUT, metavar="SECONDS",
                       help=f"how long to wait for the login (default {LOGIN_TIMEOUT:g})")
    login.add_argument("--no-browser", dest="browser", action="store_false",
                       help="only print the URL (default: also open it in this desktop's browser, if it has one)")
    add_config_option(login, metavar="PATH")
    login.set_defaults(handler=run_login)

    status = actions.add_parser("status", help="which servers have tokens and when they expire",
                                description="List the servers with `oauth` settings, whether tokens are stored, "
                                            "when the access token expires, and a pending login URL.")
    status.add_argument("--json", action="store_true", help="print JSON")
    add_config_option(status, metavar="PATH")
    status.set_defaults(handler=run_status)

    logout = actions.add_parser("logout", help="revoke (RFC 7009, where offered) and delete a server's tokens",
                                description="Revoke SERVER's tokens at its authorization server when it offers a "
                                            "revocation endpoint, and delete them from state/.")
    logout.add_argument("server", metavar="SERVER", help="a catalog server, or PROFILE/SERVER for an inline one")
    add_config_option(logout, metavar="PATH")
    logout.set_defaults(handler=run_logout)
