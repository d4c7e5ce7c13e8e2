"""Several gateway processes sharing one configuration (published by a symlink, as git-sync does) and one state
folder, behind HAProxy configured from the shipped example (deploy/haproxy/haproxy.cfg)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from local_mcp_gateway.secrets import Identity
from tests.conftest import REPO, GatewayProcess, free_port, start_gateway, wait_ready

HAPROXY_EXAMPLE = REPO / "deploy" / "haproxy" / "haproxy.cfg"
LB_START_TIMEOUT = 30.0
"""Seconds HAProxy may take to listen and see every replica up."""


def haproxy_binary() -> str:
    """The haproxy binary (Debian package `haproxy`): missing fails under CI, and skips with a reason elsewhere."""
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("haproxy is missing; .ci/run installs the Debian package `haproxy`")
        pytest.skip("haproxy is not installed (apt-get install haproxy); CI installs it")
    return found


def haproxy_config(port: int, replicas: list[str]) -> str:
    """The shipped example with its `bind` and `server` lines aimed at this test's ports (nothing else changed)."""
    text = HAPROXY_EXAMPLE.read_text()
    text = re.sub(r"(?m)^(\s*)bind \S+", lambda m: f"{m.group(1)}bind 127.0.0.1:{port}", text, count=1)
    lines = [line for line in text.splitlines() if not re.match(r"\s*server gw\d", line)]
    text = "\n".join(lines) + "\n"
    text += "".join(f"    server gw{n} {address} check\n" for n, address in enumerate(replicas, 1))
    return text


def revision_name(n: int) -> str:
    return f"{n:040x}"


@dataclass
class Cluster:
    root: Path
    state: Path
    identity: Identity
    env: dict[str, str]
    gateways: list[GatewayProcess] = field(default_factory=list)
    lb_port: int = 0
    lb: subprocess.Popen[bytes] | None = None
    revision: int = 0

    @property
    def link(self) -> Path:
        return self.root / "current"

    @property
    def lb_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def publish(self, gateway: dict[str, Any], profiles: dict[str, dict[str, Any]]) -> str:
        """Write a complete new revision folder and swap the link to it in one rename (git-sync's way)."""
        self.revision += 1
        name = revision_name(self.revision)
        folder = self.root / ".worktrees" / name
        (folder / "profiles").mkdir(parents=True)
        (folder / "gateway.yaml").write_text(yaml.safe_dump(gateway))
        for slug, servers in profiles.items():
            (folder / "profiles" / f"{slug}.yaml").write_text(yaml.safe_dump({"servers": servers}))
        temporary = self.root / "tmp-link"
        os.symlink(os.path.relpath(folder, self.root), temporary)
        os.replace(temporary, self.link)
        return name

    def start(self, count: int, log_dir: Path) -> None:
        for n in range(count):
            self.gateways.append(start_gateway(self.link / "gateway.yaml", log_dir / f"replica-{n}.log",
                                               env=self.env, wait=False))
        for gateway in self.gateways:
            wait_ready(gateway)

    def start_lb(self, log_dir: Path) -> None:
        self.lb_port = self.lb_port or free_port()
        config = log_dir / "haproxy.cfg"
        config.write_text(haproxy_config(self.lb_port, [g.base_url.removeprefix("http://") for g in self.gateways]))
        log = (log_dir / "haproxy.log").open("wb")
        self.lb = subprocess.Popen([haproxy_binary(), "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        deadline = time.monotonic() + LB_START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.lb.poll() is None, (log_dir / "haproxy.log").read_text()
            try:
                if httpx2.get(f"{self.lb_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"haproxy did not serve within {LB_START_TIMEOUT} s")

    def kill(self, gateway: GatewayProcess) -> None:
        """SIGKILL a replica's process group, as a node failure would end it."""
        os.killpg(gateway.process.pid, signal.SIGKILL)
        gateway.process.wait(30)

    def stop(self) -> None:
        if self.lb is not None and self.lb.poll() is None:
            self.lb.terminate()
            try:
                self.lb.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.lb.pid, signal.SIGKILL)
                self.lb.wait(10)
        for gateway in self.gateways:
            if gateway.process.poll() is None:
                gateway.stop()


def new_cluster(tmp_path: Path, gateway: dict[str, Any], profiles: dict[str, dict[str, Any]]) -> Cluster:
    identity = Identity.generate()
    root, state = tmp_path / "git", tmp_path / "shared-state"
    root.mkdir()
    cluster = Cluster(root, state, identity, {"MCP_GATEWAY_AGE_KEY": identity.reveal(),
                                              "MCP_GATEWAY_STATE_DIR": str(state)})
    cluster.publish(gateway, profiles)
    return cluster
