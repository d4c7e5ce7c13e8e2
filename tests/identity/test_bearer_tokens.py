"""The gateway as an OAuth 2.1 protected resource: a real gateway process, a recording upstream over HTTP, and
tokens signed in the test by an issuer whose JWKS a small HTTP server publishes.

Every refused token is also checked for what it must not do: reach the upstream, or appear in a log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx2
import pytest

from tests.conftest import mcp_client
from tests.identity.conftest import TeamGateway, TokenIssuer, Upstream, start_team_gateway

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_ACCEPT = "application/json, text/event-stream"


def post(url: str, token: str | None = None, *, params: dict[str, str] | None = None) -> httpx2.Response:
    headers = {"Accept": MCP_ACCEPT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.post(url, json=INITIALIZE, headers=headers, params=params, timeout=30)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(issuer: TokenIssuer, audience: str) -> str:
    """`alg: none`: claims that would be fine, without a signature."""
    claims = {"iss": issuer.url, "aud": audience, "sub": "mallory", "scope": "mcp", "exp": int(time.time()) + 300}
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}."


def hs256_with_public_key(issuer: TokenIssuer, audience: str) -> str:
    """Algorithm confusion: HS256 keyed with the issuer's public key (which anyone can fetch from the JWKS)."""
    public_pem = issuer.keys[0].as_pem(private=False)
    claims = {"iss": issuer.url, "aud": audience, "sub": "mallory", "scope": "mcp", "exp": int(time.time()) + 300}
    head = b64(json.dumps({"alg": "HS256", "kid": issuer.keys[0].kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def challenge(response: httpx2.Response) -> dict[str, str]:
    value = response.headers["www-authenticate"]
    assert value.startswith("Bearer "), value
    pairs = {}
    for part in value[len("Bearer ") :].split(", "):
        name, _, quoted = part.partition("=")
        pairs[name] = quoted.strip('"')
    return pairs


def assert_nowhere(tokens: list[str], team: TeamGateway, upstream: Upstream) -> None:
    """None of `tokens` (nor their signatures) reached the upstream or a log line."""
    log = team.gateway.log()
    recorded = json.dumps(upstream.requests())
    audit = team.audit.read_text() if team.audit.exists() else ""
    for token in tokens:
        for text, where in ((log, "the gateway log"), (recorded, "the upstream"), (audit, "the audit log")):
            assert token not in text, f"a token appears in {where}"
            signature = token.rsplit(".", 1)[-1]
            if len(signature) > 16:
                assert signature not in text, f"a token's signature appears in {where}"
    assert all("authorization" not in request["headers"] for request in upstream.requests())


@pytest.fixture
def team(config_repo: Any, gateway_factory: Any, upstream: Upstream, issuer: TokenIssuer) -> TeamGateway:
    return start_team_gateway(config_repo, gateway_factory, upstream, issuer.url)


def test_a_401_points_to_the_resource_metadata_which_names_the_issuer(team: TeamGateway, issuer: TokenIssuer) -> None:
    response = post(team.gateway.url("team"))
    assert response.status_code == 401
    params = challenge(response)
    assert params["resource_metadata"] == team.metadata_url
    assert params["scope"] == "mcp"

    metadata = httpx2.get(team.metadata_url, headers={"Origin": "https://inspector.example"}, timeout=10)
    assert metadata.status_code == 200
    assert metadata.headers["access-control-allow-origin"] == "*"
    assert metadata.json() == {
        "resource": team.resource,
        "authorization_servers": [issuer.url],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
        "resource_name": "local-mcp-gateway profile team",
    }
    assert httpx2.get(team.metadata_url.replace("/team", "/nope"), timeout=10).status_code == 404


async def test_a_valid_token_serves_and_is_never_passed_upstream(
    team: TeamGateway, issuer: TokenIssuer, upstream: Upstream
) -> None:
    token = issuer.mint(team.resource, sub="alice")
    async with mcp_client(team.gateway.url("team"), headers={"Authorization": f"Bearer {token}"}) as client:
        result = await client.call_tool("up__echo", {"text": "hello"})
    assert result.content[0].text == "hello"  # type: ignore[union-attr]
    assert any(request["method"] == "POST" for request in upstream.requests())
    assert_nowhere([token], team, upstream)
    calls = [line for line in team.audit_lines() if line["method"] == "tools/call"]
    assert [(c["caller"], c["name"], c["server"], c["outcome"]) for c in calls] == [("alice", "up__echo", "up", "ok")]


async def test_api_keys_keep_working_beside_tokens(team: TeamGateway, upstream: Upstream) -> None:
    async with mcp_client(team.gateway.url("team"), headers={"Authorization": f"Bearer {team.key}"}) as client:
        result = await client.call_tool("up__echo", {"text": "by key"})
    assert result.content[0].text == "by key"  # type: ignore[union-attr]
    calls = [line for line in team.audit_lines() if line["method"] == "tools/call"]
    expected = "key:" + hashlib.sha256(team.key.encode()).hexdigest()[:8]
    assert [c["caller"] for c in calls] == [expected]
    assert_nowhere([team.key], team, upstream)
    assert post(team.gateway.url("other"), team.key).status_code == 401  # the key is the team profile's alone


def test_bad_tokens_are_refused_before_anything_reaches_upstream(
    team: TeamGateway, issuer: TokenIssuer, upstream: Upstream
) -> None:
    url = team.gateway.url("team")
    before = len(upstream.requests())
    bad = {  # what is wrong -> the reason the answer gives
        "has expired": issuer.mint(team.resource, lifetime=-600),
        "not valid yet": issuer.mint(team.resource, nbf=int(time.time()) + 600),
        "for another resource": issuer.mint(team.resource.replace("/team", "/other")),
        "from another issuer": issuer.mint(team.resource, issuer="http://127.0.0.1:1/evil"),
        "algorithm 'none'": unsigned(issuer, team.resource),
        "algorithm 'HS256'": hs256_with_public_key(issuer, team.resource),
        "signature does not verify": issuer.mint(team.resource)[:-8] + "AAAAAAAA",
        "not accepted for this profile": "definitely-not-a-token",
    }
    for what, token in bad.items():
        response = post(url, token)
        assert response.status_code == 401, (what, response.status_code, response.text)
        assert what in response.json()["message"], (what, response.json())
        params = challenge(response)
        assert params["error"] == "invalid_token", what
        assert params["resource_metadata"] == team.metadata_url, what
        assert token not in response.text

    lacking = issuer.mint(team.resource, scope="profile")
    response = post(url, lacking)
    assert response.status_code == 403
    assert challenge(response)["error"] == "insufficient_scope"
    assert challenge(response)["scope"] == "mcp"

    in_query = issuer.mint(team.resource)
    response = post(url, None, params={"access_token": in_query})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    response = post(url, in_query, params={"access_token": in_query})  # even beside a good header
    assert response.status_code == 400

    huge = issuer.mint(team.resource, padding="x" * 20_000)
    try:
        status = post(url, huge).status_code
    except httpx2.RemoteProtocolError:  # the server may close the connection at once
        status = 431
    assert status == 431

    assert len(upstream.requests()) == before, "a refused request reached the upstream"
    assert_nowhere([*bad.values(), lacking, in_query, huge], team, upstream)
    assert post(url, issuer.mint(team.resource)).status_code == 200  # and the gateway still serves


def test_an_unknown_kid_costs_one_refetch_and_a_flood_no_more(team: TeamGateway, issuer: TokenIssuer) -> None:
    url = team.gateway.url("team")
    assert post(url, issuer.mint(team.resource)).status_code == 200
    assert issuer.jwks_fetches == 1
    flood = [issuer.mint(team.resource, kid=f"made-up-{uuid.uuid4().hex}") for _ in range(30)]
    for token in flood:
        response = post(url, token)
        assert response.status_code == 401
        assert challenge(response)["error"] == "invalid_token"
    assert issuer.jwks_fetches == 2, "a flood of unknown kids must cost one JWKS fetch"
    assert post(url, issuer.mint(team.resource)).status_code == 200


def test_a_rotated_key_is_fetched_on_first_sight(team: TeamGateway, issuer: TokenIssuer) -> None:
    url = team.gateway.url("team")
    assert post(url, issuer.mint(team.resource)).status_code == 200
    assert post(url, issuer.mint(team.resource, with_kid=False)).status_code == 200  # one key: no kid needed
    new_key = issuer.rotate()
    assert post(url, issuer.mint(team.resource, key=new_key)).status_code == 200
    assert issuer.jwks_fetches == 2
    ambiguous = post(url, issuer.mint(team.resource, with_kid=False))
    assert ambiguous.status_code == 401
    assert "names no signing key" in ambiguous.json()["message"]


def test_cached_keys_keep_working_while_the_jwks_is_down(team: TeamGateway, issuer: TokenIssuer) -> None:
    url = team.gateway.url("team")
    assert post(url, issuer.mint(team.resource)).status_code == 200
    issuer.down = True
    assert post(url, issuer.mint(team.resource)).status_code == 200
    response = post(url, issuer.mint(team.resource, kid="rotated-while-down"))
    assert response.status_code == 401


def test_without_any_keys_tokens_get_503_never_500(
    config_repo: Any, gateway_factory: Any, upstream: Upstream, issuer: TokenIssuer
) -> None:
    issuer.down = True
    team = start_team_gateway(config_repo, gateway_factory, upstream, issuer.url)
    token = issuer.mint(team.resource)
    for _ in range(3):
        response = post(team.gateway.url("team"), token)
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) > 0
    assert post(team.gateway.url("team"), team.key).status_code == 200  # keys do not need the issuer
    assert_nowhere([token], team, upstream)
    assert "Traceback" not in team.gateway.log()
