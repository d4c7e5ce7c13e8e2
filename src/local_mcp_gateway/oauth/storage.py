"""Token storage for the SDK's OAuth provider on `StateStore`: age-encrypted, atomic, with the time each
token was obtained, and a summary of stored tokens that never shows their values."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.client.auth.oauth2 import OAuthContext
from mcp.shared.auth import (
    OAuthClientInformationFull,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from pydantic import ValidationError

from local_mcp_gateway.oauth.common import STATE_PREFIX, Clock, iso_time, refresh_due
from local_mcp_gateway.redact import default_redactor
from local_mcp_gateway.state import StateStore

logger = logging.getLogger(__name__)

__all__ = ["StateTokenStorage", "TokenRecord", "token_summary"]

@dataclass(frozen=True)
class TokenRecord:
    """Stored tokens plus the time they were obtained (the SDK's `OAuthToken` only knows `expires_in`)."""

    token: OAuthToken
    obtained_at: float
    client: OAuthClientInformationFull | None = None
    """The client registration the tokens were issued to (replicas may each have registered one)."""

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
        self.issued_to: Callable[[], OAuthClientInformationFull | None] | None = None
        """Set by the provider: the client registration new tokens are issued to, stored with them."""

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
            client = value.get("client")
            record = TokenRecord(OAuthToken.model_validate(value["token"]), float(value["obtained_at"]),
                                 None if client is None else OAuthClientInformationFull.model_validate(client))
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
        payload: dict[str, Any] = {"token": tokens.model_dump(mode="json", exclude_none=True),
                                   "obtained_at": self.clock()}
        client = self.issued_to() if self.issued_to is not None and self.configured_client is None else None
        if client is not None:  # refreshes must use the client the tokens belong to (see oauth.shared)
            payload["client"] = client.model_dump(mode="json", exclude_none=True)
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
        "expires_at": iso_time(record.expires_at) if record else None,
        "obtained_at": iso_time(record.obtained_at) if record else None,
        "refreshable": refreshable,
        "registered": store.read_json(storage.entry("client")) is not None,
        "problem": problem,
    }
