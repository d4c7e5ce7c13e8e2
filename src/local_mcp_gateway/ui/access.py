"""Who may open `/ui/`, checked on every request before any page, event stream or action runs.

=====  ============================================================  ==========================================
 1     Host in `security.allowed_hosts` (DNS rebinding), as /mcp     421
 2     Origin (when sent) is the page's own (or `public_url`'s);     403
       a POST must send it and carry no cross-site `Sec-Fetch-Site`
 2b    an address that presented too many wrong keys this minute     429 + `Retry-After` (for any key it presents)
 3     the caller: loopback (`ui.loopback`), an admin key            401 (sign-in offered) when admin keys are
       (`ui.admin_keys`, as `Authorization: Bearer`), or a sign-in   configured, else 403
       session cookie
=====  ============================================================  ==========================================

Step 3 asks each `Authorizer` in turn; the first that recognises the caller admits it. An identity provider
(inbound OAuth tokens with an admin scope) plugs in as one more authorizer (`UIAccess.authorizers`), without
changing the other steps.

Sign-in: a person types an admin key into the page's form once; the browser then holds a random session token
in an HttpOnly, SameSite=Strict cookie scoped to `/ui/`. Only the token's SHA-256 is kept here, with the digest
of the key it was issued for, so removing that key from `ui.admin_keys` ends its sessions at the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local_mcp_gateway.security import HostAllowList, is_loopback_address

__all__ = ["SESSION_COOKIE", "SESSION_LIFETIME", "Decision", "UIAccess"]

SESSION_COOKIE = "lmg_ui_session"
SESSION_LIFETIME = 12 * 3600.0
"""Seconds a sign-in lasts; then the admin key is asked for again."""
MAX_SESSIONS = 1000
"""Sign-in sessions kept; the oldest is dropped first, so memory stays bounded whoever signs in."""
FAILED_KEYS_PER_MINUTE = 10
"""Wrong keys (sign-in or `Authorization`) an address may present a minute; then every key it presents, right or
wrong, is refused with 429 until the minute has passed, so a guess that happens to be right tells nothing."""
MAX_TRACKED_ADDRESSES = 10_000
"""Addresses whose wrong keys are remembered; the least recent is forgotten first."""


@dataclass(frozen=True)
class Decision:
    """The outcome for one request: allowed (with who) or refused (status, error code, message)."""

    status: int
    error: str = ""
    message: str = ""
    who: str = ""
    retry_after: int | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOWED = Decision(200)

Authorizer = Callable[[Any, "Keys"], str | None]
"""`(request, keys) -> who` when the authorizer recognises the caller, else None."""


@dataclass(frozen=True)
class Keys:
    """The admin keys of one configuration generation, as SHA-256 digests only."""

    generation: int
    digests: tuple[bytes, ...]
    loopback: bool

    def match(self, presented: str) -> bytes | None:
        """The digest of `presented` when it is one of the keys (constant time over all keys), else None."""
        if not presented:
            return None
        candidate = _digest(presented)
        matched = False
        for digest in self.digests:
            matched |= hmac.compare_digest(candidate, digest)
        return candidate if matched else None

    def __repr__(self) -> str:
        return f"Keys(generation={self.generation}, {len(self.digests)} keys)"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class UIAccess:
    """The checks above, for the gateway's current generation (keys are rendered once per generation)."""

    def __init__(self, gateway: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.gateway = gateway
        self.clock = clock
        self._keys: Keys | None = None
        self._sessions: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self.authorizers: list[Authorizer] = [self._loopback, self._bearer, self._session]
        """Asked in order; an inbound-identity authorizer (OAuth scope) is appended here when one exists."""

    def __repr__(self) -> str:
        return f"UIAccess({self._keys!r}, {len(self._sessions)} sessions)"

    # -- configuration -----------------------------------------------------------------------------------

    def settings(self) -> Any:
        info = self.gateway.generation_info
        return info.snapshot.gateway if info is not None else None

    def keys(self) -> Keys:
        info = self.gateway.generation_info
        number = info.number if info is not None else 0
        if self._keys is None or self._keys.generation != number:
            digests: tuple[bytes, ...] = ()
            loopback = True
            if info is not None:
                ui = info.snapshot.gateway.ui
                loopback = ui.loopback
                rendered = [t.render(info.secrets.reveal_lookup, os.environ) for t in ui.admin_keys]
                digests = tuple(_digest(key) for key in rendered if key)
            self._keys = Keys(number, digests, loopback)
        return self._keys

    # -- the checks ----------------------------------------------------------------------------------------

    def check(self, request: Any) -> Decision:
        gateway = self.settings()
        if gateway is None:
            return Decision(503, "not_ready", "the gateway has not loaded its configuration yet")
        if not gateway.ui.enabled:
            return Decision(404, "not_found", "the dashboard is turned off (ui.enabled: false)")
        hosts = request.headers.getlist("Host")
        if len(hosts) != 1 or not HostAllowList(gateway.security.allowed_hosts).allows(hosts[0]):
            return Decision(421, "host_not_allowed",
                            "this Host is not in security.allowed_hosts; connect by an allowed name or add it there")
        refusal = self._check_origin(request, gateway.public_url)
        if refusal is not None:
            return refusal
        keys = self.keys()
        presents_key = bool(request.headers.get("Authorization")) or (
            request.method == "POST" and request.path == "/ui/sign-in"
        )
        address = request.remote_addr or "local"
        if presents_key and (wait := self.locked_out(address)) is not None:
            return Decision(429, "rate_limited", f"too many wrong keys from this address; retry after {wait} s",
                            retry_after=wait)
        for authorizer in self.authorizers:
            who = authorizer(request, keys)
            if who:
                return Decision(200, who=who)
        if request.headers.get("Authorization"):
            self.failed(address)
        if keys.digests:
            return Decision(401, "unauthorized", "sign in with an admin key (ui.admin_keys)")
        return Decision(403, "forbidden",
                        "the dashboard is served to loopback clients only; add ui.admin_keys to open it to others")

    def _check_origin(self, request: Any, public_url: str | None) -> Decision | None:
        """The page's own origins: this request's scheme and Host, and `public_url`'s (a proxy in front may
        terminate TLS, so the browser's https origin reaches the gateway as plain http)."""
        own = {f"{request.scheme}://{request.headers.get('Host', '')}".lower()}
        if public_url:
            scheme, _, rest = public_url.partition("://")
            own.add(f"{scheme}://{rest.split('/', 1)[0]}".lower())
        origins = request.headers.getlist("Origin")
        site = request.headers.get("Sec-Fetch-Site", "")
        if len(origins) > 1 or (origins and origins[0].lower() not in own):
            return Decision(403, "origin_not_allowed", "requests to the dashboard must come from its own pages")
        if request.method not in ("GET", "HEAD"):
            if not origins or site not in ("", "same-origin"):
                return Decision(403, "origin_not_allowed",
                                "actions on the dashboard are accepted from its own pages only (Origin missing)")
        return None

    # -- authorizers ---------------------------------------------------------------------------------------

    def _loopback(self, request: Any, keys: Keys) -> str | None:
        return "loopback" if keys.loopback and is_loopback_address(request.remote_addr) else None

    def _bearer(self, request: Any, keys: Keys) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and keys.match(token.strip()) is not None:
            return "admin key"
        return None

    def _session(self, request: Any, keys: Keys) -> str | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        entry = self._sessions.get(_digest(token))
        if entry is None:
            return None
        expires, key_digest = entry
        if expires < self.clock() or not any(hmac.compare_digest(key_digest, d) for d in keys.digests):
            self._sessions.pop(_digest(token), None)
            return None
        return "signed in"

    # -- sign-in sessions ----------------------------------------------------------------------------------

    def sign_in(self, presented: str, address: str | None = None) -> str | None:
        """A new session token for a valid admin key, else None (and the wrong key is counted for `address`)."""
        key_digest = self.keys().match(presented)
        if key_digest is None:
            self.failed(address or "local")
            return None
        token = secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = (self.clock() + SESSION_LIFETIME, key_digest)
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return token

    def sign_out(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)

    # -- wrong keys --------------------------------------------------------------------------------------------

    def _recent(self, address: str) -> list[float]:
        horizon = self.clock() - 60.0
        times = [t for t in self._failures.get(address, ()) if t > horizon]
        if times:
            self._failures[address] = times
            self._failures.move_to_end(address)
        else:
            self._failures.pop(address, None)
        return times

    def failed(self, address: str) -> None:
        self._failures[address] = [*self._recent(address), self.clock()]
        self._failures.move_to_end(address)
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)

    def locked_out(self, address: str) -> int | None:
        """Whole seconds until `address` may present a key again, or None when it may now."""
        times = self._recent(address)
        if len(times) < FAILED_KEYS_PER_MINUTE:
            return None
        return max(1, int(times[-FAILED_KEYS_PER_MINUTE] + 60.0 - self.clock()) + 1)

    def key_count(self) -> int:
        return len(self.keys().digests)

