"""Security settings as a running gateway applies them: rate limits, TLS, and the stdio command allow-list."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
import time
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import GATEWAY_START_TIMEOUT, PYTHON, ConfigRepo, free_port
from tests.security.conftest import UPSTREAM, echo_through, upstream_env

pytestmark = pytest.mark.anyio

RUN_REFUSAL_TIMEOUT = 60.0
"""Seconds `run` may take to refuse a configuration before the test counts it as serving anyway."""


# -- rate limit ------------------------------------------------------------------------------------------------


async def test_a_burst_over_the_rate_limit_gets_429_and_other_profiles_keep_serving(config_repo: ConfigRepo,
                                                                                     gateway_factory) -> None:
    limit = 10
    config_repo.write_gateway(security={"rate_limit": {"requests_per_minute": limit, "include_loopback": True}})
    config_repo.write_profile("one", {"up": UPSTREAM})
    config_repo.write_profile("two", {"up": UPSTREAM})
    gateway = gateway_factory(config_repo.path, env=upstream_env())

    statuses = []
    with httpx2.Client(timeout=10) as http:
        for _ in range(limit + 1):  # bounded: the burst allows exactly `limit`
            response = http.get(gateway.url("one"), headers={"Accept": "text/event-stream"})
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    assert statuses[-1] == 429, statuses
    assert 429 not in statuses[:-1]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1

    assert await echo_through(gateway.url("two")) == "still serving"
    assert httpx2.get(f"{gateway.base_url}/healthz", timeout=10).status_code == 200


# -- TLS -------------------------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and localhost) signed by its own key; returns (certfile, keyfile)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "gateway.crt", folder / "gateway.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    keyfile.chmod(0o600)
    return certfile, keyfile


def wait_ready_https(url: str, context: ssl.SSLContext, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + GATEWAY_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the gateway exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx2.get(f"{url}/readyz", verify=context, timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the gateway was not ready over HTTPS within {GATEWAY_START_TIMEOUT} s:\n{log.read_text()}")


async def test_tls_serves_mcp_to_a_client_that_verifies_the_certificate(config_repo: ConfigRepo,
                                                                        gateway_factory) -> None:
    certfile, _ = self_signed(config_repo.root)
    config_repo.write_gateway(security={"tls": {"certfile": "gateway.crt", "keyfile": "gateway.key"}})
    config_repo.write_profile("work", {"up": UPSTREAM})
    port = free_port()
    gateway = gateway_factory(config_repo.path, env=upstream_env(), port=port, wait=False)
    base = f"https://127.0.0.1:{port}"
    trusted = ssl.create_default_context(cafile=str(certfile))
    wait_ready_https(base, trusted, gateway.process, gateway.log_path)

    async with httpx2.AsyncClient(verify=trusted, timeout=httpx2.Timeout(30, read=60)) as http:
        async with streamable_http_client(f"{base}/mcp/work", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                initialized = await session.initialize()
                result = await session.call_tool("up__echo", {"text": "over tls"})
    assert initialized.server_info.name == "local-mcp-gateway/work"
    assert result.content[0].text == "over tls"

    with pytest.raises(httpx2.ConnectError):  # a client that does not trust the certificate refuses it
        httpx2.get(f"{base}/healthz", verify=ssl.create_default_context(), timeout=10)
    with pytest.raises(httpx2.TransportError):  # plain HTTP on the TLS port gets nowhere
        httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=10).raise_for_status()


# -- allowed_commands ------------------------------------------------------------------------------------------


def test_run_refuses_a_stdio_command_outside_allowed_commands(config_repo: ConfigRepo, tmp_path: Path) -> None:
    config_repo.write_gateway(security={"allowed_commands": ["/usr/bin/*", "npx"]})
    config_repo.write_profile("work", {"scratch": {"command": PYTHON, "args": ["-c", "print('never run')"]}})
    try:
        finished = subprocess.run(
            [PYTHON, "-m", "local_mcp_gateway", "run", "--config", str(config_repo.path)],
            capture_output=True,
            text=True,
            timeout=RUN_REFUSAL_TIMEOUT,
            env={**upstream_env(), "PATH": "/usr/bin:/bin", "MCP_GATEWAY_PORT": str(free_port())},
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the child it started before raising
        raise AssertionError("`run` served a configuration whose stdio command is not allowed") from exc
    assert finished.returncode == 1, finished.stderr
    message = finished.stderr
    assert "allowed_commands" in message
    assert "profiles/work.yaml" in message or "work.yaml" in message
    assert "never run" not in finished.stdout + message


def test_run_refuses_a_repository_script_named_like_an_allowed_command(config_repo: ConfigRepo) -> None:
    script = config_repo.root / "bin" / "uvx"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho never run >&2\n")
    script.chmod(0o755)
    config_repo.write_gateway(security={"allowed_commands": ["uvx", "python*"]})
    config_repo.write_profile("work", {"tool": {"command": "./bin/uvx", "cwd": "."}})
    finished = subprocess.run(
        [PYTHON, "-m", "local_mcp_gateway", "run", "--config", str(config_repo.path)],
        capture_output=True,
        text=True,
        timeout=RUN_REFUSAL_TIMEOUT,
        env={**upstream_env(), "PATH": "/usr/bin:/bin", "MCP_GATEWAY_PORT": str(free_port())},
        start_new_session=True,
    )
    assert finished.returncode == 1, finished.stderr
    assert "work.yaml:" in finished.stderr and "allowed_commands" in finished.stderr, finished.stderr
    assert "never run" not in finished.stderr
