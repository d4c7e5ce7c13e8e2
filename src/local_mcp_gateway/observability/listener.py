"""`/metrics` on a listener of its own (`metrics.listen`): a tiny ASGI app on a second Hypercorn server."""

from __future__ import annotations

import logging
from typing import Any

import anyio

__all__ = ["serve_metrics"]

logger = logging.getLogger(__name__)


async def _metrics_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    from local_mcp_gateway import observability

    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    text = observability.metrics_text(main_listener=False) if scope["path"] == "/metrics" else None
    status, body, kind = (
        (200, text.encode(), observability.CONTENT_TYPE) if text is not None else (404, b"not found\n", "text/plain")
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
