"""The SDK's `TokenStorage` in memory: tokens and the client registration of one run (one client, one login).

Shared by the standalone conformance client (`sdk_client.py`, run with this folder on its path) and the identity
tests (imported as `tests.conformance.clients.token_memory`)."""

from __future__ import annotations

from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """Tokens and client registration for one run; a test reads the token from here."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info
