"""The peers of `bench/peers.py`: where they are installed, and how each one is started over the same upstreams.

Installed into a cache folder (default `bench/.peers`, git-ignored), each peer in its own place, with the
ordinary clients:

    <peers>/mcp-proxy/   a venv with mcp-proxy (PyPI; it pins mcp 1.x, so not the project's venv)
    <peers>/fastmcp/     a venv with fastmcp (PyPI)
    <peers>/mcp-hub/     an npm prefix with mcp-hub, installed with the Node 22 of .ci/node first on PATH

Each peer runs the way its README shows, with the differences printed by the benchmark and listed in
`DEVIATIONS`. mcp-hub fetches its marketplace catalogue from the internet at every start unless the cache it
keeps is younger than an hour: each start here gets its own HOME and XDG folders with that cache written
fresh (one local entry), so it never goes online; `check_hub_offline` reads its log to prove it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from _common import Service, age_identity, child_environment, free_port, spawn

__all__ = [
    "DEVIATIONS",
    "PEERS",
    "Hop",
    "Upstream",
    "check_hub_offline",
    "install_peers",
    "missing_peers",
    "start_gateway_config",
    "start_target",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable
UPSTREAM_SCRIPT = BENCH_DIR / "many_tools.py"
NODE_BIN = REPO / ".ci" / "node" / "node_modules" / "node" / "bin"
DEFAULT_PEERS_DIR = BENCH_DIR / ".peers"

MCP_PROXY_SPEC = "mcp-proxy==0.13.0"
FASTMCP_SPEC = "fastmcp==4.2.3"
MCP_HUB_SPEC = "mcp-hub@4.2.1"
PEERS = ("mcp-hub", "mcp-proxy", "fastmcp")
TARGETS = ("gateway", *PEERS)

DEVIATIONS = {
    "gateway": "`local-mcp-gateway run -c gateway.yaml`, one profile `bench` at /mcp/bench; MCP_GATEWAY_AGE_KEY set to "
    "a fresh identity; one upstream: `prefix: \"\"` (tools keep their names), 20 upstreams: the default prefix",
    "mcp-hub": "`mcp-hub --port P --config mcp-servers.json` as its README shows; it has no host option and listens "
    "on every interface (only 127.0.0.1 is used); HOME and XDG_* point into the run's folder, where its "
    "marketplace cache is pre-written so it stays offline; its /mcp endpoint is HTTP+SSE (the 2024-11-05 transport)",
    "mcp-proxy": "`mcp-proxy --port P --host 127.0.0.1 -- python many_tools.py` (one upstream) and "
    "`--named-server-config servers.json` (20 upstreams: one endpoint per server, /servers/<name>/mcp, no aggregation)",
    "fastmcp": "`fastmcp run mcp.json --transport http --host 127.0.0.1 --port P --no-banner` (an MCPConfig file: "
    "`create_proxy`, several servers mounted each under its name); --no-banner only silences the start banner",
}
"""How each target is run: its documented way, and where this benchmark differs (printed with the results)."""

HUB_CACHE_NOTE = "local-bench"
HUB_ONLINE_MARKERS = (
    "Fetching marketplace registry",
    "Fetch failed, falling back to curl",
    "Failed to fetch marketplace",
    "Using stale marketplace registry",
    "Successfully updated marketplace registry",
    "MARKETPLACE_INIT_ERROR",
)
"""mcp-hub's log lines (read in its 4.2.1 source) for any attempt at its online catalogue, cached or not."""


@dataclass(frozen=True)
class Upstream:
    """One stdio upstream: `many_tools.py --tools <tools> --name <name>`."""

    name: str
    tools: int

    @property
    def argv(self) -> list[str]:
        return [PYTHON, str(UPSTREAM_SCRIPT), "--tools", str(self.tools), "--name", self.name]


@dataclass
class Hop:
    """A started target: the hop process, where its MCP endpoints are, and how to talk to them."""

    target: str
    service: Service
    urls: list[str]
    """One URL, or (mcp-proxy with several upstreams) one per upstream."""
    transport: str = "streamable-http"
    started_at: float = 0.0
    """`time.perf_counter()` just before the process was started (cold start is measured from here)."""
    ready_at: float = 0.0
    """`time.perf_counter()` when a fresh session first listed every tool (cold start ends here)."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.service.process.pid


# --- installing ------------------------------------------------------------------------------------------


def _peer_paths(peers_dir: Path) -> dict[str, Path]:
    return {
        "mcp-proxy": peers_dir / "mcp-proxy" / "bin" / "mcp-proxy",
        "fastmcp": peers_dir / "fastmcp" / "bin" / "fastmcp",
        "mcp-hub": peers_dir / "mcp-hub" / "node_modules" / "mcp-hub" / "dist" / "cli.js",
    }


def _stamp(peers_dir: Path, peer: str) -> Path:
    return peers_dir / peer / ".installed"


def _spec(peer: str) -> str:
    return {"mcp-proxy": MCP_PROXY_SPEC, "fastmcp": FASTMCP_SPEC, "mcp-hub": MCP_HUB_SPEC}[peer]


def missing_peers(peers_dir: Path) -> dict[str, str]:
    """The peers not (completely) installed under `peers_dir`, each with the reason."""
    missing = {}
    for peer, path in _peer_paths(peers_dir).items():
        stamp = _stamp(peers_dir, peer)
        if not path.exists() or not stamp.exists() or stamp.read_text().strip() != _spec(peer):
            missing[peer] = f"{_spec(peer)} is not installed in {peers_dir / peer}: run `python bench/peers.py --install`"
    if not (NODE_BIN / "node").exists():
        missing["mcp-hub"] = f"no Node 22 at {NODE_BIN}: run .ci/setup-node.sh"
    return missing


def install_peers(peers_dir: Path) -> None:
    """Install every missing peer (pip into its own venv, npm into its own prefix), the three side by side.

    Idempotent: a peer whose stamp names the pinned version is left alone (delete its folder to reinstall).
    """
    missing = list(missing_peers(peers_dir))
    running: list[tuple[str, subprocess.Popen[bytes]]] = []
    for peer in missing:
        folder = peers_dir / peer
        print(f"installing {_spec(peer)} into {folder}", flush=True)
        if peer == "mcp-hub":
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "package.json").write_text('{"private": true}\n')
            environment = os.environ | {"PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
            command = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--save-exact", _spec(peer)]
            running.append((peer, subprocess.Popen(command, cwd=folder, env=environment)))
        else:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
            pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            running.append((peer, subprocess.Popen([*pip, _spec(peer)])))
    failed = [peer for peer, process in running if process.wait() != 0]
    if failed:
        raise RuntimeError(f"could not install {', '.join(failed)} (see the output above)")
    for peer in missing:
        _stamp(peers_dir, peer).write_text(_spec(peer) + "\n")


# --- starting --------------------------------------------------------------------------------------------


def _write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _mcp_servers(upstreams: list[Upstream]) -> dict[str, object]:
    return {"mcpServers": {u.name: {"command": u.argv[0], "args": u.argv[1:]} for u in upstreams}}


def _start_gateway(services: ExitStack, folder: Path, upstreams: list[Upstream], extra: dict[str, list[Upstream]]) -> Hop:
    """The gateway with profile `bench` over `upstreams` (plus any `extra` profiles, for reference lists)."""
    import yaml

    (folder / "profiles").mkdir(parents=True, exist_ok=True)
    (folder / "gateway.yaml").write_text("version: 1\n")
    for slug, servers in {"bench": upstreams, **extra}.items():
        profile = {
            u.name: {"command": u.argv[0], "args": u.argv[1:], **({"prefix": ""} if len(servers) == 1 else {})}
            for u in servers
        }
        (folder / "profiles" / f"{slug}.yaml").write_text(yaml.safe_dump({"servers": profile}, sort_keys=False))
    hop = start_gateway_config(services, folder / "gateway.yaml", "bench")
    base = hop.urls[0].split("/mcp/")[0]
    hop.extra = {slug: f"{base}/mcp/{slug}" for slug in extra}
    return hop


def start_gateway_config(services: ExitStack, config: Path, slug: str) -> Hop:
    """`local-mcp-gateway run -c <config>` on a free loopback port, with a fresh age identity; URL of `slug`."""
    port = free_port()
    environment = child_environment() | {
        "MCP_GATEWAY_HOST": "127.0.0.1",
        "MCP_GATEWAY_PORT": str(port),
        "MCP_GATEWAY_AGE_KEY": age_identity(),
    }
    started = time.perf_counter()
    argv = [PYTHON, "-m", "local_mcp_gateway", "run", "-c", str(config)]
    service = spawn(services, "gateway", argv, config.parent, env=environment)
    return Hop("gateway", service, [f"http://127.0.0.1:{port}/mcp/{slug}"], started_at=started)


def _hub_home(folder: Path) -> dict[str, str]:
    """HOME and XDG folders of one mcp-hub start, its marketplace cache written fresh (valid for an hour)."""
    home = folder / "home"
    dirs = {"XDG_DATA_HOME": home / "data", "XDG_STATE_HOME": home / "state", "XDG_CONFIG_HOME": home / "config"}
    entry = {
        "id": HUB_CACHE_NOTE,
        "name": "Local benchmark entry",
        "description": "Written by bench/peers.py so that mcp-hub does not fetch its online catalogue",
        "url": "https://example.invalid/local-bench",
        "category": "development",
        "tags": [],
        "stars": 0,
        "lastCommit": 0,
    }
    cache = {
        "registry": {"version": "local", "generatedAt": 0, "totalServers": 1, "servers": [entry]},
        "lastFetchedAt": int(time.time() * 1000),
        "serverDocumentation": {},
    }
    _write_json(dirs["XDG_DATA_HOME"] / "mcp-hub" / "cache" / "registry.json", cache)
    return {"HOME": str(home)} | {key: str(value) for key, value in dirs.items()}


def check_hub_offline(hop: Hop) -> None:
    """Fail unless mcp-hub's own log shows it found the local marketplace cache fresh, kept its one entry, and
    never tried to fetch the online catalogue."""
    logs = list((Path(hop.extra["home"]) / "state").rglob("*.log")) + [hop.service.log_path]
    text = "\n".join(path.read_text(errors="replace") for path in logs if path.exists())
    tried = [marker for marker in HUB_ONLINE_MARKERS if marker in text]
    if tried or '"isFresh":true' not in text or "Marketplace initialized with 1" not in text:
        raise RuntimeError(f"mcp-hub did not stay on its local marketplace cache ({tried or 'no cache line'}):\n{text[-2000:]}")


def start_target(
    target: str,
    services: ExitStack,
    folder: Path,
    upstreams: list[Upstream],
    peers_dir: Path,
    extra: dict[str, list[Upstream]] | None = None,
) -> Hop:
    """Start `target` over `upstreams` (each hop starts its own copies); returns at once, before it is ready."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = _peer_paths(peers_dir)
    if target == "gateway":
        return _start_gateway(services, folder, upstreams, extra or {})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = child_environment()
    if target == "mcp-hub":
        config = _write_json(folder / "mcp-servers.json", _mcp_servers(upstreams))
        home = _hub_home(folder)
        environment |= home | {"PATH": f"{NODE_BIN}{os.pathsep}{environment.get('PATH', '')}"}
        argv = [str(NODE_BIN / "node"), str(paths["mcp-hub"]), "--port", str(port), "--config", str(config)]
        started = time.perf_counter()
        hop = Hop(target, spawn(services, target, argv, folder, env=environment), [f"{base}/mcp"], "sse", started)
        hop.extra = {"home": home["HOME"]}
        return hop
    if target == "mcp-proxy":
        argv = [str(paths["mcp-proxy"]), "--port", str(port), "--host", "127.0.0.1"]
        if len(upstreams) == 1:
            argv += ["--", *upstreams[0].argv]
            urls = [f"{base}/mcp"]
        else:
            argv += ["--named-server-config", str(_write_json(folder / "servers.json", _mcp_servers(upstreams)))]
            urls = [f"{base}/servers/{u.name}/mcp" for u in upstreams]
        started = time.perf_counter()
        return Hop(target, spawn(services, target, argv, folder, env=environment), urls, started_at=started)
    if target == "fastmcp":
        config = _write_json(folder / "mcp.json", _mcp_servers(upstreams))
        argv = [str(paths["fastmcp"]), "run", str(config), "--transport", "http", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--no-banner"]
        started = time.perf_counter()
        return Hop(target, spawn(services, target, argv, folder, env=environment), [f"{base}/mcp"], started_at=started)
    raise ValueError(f"unknown target {target!r}")
