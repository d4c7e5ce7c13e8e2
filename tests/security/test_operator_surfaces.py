"""The operator surfaces of a running gateway: every route behind the same guard, no secret on any of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from local_mcp_gateway.secrets import Identity, encrypt_to
from tests.conftest import ConfigRepo
from tests.security.conftest import UPSTREAM, gateway_port, raw_exchange, status_of, upstream_env

STATUS_TIMEOUT = 60.0
"""Seconds the gateway may take to report the failing upstream's error in /status."""

OPERATOR_ROUTES = ("/status", "/readyz", "/healthz", "/traffic/p", "/oauth/callback", "/no-such-route")
"""Every route Quart serves, plus one it does not: the guard stands before the router."""


class _Failing(BaseHTTPRequestHandler):
    """An upstream that answers every request with a 500 whose body repeats the URL it was asked for."""

    def _fail(self) -> None:
        body = f"internal error while serving {self.path}".encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _fail

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mcp"
    finally:
        server.shutdown()
        server.server_close()


def test_a_secret_in_an_upstream_url_never_reaches_an_operator_surface(
    config_repo: ConfigRepo, gateway_factory: Any, failing_upstream: str
) -> None:
    identity = Identity.generate()
    value = "qtok-" + Identity.generate().recipient[-24:]
    (config_repo.root / "secrets").mkdir(exist_ok=True)
    (config_repo.root / "secrets" / "qtok.age").write_bytes(encrypt_to([identity.recipient], value.encode()))
    config_repo.write_gateway(secrets={"recipients": [identity.recipient]}, logging={"traffic": {"enabled": True}})
    # A query parameter whose name does not sound secret: only the known value can give it away.
    # The legacy SSE client puts the whole URL in its error text ("Server error '500 ...' for url '...'").
    remote = {"url": failing_upstream + "?q=${secret:qtok}", "transport": "sse", "timeout_seconds": 2}
    config_repo.write_profile("p", {"remote": remote})
    gateway = gateway_factory(config_repo.path, env={"MCP_GATEWAY_AGE_KEY": identity.reveal()})

    deadline = time.monotonic() + STATUS_TIMEOUT
    error = None
    while time.monotonic() < deadline and not error:
        error = gateway.status()["profiles"]["p"]["servers"]["remote"]["error"]
        time.sleep(0.1)
    assert error, "the failing upstream never reported an error"
    assert "500" in error and "127.0.0.1" in error, error  # the error is the one that carries the URL

    texts = {path: httpx2.get(gateway.base_url + path, timeout=10).text for path in OPERATOR_ROUTES}
    for path, text in texts.items():
        assert value not in text, f"{path} shows the secret: {text}"
    gateway.stop()
    assert value not in gateway.log()


@pytest.mark.parametrize("path", OPERATOR_ROUTES)
def test_every_operator_route_is_behind_the_inbound_guard(config_repo: ConfigRepo, gateway_factory: Any,
                                                          path: str) -> None:
    config_repo.write_gateway(logging={"traffic": {"enabled": True}})
    config_repo.write_profile("p", {"up": UPSTREAM})
    gateway = gateway_factory(config_repo.path, env=upstream_env())
    port = gateway_port(gateway)

    def get(host: str, extra: str = "") -> int:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
        return status_of(raw_exchange(port, request.encode("latin-1")))

    allowed = get(f"127.0.0.1:{port}")
    assert allowed not in (421, 403, 431)
    assert get("attacker.example") == 421  # a DNS-rebound page sends its own name
    assert get(f"attacker.example:{port}") == 421
    assert get(f"127.0.0.1:{port}.attacker.example") == 421  # `127.0.0.1:*` means any port, not any text
    assert get(f"127.0.0.1:{port}", "Origin: http://attacker.example\r\n") == 403
    assert get(f"127.0.0.1:{port}", "Origin: http://127.0.0.1:9\r\n") == allowed  # a loopback page is fine
    big = "".join(f"X-Pad-{i}: {'a' * 1000}\r\n" for i in range(60))  # 60 KB of headers in one piece
    assert get(f"127.0.0.1:{port}", big) == 431
    assert get(f"127.0.0.1:{port}") == allowed  # and it still serves
