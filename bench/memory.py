"""Resident memory of the gateway at rest with the bundled example (`gateway.yaml.example` and `profiles/`).

The example is copied into a temporary folder and run as the README says (`local-mcp-gateway run --config
gateway.yaml.example`, on a free port). Once `/readyz` answers and no server is still starting, the gateway
process's `VmRSS` (its own, not its children's) is read from `/proc/<pid>/status`, after `--settle` seconds.

    python bench/memory.py                                  # this checkout
    python bench/memory.py --baseline-src /tmp/base         # and another checkout, side by side
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import child_environment, free_port, spawn, wait_http  # noqa: E402
from _overhead_targets import PYTHON  # noqa: E402

__all__ = ["main", "rss_kb"]

ROOT = Path(__file__).resolve().parent.parent
SETTLE_SECONDS = 3.0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _settled(response: httpx2.Response) -> bool:
    if response.status_code != 200:
        return False
    profiles = response.json().get("profiles", {})
    return all(server["state"] != "starting" for p in profiles.values() for server in p["servers"].values())


def measure(services: ExitStack, workdir: Path, name: str, src: Path, settle: float) -> int:
    folder = workdir / name
    folder.mkdir()
    shutil.copy(src / "gateway.yaml.example", folder / "gateway.yaml.example")
    shutil.copytree(src / "profiles", folder / "profiles")
    port = free_port()
    environment = child_environment() | {"MCP_GATEWAY_HOST": "127.0.0.1", "MCP_GATEWAY_PORT": str(port)}
    environment["PYTHONPATH"] = str(src / "src")
    argv = [PYTHON, "-m", "local_mcp_gateway", "run", "--config", "gateway.yaml.example"]
    service = spawn(services, name, argv, folder, env=environment)
    base = f"http://127.0.0.1:{port}"
    wait_http(service, f"{base}/readyz")
    wait_http(service, f"{base}/status", _settled)
    time.sleep(settle)
    return rss_kb(service.process.pid)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, help="a checkout of the gateway to compare with")
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS)
    args = parser.parse_args(argv)
    sources = {"gateway": ROOT} | ({"baseline": args.baseline_src.resolve()} if args.baseline_src else {})
    results: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
        for name, src in sources.items():
            with ExitStack() as services:
                results[name] = measure(services, Path(tmp), name, src, args.settle)
    reference = results["gateway"]
    print(f"{'target':<10} {'RSS MB':>8} {'/ gateway':>10}")
    for name, kb in results.items():
        print(f"{name:<10} {kb / 1024:8.1f} {kb / reference:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
