"""The dashboard's Quart app, mounted at `/ui/` by `app.GatewayASGI` on the first request there.

Pages are rendered from templates (autoescaped); `static/ui.js` adds the live parts (server-sent events from
`/ui/events`, traffic filters, copy buttons, Connect). Every response carries a Content-Security-Policy that
allows scripts, styles and connections from this origin only and no framing. Every request passes
`access.UIAccess` first. The one state-changing action, Connect, is a POST with an Origin check.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
from quart import Quart, Response, redirect, render_template, request

from local_mcp_gateway.ui import views
from local_mcp_gateway.ui.access import SESSION_COOKIE, SESSION_LIFETIME, UIAccess
from local_mcp_gateway.ui.clients import DEFAULT_KEY_ENV, client_setups
from local_mcp_gateway.ui.export import FORMATS, MEDIA_TYPES, SUFFIXES, profile_document, render
from local_mcp_gateway.ui.live import LiveView, event_stream

__all__ = ["create_ui_app"]

HERE = Path(__file__).resolve().parent

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
TOOLS_PER_PAGE = 50
CONNECT_WAIT = 15.0
"""Longest wait, after Connect, for the server's connection attempt to produce the login URL."""
_FORMAT_BY_SUFFIX = {suffix: fmt for fmt, suffix in SUFFIXES.items()}


def create_ui_app(gateway: Any, started_at: float | None = None) -> Quart:
    app = Quart(__name__, static_folder=str(HERE / "static"), static_url_path="/ui/static",
                template_folder=str(HERE / "templates"))
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    access = UIAccess(gateway)
    started = started_at if started_at is not None else time.time()
    app.extensions["ui_access"] = access

    @app.before_request
    async def guard() -> Any:
        decision = access.check(request)
        if decision.allowed:
            return None
        if decision.status == 429:
            response = _error(429, decision.error, decision.message)
            response.headers["Retry-After"] = str(decision.retry_after)
            return response
        if decision.status == 401 and request.path.startswith("/ui/static/"):
            return None  # the script, stylesheet and icon hold no data; the sign-in page needs them
        if decision.status == 401 and request.method == "GET" and request.path != "/ui/sign-in":
            if _wants_html():
                return redirect("/ui/sign-in", 303)
        if decision.status == 401 and request.path == "/ui/sign-in":
            return None  # the form itself (and its POST, Origin already checked) is open to everyone
        return _error(decision.status, decision.error, decision.message)

    @app.after_request
    async def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with form posts, and the
        # sign-in form's Origin check would refuse them. Other sites still get no Referer.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        return response

    # -- pages -------------------------------------------------------------------------------------------

    @app.get("/ui")
    async def bare() -> Any:
        return redirect("/ui/", 308)

    @app.get("/ui/")
    async def overview() -> Any:
        status = gateway.status()
        profiles = []
        for slug, entry in (status.get("profiles") or {}).items():
            profiles.append({
                "slug": slug,
                "description": entry.get("description") or "",
                "sessions": entry.get("sessions"),
                "clashes": entry.get("clashes") or [],
                "extra": views.profile_extra(entry),
                "servers": views.server_rows(slug, entry.get("servers") or {}, _oauth_servers(gateway, slug)),
                "tools": len(gateway.profiles[slug].catalog.tools) if slug in gateway.profiles else 0,
            })
        return await render_template(
            "overview.html",
            facts=views.gateway_facts(status, started, time.time()),
            profiles=profiles,
            traffic_on=any(p.traffic is not None for p in gateway.profiles.values()),
            page_kind="overview",
            **_page_common(gateway),
        )

    @app.get("/ui/profiles/<slug>")
    async def profile_page(slug: str) -> Any:
        profile = gateway.profiles.get(slug)
        if profile is None:
            return _error(404, "not_found", "no such profile")
        status = profile.status()
        query = request.args.get("q", "")[:200]
        try:
            page = int(request.args.get("page", "1"))
        except ValueError:
            page = 1
        catalog = profile.catalog
        info = gateway.generation_info
        key_env = DEFAULT_KEY_ENV if info is not None and info.snapshot.needs_api_key(slug) else None
        url = f"{_base_url(gateway)}/mcp/{slug}"
        return await render_template(
            "profile.html",
            slug=slug,
            description=profile.description or "",
            servers=views.server_rows(slug, status.get("servers") or {}, _oauth_servers(gateway, slug)),
            clashes=status.get("clashes") or [],
            profile_extra=views.profile_extra(_profile_status(gateway, slug, status)),
            tools=views.tool_page(catalog, query, page, TOOLS_PER_PAGE),
            query=query,
            prompts=catalog.prompts,
            prompt_routes=catalog.prompt_routes,
            resources=[(r, catalog.resource_routes.get(str(r.uri), "")) for r in catalog.resources],
            templates=[(t, s) for t, (_, _, s) in zip(catalog.templates, catalog.template_routes, strict=False)],
            setups=client_setups(slug=slug, url=url, key_env=key_env),
            key_env=key_env,
            url=url,
            formats=[(fmt, SUFFIXES[fmt]) for fmt in FORMATS],
            catalog_digest=views.catalog_digest(catalog),
            page_kind="profile",
            **_page_common(gateway),
        )

    @app.get("/ui/profiles/<slug>/export.<suffix>")
    async def export(slug: str, suffix: str) -> Any:
        profile = gateway.profiles.get(slug)
        fmt = _FORMAT_BY_SUFFIX.get(suffix)
        if profile is None or fmt is None:
            return _error(404, "not_found", "no such profile or export format")
        text = render(profile_document(slug, profile.description, profile.catalog), fmt)
        response = Response(text, mimetype=MEDIA_TYPES[fmt].split(";")[0])
        response.headers["Content-Type"] = MEDIA_TYPES[fmt]
        if request.args.get("download"):
            response.headers["Content-Disposition"] = f'attachment; filename="{slug}.{suffix}"'
        return response

    # -- live data -----------------------------------------------------------------------------------------

    @app.get("/ui/events")
    async def events() -> Any:
        response = Response(event_stream(LiveView(gateway)), mimetype="text/event-stream")
        response.headers["X-Accel-Buffering"] = "no"
        response.timeout = None
        return response

    @app.get("/ui/api/status")
    async def api_status() -> Any:
        return _json(LiveView(gateway).status())

    # -- OAuth Connect -------------------------------------------------------------------------------------

    @app.post("/ui/oauth/connect")
    async def connect() -> Any:
        if request.mimetype != "application/json":
            return _error(415, "unsupported_media_type", "send the action as application/json")
        body = await request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("profile"), str) or not isinstance(body.get("server"), str):
            return _error(400, "bad_request", "send {\"profile\": ..., \"server\": ...}")
        profile = gateway.profiles.get(body["profile"])
        upstream = profile.upstreams.get(body["server"]) if profile is not None else None
        if upstream is None or getattr(upstream.server, "oauth", None) is None or gateway.oauth is None:
            return _error(404, "not_found", "no server with oauth settings by that name in that profile")
        with anyio.move_on_after(CONNECT_WAIT):
            while str(upstream.state) not in ("ready", "failed", "stopped") and not upstream.auth_url:
                await anyio.sleep(0.1)
        state = str(upstream.state)
        if state == "ready":
            return _json({"outcome": "ready", "message": f"{body['server']} is connected"})
        if upstream.auth_url and state == "needs_auth":
            return _json({"outcome": "login", "auth_url": upstream.auth_url,
                          "message": "log in in the window that opened; this page follows the server's state"})
        return _error(409, "no_login", f"{body['server']} is {state} and waits for no login: "
                      f"{upstream.error or 'no login URL appeared'}")

    # -- sign-in -------------------------------------------------------------------------------------------

    @app.get("/ui/sign-in")
    async def sign_in_form() -> Any:
        return await render_template("sign_in.html", failed=False, page_kind="sign-in", **_page_common(gateway))

    @app.post("/ui/sign-in")
    async def sign_in() -> Any:
        form = await request.form
        token = access.sign_in(form.get("key", ""), request.remote_addr)
        if token is None:
            body = await render_template("sign_in.html", failed=True, page_kind="sign-in", **_page_common(gateway))
            return Response(body, status=401, mimetype="text/html")
        response = redirect("/ui/", 303)
        response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME), path="/ui/", httponly=True,
                            secure=request.scheme == "https", samesite="Strict")
        return response

    @app.post("/ui/sign-out")
    async def sign_out() -> Any:
        access.sign_out(request.cookies.get(SESSION_COOKIE))
        response = redirect("/ui/sign-in", 303)
        response.delete_cookie(SESSION_COOKIE, path="/ui/")
        return response

    return app


# -- helpers -------------------------------------------------------------------------------------------------


def _wants_html() -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _error(status: int, error: str, message: str) -> Response:
    if _wants_html():
        # Plain text: nothing from the request is echoed into markup.
        return Response(f"{status}: {message}\n", status=status, mimetype="text/plain")
    return _json({"error": error, "message": message}, status)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False) + "\n", status=status, mimetype="application/json")


def _page_common(gateway: Any) -> dict[str, Any]:
    return {"generation": gateway.generation}


def _profile_status(gateway: Any, slug: str, fallback: dict[str, Any]) -> dict[str, Any]:
    """The profile's entry in the gateway's status (which adds fields such as the lock state), else its own."""
    return (gateway.status().get("profiles") or {}).get(slug) or fallback


def _oauth_servers(gateway: Any, slug: str) -> list[str]:
    return LiveView(gateway).oauth_servers(slug)


def _base_url(gateway: Any) -> str:
    info = gateway.generation_info
    if info is not None and info.snapshot.gateway.public_url:
        return info.snapshot.gateway.public_url.rstrip("/")
    return f"{request.scheme}://{request.headers.get('Host', '')}"
