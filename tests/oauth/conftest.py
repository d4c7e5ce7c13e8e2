"""Fixtures for the OAuth tests: a real authorization server, protected MCP servers, state stores, upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
import mcp.types as types
import pytest

from local_mcp_gateway.config.models import ToolsConfig
from local_mcp_gateway.config.resolve import ResolvedOAuth, ResolvedServer
from local_mcp_gateway.oauth import OAuthManager, callback_app
from local_mcp_gateway.secrets import Identity
from local_mcp_gateway.state import StateStore
from local_mcp_gateway.upstream.connection import Upstream, UpstreamState
from tests.conftest import free_port
from tests.oauth.servers import AuthServer, ProtectedMcpServer, ThreadedServer

SETTLE_TIMEOUT = 30.0
"""Longest wait for an upstream to reach an expected state (the tests poll; nothing asserts on time)."""

STOP_WAIT = 2.0
"""Seconds an upstream gets to stop on its own before the test cancels it."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture
def store(tmp_path: Path, identity: Identity) -> StateStore:
    return StateStore(tmp_path / "state", identity, [])


@pytest.fixture
def auth_server() -> Iterator[AuthServer]:
    server = AuthServer()
    with ThreadedServer(server.app()) as running:
        server.base_url = running.base_url
        yield server


def start_protected(auth: AuthServer, name: str = "protected") -> tuple[ProtectedMcpServer, ThreadedServer]:
    protected = ProtectedMcpServer(auth, name)
    running = ThreadedServer(protected.app())
    protected.base_url = running.base_url
    running.start()
    return protected, running


@pytest.fixture
def protected(auth_server: AuthServer) -> Iterator[ProtectedMcpServer]:
    server, running = start_protected(auth_server)
    yield server
    running.stop()


def remote_server(url: str, name: str = "linear", *, scopes: tuple[str, ...] = ("read",),
                  client_id: str | None = None, client_secret: str | None = None,
                  timeout: float = 10.0, profile: str = "work") -> ResolvedServer:
    """A resolved remote server with `oauth` settings, as config.resolve makes them."""
    return ResolvedServer(
        name=name, prefix=name, profile=profile, kind="remote", command=None, args=(), env=(), cwd=None, url=url,
        transport="streamable-http", headers=(),
        oauth=ResolvedOAuth(scopes=scopes, client_id=client_id, client_secret=client_secret, client_name=None),
        module=None, isolation="shared", protocol="auto", timeout_seconds=timeout, tools=ToolsConfig(), coerce_arguments=True,
        enabled=True, description=None, file=Path("gateway.yaml"), line=None,
    )


class Events:
    """What a profile would receive from its upstreams; the OAuth tests only need it to exist."""

    def listings_changed(self, upstream: Upstream) -> None:
        pass

    async def resource_updated(self, upstream: Upstream, params: Any) -> None:
        pass

    async def log_message(self, upstream: Upstream, params: Any) -> None:
        pass


async def wait_state(upstream: Upstream, *states: UpstreamState, timeout: float = SETTLE_TIMEOUT) -> None:
    """Poll until the upstream is in one of `states` (bounded)."""
    with anyio.fail_after(timeout):
        while upstream.state not in states:
            await anyio.sleep(0.02)


async def wait_auth_url(upstream: Upstream, timeout: float = SETTLE_TIMEOUT) -> str:
    """Poll until the upstream waits for a login and shows its URL (bounded)."""
    with anyio.fail_after(timeout):
        while upstream.state != UpstreamState.NEEDS_AUTH or not upstream.auth_url:
            await anyio.sleep(0.02)
    return upstream.auth_url


async def call_whoami(upstream: Upstream) -> str:
    request = types.CallToolRequest(params=types.CallToolRequestParams(name="whoami", arguments={}))
    result = await upstream.request(request)
    return result["content"][0]["text"]


@dataclass
class Gatewayish:
    """An OAuthManager with its callback served over HTTP at its public_url, as the gateway serves it."""

    manager: OAuthManager
    public_url: str
    tg: Any

    @asynccontextmanager
    async def upstream(self, server: ResolvedServer) -> AsyncIterator[Upstream]:
        upstream = Upstream(server, Events(), auth=self.manager.auth_for)
        scope = anyio.CancelScope()

        async def run() -> None:
            with scope:
                await upstream.run()

        self.tg.start_soon(run)
        try:
            yield upstream
        finally:
            upstream.stop()
            # A connection attempt waiting for a login does not watch `stop()`: end it as shutdown does.
            with anyio.move_on_after(STOP_WAIT):
                while upstream.state not in (UpstreamState.STOPPED, UpstreamState.FAILED):
                    await anyio.sleep(0.02)
            scope.cancel()


@asynccontextmanager
async def gatewayish(store: StateStore, port: int | None = None, **options: Any) -> AsyncIterator[Gatewayish]:
    """Serve `callback_app` of a new manager with uvicorn in this event loop; yields it and a task group."""
    import uvicorn

    port = port or free_port()
    public_url = f"http://127.0.0.1:{port}"
    manager = OAuthManager(store, public_url, **options)
    server = uvicorn.Server(uvicorn.Config(callback_app(manager), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(SETTLE_TIMEOUT):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield Gatewayish(manager, public_url, tg)
        finally:
            server.should_exit = True


async def open_login(url: str) -> httpx2.Response:
    """What a person's browser does: open the login URL, follow the redirects to the callback, read the page."""
    async with httpx2.AsyncClient(follow_redirects=True, timeout=60) as client:
        return await client.get(url)


async def authorize_only(url: str) -> dict[str, str]:
    """Open the login URL without following the redirect to the callback; returns the callback's parameters."""
    async with httpx2.AsyncClient(follow_redirects=False, timeout=60) as client:
        response = await client.get(url)
    assert response.status_code == 302, response.text
    query = parse_qs(urlparse(response.headers["location"]).query)
    return {name: values[0] for name, values in query.items()}


def state_text(store: StateStore) -> bytes:
    """Every byte of every file under the state folder."""
    return b"".join(path.read_bytes() for path in sorted(store.state_dir.rglob("*")) if path.is_file())


TokenValues = Callable[[AuthServer], list[str]]


def issued_values(auth: AuthServer) -> list[str]:
    """Every access and refresh token the authorization server ever issued."""
    with auth.lock:
        return [*auth.access, *(issued.refresh_token for issued in auth.access.values())]
