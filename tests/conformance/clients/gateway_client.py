"""The gateway as the client of a conformance client scenario.

Run by the suite as `python gateway_client.py <server-url>`. It writes a configuration whose one profile,
`conformance`, has the scenario's mock server as its only upstream (with an `oauth:` block for `auth/*`
scenarios, built from `MCP_CONFORMANCE_CONTEXT` with secrets in real age files), starts a real gateway
process on 127.0.0.1, completes an authorization-code login the way a person would (the login URL from
`/status`, followed to the gateway's own callback), and then does the scenario's actions (`actions.py`) as
an ordinary MCP client of `/mcp/conformance`. Whatever reaches the mock server was sent by the gateway.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pyrage
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from actions import context, run_actions, scenario  # noqa: E402

SLUG = "conformance"
SERVER = "target"
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"
MAX_LOGINS = 3
"""Logins the person completes in one run (a first one, a step-up, and one spare)."""
READY_TIMEOUT = 60.0
"""Seconds the gateway and its upstream get to come up (the test gives the whole client run 90 s)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_secret(root: Path, recipient: Any, name: str, value: str) -> str:
    (root / "secrets").mkdir(exist_ok=True)
    (root / "secrets" / f"{name}.age").write_bytes(pyrage.encrypt(value.encode(), [recipient]))
    return f"${{secret:{name}}}"


def oauth_settings(name: str, ctx: dict[str, Any], root: Path, recipient: Any) -> dict[str, Any]:
    """The `oauth:` block a user would write for the scenario's authorization server."""
    if name == "auth/client-credentials-basic":
        return {
            "grant": "client_credentials",
            "client_id": ctx["client_id"],
            "client_secret": _write_secret(root, recipient, "client_secret", ctx["client_secret"]),
            "token_endpoint_auth_method": "client_secret_basic",
        }
    if name == "auth/client-credentials-jwt":
        return {
            "grant": "client_credentials",
            "client_id": ctx["client_id"],
            "private_key": _write_secret(root, recipient, "client_key", ctx["private_key_pem"]),
            "signing_algorithm": ctx.get("signing_algorithm", "ES256"),
            "token_endpoint_auth_method": "private_key_jwt",
        }
    if name in ("auth/enterprise-managed-authorization", "auth/cross-app-access-complete-flow"):
        return {
            "grant": "jwt_bearer",
            "client_id": ctx["client_id"],
            "client_secret": _write_secret(root, recipient, "client_secret", ctx["client_secret"]),
            "token_endpoint_auth_method": "client_secret_basic",
            "identity_assertion": {
                "token_endpoint": ctx["idp_token_endpoint"],
                "client_id": ctx["idp_client_id"],
                "id_token": _write_secret(root, recipient, "idp_id_token", ctx["idp_id_token"]),
            },
        }
    settings: dict[str, Any] = {"client_metadata_url": CLIENT_METADATA_URL}
    if ctx.get("client_id"):
        settings["client_id"] = ctx["client_id"]
        if ctx.get("client_secret"):
            settings["client_secret"] = _write_secret(root, recipient, "client_secret", ctx["client_secret"])
    return settings


def write_config(root: Path, url: str, port: int, identity: Any) -> Path:
    name = scenario()
    server: dict[str, Any] = {"url": url, "prefix": "", "timeout_seconds": 20}
    if name.startswith("auth/"):
        server["oauth"] = oauth_settings(name, context(), root, identity.to_public())
    gateway = {
        "version": 1,
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "logging": {"level": "info"},
    }
    (root / "profiles").mkdir(parents=True, exist_ok=True)
    (root / "gateway.yaml").write_text(yaml.safe_dump(gateway, sort_keys=False))
    (root / "profiles" / f"{SLUG}.yaml").write_text(yaml.safe_dump({"servers": {SERVER: server}}, sort_keys=False))
    return root / "gateway.yaml"


def server_status(base: str) -> dict[str, Any]:
    return httpx2.get(f"{base}/status", timeout=5).json()["profiles"][SLUG]["servers"][SERVER]


def wait_for(base: str, process: subprocess.Popen[bytes], states: tuple[str, ...],
             person: Person | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if person is not None and person.gave_up(last):
            raise RuntimeError(f"the login did not complete after {MAX_LOGINS} attempts: {last.get('error')}")
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}")
        try:
            last = server_status(base)
        except (httpx2.TransportError, KeyError, ValueError) as exc:
            last = {"unreachable": type(exc).__name__}
        if last.get("state") in states:
            return last
        time.sleep(0.05)
    raise RuntimeError(f"the upstream did not reach {states} in time: {last}")


class Person(threading.Thread):
    """Opens every login URL the gateway shows in /status, as a person with a browser would.

    The authorization server of the suite approves at once and redirects to the gateway's callback, which
    exchanges the code. Runs beside the client's actions, so a login the gateway asks for in the middle of a
    call (a scope step-up) is completed too.
    """

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.done: set[str] = set()
        self.stop = threading.Event()
        self.error: str | None = None

    def gave_up(self, status: dict[str, Any]) -> bool:
        """Every login it will do was done, and the gateway still asks for another (it refused them)."""
        url = status.get("auth_url")
        return len(self.done) >= MAX_LOGINS and status.get("state") == "needs_auth" and url not in self.done

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                url = server_status(self.base).get("auth_url")
                if url and url not in self.done and len(self.done) < MAX_LOGINS:
                    self.done.add(url)
                    answer = httpx2.get(url, follow_redirects=False, timeout=10)
                    location = answer.headers.get("location")
                    if location is None:
                        self.error = f"the authorization server answered {answer.status_code} without a redirect"
                        continue
                    httpx2.get(location, timeout=30)  # the gateway's /oauth/callback: it exchanges the code
            except (httpx2.TransportError, KeyError, ValueError):
                continue


def main(url: str) -> int:
    identity = pyrage.x25519.Identity.generate()
    with tempfile.TemporaryDirectory(prefix="gateway-client-") as folder:
        root = Path(folder)
        port = _free_port()
        config = write_config(root, url, port, identity)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
        env.update(MCP_GATEWAY_AGE_KEY=str(identity), MCP_GATEWAY_WATCH="false", PYTHONUNBUFFERED="1")
        log = (root / "gateway.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "local_mcp_gateway", "run", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        person = Person(base)
        try:
            wait_for(base, process, ("ready", "needs_auth", "failed"))
            person.start()
            status = wait_for(base, process, ("ready", "failed"), person)
            if status.get("state") != "ready":
                raise RuntimeError(f"the upstream is {status.get('state')}: {status.get('error')}")
            asyncio.run(_act(base))
            return 0
        finally:
            person.stop.set()
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)
            log.close()
            sys.stderr.write((root / "gateway.log").read_text(errors="replace")[-20000:])


async def _act(base: str) -> None:
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60)) as http:
        await run_actions(scenario(), f"{base}/mcp/{SLUG}", http)


if __name__ == "__main__":
    sys.exit(main(sys.argv[-1]))
