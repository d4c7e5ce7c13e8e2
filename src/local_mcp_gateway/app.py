"""The HTTP face of the gateway: an ASGI dispatcher in front of a Quart app.

`/mcp/<slug>` (and `/mcp` for the default profile) go through that profile's inbound guard to its Streamable HTTP
session manager, which is plain ASGI; `/ui...` goes to the dashboard (`ui.routes`, imported on the first request
there, so a gateway nobody looks at never loads it; it has its own access layer, `ui.access`, on the same Host
allow-list); everything else (`/healthz`, `/readyz`, `/status`, `/traffic/<slug>`, `/oauth/callback`, and any
route added later) goes through the operator guard (the same `InboundGuard` code: Host, Origin, header and body
limits; no key, no rate limit) to Quart. The slug is taken from the raw path, so encoded slashes or dots never
select another profile. Error texts in operator answers pass the redaction point.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from typing import TYPE_CHECKING, Any

from quart import Quart, Response, request

from local_mcp_gateway import observability
from local_mcp_gateway.redact import redact_mapping, redact_text
from local_mcp_gateway.security import InboundGuard

if TYPE_CHECKING:
    from local_mcp_gateway.gateway import Gateway

__all__ = ["GatewayASGI", "create_app"]

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MCP_PREFIX = b"/mcp"
PUBLIC_METADATA_PREFIX = "/.well-known/oauth-protected-resource"
"""Public documents any page may read (the Host check still applies, the Origin check does not)."""
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

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics (`metrics` in gateway.yaml; 404 when off or served on `metrics.listen`)."""
        text = observability.metrics_text()
        if text is None:
            return _json({"error": "not_found", "message": "metrics are off here (see metrics in gateway.yaml)"}, 404)
        return Response(text, status=200, content_type=observability.CONTENT_TYPE)

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
        # A public document whose field names (`authorization_servers`) are the protocol's: known secret values
        # are still masked, but no field is hidden for its name.
        text = redact_text(json.dumps(oauth.metadata(), indent=2, sort_keys=True))
        response = Response(text + "\n", status=200, mimetype="application/json")
        response.headers["Cache-Control"] = "max-age=300"
        response.headers["Access-Control-Allow-Origin"] = "*"  # public, and read by browser-based MCP clients
        return response

    @app.get("/oauth/callback")
    async def oauth_callback() -> Response:
        if gateway.oauth is None:
            return Response("No OAuth login is in progress on this gateway.\n", status=404, mimetype="text/plain")
        code, text = await gateway.oauth.handle_callback(dict(request.args))
        return Response(redact_text(text), status=code, mimetype="text/plain")

    return app


def _default_security() -> Any:
    from local_mcp_gateway.config.gateway_models import SecurityConfig

    return SecurityConfig()


def _authority(url: str | None) -> str | None:
    """`host:port` of a URL as a Host header carries it (the port only when the URL gives one)."""
    if not url:
        return None
    from urllib.parse import urlsplit

    netloc = urlsplit(url).netloc.rpartition("@")[2]
    return netloc.replace("*", "") or None


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _json(body: Any, status: int = 200) -> Response:
    """A JSON answer; every string in it passes the redaction point first (status errors, traffic records)."""
    text = json.dumps(redact_mapping(body), indent=2, sort_keys=True)
    return Response(text + "\n", status=status, mimetype="application/json")


class GatewayASGI:
    """Routes `/mcp...` to the profiles and everything else to the Quart app."""

    def __init__(self, gateway: Gateway, app: Quart) -> None:
        self.gateway = gateway
        self.app = app
        self._operator: tuple[Any, InboundGuard, InboundGuard] | None = None
        self.started_at = time.time()
        self._ui: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.gateway.stopping.is_set():
            await _plain(send, 503, {"error": "stopping", "message": "the gateway is shutting down"},
                         [(b"connection", b"close"), (b"retry-after", b"1")])
            return
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
        if scope["type"] in ("http", "websocket"):
            public = scope.get("path", "").startswith(PUBLIC_METADATA_PREFIX)
            await self.operator_guard(public=public)(scope, receive, send, self.app)
            return
        await self.app(scope, receive, send)  # lifespan

    def operator_guard(self, *, public: bool = False) -> InboundGuard:
        """The guard of the non-MCP routes, rebuilt when a new generation changes the security settings;
        `public`: the one of the documents any page may read (RFC 9728 metadata: no Origin check)."""
        info = self.gateway.generation_info
        gateway_config = info.snapshot.gateway if info is not None else None
        security = gateway_config.security if gateway_config is not None else _default_security()
        public_url = gateway_config.public_url if gateway_config is not None else None
        key = (security, public_url)
        guards = self._operator
        if guards is None or guards[0] != key:
            host = _authority(public_url)
            guards = self._operator = (key, InboundGuard.for_operator(security, host),
                                       InboundGuard.for_operator(security, host, any_origin=True))
        return guards[2] if public else guards[1]

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
