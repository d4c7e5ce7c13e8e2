"""`/metrics` on a listener of its own (`metrics.listen`): a tiny ASGI app on a second Hypercorn server."""

from __future__ import annotations

import logging
from typing import Any

import anyio

from local_mcp_gateway.asgi import answer_lifespan, respond

__all__ = ["serve_metrics"]

logger = logging.getLogger(__name__)


async def _metrics_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    from local_mcp_gateway import observability

    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    text = observability.metrics_text(main_listener=False) if scope["path"] == "/metrics" else None
    if text is None:
        await respond(send, 404, b"not found\n", "text/plain")
    else:
        await respond(send, 200, text.encode(), observability.CONTENT_TYPE)


async def serve_metrics(host: str, port: int, stop: anyio.Event) -> None:
    """Serve `/metrics` on `host:port` until `stop` is set."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 1.0
    logger.info("metrics served at http://%s:%d/metrics", host, port)
    await hypercorn_serve(_metrics_app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
