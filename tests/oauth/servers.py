"""A real OAuth 2.1 authorization server and a real OAuth-protected MCP server, for the OAuth tests.

Both are Starlette apps served by uvicorn on 127.0.0.1 free ports, each in a thread of its own (so tests may
drive them from their own event loop or from a CLI that runs `anyio.run`). Tokens live a few seconds.

`AuthServer` implements RFC 8414 metadata, RFC 7591 registration, the authorization endpoint (it approves at
once with a 302 to the redirect URI, so an HTTP client following redirects completes a login without a
browser), the token endpoint (authorization code with PKCE S256 and RFC 8707 `resource`, refresh with
rotation; codes are single-use) and RFC 7009 revocation. Switches on the instance make it misbehave.

`ProtectedMcpServer` serves a low-level MCP server at /mcp behind a bearer check against the authorization
server's issued tokens, and its RFC 9728 protected resource metadata.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import mcp.types as types
import uvicorn
from mcp.server import Server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

STARTUP_TIMEOUT = 20.0
"""Seconds a test server may take to listen."""

STOP_TIMEOUT = 10.0
"""Seconds a test server thread may take to finish after it was asked to stop."""

TOKEN_LIFETIME = 2
"""Seconds an access token lives (short, so refresh paths run in every test)."""


def _bind() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


class ThreadedServer:
    """An ASGI app under uvicorn in a thread of its own, on a free port of 127.0.0.1 (or `port`)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.sock = _bind() if port is None else self._bind_port(port)
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="auto", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _bind_port(port: int) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        return sock

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError(f"test server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        self.sock.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------- authorization server


@dataclass
class Issued:
    """An access token the authorization server handed out."""

    client_id: str
    resource: str | None
    expires_at: float
    refresh_token: str


@dataclass
class AuthServer:
    """The authorization server's state and switches (read by its Starlette app)."""

    base_url: str = ""
    token_lifetime: int = TOKEN_LIFETIME
    issuer_override: str | None = None
    metadata_missing: bool = False
    refuse_registration: bool = False
    deny: bool = False
    slow_seconds: float = 0.0
    revocation: bool = True
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    used_codes: set[str] = field(default_factory=set)
    access: dict[str, Issued] = field(default_factory=dict)
    refresh: dict[str, dict[str, Any]] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)
    authorize_count: int = 0
    refresh_count: int = 0
    refresh_attempts: int = 0
    """Refresh grants asked for, granted or not (a reused refresh token counts here, not in `refresh_count`)."""
    token_paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def issuer(self) -> str:
        return self.issuer_override or self.base_url

    def metadata(self) -> dict[str, Any]:
        meta = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base_url}/oauth2/authorize",
            "token_endpoint": f"{self.base_url}/oauth2/token",
            "registration_endpoint": f"{self.base_url}/oauth2/register",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        }
        if self.revocation:
            meta["revocation_endpoint"] = f"{self.base_url}/oauth2/revoke"
        return meta

    def add_client(self, client_id: str, secret: str | None, redirect_uri: str) -> None:
        """A pre-registered client (confidential when it has a secret)."""
        self.clients[client_id] = {"secret": secret, "redirect_uris": [redirect_uri]}

    def expire_refresh_tokens(self) -> None:
        """Every refresh token becomes invalid (the next refresh gets `invalid_grant`)."""
        with self.lock:
            self.refresh.clear()

    def valid_access(self, token: str) -> Issued | None:
        with self.lock:
            issued = self.access.get(token)
        if issued is None or token in self.revoked or time.time() >= issued.expires_at:
            return None
        return issued

    def _issue(self, client_id: str, resource: str | None, scope: str | None) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = Issued(client_id, resource, time.time() + self.token_lifetime, refresh)
        self.refresh[refresh] = {"client_id": client_id, "resource": resource, "scope": scope}
        body = {"access_token": access, "token_type": "Bearer", "expires_in": self.token_lifetime,
                "refresh_token": refresh}
        if scope:
            body["scope"] = scope
        return body

    def app(self) -> Starlette:
        async def metadata(request: Request) -> Response:
            if self.slow_seconds:
                await asyncio.sleep(self.slow_seconds)
            if self.metadata_missing:
                return JSONResponse({"error": "not_found"}, status_code=404)
            return JSONResponse(self.metadata())

        async def register(request: Request) -> Response:
            if self.refuse_registration:
                return JSONResponse({"error": "invalid_client_metadata",
                                     "error_description": "registration is closed"}, status_code=403)
            body = await request.json()
            client_id = "dyn-" + secrets.token_hex(6)
            with self.lock:
                self.clients[client_id] = {"secret": None, "redirect_uris": body["redirect_uris"]}
            return JSONResponse({**body, "client_id": client_id, "token_endpoint_auth_method": "none"},
                                status_code=201)

        async def authorize(request: Request) -> Response:
            q = request.query_params
            client = self.clients.get(q.get("client_id", ""))
            if client is None or q.get("redirect_uri") not in client["redirect_uris"]:
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            if q.get("code_challenge_method") != "S256" or not q.get("code_challenge") or not q.get("state"):
                return JSONResponse({"error": "invalid_request", "error_description": "PKCE and state needed"},
                                    status_code=400)
            self.authorize_count += 1
            if self.deny:
                params = {"error": "access_denied", "error_description": "the user said no", "state": q["state"]}
                return RedirectResponse(f"{q['redirect_uri']}?{urlencode(params)}", status_code=302)
            code = secrets.token_urlsafe(16)
            with self.lock:
                self.codes[code] = {"client_id": q["client_id"], "challenge": q["code_challenge"],
                                    "redirect_uri": q["redirect_uri"], "resource": q.get("resource"),
                                    "scope": q.get("scope")}
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}",
                                    status_code=302)

        def client_of(request: Request, form: Any) -> str | None:
            header = request.headers.get("authorization", "")
            if header.startswith("Basic "):
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            else:
                client_id, secret = form.get("client_id", ""), form.get("client_secret")
            client = self.clients.get(client_id)
            if client is None or (client["secret"] is not None and client["secret"] != secret):
                return None
            return client_id

        def error(code: str, status: int = 400) -> Response:
            return JSONResponse({"error": code}, status_code=status)

        async def token(request: Request) -> Response:
            self.token_paths.append(request.url.path)
            form = await request.form()
            client_id = client_of(request, form)
            if client_id is None:
                return error("invalid_client", 401)
            with self.lock:
                if form.get("grant_type") == "authorization_code":
                    code = str(form.get("code", ""))
                    grant = self.codes.pop(code, None)
                    if grant is None or code in self.used_codes:
                        return error("invalid_grant")
                    self.used_codes.add(code)
                    verifier = str(form.get("code_verifier", ""))
                    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                    if challenge.decode() != grant["challenge"] or grant["client_id"] != client_id:
                        return error("invalid_grant")
                    if form.get("redirect_uri") != grant["redirect_uri"] or form.get("resource") != grant["resource"]:
                        return error("invalid_grant")
                    return JSONResponse(self._issue(client_id, grant["resource"], grant["scope"]))
                if form.get("grant_type") == "refresh_token":
                    self.refresh_attempts += 1
                    old = self.refresh.pop(str(form.get("refresh_token", "")), None)
                    if old is None or old["client_id"] != client_id:
                        return error("invalid_grant")
                    self.refresh_count += 1
                    return JSONResponse(self._issue(client_id, old["resource"], old["scope"]))
            return error("unsupported_grant_type")

        async def revoke(request: Request) -> Response:
            form = await request.form()
            if client_of(request, form) is None:
                return error("invalid_client", 401)
            value = str(form.get("token", ""))
            with self.lock:
                self.revoked.append(value)
                self.refresh.pop(value, None)
            return Response(status_code=200)

        return Starlette(routes=[
            Route("/.well-known/oauth-authorization-server", metadata),
            Route("/oauth2/register", register, methods=["POST"]),
            Route("/oauth2/authorize", authorize),
            Route("/oauth2/token", token, methods=["POST"]),
            Route("/oauth2/revoke", revoke, methods=["POST"]),
        ])


# --------------------------------------------------------------------------------------------- protected MCP server


def echo_server(name: str) -> Server[Any]:
    """A low-level MCP server with one tool, `whoami`, answering `name`."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        tool = types.Tool(name="whoami", description="who am I", input_schema={"type": "object"})
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=name)])

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


@dataclass
class ProtectedMcpServer:
    """An MCP server at /mcp that wants a bearer token issued by `auth` for its resource URL."""

    auth: AuthServer
    name: str = "protected"
    base_url: str = ""
    resource_override: str | None = None
    unauthorized: int = 0
    accepted: int = 0

    @property
    def url(self) -> str:
        return f"{self.base_url}/mcp"

    def app(self) -> Any:
        inner = echo_server(self.name).streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
        metadata_path = "/.well-known/oauth-protected-resource/mcp"

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            if scope["path"] == metadata_path:
                body = {"resource": self.resource_override or self.url,
                        "authorization_servers": [self.auth.base_url]}
                await JSONResponse(body)(scope, receive, send)
                return
            header = dict(scope["headers"]).get(b"authorization", b"").decode()
            issued = self.auth.valid_access(header[7:]) if header.startswith("Bearer ") else None
            if issued is None or issued.resource != self.url:
                self.unauthorized += 1
                challenge = f'Bearer resource_metadata="{self.base_url}{metadata_path}"'
                response = JSONResponse({"error": "invalid_token"}, status_code=401,
                                        headers={"WWW-Authenticate": challenge})
                await response(scope, receive, send)
                return
            self.accepted += 1
            await inner(scope, receive, send)

        return app
