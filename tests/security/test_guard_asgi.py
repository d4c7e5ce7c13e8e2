"""`InboundGuard` in front of a real ASGI endpoint, driven over httpx2's ASGI transport (no sockets, no processes).

The endpoint stands in for the SDK's session manager: it answers 200 with what reached it (method, headers,
body), so each test sees both what the guard refused and what it let through, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from local_mcp_gateway.config.gateway_models import SecurityConfig
from local_mcp_gateway.security import (
    CORS_ALLOWED_HEADERS,
    MAX_HEADER_BYTES,
    MAX_HEADER_COUNT,
    MAX_JSON_DEPTH,
    InboundGuard,
)

pytestmark = pytest.mark.anyio

APP_ORIGIN = "https://app.example"
KEY = "alpha-key-6f1c2b9e"
OTHER_KEY = "beta-key-0d7e3a51"
REMOTE = ("203.0.113.9", 40000)
LOOPBACK = ("127.0.0.1", 40000)


async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what reached it, the way the session manager would see it."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = json.dumps(
        {
            "method": scope["method"],
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "body": body.decode(),
        }
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


def client_for(guard: InboundGuard, address: tuple[str, int] = LOOPBACK) -> httpx2.AsyncClient:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await guard(scope, receive, send, endpoint)

    transport = httpx2.ASGITransport(app=app, client=address)
    return httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


def guard(keys: tuple[str, ...] = (), **security: Any) -> InboundGuard:
    return InboundGuard(SecurityConfig(**security), keys, "alpha")


# -- Host and Origin -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "OPTIONS"])
async def test_a_foreign_host_gets_421_on_every_method(method: str) -> None:
    async with client_for(guard()) as client:
        response = await client.request(method, "/mcp/alpha", headers={"Host": "evil.example:8080"})
    assert response.status_code == 421
    assert response.json()["error"] == "host_not_allowed"


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:1", "LOCALHOST:9", "[::1]:8080"])
async def test_loopback_hosts_are_allowed_by_default(host: str) -> None:
    async with client_for(guard()) as client:
        response = await client.get("/mcp/alpha", headers={"Host": host})
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1.evil.example:80", "localhost.evil:1", "[::1]x:1", ""])
async def test_hosts_that_only_look_local_are_refused(host: str) -> None:
    async with client_for(guard()) as client:
        response = await client.get("/mcp/alpha", headers={"Host": host})
    assert response.status_code == 421


async def test_a_glob_allows_subdomains_and_star_allows_all() -> None:
    async with client_for(guard(allowed_hosts=["*.corp.example:*"])) as client:
        assert (await client.get("/", headers={"Host": "gw.corp.example:443"})).status_code == 200
        assert (await client.get("/", headers={"Host": "corp.example:443"})).status_code == 421
    async with client_for(guard(allowed_hosts=["*"])) as client:
        assert (await client.get("/", headers={"Host": "anything.example"})).status_code == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example", APP_ORIGIN + ":8443"])
async def test_a_forged_origin_gets_403_without_cors_headers(origin: str) -> None:
    async with client_for(guard(cors_origins=[APP_ORIGIN])) as client:
        response = await client.post("/mcp/alpha", headers={"Origin": origin}, content=b"{}")
    assert response.status_code == 403
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


async def test_loopback_pages_may_call_but_get_no_cors_headers() -> None:
    async with client_for(guard()) as client:
        response = await client.post("/mcp/alpha", headers={"Origin": "http://localhost:6274"}, content=b"{}")
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


# -- CORS ------------------------------------------------------------------------------------------------------


async def test_preflight_from_a_listed_origin_is_answered_by_the_guard() -> None:
    async with client_for(guard(keys=(KEY,), cors_origins=[APP_ORIGIN])) as client:
        response = await client.options(
            "/mcp/alpha",
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, mcp-session-id",
            },
        )
    assert response.status_code == 204  # no key needed: browsers never send one on a preflight
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert allowed == {h.strip().lower() for h in CORS_ALLOWED_HEADERS.split(",")}
    assert {"mcp-session-id", "mcp-protocol-version", "last-event-id", "mcp-method", "mcp-name"} <= allowed
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "mcp-session-id" in exposed and "mcp-protocol-version" in exposed
    assert response.headers["vary"] == "Origin"


async def test_actual_responses_to_a_listed_origin_carry_cors_headers() -> None:
    async with client_for(guard(cors_origins=[APP_ORIGIN])) as client:
        ok = await client.post("/mcp/alpha", headers={"Origin": APP_ORIGIN}, content=b"{}")
        plain = await client.post("/mcp/alpha", content=b"{}")
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "mcp-session-id" in ok.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in plain.headers


async def test_refusals_to_a_listed_origin_are_readable_by_the_page() -> None:
    async with client_for(guard(keys=(KEY,), cors_origins=[APP_ORIGIN])) as client:
        response = await client.post("/mcp/alpha", headers={"Origin": APP_ORIGIN}, content=b"{}")
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN


async def test_no_cors_configured_means_no_cors_headers_even_on_preflight() -> None:
    async with client_for(guard()) as client:
        response = await client.options("/mcp/alpha", headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 204
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


# -- API keys --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, "unauthorized"),
        ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", "unauthorized"),
        ("Bearer", "unauthorized"),
        ("Bearer wrong-key-000000", "invalid_key"),
        (f"Bearer {KEY}x", "invalid_key"),
        (f"Bearer {KEY[:-1]}", "invalid_key"),
        (f"Bearer {OTHER_KEY}", "invalid_key"),
    ],
)
async def test_missing_or_wrong_keys_get_401(authorization: str | None, error: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with client_for(guard(keys=(KEY,))) as client:
        response = await client.post("/mcp/alpha", headers=headers, content=b"{}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == error
    assert KEY not in response.text and OTHER_KEY not in response.text
    presented = (authorization or "").partition(" ")[2]
    if presented:
        assert presented not in response.text


async def test_any_configured_key_opens_the_profile_and_never_reaches_the_endpoint() -> None:
    async with client_for(guard(keys=(OTHER_KEY, KEY))) as client:
        for key in (KEY, OTHER_KEY):
            response = await client.post("/mcp/alpha", headers={"Authorization": f"bearer {key}"}, content=b"{}")
            assert response.status_code == 200
            seen = response.json()["headers"]
            assert "authorization" not in seen
            assert key not in response.text


async def test_empty_keys_never_open_a_profile() -> None:
    async with client_for(guard(keys=("",))) as client:
        assert (await client.get("/mcp/alpha")).status_code == 401
        assert (await client.get("/mcp/alpha", headers={"Authorization": "Bearer "})).status_code == 401


async def test_without_keys_the_authorization_header_passes_through() -> None:
    async with client_for(guard()) as client:
        response = await client.get("/mcp/alpha", headers={"Authorization": "Bearer for-the-endpoint"})
    assert response.json()["headers"]["authorization"] == "Bearer for-the-endpoint"


async def test_the_guard_repr_hides_keys() -> None:
    shown = repr(guard(keys=(KEY, OTHER_KEY)))
    assert KEY not in shown and OTHER_KEY not in shown and "2 keys" in shown


# -- rate limit ------------------------------------------------------------------------------------------------


async def test_a_burst_over_the_limit_gets_429_with_retry_after() -> None:
    limit = 5
    async with client_for(guard(rate_limit={"requests_per_minute": limit}), REMOTE) as client:
        statuses = [(await client.get("/mcp/alpha")).status_code for _ in range(limit)]
        refused = await client.get("/mcp/alpha")
    assert statuses == [200] * limit
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1


async def test_loopback_is_exempt_unless_included() -> None:
    async with client_for(guard(rate_limit={"requests_per_minute": 1}), LOOPBACK) as client:
        assert {(await client.get("/mcp/alpha")).status_code for _ in range(5)} == {200}
    limited = guard(rate_limit={"requests_per_minute": 1, "include_loopback": True})
    async with client_for(limited, LOOPBACK) as client:
        assert [(await client.get("/mcp/alpha")).status_code for _ in range(2)] == [200, 429]


async def test_zero_turns_the_limit_off() -> None:
    async with client_for(guard(rate_limit={"requests_per_minute": 0}), REMOTE) as client:
        assert {(await client.get("/mcp/alpha")).status_code for _ in range(20)} == {200}


async def test_each_address_and_each_profile_has_its_own_bucket() -> None:
    security = {"rate_limit": {"requests_per_minute": 1}}
    first = guard(**security)
    async with client_for(first, REMOTE) as client:
        assert [(await client.get("/")).status_code for _ in range(2)] == [200, 429]
    async with client_for(first, ("198.51.100.7", 1)) as client:
        assert (await client.get("/")).status_code == 200
    async with client_for(InboundGuard(SecurityConfig(**security), (), "beta"), REMOTE) as client:
        assert (await client.get("/")).status_code == 200


# -- body limits -----------------------------------------------------------------------------------------------


async def test_a_declared_oversized_body_gets_413() -> None:
    async with client_for(guard(max_request_bytes=1024)) as client:
        response = await client.post("/mcp/alpha", content=b"x" * 1025)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


async def test_a_chunked_body_without_content_length_is_cut_at_the_limit() -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            sent.append(1)
            yield b"y" * 512

    async with client_for(guard(max_request_bytes=2048)) as client:
        response = await client.post("/mcp/alpha", content=chunks())
    assert response.status_code == 413
    assert len(sent) <= 6  # the guard stopped reading right after the limit, not at the end of the stream


async def test_a_chunked_body_within_the_limit_reaches_the_endpoint_whole() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b'{"jsonrpc": "2.0", ', b'"method": "ping", ', b'"id": 1}'):
            yield part

    async with client_for(guard(max_request_bytes=2048)) as client:
        response = await client.post("/mcp/alpha", content=chunks())
    assert response.status_code == 200
    assert json.loads(response.json()["body"]) == {"jsonrpc": "2.0", "method": "ping", "id": 1}


async def test_deeply_nested_json_gets_a_jsonrpc_400_before_the_endpoint() -> None:
    deep = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":' + (
        b"[" * 5000 + b"]" * 5000
    ) + b"}}}"
    async with client_for(guard()) as client:
        response = await client.post("/mcp/alpha", content=deep, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32600
    assert str(MAX_JSON_DEPTH) in body["error"]["message"]


async def test_nesting_at_the_limit_passes() -> None:
    body = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    async with client_for(guard()) as client:
        assert (await client.post("/mcp/alpha", content=body)).status_code == 200


async def test_too_many_headers_get_431() -> None:
    headers = [(f"X-Filler-{i}", "1") for i in range(MAX_HEADER_COUNT + 1)]
    async with client_for(guard()) as client:
        response = await client.get("/mcp/alpha", headers=headers)
    assert response.status_code == 431


async def test_a_large_deep_body_is_refused_too() -> None:
    padding = json.dumps("p" * 200_000).encode()
    deep = b'{"pad": ' + padding + b', "x": ' + b"[" * 100 + b"]" * 100 + b"}"
    async with client_for(guard()) as client:
        response = await client.post("/mcp/alpha", content=deep)
        shallow = await client.post("/mcp/alpha", content=b'{"pad": ' + padding + b"}")
    assert response.status_code == 400
    assert shallow.status_code == 200


async def test_a_header_block_over_the_byte_limit_gets_431() -> None:
    async with client_for(guard()) as client:
        response = await client.get("/mcp/alpha", headers={"X-Filler": "a" * (MAX_HEADER_BYTES + 1)})
    assert response.status_code == 431
