"""Attacks against a real gateway process on 127.0.0.1; after each one a normal SDK client still gets served.

One gateway serves three profiles: `alpha` and `beta`, each with its own key stored as an age-encrypted secret
(the key for the process comes from MCP_GATEWAY_AGE_KEY), and `open` without keys. The keys are looked for in
every response and in the gateway's log at the end: they must never appear.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import yaml

from local_mcp_gateway.secrets import KEY_ENV, Identity, encrypt_to
from local_mcp_gateway.security.limits import BODY_IDLE_TIMEOUT, HEADER_TIMEOUT, MAX_HEADER_BYTES, MAX_JSON_DEPTH
from tests.conftest import GatewayProcess, start_gateway
from tests.security.conftest import (
    UPSTREAM,
    echo_through,
    gateway_port,
    raw_exchange,
    raw_get,
    read_response,
    status_of,
    upstream_env,
)

pytestmark = pytest.mark.anyio

APP_ORIGIN = "https://app.example"
MAX_BODY = 64 * 1024
STALL_MARGIN = 10.0
"""Extra seconds allowed on top of a server timeout before a stalled connection counts as never closed."""

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
}


@dataclass
class Keyed:
    gateway: GatewayProcess
    alpha_key: str
    beta_key: str
    responses: list[str]
    """Every response text a test looked at, checked for key values at the end."""

    def bearer(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def post(self, slug: str, body: bytes | dict, headers: dict[str, str] | None = None) -> httpx2.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = httpx2.post(self.gateway.url(slug), content=content, headers={**MCP_HEADERS, **(headers or {})},
                               timeout=10)
        self.responses.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def request(self, method: str, slug: str, headers: dict[str, str] | None = None) -> httpx2.Response:
        response = httpx2.request(method, self.gateway.url(slug), headers=headers or {}, timeout=10)
        self.responses.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    async def still_serving(self) -> None:
        assert await echo_through(self.gateway.url("alpha"), self.bearer(self.alpha_key)) == "still serving"
        assert await echo_through(self.gateway.url("open")) == "still serving"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    root = tmp_path_factory.mktemp("keyed")
    identity = Identity.generate()
    alpha_key, beta_key = "alpha-7c41d0e2b9f84a6d", "beta-93ab51c7e2d04f18"
    (root / "secrets").mkdir()
    (root / "profiles").mkdir()
    for name, value in (("alpha_key", alpha_key), ("beta_key", beta_key)):
        (root / "secrets" / f"{name}.age").write_bytes(encrypt_to([identity.recipient], value.encode()))
    gateway_yaml = {
        "version": 1,
        "secrets": {"recipients": [identity.recipient]},
        "security": {"cors_origins": [APP_ORIGIN], "max_request_bytes": MAX_BODY},
    }
    (root / "gateway.yaml").write_text(yaml.safe_dump(gateway_yaml))
    profiles = {
        "alpha": {"servers": {"up": UPSTREAM}, "api_keys": ["${secret:alpha_key}"]},
        "beta": {"servers": {"up": UPSTREAM}, "api_keys": ["${secret:beta_key}"]},
        "open": {"servers": {"up": UPSTREAM}},
    }
    for slug, body in profiles.items():
        (root / "profiles" / f"{slug}.yaml").write_text(yaml.safe_dump(body))
    gateway = start_gateway(root / "gateway.yaml", root / "gateway.log", env=upstream_env(**{KEY_ENV: identity.reveal()}))
    try:
        yield Keyed(gateway, alpha_key, beta_key, [])
    finally:
        gateway.stop()


# -- DNS rebinding ---------------------------------------------------------------------------------------------


async def test_foreign_host_gets_421_on_every_method(keyed: Keyed) -> None:
    for method in ("GET", "POST", "DELETE", "OPTIONS"):
        response = keyed.request(method, "open", headers={"Host": "attacker.example:8080"})
        assert response.status_code == 421, method
    modern = keyed.post("open", {"jsonrpc": "2.0", "id": 1, "method": "server/discover"},
                        headers={"Host": "attacker.example", "Mcp-Protocol-Version": "2026-07-28"})
    assert modern.status_code == 421
    await keyed.still_serving()


async def test_forged_origin_gets_403_and_a_listed_one_gets_cors(keyed: Keyed) -> None:
    forged = keyed.post("open", INITIALIZE, headers={"Origin": "https://attacker.example"})
    assert forged.status_code == 403
    assert "access-control-allow-origin" not in forged.headers
    preflight = keyed.request(
        "OPTIONS", "alpha", headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    listed = keyed.post("alpha", INITIALIZE, headers={"Origin": APP_ORIGIN, **keyed.bearer(keyed.alpha_key)})
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "mcp-session-id" in listed.headers["access-control-expose-headers"].lower()
    await keyed.still_serving()


# -- keys ------------------------------------------------------------------------------------------------------


async def test_missing_wrong_and_other_profiles_keys_get_401(keyed: Keyed) -> None:
    attempts = {
        "missing": {},
        "wrong": keyed.bearer("alpha-0000000000000000"),
        "other profile": keyed.bearer(keyed.beta_key),
        "basic": {"Authorization": "Basic YWxwaGE6YWxwaGE="},
    }
    for label, headers in attempts.items():
        response = keyed.post("alpha", INITIALIZE, headers=headers)
        assert response.status_code == 401, label
        assert response.headers["www-authenticate"].startswith("Bearer"), label
        assert keyed.alpha_key not in response.text and keyed.beta_key not in response.text
    for method in ("GET", "DELETE"):
        assert keyed.request(method, "beta", headers=keyed.bearer(keyed.alpha_key)).status_code == 401
    modern = keyed.post("beta", {"jsonrpc": "2.0", "id": 1, "method": "server/discover"},
                        headers={"Mcp-Protocol-Version": "2026-07-28"})
    assert modern.status_code == 401
    await keyed.still_serving()
    assert await echo_through(keyed.gateway.url("beta"), keyed.bearer(keyed.beta_key)) == "still serving"


async def test_an_sdk_client_with_the_wrong_key_cannot_initialize(keyed: Keyed) -> None:
    with pytest.raises(Exception) as caught:
        await echo_through(keyed.gateway.url("alpha"), keyed.bearer(keyed.beta_key))
    assert keyed.beta_key not in str(caught.value)
    await keyed.still_serving()


# -- size, depth, headers --------------------------------------------------------------------------------------


async def test_oversized_bodies_get_413_declared_or_chunked(keyed: Keyed) -> None:
    port = gateway_port(keyed.gateway)
    declared = (
        f"POST /mcp/open HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n"
    ).encode()
    assert status_of(raw_exchange(port, declared)) == 413  # answered before the body is sent

    head = (
        f"POST /mcp/open HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b"x" * 8192
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for _ in range(MAX_BODY // len(piece) + 1):  # one piece past the limit, and no final chunk
            sock.sendall(chunk)
        assert status_of(read_response(sock)) == 413
    await keyed.still_serving()


async def test_deeply_nested_json_gets_a_jsonrpc_error(keyed: Keyed) -> None:
    levels = MAX_JSON_DEPTH * 50
    body = (
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__echo","arguments":{"text":'
        + b"[" * levels + b"]" * levels + b"}}}"
    )
    response = keyed.post("open", body)
    assert response.status_code == 400
    error = response.json()
    assert error["jsonrpc"] == "2.0" and error["error"]["code"] == -32600
    await keyed.still_serving()


async def test_oversized_or_too_many_headers_get_431(keyed: Keyed) -> None:
    port = gateway_port(keyed.gateway)
    big = "X-Filler: " + "a" * (MAX_HEADER_BYTES + 1) + "\r\n"
    assert status_of(raw_get(port, "/mcp/open", extra=big)) == 431
    many = "".join(f"X-Filler-{i}: 1\r\n" for i in range(150))
    assert status_of(raw_get(port, "/mcp/open", extra=many)) == 431
    await keyed.still_serving()


# -- slow clients ----------------------------------------------------------------------------------------------


async def test_a_client_stalling_in_its_headers_is_cut_off(keyed: Keyed) -> None:
    port = gateway_port(keyed.gateway)
    with socket.create_connection(("127.0.0.1", port), timeout=HEADER_TIMEOUT + STALL_MARGIN) as sock:
        sock.sendall(f"POST /mcp/open HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
        try:
            leftover = sock.recv(4096)  # blocks until the gateway closes (b"") or the bound passes (timeout)
        except ConnectionResetError:
            leftover = b""
    assert leftover == b"" or status_of(leftover) >= 400
    await keyed.still_serving()


async def test_a_client_stalling_in_its_body_gets_408_and_is_cut_off(keyed: Keyed) -> None:
    port = gateway_port(keyed.gateway)
    head = (
        f"POST /mcp/open HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\":"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_IDLE_TIMEOUT + STALL_MARGIN) as sock:
        sock.sendall(head)
        response = read_response(sock)
        assert status_of(response) == 408
        assert sock.recv(4096) == b""  # and the connection is closed
    await keyed.still_serving()


# -- path tricks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["/mcp/..%2fopen", "/mcp/a%2Fb", "/mcp/open%2F..%2Falpha", "/mcp/" + "a" * 300, "/mcp/OPEN", "/mcp/%6fpen",
     "/mcp/open/../alpha", "/mcp/.%2e/status", "/mcp/open%00", "/mcp/\u00f6pen".encode().decode("latin-1")],
)
async def test_path_tricks_in_the_slug_get_404(keyed: Keyed, target: str) -> None:
    port = gateway_port(keyed.gateway)
    response = raw_get(port, target, extra="Accept: text/event-stream\r\n")
    assert status_of(response) in (400, 404), response[:200]
    await keyed.still_serving()


# -- nothing leaks ---------------------------------------------------------------------------------------------


async def test_zz_no_key_in_any_response_or_log_line(keyed: Keyed) -> None:
    assert keyed.post("alpha", INITIALIZE, headers=keyed.bearer(keyed.beta_key)).status_code == 401
    log = keyed.gateway.log()
    assert "refused with 401" in log  # the attempts were logged...
    for key in (keyed.alpha_key, keyed.beta_key):
        assert key not in log  # ...without the keys
        assert all(key not in text for text in keyed.responses)
