"""The gateway against peer proxies: mcp-hub (npm), mcp-proxy and fastmcp (PyPI), on the same work, in one run.

Every target runs the same stdio upstream (`bench/many_tools.py`, each hop starting its own copies) and is
driven by the same raw HTTP JSON-RPC client (`bench/_jsonrpc_client.py`). Phases, each over fresh processes:

    calls     one upstream with `echo`: tools/call calls/s at concurrency 1 and 8 (rounds alternating between
              targets), hop RSS at rest, then memory per open session (N sessions opened and kept, RSS delta / N)
    listing   one upstream with 2,000 tools: a complete tools/list (every page, following nextCursor), p50 over
              rounds alternating between targets; the gateway also serves one upstream with as many tools as
              the fan-out phase has in all (its "one-upstream list", the reference of the fan-out ratio)
    fan-out   20 upstreams: cold start (process start until a fresh session's tools/list lists every tool,
              rounds alternating, each start in a fresh folder), hop RSS at rest, then tools/list p50
    example   the gateway alone with the bundled `gateway.yaml.example` and `profiles/`: hop RSS at rest

RSS is the hop process's own (VmRSS of that one process, not of its upstream children), read after one session
listed the tools and closed. Ratios are the target's figure over the gateway's.

    python bench/peers.py --install          # first: peers into bench/.peers (pip venvs, npm with Node 22)
    python bench/peers.py                    # the full run, several minutes on 2 cores
    python bench/peers.py --quick            # small counts, a minute or two: checks that the harness works

Every process is started here on 127.0.0.1 (mcp-hub binds every interface; only loopback is used), in its own
process group, and stopped by that group.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx2

from _common import descendants, wait_http
from _jsonrpc_client import new_http_client, open_session
from _peer_measure import (
    CallMeasure,
    call_echo,
    calls_round,
    echo_name,
    list_round,
    open_sessions,
    rest_rss,
    session_memory,
    settle,
    wait_listing,
)
from _peer_report import render, summarize
from _peer_targets import (
    DEFAULT_PEERS_DIR,
    DEVIATIONS,
    REPO,
    TARGETS,
    Hop,
    Upstream,
    check_hub_offline,
    install_peers,
    missing_peers,
    start_gateway_config,
    start_target,
)

READY_TIMEOUT = 240.0
"""Seconds a target may take to list every tool after its start (20 Python upstreams on a loaded 2-core box)."""


@dataclass(frozen=True)
class Plan:
    big_tools: int = 2000
    fanout: int = 20
    fanout_tools: int = 5
    concurrency: tuple[int, ...] = (1, 8)
    call_rounds: int = 5
    calls: int = 200
    warmup: int = 20
    round_seconds: float = 8.0
    list_rounds: int = 5
    lists: int = 3
    cold_rounds: int = 3
    sessions: int = 100
    max_seconds: float = 900.0
    """No measuring round starts after this many seconds (each phase still measures at least one round)."""


QUICK = Plan(
    big_tools=400, fanout=2, fanout_tools=2, call_rounds=2, calls=20, warmup=2, round_seconds=4.0,
    list_rounds=2, lists=1, cold_rounds=1, sessions=20, max_seconds=120.0,
)  # fmt: skip


@dataclass
class Results:
    call: dict[int, dict[str, CallMeasure]]
    lists: dict[str, dict[str, list[float]]]
    cold_start: dict[str, list[float]]
    rss: dict[str, dict[str, int]]
    session_bytes: dict[str, float]
    protocols: dict[str, str]


class Run:
    """One benchmark run: its folder, its processes, its clock and its plan."""

    def __init__(self, plan: Plan, workdir: Path, services: ExitStack, peers_dir: Path, targets: Sequence[str]):
        self.plan, self.workdir, self.services, self.peers_dir = plan, workdir, services, peers_dir
        self.targets = list(targets)
        self.started = time.monotonic()
        self.results = Results({}, {"big": {}, "fanout": {}}, {}, {"one": {}, "fanout": {}}, {}, {})

    def time_left(self) -> bool:
        return time.monotonic() - self.started < self.plan.max_seconds

    async def start(self, target: str, phase: str, upstreams: list[Upstream], **extra: list[Upstream]) -> Hop:
        """Start `target` over `upstreams` and wait until it lists every tool (also through `extra` profiles)."""
        hop = start_target(target, self.services, self.workdir / phase / target, upstreams, self.peers_dir, extra)
        per_url = [u.tools for u in upstreams] if len(hop.urls) > 1 else [sum(u.tools for u in upstreams)]
        hop.ready_at = await wait_listing(hop, per_url, READY_TIMEOUT)
        for slug, servers in extra.items():
            reference = Hop(target, hop.service, [hop.extra[slug]])
            await wait_listing(reference, [sum(u.tools for u in servers)], READY_TIMEOUT)
        if target == "mcp-hub":
            check_hub_offline(hop)
        return hop

    async def protocol(self, hop: Hop) -> str:
        async with new_http_client() as http:
            session = await open_session(http, hop.urls[0], hop.transport)
            await session.close()
        return f"{session.protocol_version} ({hop.transport})"

    async def calls_phase(self) -> None:
        plan, out = self.plan, self.results
        hops = {t: await self.start(t, "calls", [Upstream("up", 1)]) for t in self.targets}
        for target, hop in hops.items():
            out.rss["one"][target] = await rest_rss(hop.pid)
            out.protocols[target] = await self.protocol(hop)
        for concurrency in plan.concurrency:
            measures = out.call[concurrency] = {t: CallMeasure() for t in hops}
            async with AsyncExitStack() as stack:
                sessions = {t: await open_sessions(stack, hop, hop.urls[0], concurrency) for t, hop in hops.items()}
                names = {t: echo_name(await s[0].list_tools()) for t, s in sessions.items()}
                for target, group in sessions.items():
                    await asyncio.gather(*(self._warm(s, names[target]) for s in group))
                for number in range(plan.call_rounds):
                    if number and not self.time_left():
                        break
                    for target, hop in hops.items():
                        await calls_round(hop, sessions[target], names[target], plan.calls, plan.round_seconds, measures[target])
            print(f"  calls at concurrency {concurrency}: {number + 1} rounds", flush=True)
        for target, hop in hops.items():
            out.session_bytes[target] = await session_memory(hop, plan.sessions)
            hop.service.stop()

    async def _warm(self, session: Any, name: str) -> None:
        for _ in range(self.plan.warmup):
            await call_echo(session, name)

    async def list_phase(self) -> Hop:
        """The 2,000-tool listing; returns the gateway, kept for its one-upstream reference list."""
        plan = self.plan
        reference = [Upstream("one", plan.fanout * plan.fanout_tools)]
        hops = {}
        for target in self.targets:
            extra = {"one": reference} if target == "gateway" else {}
            hops[target] = await self.start(target, "listing", [Upstream("big", plan.big_tools)], **extra)
        await self._list_rounds(hops, {t: plan.big_tools for t in hops}, self.results.lists["big"])
        for target, hop in hops.items():
            if target != "gateway":
                hop.service.stop()
        return hops["gateway"]

    async def _list_rounds(self, hops: dict[str, Hop], expected: dict[str, int], into: dict[str, list[float]]) -> None:
        children = {t: len(descendants(hop.pid)) for t, hop in hops.items()}
        async with AsyncExitStack() as stack:
            sessions = {t: (await open_sessions(stack, hop, hop.urls[0], 1))[0] for t, hop in hops.items()}
            for target, session in sessions.items():
                await session.list_tools()  # warm: the first listing may fill caches
                await settle(hops[target], children[target])
            for number in range(self.plan.list_rounds):
                if number and not self.time_left():
                    break
                for target, session in sessions.items():
                    await list_round(
                        session, expected[target], self.plan.lists, self.plan.round_seconds, into.setdefault(target, [])
                    )
                    await settle(hops[target], children[target])

    async def fanout_phase(self, list_gateway: Hop) -> None:
        plan, out = self.plan, self.results
        upstreams = [Upstream(f"up{n:02d}", plan.fanout_tools) for n in range(1, plan.fanout + 1)]
        hops: dict[str, Hop] = {}
        for number in range(plan.cold_rounds):
            last = number == plan.cold_rounds - 1 or not self.time_left()
            for target in self.targets:
                hop = await self.start(target, f"fanout-{number}", upstreams)
                out.cold_start.setdefault(target, []).append(hop.ready_at - hop.started_at)
                if last:
                    hops[target] = hop
                else:
                    hop.service.stop()
            if last:
                break
        for target, hop in hops.items():
            out.rss["fanout"][target] = await rest_rss(hop.pid)
        aggregating = {t: hop for t, hop in hops.items() if t != "mcp-proxy"}
        aggregating["gateway-one"] = Hop("gateway", list_gateway.service, [list_gateway.extra["one"]])
        expected = {t: plan.fanout * plan.fanout_tools for t in aggregating}
        await self._list_rounds(aggregating, expected, out.lists["fanout"])
        for hop in hops.values():
            hop.service.stop()

    async def example_phase(self) -> None:
        folder = self.workdir / "example"
        folder.mkdir(parents=True)
        shutil.copy(REPO / "gateway.yaml.example", folder / "gateway.yaml")
        shutil.copytree(REPO / "profiles", folder / "profiles")
        hop = start_gateway_config(self.services, folder / "gateway.yaml", "demo")
        base = hop.urls[0].split("/mcp/")[0]
        await asyncio.to_thread(wait_http, hop.service, f"{base}/readyz")
        await asyncio.to_thread(wait_http, hop.service, f"{base}/status", _clock_ready)
        async with new_http_client() as http:
            session = await open_session(http, hop.urls[0], hop.transport)
            await session.list_tools()
            await session.close()
        self.results.rss["example"] = {"gateway": await rest_rss(hop.pid)}
        hop.service.stop()

    async def run(self) -> Results:
        print("calls: one upstream, echo", flush=True)
        await self.calls_phase()
        print(f"listing: one upstream with {self.plan.big_tools} tools", flush=True)
        list_gateway = await self.list_phase()
        print(f"fan-out: {self.plan.fanout} upstreams, {self.plan.fanout_tools} tools each", flush=True)
        await self.fanout_phase(list_gateway)
        list_gateway.service.stop()
        if "gateway" in self.targets:
            print("example: the bundled gateway.yaml.example", flush=True)
            await self.example_phase()
        return self.results


def _clock_ready(response: httpx2.Response) -> bool:
    """The example's `demo` profile has its in-process clock up (the scratchpad starts per session)."""
    if response.status_code != 200:
        return False
    servers = response.json().get("profiles", {}).get("demo", {}).get("servers", {})
    return servers.get("clock", {}).get("state") == "ready"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a minute or two, to check the harness")
    parser.add_argument("--peers-dir", type=Path, default=DEFAULT_PEERS_DIR, help="where the peers are installed")
    parser.add_argument("--install", action="store_true", help="first install the missing peers (pip, npm)")
    parser.add_argument("--install-only", action="store_true", help="install the missing peers, measure nothing")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS), help="which targets")
    parser.add_argument("--tools", type=int, help="tools of the listing upstream (default 2000)")
    parser.add_argument("--fanout", type=int, help="upstreams of the fan-out phase (default 20)")
    parser.add_argument("--sessions", type=int, help="sessions opened for memory per session (default 100)")
    parser.add_argument("--max-seconds", type=float, help="no measuring round starts after this")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs to this folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.install or args.install_only:
        install_peers(args.peers_dir)
        if args.install_only:
            return 0
    missing = {peer: why for peer, why in missing_peers(args.peers_dir).items() if peer in args.targets}
    if missing:
        for peer, why in missing.items():
            print(f"peers: {peer}: {why}", file=sys.stderr)
        return 2
    if "gateway" not in args.targets:
        print("peers: the gateway is every ratio's reference: keep it in --targets", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else Plan()
    overrides = {"big_tools": args.tools, "fanout": args.fanout, "sessions": args.sessions, "max_seconds": args.max_seconds}
    plan = replace(plan, **{key: value for key, value in overrides.items() if value is not None})
    print(f"plan: {plan}", flush=True)
    for target in args.targets:
        print(f"how {target} runs: {DEVIATIONS[target]}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mcp-peers-") as folder, ExitStack() as services:
        workdir = Path(folder)
        try:
            results = asyncio.run(Run(plan, workdir, services, args.peers_dir, args.targets).run())
        finally:
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in workdir.rglob("*.log"):
                    name = "-".join(log.relative_to(workdir).parts)
                    (args.keep_logs / name).write_bytes(log.read_bytes())
    summary = summarize(results, plan, args.targets)
    summary["plan"] = asdict(plan) | {"seconds": round(time.monotonic() - started, 1)}
    summary["how_run"] = {target: DEVIATIONS[target] for target in args.targets}
    print()
    print(render(summary, args.markdown))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
