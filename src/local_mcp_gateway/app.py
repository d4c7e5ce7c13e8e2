"""The HTTP face of the gateway: an ASGI dispatcher in front of a Quart app.

`/mcp/<slug>` (and `/mcp` for the default profile) go straight to that profile's Streamable HTTP session
manager, which is plain ASGI; `/ui...` goes to the dashboard (`ui.routes`, imported on the first request there,
so a gateway nobody looks at never loads it); everything else (`/healthz`, `/readyz`, `/status`,
`/oauth/callback`) is served by Quart. The slug is taken from the raw path, so encoded slashes or dots never
select another profile.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from typing import TYPE_CHECKING, Any

from quart import Quart, Response, request

if TYPE_CHECKING:
    from local_mcp_gateway.gateway import Gateway

__all__ = ["GatewayASGI", "create_app"]

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MCP_PREFIX = b"/mcp"
UI_PREFIX = b"/ui"


def create_app(gateway: Gateway) -> Quart:
    """The Quart app serving health, readiness, status and the OAuth callback."""
    app = Quart("local_mcp_gateway")

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        ready = gateway.ready
        return _json({"ready": ready, "generation": gateway.generation}, 200 if ready else 503)

    @app.get("/status")
    async def status() -> Response:
        return _json(gateway.status())

    @app.get("/traffic/<slug>")
    async def traffic(slug: str) -> Response:
        """The redacted traffic log of a profile (`logging.traffic`), to loopback clients only."""
        if not _is_loopback(request.remote_addr):
            return _json({"error": "forbidden", "message": "the traffic log is served to loopback clients only"}, 403)
        profile = gateway.profiles.get(slug)
        if profile is None or profile.traffic is None:
            return _json({"error": "not_found", "message": "no traffic log for this profile"}, 404)
        return _json(profile.traffic.as_json())

    @app.get("/.well-known/oauth-protected-resource/<path:resource>")
    async def protected_resource_metadata(resource: str) -> Response:
        """RFC 9728 metadata of a profile that accepts OAuth access tokens (`/mcp/<slug>` after the prefix)."""
        head, _, slug = resource.rstrip("/").rpartition("/")
        guard = gateway.guards.get(slug) if head.endswith("mcp") else None
        authenticator = getattr(guard, "authenticator", None)
        oauth = getattr(authenticator, "oauth", None)
        if oauth is None or not oauth.metadata_url.endswith("/" + resource.rstrip("/")):
            return _json({"error": "not_found", "message": "no profile accepting OAuth tokens here"}, 404)
        response = _json(oauth.metadata())
        response.headers["Cache-Control"] = "max-age=300"
        response.headers["Access-Control-Allow-Origin"] = "*"  # public, and read by browser-based MCP clients
        return response

    @app.get("/oauth/callback")
    async def oauth_callback() -> Response:
        if gateway.oauth is None:
            return Response("No OAuth login is in progress on this gateway.\n", status=404, mimetype="text/plain")
        code, text = await gateway.oauth.handle_callback(dict(request.args))
        return Response(text, status=code, mimetype="text/plain")

    return app


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, indent=2, sort_keys=True) + "\n", status=status, mimetype="application/json")


class GatewayASGI:
    """Routes `/mcp...` to the profiles and everything else to the Quart app."""

    def __init__(self, gateway: Gateway, app: Quart) -> None:
        self.gateway = gateway
        self.app = app
        self.started_at = time.time()
        self._ui: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            path = raw.split(b"?", 1)[0]
            if path == MCP_PREFIX or path.startswith(MCP_PREFIX + b"/"):
                await self._mcp(path, scope, receive, send)
                return
            if path == UI_PREFIX or path.startswith(UI_PREFIX + b"/"):
                info = self.gateway.generation_info
                if info is not None and not info.snapshot.gateway.ui.enabled:
                    await _plain(send, 404, {"error": "not_found", "message": "the dashboard is off (ui.enabled)"})
                    return
                await self._dashboard()(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _dashboard(self) -> Any:
        """The dashboard's app, built on first use."""
        if self._ui is None:
            from local_mcp_gateway.ui.routes import create_ui_app

            self._ui = create_ui_app(self.gateway, self.started_at)
        return self._ui

    async def _mcp(self, path: bytes, scope: dict[str, Any], receive: Any, send: Any) -> None:
        rest = path[len(MCP_PREFIX) :].strip(b"/")
        if not rest:
            slug = self.gateway.default_profile
        else:
            try:
                slug = rest.decode("ascii")
            except UnicodeDecodeError:
                slug = None
            if slug is not None and not SLUG_PATTERN.fullmatch(slug):
                slug = None
        profile = self.gateway.profiles.get(slug) if slug else None
        if profile is None:
            await _plain(send, 404, {"error": "not_found", "message": "no such profile"})
            return
        await self.gateway.guard(profile, scope, receive, send)


async def _plain(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": payload})
