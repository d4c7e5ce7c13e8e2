"""Replicas following one configuration: how soon a git-sync style symlink swap reaches every replica, beside an
in-place edit of the same revision (the reload path one replica takes for a `git pull`).

REPLICAS `local-mcp-gateway run` processes on 127.0.0.1 read `<root>/current/gateway.yaml`, where `current` is a
symlink to a revision folder. Each round, alternately:

    swap   a complete new revision folder is written, then a new symlink is renamed over `current` (one atomic
           step, as git-sync does); timed from the rename until every replica's `/status` shows the new
           `config_commit` and one `config_digest`;
    edit   a profile of the current revision is rewritten in place (atomically); timed from the write until every
           replica shows the new digest.

Both include the watcher's quiet period (`reload.QUIET_PERIOD_MS`) and the load. The ratio swap/edit (medians)
says what following the symlink costs on top of an ordinary reload.

    python bench/replicas.py                    # 3 replicas, 10 rounds of each
    python bench/replicas.py --replicas 5 --rounds 20

Every process is started here in its own process group and stopped here by that group. Absolute figures move
with whatever else runs on the machine: the spread (min/p50/max) is printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

from local_mcp_gateway.reload import QUIET_PERIOD_MS

START_TIMEOUT = 60.0
ROUND_TIMEOUT = 30.0
POLL = 0.01


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_revision(root: Path, n: int) -> Path:
    folder = root / ".worktrees" / f"{n:040x}"
    (folder / "profiles").mkdir(parents=True)
    (folder / "gateway.yaml").write_text("version: 1\n")
    (folder / "profiles" / "p.yaml").write_text(
        f"description: revision {n}\nservers:\n  clock: {{module: 'local_mcp_gateway.examples.clock:server'}}\n")
    return folder


def publish(root: Path, folder: Path) -> None:
    temporary = root / "tmp-link"
    os.symlink(os.path.relpath(folder, root), temporary)
    os.replace(temporary, root / "current")


def statuses(ports: list[int]) -> list[dict]:
    return [httpx2.get(f"http://127.0.0.1:{port}/status", timeout=5).json() for port in ports]


def wait_agree(ports: list[int], commit: str | None, old_digest: str) -> float:
    deadline = time.monotonic() + ROUND_TIMEOUT
    while time.monotonic() < deadline:
        seen = statuses(ports)
        digests = {s["config_digest"] for s in seen}
        if len(digests) == 1 and old_digest not in digests and (commit is None or all(
                s["config_commit"] == commit for s in seen)):
            return time.monotonic()
        time.sleep(POLL)
    raise SystemExit(f"the replicas did not agree within {ROUND_TIMEOUT} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        root = Path(tmp)
        revision = 1
        publish(root, write_revision(root, revision))
        ports = [free_port() for _ in range(args.replicas)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
        processes = []
        try:
            for port in ports:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "local_mcp_gateway", "run", "-c", str(root / "current" / "gateway.yaml")],
                    env={**env, "MCP_GATEWAY_HOST": "127.0.0.1", "MCP_GATEWAY_PORT": str(port),
                         "MCP_GATEWAY_LOG_LEVEL": "warning"},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            deadline = time.monotonic() + START_TIMEOUT
            for port in ports:
                while True:
                    try:
                        if httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("a replica did not become ready")
                    time.sleep(0.05)
            swaps, edits = [], []
            for n in range(args.rounds):
                digest = statuses(ports)[0]["config_digest"]
                revision += 1
                folder = write_revision(root, revision)
                started = time.monotonic()
                publish(root, folder)
                swaps.append(wait_agree(ports, folder.name, digest) - started)
                digest = statuses(ports)[0]["config_digest"]
                profile = folder / "profiles" / "p.yaml"
                temporary = folder / "profiles" / ".p.yaml.tmp"
                temporary.write_text(profile.read_text().replace("description:", f"description: edit {n}"))
                started = time.monotonic()
                os.replace(temporary, profile)
                edits.append(wait_agree(ports, None, digest) - started)
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)

    def spread(values: list[float]) -> str:
        return (f"min {min(values) * 1000:6.0f} ms  p50 {statistics.median(values) * 1000:6.0f} ms  "
                f"max {max(values) * 1000:6.0f} ms")

    print(f"{args.replicas} replicas, {args.rounds} rounds, quiet period {QUIET_PERIOD_MS} ms (included)")
    print(f"swap  (symlink renamed, every replica on the new commit)  {spread(swaps)}")
    print(f"edit  (file rewritten in place, every replica reloaded)   {spread(edits)}")
    print(f"ratio swap/edit (p50): {statistics.median(swaps) / statistics.median(edits):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
