"""How long a client waits for every page of `tools/list` from one upstream with 2,000 tools, in one run.

Targets (all end at the same `bench/listing_upstream.py` stdio server):

    gateway    `local-mcp-gateway` from this checkout
    baseline   the same gateway from another checkout (`--baseline-src DIR`, its `src/` on PYTHONPATH): before/after

Method: a raw HTTP JSON-RPC client (httpx2, one kept-alive connection, protocol 2025-11-25) opens a session on
each target, lists once to warm up, then rounds alternate between the targets; each round lists every page
(following `nextCursor`) `--listings` times. A listing's time runs from the first request to the last page's
answer. Printed per target: p50 and minimum over every listing, p50 relative to the gateway's, and the CPU time
the hop process spent per listing (from /proc; it moves much less than wall time on a busy machine).

    python bench/listing.py                                   # the gateway alone
    git archive main | tar -x -C /tmp/base && python bench/listing.py --baseline-src /tmp/base
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import child_environment, cpu_seconds, free_port, spawn, wait_http  # noqa: E402
from _overhead_targets import PYTHON, all_upstreams_ready  # noqa: E402

__all__ = ["list_all", "main"]

LISTING_UPSTREAM = Path(__file__).resolve().parent / "listing_upstream.py"
PROTOCOL = "2025-11-25"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
REQUEST_TIMEOUT = 30.0


def _answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a JSON body or in the `data:` line of an SSE body."""
    response.raise_for_status()
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if "id" in message:
                    return message
        raise RuntimeError("no answer in the event stream")
    return response.json()


class Client:
    """One MCP session over one kept-alive HTTP connection, speaking raw JSON-RPC."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx2.Client(timeout=REQUEST_TIMEOUT)
        self.headers = dict(HEADERS)
        self.next_id = 0

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            body["params"] = params
        answer = _answer(self.http.post(self.url, content=json.dumps(body), headers=self.headers))
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def open(self) -> None:
        self.next_id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self.next_id,
            "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
        }
        response = self.http.post(self.url, content=json.dumps(body), headers=self.headers)
        _answer(response)
        session = response.headers.get("mcp-session-id")
        if session:
            self.headers["Mcp-Session-Id"] = session
        self.headers["MCP-Protocol-Version"] = PROTOCOL
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        self.http.post(self.url, content=json.dumps(note), headers=self.headers)

    def close(self) -> None:
        self.http.close()


def list_all(client: Client) -> tuple[float, int, int]:
    """Seconds to read every page of tools/list, the number of tools and of pages."""
    started = time.perf_counter()
    tools = pages = 0
    cursor: str | None = None
    while True:
        result = client.request("tools/list", {"cursor": cursor} if cursor else None)
        tools += len(result["tools"])
        pages += 1
        cursor = result.get("nextCursor")
        if not cursor:
            return time.perf_counter() - started, tools, pages


def start_gateway(services: ExitStack, workdir: Path, name: str, tool_count: int, src: Path | None) -> tuple[str, int]:
    folder = workdir / f"{name}-config"
    (folder / "profiles").mkdir(parents=True)
    (folder / "gateway.yaml").write_text("version: 1\n")
    server = {"command": PYTHON, "args": [str(LISTING_UPSTREAM), "--tools", str(tool_count)], "prefix": ""}
    (folder / "profiles" / "big.yaml").write_text(json.dumps({"servers": {"big": server}}) + "\n")
    port = free_port()
    environment = child_environment() | {"MCP_GATEWAY_HOST": "127.0.0.1", "MCP_GATEWAY_PORT": str(port)}
    if src is not None:
        environment["PYTHONPATH"] = str(src / "src")
    argv = [PYTHON, "-m", "local_mcp_gateway", "run", "-c", str(folder / "gateway.yaml")]
    service = spawn(services, name, argv, workdir, env=environment)
    base = f"http://127.0.0.1:{port}"
    wait_http(service, f"{base}/readyz")
    wait_http(service, f"{base}/status", all_upstreams_ready)
    print(f"{name}: pid {service.process.pid}", file=sys.stderr)
    return f"{base}/mcp/big", service.process.pid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--listings", type=int, default=5, help="full listings per round and target")
    parser.add_argument("--baseline-src", type=Path, help="a checkout of the gateway to compare with")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    with ExitStack() as services, tempfile.TemporaryDirectory(prefix="listing-bench-") as tmp:
        workdir = Path(tmp)
        started = {"gateway": start_gateway(services, workdir, "gateway", args.tools, None)}
        if args.baseline_src:
            started["baseline"] = start_gateway(services, workdir, "baseline", args.tools, args.baseline_src)
        clients = {name: Client(url) for name, (url, _) in started.items()}
        pages: dict[str, int] = {}
        for client in clients.values():
            services.callback(client.close)
            client.open()
            _, count, pages[client.url] = list_all(client)
            if count != args.tools:
                raise RuntimeError(f"{client.url} listed {count} tools, expected {args.tools}")
        times: dict[str, list[float]] = {name: [] for name in clients}
        hop_cpu = dict.fromkeys(clients, 0.0)
        for _ in range(args.rounds):
            for name, client in clients.items():
                pid = started[name][1]
                before = cpu_seconds([pid])
                for _ in range(args.listings):
                    times[name].append(list_all(client)[0])
                hop_cpu[name] += cpu_seconds([pid]) - before
        summary = {
            name: {
                "p50_ms": statistics.median(values) * 1e3,
                "min_ms": min(values) * 1e3,
                "hop_cpu_ms": hop_cpu[name] / len(values) * 1e3,
                "listings": len(values),
                "pages": pages[clients[name].url],
            }
            for name, values in times.items()
        }
    reference = summary["gateway"]["p50_ms"]
    print(f"tools/list of {args.tools} tools, every page, {args.rounds} rounds x {args.listings}")
    cpu_reference = summary["gateway"]["hop_cpu_ms"]
    print(f"{'target':<10} {'pages':>5} {'p50 ms':>8} {'min ms':>8} {'p50 / gateway':>14} {'hop CPU ms':>11} {'CPU / gateway':>14}")
    for name, row in summary.items():
        print(
            f"{name:<10} {row['pages']:5d} {row['p50_ms']:8.1f} {row['min_ms']:8.1f} {row['p50_ms'] / reference:14.2f}"
            f" {row['hop_cpu_ms']:11.1f} {row['hop_cpu_ms'] / cpu_reference:14.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
