"""The targets of `bench/overhead.py` (and `bench/calls.py`): the HTTP upstream, the raw forwarder, gateways in
their variants (metrics off, traces exported) and mcp-proxy, each started on 127.0.0.1 in its own process group.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from _common import Service, child_environment, descendants, free_port, read_ready_line, spawn, wait_http

__all__ = [
    "DEFAULT_MCP_PROXY_VENV",
    "MCP_PROXY_VERSION",
    "PYTHON",
    "Targets",
    "all_upstreams_ready",
    "install_mcp_proxy",
    "start_gateway",
    "start_targets",
    "write_gateway_config",
]

BENCH_DIR = Path(__file__).resolve().parent
UPSTREAM_SCRIPT = BENCH_DIR / "upstream.py"
FORWARDER_SCRIPT = BENCH_DIR / "raw_forwarder.py"
PYTHON = sys.executable

MCP_PROXY_VERSION = "0.13.0"
DEFAULT_MCP_PROXY_VENV = Path(tempfile.gettempdir()) / "local-mcp-gateway-bench-venv"
"""Where `--install-mcp-proxy` puts mcp-proxy: outside the project venv, since it pins its own mcp 1.x."""

OTLP_SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print("READY http://127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
"""
"""An OTLP/HTTP endpoint that takes every export and throws it away (its own process)."""


def all_upstreams_ready(response: httpx2.Response) -> bool:
    if response.status_code != 200:
        return False
    profiles = response.json().get("profiles", {})
    states = [server["state"] for profile in profiles.values() for server in profile["servers"].values()]
    return bool(states) and all(state == "ready" for state in states)


def write_gateway_config(folder: Path, upstream_url: str, settings: str = "") -> Path:
    """A config repository with two profiles over the same upstream code: `http` (its URL) and `stdio`."""
    (folder / "profiles").mkdir(parents=True, exist_ok=True)
    (folder / "gateway.yaml").write_text("version: 1\n" + settings)
    (folder / "profiles" / "http.yaml").write_text(
        json.dumps({"servers": {"up": {"url": upstream_url, "prefix": ""}}}) + "\n"
    )
    (folder / "profiles" / "stdio.yaml").write_text(
        json.dumps({"servers": {"up": {"command": PYTHON, "args": [str(UPSTREAM_SCRIPT)], "prefix": ""}}}) + "\n"
    )
    return folder / "gateway.yaml"


@dataclass
class Targets:
    """The URL of each target that could be started, and the processes behind them."""

    urls: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    hop_pids: dict[str, list[int]] = field(default_factory=dict)
    """The hop's own process, whose CPU time is the price of the hop (empty for `direct`)."""
    upstream_pids: dict[str, list[int]] = field(default_factory=dict)
    """The upstream server processes behind the hop."""

    def find_stdio_upstreams(self) -> None:
        """The stdio upstreams are children of the hops; look them up once the hops have started them."""
        for name, service in (("gateway-stdio", "gateway"), ("mcp-proxy", "mcp-proxy")):
            if name in self.urls:
                self.upstream_pids[name] = descendants(self.services[service].process.pid)


def start_targets(services: ExitStack, workdir: Path, wanted: Sequence[str], mcp_proxy: Path | None) -> Targets:
    """Start the upstream and every hop in `wanted`; a target that cannot run is skipped with the reason."""
    targets = Targets()
    upstream = spawn(
        services, "upstream-http", [PYTHON, str(UPSTREAM_SCRIPT), "--transport", "http"], workdir, reports_ready=True
    )
    upstream_url = read_ready_line(upstream)
    targets.services["upstream-http"] = upstream
    if "direct" in wanted:
        targets.urls["direct"] = upstream_url
        targets.hop_pids["direct"] = []

    if "raw-forwarder" in wanted:
        argv = [PYTHON, str(FORWARDER_SCRIPT), "--upstream", upstream_url]
        forwarder = spawn(services, "raw-forwarder", argv, workdir, reports_ready=True)
        targets.urls["raw-forwarder"] = read_ready_line(forwarder) + "/mcp"
        targets.services["raw-forwarder"] = forwarder
        targets.hop_pids["raw-forwarder"] = [forwarder.process.pid]

    if {"gateway-http", "gateway-stdio"} & set(wanted):
        gateway, base = start_gateway(services, workdir, "gateway", upstream_url)
        for name, slug in (("gateway-http", "http"), ("gateway-stdio", "stdio")):
            if name in wanted:
                targets.urls[name] = f"{base}/mcp/{slug}"
                targets.hop_pids[name] = [gateway.process.pid]
        targets.services["gateway"] = gateway

    if "gateway-http-nometrics" in wanted:
        gateway, base = start_gateway(
            services, workdir, "gateway-nometrics", upstream_url, settings="metrics: {enabled: false}\n"
        )
        targets.urls["gateway-http-nometrics"] = f"{base}/mcp/http"
        targets.hop_pids["gateway-http-nometrics"] = [gateway.process.pid]
        targets.services["gateway-nometrics"] = gateway

    if "gateway-http-traced" in wanted:
        sink = spawn(services, "otlp-sink", [PYTHON, "-c", OTLP_SINK], workdir, reports_ready=True)
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": read_ready_line(sink), "OTEL_SERVICE_NAME": "bench-gateway"}
        gateway, base = start_gateway(services, workdir, "gateway-traced", upstream_url, env=otel)
        targets.urls["gateway-http-traced"] = f"{base}/mcp/http"
        targets.hop_pids["gateway-http-traced"] = [gateway.process.pid]
        targets.services["gateway-traced"] = gateway

    if "mcp-proxy" in wanted:
        if mcp_proxy is None or not mcp_proxy.exists():
            targets.skipped["mcp-proxy"] = (
                f"no mcp-proxy at {mcp_proxy}: run with --install-mcp-proxy, or give --mcp-proxy PATH"
            )
        else:
            port = free_port()
            argv = [str(mcp_proxy), "--port", str(port), "--host", "127.0.0.1", "--log-level", "WARNING"]
            argv += ["--", PYTHON, str(UPSTREAM_SCRIPT)]
            proxy = spawn(services, "mcp-proxy", argv, workdir)
            wait_http(proxy, f"http://127.0.0.1:{port}/status", lambda response: response.status_code < 500)
            targets.urls["mcp-proxy"] = f"http://127.0.0.1:{port}/mcp"
            targets.services["mcp-proxy"] = proxy
            targets.hop_pids["mcp-proxy"] = [proxy.process.pid]
    for name in targets.urls:
        targets.upstream_pids[name] = [upstream.process.pid]
    return targets


def start_gateway(
    services: ExitStack, workdir: Path, name: str, upstream_url: str, *, settings: str = "", env: dict[str, str] | None = None
) -> tuple[Service, str]:
    """A gateway process over `upstream_url` (profiles `http` and `stdio`), ready with every upstream up."""
    config = write_gateway_config(workdir / f"{name}-config", upstream_url, settings)
    port = free_port()
    environment = child_environment() | {"MCP_GATEWAY_HOST": "127.0.0.1", "MCP_GATEWAY_PORT": str(port)} | (env or {})
    argv = [PYTHON, "-m", "local_mcp_gateway", "run", "-c", str(config)]
    gateway = spawn(services, name, argv, workdir, env=environment)
    base = f"http://127.0.0.1:{port}"
    wait_http(gateway, f"{base}/readyz")
    wait_http(gateway, f"{base}/status", all_upstreams_ready)
    return gateway, base


def install_mcp_proxy(venv: Path) -> Path:
    """Create `venv` with mcp-proxy in it (pip, the ordinary client); returns the `mcp-proxy` script."""
    script = venv / "bin" / "mcp-proxy"
    if not script.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"mcp-proxy=={MCP_PROXY_VERSION}"], check=True
        )
    return script
