"""The two pieces of the gateway's tiny ASGI apps (the callback listener of `auth login`, `metrics.listen`)."""

from __future__ import annotations

from typing import Any

__all__ = ["answer_lifespan", "respond"]


async def answer_lifespan(receive: Any, send: Any) -> None:
    """Acknowledge a server's lifespan startup and shutdown: the app has nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(send: Any, status: int, body: bytes, content_type: str) -> None:
    """Send one complete HTTP response."""
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
