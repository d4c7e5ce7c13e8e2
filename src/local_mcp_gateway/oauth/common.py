"""Constants and small pure pieces of the OAuth client: state keys, redirect URIs, refresh timing."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mcp.shared.auth_utils import resource_url_from_server_url

__all__ = [
    "AS_REQUEST_TIMEOUT",
    "CALLBACK_PATH",
    "LOGIN_TIMEOUT",
    "public_url_for",
    "redirect_uri",
    "refresh_due",
    "server_key",
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
CONNECTING_STATES = ("starting", "needs_auth")
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


def uses_oauth(snapshot: Any) -> bool:
    """Whether any server of any profile of `snapshot` has `oauth` settings (only then is the flow loaded)."""
    return any(spec.config.oauth is not None for profile in snapshot.profiles.values() for spec in profile.servers)


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


def shorten(text: object) -> str:
    value = " ".join(str(text).split())
    return value if len(value) <= MESSAGE_LIMIT else value[: MESSAGE_LIMIT - 3] + "..."


def iso_time(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
