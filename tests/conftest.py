"""Shared test helpers: config repositories on disk, the gateway as a real process, SDK clients over HTTP."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
PYTHON = sys.executable

GATEWAY_START_TIMEOUT = 60.0
"""Seconds a gateway process may take to report ready."""

GATEWAY_STOP_TIMEOUT = 30.0
"""Seconds a gateway process may take to exit after SIGTERM before the test fails."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Put the logging tree back after each test: commands run in-process configure the root logger for real."""
    root = logging.getLogger()
    handlers, filters, level = list(root.handlers), list(root.filters), root.level
    loggers = {
        name: (logger.level, list(logger.filters), logger.disabled, logger.propagate)
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    handler_filters = {handler: list(handler.filters) for handler in handlers}
    disabled_below = logging.root.manager.disable
    yield
    logging.disable(disabled_below)
    root.handlers[:] = handlers
    root.filters[:] = filters
    root.setLevel(level)
    for handler, kept in handler_filters.items():
        handler.filters[:] = kept
    for name, logger in logging.root.manager.loggerDict.items():
        if not isinstance(logger, logging.Logger):
            continue
        before = loggers.get(name)
        logger.level, logger.filters[:], logger.disabled, logger.propagate = (
            before if before is not None else (logging.NOTSET, [], False, True)
        )
    logging.root.manager._clear_cache()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fixture_server(name: str, *args: str) -> dict[str, Any]:
    """A stdio server entry running one of the fixture servers with this interpreter."""
    return {"command": PYTHON, "args": [str(FIXTURES / name), *args]}


@dataclass
class ConfigRepo:
    """A config repository in a temporary folder: gateway.yaml plus profiles/*.yaml."""

    root: Path
    gateway: dict[str, Any] = field(default_factory=lambda: {"version": 1})

    @property
    def path(self) -> Path:
        return self.root / "gateway.yaml"

    def write_gateway(self, **settings: Any) -> Path:
        self.gateway.update(settings)
        self.path.write_text(yaml.safe_dump(self.gateway, sort_keys=False))
        return self.path

    def write_profile(self, slug: str, servers: dict[str, Any], **settings: Any) -> Path:
        folder = self.root / "profiles"
        folder.mkdir(exist_ok=True)
        path = folder / f"{slug}.yaml"
        path.write_text(yaml.safe_dump({"servers": servers, **settings}, sort_keys=False))
        return path


@pytest.fixture
def config_repo(tmp_path: Path) -> ConfigRepo:
    repo = ConfigRepo(tmp_path / "config")
    repo.root.mkdir()
    (repo.root / "profiles").mkdir()
    repo.write_gateway()
    return repo


@dataclass
class GatewayProcess:
    """A `local-mcp-gateway run` process on 127.0.0.1, started and stopped by the test."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def url(self, slug: str | None = None) -> str:
        return f"{self.base_url}/mcp" + (f"/{slug}" if slug else "")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        return httpx2.get(f"{self.base_url}/status", timeout=10).json()

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code. The whole group is killed if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(GATEWAY_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
                raise AssertionError(f"the gateway did not stop within {GATEWAY_STOP_TIMEOUT} s")
        return self.process.returncode


def start_gateway(
    config: Path, log_path: Path, *, env: dict[str, str] | None = None, port: int | None = None, wait: bool = True
) -> GatewayProcess:
    port = port or free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    environment.update({"MCP_GATEWAY_PORT": str(port), "MCP_GATEWAY_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"})
    environment.update(env or {})
    log = log_path.open("wb")
    process = subprocess.Popen(
        [PYTHON, "-m", "local_mcp_gateway", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
        start_new_session=True,
    )
    gateway = GatewayProcess(process, f"http://127.0.0.1:{port}", log_path)
    if wait:
        wait_ready(gateway)
    return gateway


def wait_ready(gateway: GatewayProcess, timeout: float = GATEWAY_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise AssertionError(f"the gateway exited with {gateway.process.returncode}:\n{gateway.log()}")
        try:
            if httpx2.get(f"{gateway.base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the gateway was not ready within {timeout} s:\n{gateway.log()}")


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Any]:
    """Start gateways for a test; every one still running at the end is stopped (by pid)."""
    started: list[GatewayProcess] = []

    def start(config: Path, **kwargs: Any) -> GatewayProcess:
        gateway = start_gateway(config, tmp_path / f"gateway-{len(started)}.log", **kwargs)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        if gateway.process.poll() is None:
            gateway.stop()


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str] | None = None, **callbacks: Any) -> AsyncIterator[ClientSession]:
    """An initialized SDK client session (protocol 2025-11-25) against `url`."""
    async with httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30, read=300)) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, **callbacks) as session:
                await session.initialize()
                yield session
