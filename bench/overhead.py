"""What one hop costs: the same MCP tool call, measured directly and through four different hops, in one run.

Targets (all end at the same `bench/upstream.py` server and its `echo` tool):

    a  direct           the client talks to the HTTP upstream itself
    b  raw-forwarder    through `bench/raw_forwarder.py` (Hypercorn + httpx2, bytes only): the floor of a Python hop
    c  gateway-http     through `local-mcp-gateway` with that HTTP upstream
    d  gateway-stdio    through `local-mcp-gateway` with a stdio upstream
    e  mcp-proxy        through `mcp-proxy` (PyPI, its own venv) with the same stdio upstream: the peer
    f  gateway-http-nometrics   as c, with `metrics: {enabled: false}`: c against f is the price of metrics
    g  gateway-http-traced      as c, with an OTLP trace exporter configured (`OTEL_EXPORTER_OTLP_ENDPOINT`,
                                spans sent to a local sink that answers 200): g against c is the price of tracing

Method: one client (the SDK's `ClientSession` over `streamable_http_client` with an `httpx2.AsyncClient`,
protocol 2025-11-25), one session per concurrent worker, each calling `echo` in a loop and checking the
answer. For each concurrency level every target gets its sessions and a warm-up first; then rounds run the
targets one after another (a, b, c, d, e, a, b, ...) so that machine noise falls on all of them alike. A
round ends after `--calls` calls or `--round-seconds`, whichever comes first, and the whole measurement
stops starting rounds after `--max-seconds`. Calls/s is calls over the summed round time; p50/p99 are over
every call of the target at that concurrency.

    python bench/overhead.py                         # defaults: about two minutes on 2 cores
    python bench/overhead.py --rounds 3 --calls 100  # quicker
    python bench/overhead.py --install-mcp-proxy     # first create the venv holding mcp-proxy

Every process it needs is started here on 127.0.0.1, in its own process group, and stopped here (by that
group) whatever happens. Only ratios measured in one run mean anything: the client, the hops and the
upstream share the same cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from _common import cpu_seconds  # bench/ is on sys.path when run as a script
from _overhead_targets import DEFAULT_MCP_PROXY_VENV, MCP_PROXY_VERSION, Targets, install_mcp_proxy, start_targets

EXPECTED_PROTOCOL = "2025-11-25"
"""The handshake line every session must negotiate, so all targets speak the same protocol."""

CONCURRENCY_LEVELS = (1, 8)
DEFAULT_ROUNDS = 5
DEFAULT_CALLS = 250
"""Calls per round and target, shared by the workers of that round."""
DEFAULT_WARMUP_CALLS = 40
"""Calls per worker before measuring: imports, connection pools, caches and the tool list all settle."""
DEFAULT_ROUND_SECONDS = 8.0
"""A round stops at this even if its calls are not done, so a slow target cannot stretch the run."""
DEFAULT_MAX_SECONDS = 120.0
"""No round starts after this many seconds of measuring (both concurrency levels together)."""

CALL_TIMEOUT = 30.0
"""Seconds one call may take before the run fails: a hung target must not hang the benchmark."""

PAYLOAD = "benchmark payload: " + "x" * 45
"""64 characters: a realistic small tool argument, echoed back."""

TARGET_LABELS = {
    "direct": "a  direct (HTTP upstream)",
    "raw-forwarder": "b  raw forwarder (Hypercorn+httpx2)",
    "gateway-http": "c  gateway, HTTP upstream",
    "gateway-stdio": "d  gateway, stdio upstream",
    "mcp-proxy": "e  mcp-proxy, stdio upstream",
    "gateway-http-nometrics": "f  gateway, HTTP upstream, metrics off",
    "gateway-http-traced": "g  gateway, HTTP upstream, traces exported",
}
ALL_TARGETS = tuple(TARGET_LABELS)

MIN_GATEWAY_VS_FORWARDER_RATE = 0.8
MAX_GATEWAY_P50_EXCESS_MS = 1.0
MIN_METRICS_ON_VS_OFF_RATE = 0.97
"""Metrics may cost at most 3% of the calls per second (checked at concurrency 8)."""

# --- measuring -------------------------------------------------------------------------------------------


@dataclass
class Measure:
    """Calls, time and latencies of one target at one concurrency, summed over its rounds."""

    calls: int = 0
    seconds: float = 0.0
    rounds: int = 0
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    hop_cpu: float = 0.0
    upstream_cpu: float = 0.0

    def cpu_ms_per_call(self, seconds: float) -> float:
        return 1000 * seconds / self.calls if self.calls else float("nan")

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _call_echo(session: ClientSession) -> None:
    with anyio.fail_after(CALL_TIMEOUT):
        result = await session.call_tool("echo", {"text": PAYLOAD})
    text = getattr(result.content[0], "text", None) if result.content else None
    if result.is_error or text != PAYLOAD:
        raise RuntimeError(f"echo answered {result!r}")


async def open_sessions(stack: AsyncExitStack, url: str, count: int) -> list[ClientSession]:
    """`count` initialized sessions against `url`, each on its own httpx2 client, closed with `stack`."""
    sessions = []
    for _ in range(count):
        http = await stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(CALL_TIMEOUT, read=None)))
        read, write = await stack.enter_async_context(streamable_http_client(url, http_client=http))
        session = await stack.enter_async_context(ClientSession(read, write))
        result = await session.initialize()
        if result.protocol_version != EXPECTED_PROTOCOL:
            raise RuntimeError(f"{url} negotiated {result.protocol_version}, expected {EXPECTED_PROTOCOL}")
        sessions.append(session)
    return sessions


async def warm_up(sessions: list[ClientSession], calls: int) -> None:
    async def worker(session: ClientSession) -> None:
        await session.list_tools()
        for _ in range(calls):
            await _call_echo(session)

    async with anyio.create_task_group() as group:
        for session in sessions:
            group.start_soon(worker, session)


async def run_round(sessions: list[ClientSession], calls: int, seconds: float, into: Measure) -> None:
    """Up to `calls` calls shared by one worker per session, stopping early after `seconds`."""
    remaining = calls
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def worker(session: ClientSession) -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            started = time.perf_counter()
            await _call_echo(session)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for session in sessions:
            group.start_soon(worker, session)
    into.seconds += time.perf_counter() - started
    into.calls += len(latencies)
    into.rounds += 1
    into.latencies.extend(latencies)


@dataclass(frozen=True)
class Plan:
    """How much to measure: the command line's bounds, by count and by time."""

    rounds: int
    calls: int
    warmup: int
    round_seconds: float
    max_seconds: float
    concurrency: tuple[int, ...]


async def measured_round(
    targets: Targets, name: str, sessions: list[ClientSession], plan: Plan, seconds: float, into: Measure
) -> None:
    """One round of `name`, with the CPU time the client, the hop and the upstream spent on it."""
    hop, upstream = targets.hop_pids[name], targets.upstream_pids[name]
    client_before, hop_before, upstream_before = time.process_time(), cpu_seconds(hop), cpu_seconds(upstream)
    await run_round(sessions, plan.calls, seconds, into)
    into.client_cpu += time.process_time() - client_before
    into.hop_cpu += cpu_seconds(hop) - hop_before
    into.upstream_cpu += cpu_seconds(upstream) - upstream_before


async def measure(targets: Targets, plan: Plan) -> dict[int, dict[str, Measure]]:
    """Every target at every concurrency level, rounds alternating between targets."""
    urls = targets.urls
    results: dict[int, dict[str, Measure]] = {}
    stop_at = time.monotonic() + plan.max_seconds
    for concurrency in plan.concurrency:
        results[concurrency] = {name: Measure() for name in urls}
        async with AsyncExitStack() as stack:
            sessions = {name: await open_sessions(stack, url, concurrency) for name, url in urls.items()}
            for name in urls:
                await warm_up(sessions[name], plan.warmup)
            targets.find_stdio_upstreams()
            for number in range(1, plan.rounds + 1):
                if time.monotonic() >= stop_at:
                    print(f"  time cap reached: concurrency {concurrency} stops after {number - 1} rounds", flush=True)
                    break
                for name in urls:
                    seconds = max(0.0, min(plan.round_seconds, stop_at - time.monotonic()))
                    await measured_round(targets, name, sessions[name], plan, seconds, results[concurrency][name])
                print(f"  concurrency {concurrency}: round {number}/{plan.rounds} done", flush=True)
    return results


# --- reporting -------------------------------------------------------------------------------------------


def summarize(results: dict[int, dict[str, Measure]]) -> dict[str, Any]:
    """Plain numbers per concurrency and target, the ratios, and the verdict on each target."""
    summary: dict[str, Any] = {"concurrency": {}}
    for concurrency, measures in results.items():
        rows: dict[str, Any] = {}
        direct = measures.get("direct")
        for name, m in measures.items():
            rows[name] = {
                "calls": m.calls,
                "rounds": m.rounds,
                "calls_per_s": round(m.rate, 1),
                "p50_ms": round(m.percentile_ms(0.50), 3),
                "p99_ms": round(m.percentile_ms(0.99), 3),
                "vs_direct": round(m.rate / direct.rate, 3) if direct and direct.rate else None,
                "cpu_ms_per_call": {
                    "client": round(m.cpu_ms_per_call(m.client_cpu), 3),
                    "hop": round(m.cpu_ms_per_call(m.hop_cpu), 3),
                    "upstream": round(m.cpu_ms_per_call(m.upstream_cpu), 3),
                },
            }
        checks: dict[str, Any] = {}
        if "gateway-http" in measures and "raw-forwarder" in measures:
            gateway, floor = measures["gateway-http"], measures["raw-forwarder"]
            ratio = gateway.rate / floor.rate if floor.rate else 0.0
            checks["gateway_http_vs_forwarder_rate"] = {
                "value": round(ratio, 3),
                "target": f">= {MIN_GATEWAY_VS_FORWARDER_RATE}",
                "met": ratio >= MIN_GATEWAY_VS_FORWARDER_RATE,
            }
            if concurrency == 1:
                excess = gateway.percentile_ms(0.5) - floor.percentile_ms(0.5)
                checks["gateway_http_p50_minus_forwarder_ms"] = {
                    "value": round(excess, 3),
                    "target": f"<= {MAX_GATEWAY_P50_EXCESS_MS}",
                    "met": excess <= MAX_GATEWAY_P50_EXCESS_MS,
                }
        if "gateway-http" in measures and "gateway-http-nometrics" in measures:
            on, off = measures["gateway-http"], measures["gateway-http-nometrics"]
            ratio = on.rate / off.rate if off.rate else 0.0
            verdict: dict[str, Any] = {"value": round(ratio, 3), "target": f">= {MIN_METRICS_ON_VS_OFF_RATE}"}
            verdict["met"] = ratio >= MIN_METRICS_ON_VS_OFF_RATE if concurrency == 8 and on.calls and off.calls else None
            checks["gateway_metrics_on_vs_off_rate"] = verdict
            cpu = on.cpu_ms_per_call(on.hop_cpu) - off.cpu_ms_per_call(off.hop_cpu)
            checks["gateway_metrics_hop_cpu_ms_per_call"] = {"value": round(cpu, 3), "target": "reported", "met": None}
        if "gateway-http-traced" in measures and "gateway-http" in measures:
            traced, plain = measures["gateway-http-traced"], measures["gateway-http"]
            ratio = traced.rate / plain.rate if plain.rate else 0.0
            cpu = traced.cpu_ms_per_call(traced.hop_cpu) - plain.cpu_ms_per_call(plain.hop_cpu)
            checks["gateway_traced_vs_untraced_rate"] = {"value": round(ratio, 3), "target": "reported", "met": None}
            checks["gateway_tracing_hop_cpu_ms_per_call"] = {"value": round(cpu, 3), "target": "reported", "met": None}
        if "gateway-stdio" in measures and "mcp-proxy" in measures:
            ours, peer = measures["gateway-stdio"], measures["mcp-proxy"]
            ratio = ours.rate / peer.rate if peer.rate else 0.0
            checks["gateway_stdio_vs_mcp_proxy_rate"] = {"value": round(ratio, 3), "target": "> 1", "met": ratio > 1}
        summary["concurrency"][str(concurrency)] = {"targets": rows, "checks": checks}
    return summary


COLUMNS = ("target", "calls", "calls/s", "p50 ms", "p99 ms", "vs direct", "CPU ms/call: client", "hop", "upstream")
"""The table's columns; CPU is per call, per process kind, summed over every round of the target."""


def _cells(name: str, row: dict[str, Any]) -> list[str]:
    cpu = row["cpu_ms_per_call"]
    return [
        TARGET_LABELS[name],
        str(row["calls"]),
        f"{row['calls_per_s']:.0f}",
        f"{row['p50_ms']:.2f}",
        f"{row['p99_ms']:.2f}",
        f"{row['vs_direct']:.2f}" if row["vs_direct"] is not None else "-",
        f"{cpu['client']:.2f}",
        f"{cpu['hop']:.2f}" if row["calls"] and name != "direct" else "-",
        f"{cpu['upstream']:.2f}",
    ]


def render(summary: dict[str, Any], markdown: bool) -> str:
    """The tables (plain text or Markdown), one per concurrency level, each followed by the checks."""
    lines: list[str] = []
    widths = (38, 7, 9, 8, 8, 10, 21, 6, 9)
    for concurrency, block in summary["concurrency"].items():
        rows = [_cells(name, row) for name, row in block["targets"].items()]
        if markdown:
            lines += [f"Concurrency {concurrency}:", "", "| " + " | ".join(COLUMNS) + " |"]
            lines += ["|---" + "|---:" * (len(COLUMNS) - 1) + "|"]
            lines += ["| " + " | ".join(cells) + " |" for cells in rows]
            lines.append("")
        else:
            lines.append(f"concurrency {concurrency}")
            for cells in [list(COLUMNS), *rows]:
                first, rest = cells[0], cells[1:]
                lines.append("  " + first.ljust(widths[0]) + "".join(c.rjust(w) for c, w in zip(rest, widths[1:])))
        for check, verdict in block["checks"].items():
            mark = "reported" if verdict["met"] is None else "met" if verdict["met"] else "MISSED"
            lines.append(f"{'- ' if markdown else '  '}{check}: {verdict['value']} (target {verdict['target']}): {mark}")
        lines.append("")
    return "\n".join(lines)


# --- command line ----------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=_positive_int, default=DEFAULT_ROUNDS, help="rounds per concurrency level")
    parser.add_argument("--calls", type=_positive_int, default=DEFAULT_CALLS, help="calls per round and target")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP_CALLS, help="warm-up calls per session")
    parser.add_argument("--round-seconds", type=float, default=DEFAULT_ROUND_SECONDS, help="time cap of one round")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="cap on all measuring")
    parser.add_argument(
        "--concurrency", type=_positive_int, nargs="+", default=list(CONCURRENCY_LEVELS), help="levels to measure"
    )
    parser.add_argument("--targets", nargs="+", choices=ALL_TARGETS, default=list(ALL_TARGETS), help="which targets")
    parser.add_argument(
        "--mcp-proxy",
        type=Path,
        default=DEFAULT_MCP_PROXY_VENV / "bin" / "mcp-proxy",
        help="the mcp-proxy script (default: in the venv --install-mcp-proxy creates)",
    )
    parser.add_argument(
        "--install-mcp-proxy",
        action="store_true",
        help=f"first create {DEFAULT_MCP_PROXY_VENV} with mcp-proxy {MCP_PROXY_VERSION} (pip) if it is not there",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs to this folder")
    return parser.parse_args(argv)


@contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as folder:
        yield Path(folder)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the targets, measure them, print the tables; 0 when measured (missed targets are reported, not fatal)."""
    args = parse_args(argv)
    mcp_proxy: Path | None = args.mcp_proxy
    if args.install_mcp_proxy and "mcp-proxy" in args.targets:
        mcp_proxy = install_mcp_proxy(DEFAULT_MCP_PROXY_VENV)
    plan = Plan(args.rounds, args.calls, args.warmup, args.round_seconds, args.max_seconds, tuple(args.concurrency))
    with _workdir() as workdir, ExitStack() as services:
        try:
            try:
                targets = start_targets(services, workdir, args.targets, mcp_proxy)
            except RuntimeError as exc:
                print(f"overhead: a target could not start: {exc}", file=sys.stderr)
                return 1
            for name, reason in targets.skipped.items():
                print(f"skipped {name}: {reason}", flush=True)
            pids = ", ".join(f"{name} {service.process.pid}" for name, service in targets.services.items())
            print(f"processes: {pids}", flush=True)
            print(f"measuring {', '.join(targets.urls)}: {plan}", flush=True)
            started = time.monotonic()
            results = anyio.run(measure, targets, plan)
            elapsed = time.monotonic() - started
        finally:
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in workdir.glob("*.log"):
                    (args.keep_logs / log.name).write_bytes(log.read_bytes())
    summary = summarize(results)
    summary["plan"] = {**plan.__dict__, "concurrency": list(plan.concurrency), "measured_seconds": round(elapsed, 1)}
    summary["skipped"] = targets.skipped
    print()
    print(render(summary, args.markdown))
    for name, reason in targets.skipped.items():
        print(f"not measured: {name}: {reason}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
