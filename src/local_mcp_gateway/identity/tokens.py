"""JWT access tokens checked with Authlib's JOSE library (`joserfc`): signature by the issuer's JWKS, `iss`,
`aud`, `exp`/`nbf` with a small leeway, and only asymmetric algorithms.

This module is imported only by a profile with `oauth` settings, so a gateway without inbound OAuth never loads
`joserfc`. Errors:

    TokenError                 the token is not accepted: 401 invalid_token
    └── KeysUnavailable        no signing key could ever be loaded (JWKS unreachable): 503
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import anyio
import httpx2
from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import KeySet

from local_mcp_gateway.identity.resource import ResourceSettings

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "JWKS_MAX_AGE",
    "KeysUnavailable",
    "REFETCH_INTERVAL",
    "TokenError",
    "TokenVerifier",
]

logger = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Signature algorithms accepted: `none` and the HMAC family never are (no algorithm confusion with a public key)."""

LEEWAY_SECONDS = 30
"""Clock skew tolerated on `exp`, `nbf` and `iat`."""

REFETCH_INTERVAL = 60.0
"""Seconds between two JWKS fetches caused by an unknown `kid`: a flood of made-up kids costs one fetch a minute."""

RETRY_WITHOUT_KEYS = 5.0
"""Seconds between attempts to load the JWKS while none was ever loaded (those requests get 503)."""

JWKS_MAX_AGE = 3600.0
"""Keys older than this are fetched again on the next request; if that fails, the old keys keep working."""

FETCH_TIMEOUT = 10.0
"""Seconds one metadata or JWKS request to the authorization server may take."""

MAX_DOCUMENT_BYTES = 256 * 1024
"""Largest metadata or JWKS document read."""

MAX_TOKEN_CHARS = 12 * 1024
"""Longer bearer values are refused without parsing (the header limit usually answers first)."""


class TokenError(Exception):
    """The token is not accepted; the message says why, never what the token is."""


class KeysUnavailable(TokenError):
    """No signing key is known and none could be fetched."""


class TokenVerifier:
    """Verifies access tokens for one profile; holds the issuer's keys (fetched lazily, cached, refetched)."""

    def __init__(self, settings: ResourceSettings) -> None:
        self.settings = settings
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = 0.0
        self._last_attempt: float | None = None
        self._last_refetch: float | None = None
        self._jwks_uri = settings.jwks_uri
        self._lock = anyio.Lock()
        self.fetches = 0
        """JWKS documents fetched so far (shown in status)."""

    def __repr__(self) -> str:
        return f"TokenVerifier({self.settings.issuer!r}, keys={len(self._kids)})"

    async def verify(self, token: str) -> Mapping[str, Any]:
        """The token's claims when it is valid for this profile; raises `TokenError` otherwise."""
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenError("the token is too long")
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError) as exc:
            raise TokenError("the token is not a signed JWT") from exc
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise TokenError(f"the token's algorithm {str(alg)[:16]!r} is not accepted")
        kid = header.get("kid")
        keys: Any = await self._keys_for(kid if isinstance(kid, str) else None)
        if not isinstance(kid, str):  # without a kid only an issuer with a single key is unambiguous
            if len(keys.keys) != 1:
                raise TokenError("the token names no signing key (kid) and the issuer has several")
            keys = keys.keys[0]
        try:
            decoded = jwt.decode(token, keys, algorithms=[alg])
        except JoseError as exc:
            raise TokenError(f"the token's signature does not verify ({exc.error})") from exc
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise TokenError(_claim_problem(exc)) from exc
        return claims

    # -- keys ----------------------------------------------------------------------------------------------

    async def _keys_for(self, kid: str | None) -> KeySet:
        now = time.monotonic()
        if self._keys is not None and (kid is None or kid in self._kids) and now - self._fetched_at < JWKS_MAX_AGE:
            return self._keys
        async with self._lock:
            now = time.monotonic()
            if self._keys is not None and (kid is None or kid in self._kids) and now - self._fetched_at < JWKS_MAX_AGE:
                return self._keys
            if self._may_fetch(kid, now):
                await self._fetch(now, unknown_kid=self._keys is not None and kid is not None and kid not in self._kids)
            if self._keys is None:
                raise KeysUnavailable("the authorization server's signing keys cannot be loaded")
            if kid is not None and kid not in self._kids:
                raise TokenError("the token was signed by a key the authorization server does not publish")
            return self._keys

    def _may_fetch(self, kid: str | None, now: float) -> bool:
        if self._keys is None:
            return self._last_attempt is None or now - self._last_attempt >= RETRY_WITHOUT_KEYS
        if kid is not None and kid not in self._kids:
            return self._last_refetch is None or now - self._last_refetch >= REFETCH_INTERVAL
        return self._last_attempt is None or now - self._last_attempt >= RETRY_WITHOUT_KEYS  # expired cache

    async def _fetch(self, now: float, *, unknown_kid: bool) -> None:
        self._last_attempt = now
        if unknown_kid:
            self._last_refetch = now
        try:
            async with httpx2.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as http:
                if self._jwks_uri is None:
                    self._jwks_uri = await _discover_jwks_uri(http, self.settings.issuer)
                document = await _get_json(http, self._jwks_uri)
            keys = _asymmetric_keys(document)
        except (httpx2.HTTPError, ValueError, JoseError) as exc:
            logger.warning(
                "profile %s: the signing keys of %s could not be loaded (%s); %s",
                self.settings.slug,
                self.settings.issuer,
                type(exc).__name__ if not isinstance(exc, ValueError) else exc,
                "the cached keys stay in use" if self._keys is not None else "tokens cannot be checked until they load",
            )
            return
        self.fetches += 1
        self._keys = keys
        self._kids = frozenset(str(key.kid) for key in keys.keys if key.kid is not None)
        self._fetched_at = time.monotonic()
        logger.info("profile %s: loaded %d signing keys of %s", self.settings.slug, len(keys.keys), self.settings.issuer)


def _asymmetric_keys(document: Any) -> KeySet:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS document has no keys list")
    usable = [
        key
        for key in document["keys"]
        if isinstance(key, dict) and key.get("kty") in ("RSA", "EC", "OKP") and key.get("use", "sig") == "sig"
        and "d" not in key
    ]
    if not usable:
        raise ValueError("the JWKS document has no public signing keys")
    return KeySet.import_key_set({"keys": usable})


async def _discover_jwks_uri(http: httpx2.AsyncClient, issuer: str) -> str:
    """`jwks_uri` from the issuer's RFC 8414 metadata, else its OpenID Connect discovery document."""
    scheme, _, rest = issuer.rstrip("/").partition("://")
    host, slash, path = rest.partition("/")
    origin, path = f"{scheme}://{host}", slash + path
    for url in (
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
    ):
        try:
            document = await _get_json(http, url)
        except (httpx2.HTTPError, ValueError):
            continue
        if isinstance(document, dict) and document.get("issuer") == issuer and isinstance(document.get("jwks_uri"), str):
            return document["jwks_uri"]
    raise ValueError(f"no metadata with a jwks_uri found for issuer {issuer}")


async def _get_json(http: httpx2.AsyncClient, url: str) -> Any:
    import json

    async with http.stream("GET", url, headers={"Accept": "application/json"}) as response:
        if response.status_code != 200:
            raise ValueError(f"{url} answered {response.status_code}")
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def _claim_problem(exc: JoseError) -> str:
    """Why the claims were refused, in words for the caller (joserfc's descriptions name the claim)."""
    if isinstance(exc, ExpiredTokenError):
        return "the token has expired"
    description = str(exc.description or exc.error)
    if "not yet valid" in description:
        return "the token is not valid yet"
    if isinstance(exc, MissingClaimError):
        return "the token lacks a required claim (iss, aud, exp and sub are needed)"
    for claim, text in (("iss", "the token is from another issuer"), ("aud", "the token is for another resource")):
        if f"'{claim}'" in description:
            return text
    return "the token's claims are not valid"
