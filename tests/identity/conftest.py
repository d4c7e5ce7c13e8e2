"""Helpers for the identity tests: an issuer of signed test tokens with its own JWKS server, the recording
upstream, and a gateway whose `team` profile accepts that issuer's tokens."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.conftest import ConfigRepo, GatewayProcess, free_port
from tests.fixtures.launch import FixtureProcess, http_fixture

IDENTITY_TESTS = Path(__file__).resolve().parent
RECORDING_UPSTREAM = IDENTITY_TESTS / "recording_upstream.py"


class TokenIssuer:
    """An authorization server as far as a resource server sees one: metadata, a JWKS, and tokens it signs.

    Serves `/.well-known/openid-configuration` and `/jwks` on 127.0.0.1 from a thread; counts JWKS fetches;
    `down` makes both answer 503. `mint` signs a JWT access token with the current key.
    """

    def __init__(self) -> None:
        self.keys: list[Any] = [RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"})]
        self.jwks_fetches = 0
        self.down = False
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if issuer.down:
                    self.send_error(503)
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_fetches += 1
                    body = {"keys": [key.as_dict(private=False) for key in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> Any:
        """Publish a new signing key (an EC one) beside the old; returns it."""
        key = ECKey.generate_key("P-256", parameters={"kid": f"key-{len(self.keys) + 1}", "use": "sig"})
        self.keys.append(key)
        return key

    def mint(
        self,
        audience: str,
        *,
        sub: str = "alice",
        scope: str = "mcp",
        issuer: str | None = None,
        lifetime: int = 300,
        key: Any = None,
        kid: str | None = None,
        with_kid: bool = True,
        **claims: Any,
    ) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        payload = {
            "iss": issuer or self.url,
            "aud": audience,
            "sub": sub,
            "scope": scope,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        alg = "ES256" if key.key_type == "EC" else "RS256"
        header = {"alg": alg, "typ": "at+jwt", **({"kid": kid or key.kid} if with_kid else {})}
        return jwt.encode(header, payload, key, algorithms=[alg])


@pytest.fixture
def issuer() -> Iterator[TokenIssuer]:
    server = TokenIssuer()
    yield server
    server.close()


@dataclass
class Upstream:
    """The recording upstream: its URL and the headers of every request it received."""

    process: FixtureProcess
    record: Path

    @property
    def url(self) -> str:
        return self.process.url

    def requests(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    record = tmp_path / "upstream-requests.jsonl"
    with http_fixture(RECORDING_UPSTREAM, "--record", str(record), stderr_path=tmp_path / "upstream.err") as process:
        yield Upstream(process, record)


@dataclass
class TeamGateway:
    """A running gateway whose profile `team` takes the issuer's tokens (and an API key), `open` takes none."""

    gateway: GatewayProcess
    port: int
    audit: Path
    key: str = "team-api-key-0123456789"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp/team"

    @property
    def metadata_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/oauth-protected-resource/mcp/team"

    def audit_lines(self) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line]


def start_team_gateway(
    config_repo: ConfigRepo,
    gateway_factory: Any,
    upstream: Upstream,
    issuer_url: str,
    *,
    oauth: dict[str, Any] | None = None,
    access: list[dict[str, Any]] | None = None,
    audit_max_bytes: int = 1024 * 1024,
) -> TeamGateway:
    port = free_port()
    key = TeamGateway.key
    audit = config_repo.root / "audit" / "calls.jsonl"
    config_repo.write_gateway(
        servers={"up": {"url": upstream.url}},
        security={"oauth": {"issuer": issuer_url, "required_scopes": ["mcp"]}},
        logging={"level": "debug", "audit": {"file": "audit/calls.jsonl", "max_bytes": audit_max_bytes, "backups": 2}},
    )
    settings: dict[str, Any] = {"api_keys": [key]}
    if oauth is not None:
        settings["oauth"] = oauth
    if access is not None:
        settings["access"] = access
    config_repo.write_profile("team", {"up": {}}, **settings)
    config_repo.write_profile("other", {"up": {}})
    gateway = gateway_factory(config_repo.path, port=port)
    return TeamGateway(gateway, port, audit)
