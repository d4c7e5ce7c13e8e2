"""The one decision the inbound guard asks for: who is calling this profile, and may they come in?

`Authenticator.identify` looks at the `Authorization` header (and the query string, where a token must never
be) and answers with a `Principal` or a `Refusal`:

=====================================================================  ===============================================
 nothing required (no `api_keys`, no `oauth`)                           `anonymous`
 a token or key in the query string                                     400 `invalid_request`
 no `Authorization: Bearer ...`                                         401, `WWW-Authenticate` names the metadata
 one of the profile's API keys                                          `key:<8 hex>`
 a JWT access token that verifies (see `tokens`)                        its `sub`
 ... lacking `required_scopes`                                          403 `insufficient_scope`
 anything else                                                          401 `invalid_token`
 a JWT while the issuer's keys cannot be loaded at all                  503 + `Retry-After`
=====================================================================  ===============================================

Neither the token nor the key ever appears in an answer or a log line: messages say why, never what.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from local_mcp_gateway.identity.principal import PRINCIPAL_SCOPE_KEY, AccessPolicy, Principal, key_caller_id
from local_mcp_gateway.identity.resource import ResourceSettings
from local_mcp_gateway.security.access import KeyRing

__all__ = ["Authenticator", "Refusal"]

logger = logging.getLogger(__name__)

AUTH_REALM = "local-mcp-gateway"
QUERY_CREDENTIALS = frozenset({"access_token", "token", "api_key", "apikey", "key"})
"""Query parameters that would carry a credential in a URL (logged by proxies, kept in histories): refused."""
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Refusal:
    """The answer instead of the endpoint: status, a short error code, a message, and headers to add."""

    status: int
    error: str
    message: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Authenticator:
    """Identifies the callers of one profile: its API keys and, with `oauth`, JWT access tokens."""

    def __init__(self, policy: AccessPolicy, api_keys: Sequence[str], oauth: ResourceSettings | None = None) -> None:
        self.policy = policy
        self.oauth = oauth
        self._keys = KeyRing(api_keys)
        self._verifier: Any = None
        if oauth is not None:
            from local_mcp_gateway.identity.tokens import TokenVerifier  # joserfc only where tokens are accepted

            self._verifier = TokenVerifier(oauth)
            logger.info(
                "profile %s accepts OAuth access tokens from %s for %s; metadata at %s",
                policy.profile,
                oauth.issuer,
                oauth.audience,
                oauth.metadata_url,
            )

    def __repr__(self) -> str:
        return f"Authenticator({self.policy.profile!r}, {self._keys!r}, oauth={self.oauth is not None})"

    @property
    def required(self) -> bool:
        """True when callers must present a key or token."""
        return self._keys.required or self.oauth is not None

    async def identify(self, scope: Any, headers: Sequence[tuple[bytes, bytes]]) -> Refusal | None:
        """None when the caller may come in (its `Principal` is then left in `scope`), else the refusal."""
        decision = await self._decide(scope, headers)
        if isinstance(decision, Refusal):
            return decision
        scope[PRINCIPAL_SCOPE_KEY] = decision
        return None

    async def _decide(self, scope: Any, headers: Sequence[tuple[bytes, bytes]]) -> Principal | Refusal:
        if not self.required:
            return Principal("anonymous", self.policy)
        if _credential_in_query(scope.get("query_string") or b""):
            return Refusal(
                400,
                "invalid_request",
                "credentials in the URL are refused (they end up in logs); send Authorization: Bearer <token> instead",
            )
        values = [value for name, value in headers if name.lower() == b"authorization"]
        presented = _bearer(values[0]) if len(values) == 1 else None
        if presented is None:
            return self._unauthorized(None, self._missing_message())
        if self._keys.required and self._keys.accepts(presented):
            return Principal(key_caller_id(presented), self.policy)
        if self._verifier is None:
            return self._unauthorized(
                "invalid_token",
                "the API key was not accepted for this profile; check it, or ask the operator for a current key",
                code="invalid_key",
            )
        if presented.count(".") != 2:
            return self._unauthorized("invalid_token", "the token was not accepted for this profile")
        return await self._check_token(presented)

    async def _check_token(self, token: str) -> Principal | Refusal:
        from local_mcp_gateway.identity.tokens import KeysUnavailable, TokenError

        assert self.oauth is not None
        try:
            claims = await self._verifier.verify(token)
        except KeysUnavailable as exc:
            return Refusal(
                503,
                "temporarily_unavailable",
                f"{exc}; try again shortly",
                headers=((b"retry-after", str(RETRY_AFTER_SECONDS).encode()),),
            )
        except TokenError as exc:
            logger.info("profile %s: a token was refused: %s", self.policy.profile, exc)
            return self._unauthorized("invalid_token", str(exc))
        scopes = _scopes(claims)
        missing = [scope for scope in self.oauth.required_scopes if scope not in scopes]
        if missing:
            return Refusal(
                403,
                "insufficient_scope",
                f"the token lacks the scopes {' '.join(missing)}; ask for them when you log in",
                headers=(
                    (
                        b"www-authenticate",
                        self.oauth.challenge("insufficient_scope", "the token lacks required scopes").encode(),
                    ),
                ),
            )
        subject = str(claims.get("sub"))
        return Principal(subject, self.policy, subject=subject, scopes=scopes, claims=dict(claims))

    def _missing_message(self) -> str:
        if self.oauth is not None and self._keys.required:
            return "this profile needs an OAuth access token or an API key: send Authorization: Bearer <token>"
        if self.oauth is not None:
            return "this profile needs an OAuth access token: log in with the authorization server named in the resource metadata"
        return "this profile needs an API key: send Authorization: Bearer <key>"

    def _unauthorized(self, error: str | None, message: str, code: str | None = None) -> Refusal:
        """401 with a challenge: RFC 9728 `resource_metadata` where tokens are accepted, else the realm alone."""
        if self.oauth is not None:
            challenge = self.oauth.challenge(error, message if error else None)
        else:
            challenge = f'Bearer realm="{AUTH_REALM}"' + (f', error="{error}"' if error else "")
        headers = ((b"www-authenticate", challenge.encode()),)
        return Refusal(401, code or error or "unauthorized", message, headers=headers)


def _bearer(value: bytes) -> str | None:
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _credential_in_query(query: bytes) -> bool:
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return False
    return any(name.lower() in QUERY_CREDENTIALS for name, _ in pairs)


def _scopes(claims: Any) -> frozenset[str]:
    """Scopes of a token: `scope` (space-separated, RFC 8693/9068) or `scp` (a list, some providers)."""
    raw = claims.get("scope")
    if isinstance(raw, str):
        return frozenset(raw.split())
    listed = claims.get("scp")
    if isinstance(listed, list):
        return frozenset(str(item) for item in listed)
    return frozenset()
