"""Real parts for observability tests: the Debian `prometheus` server, `/metrics` parsing, gated upstreams."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import FIXTURES, PYTHON, free_port

HERE = Path(__file__).resolve().parent
PROMETHEUS_START_TIMEOUT = 60.0
PROMETHEUS_STOP_TIMEOUT = 20.0


def metric_values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text -> {(series name, labels): value} (enough of the format for our own output)."""
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, rest = series.partition("{")
        labels: list[tuple[str, str]] = []
        rest = rest.rstrip("}")
        while rest:
            key, _, rest = rest.partition('="')
            out = []
            i = 0
            while rest[i] != '"':
                if rest[i] == "\\":
                    i += 1
                out.append(rest[i])
                i += 1
            labels.append((key, "".join(out)))
            rest = rest[i + 1 :].lstrip(",")
        values[(name, frozenset(labels))] = float(value)
    return values


def series(values: dict[Any, float], name: str, **labels: str) -> float | None:
    wanted = set(labels.items())
    found = [v for (n, ls), v in values.items() if n == name and wanted <= set(ls)]
    return sum(found) if found else None


def scrape(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx2.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return metric_values(response.text)


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")


def gated_echo(gate: Path, *args: str) -> dict[str, Any]:
    """A stdio echo server that starts only while `gate` exists (so a killed one stays down when it is removed)."""
    script = (
        "import os, sys; os.path.exists(sys.argv[1]) or sys.exit(3); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
    )
    return {"command": PYTHON, "args": ["-c", script, str(gate), str(FIXTURES / "echo_server.py"), *args]}


def prometheus_binary(name: str = "prometheus") -> str:
    """A binary of the Debian `prometheus` package; missing under CI fails the test, elsewhere it skips."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is missing: the Debian package prometheus is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx2.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single value of an instant query (None while it has no result)."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_value(self, promql: str, expected: float, timeout: float = 60.0) -> None:
        wait_for(lambda: self.value(promql) == expected, timeout)

    def targets_up(self) -> bool:
        return self.value("up") == 1.0


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    """Start `prometheus` scraping `host:port` every second; stopped (by its process group) after the test."""
    started: list[Prometheus] = []

    def start(target: str, metrics_path: str = "/metrics") -> Prometheus:
        binary = prometheus_binary()
        folder = tmp_path / f"prometheus-{len(started)}"
        folder.mkdir()
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: gateway\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
            f"    metrics_path: {metrics_path}\n    static_configs:\n      - targets: ['{target}']\n"
        )
        port = free_port()
        log_path = folder / "prometheus.log"
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        instance = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
        started.append(instance)

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                return httpx2.get(f"{instance.url}/-/ready", timeout=2).status_code == 200
            except httpx2.TransportError:
                return False

        wait_for(ready, PROMETHEUS_START_TIMEOUT, 0.1)
        return instance

    yield start
    for instance in started:
        if instance.process.poll() is None:
            os.killpg(instance.process.pid, signal.SIGTERM)
            try:
                instance.process.wait(PROMETHEUS_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(instance.process.pid, signal.SIGKILL)
                instance.process.wait(10)


__all__ = ["HERE", "gated_echo", "metric_values", "scrape", "series", "wait_for"]
