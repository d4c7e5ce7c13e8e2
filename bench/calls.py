"""tools/call through this checkout's gateway against another checkout's (before/after), in one run.

Targets, all in front of the same `bench/upstream.py` HTTP server and its `echo` tool:

    raw-forwarder   `bench/raw_forwarder.py`: the floor of a Python hop
    gateway         `local-mcp-gateway` from this checkout (profile `http`)
    baseline        the gateway from `--baseline-src DIR` (its `src/` on PYTHONPATH), same config

The measuring is `bench/overhead.py`'s (SDK client sessions, rounds alternating, CPU time per call of each hop
read from /proc); this script only adds the baseline and prints each target against the gateway. Hop CPU per
call moves much less with machine load than calls/s: prefer it on a busy machine.

    git archive main | tar -x -C /tmp/base && python bench/calls.py --baseline-src /tmp/base
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _overhead_targets import start_gateway, start_targets  # noqa: E402
from overhead import Plan, measure  # noqa: E402

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, help="a checkout of the gateway to compare with")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--round-seconds", type=float, default=8.0)
    parser.add_argument("--max-seconds", type=float, default=150.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args(argv)
    plan = Plan(args.rounds, args.calls, args.warmup, args.round_seconds, args.max_seconds, tuple(args.concurrency))

    with ExitStack() as services, tempfile.TemporaryDirectory(prefix="calls-bench-") as tmp:
        workdir = Path(tmp)
        targets = start_targets(services, workdir, ["direct", "raw-forwarder", "gateway-http"], None)
        upstream_url = targets.urls.pop("direct")  # the upstream itself is not measured here
        del targets.hop_pids["direct"], targets.upstream_pids["direct"]
        targets.urls["gateway"] = targets.urls.pop("gateway-http")
        targets.hop_pids["gateway"] = targets.hop_pids.pop("gateway-http")
        targets.upstream_pids["gateway"] = targets.upstream_pids.pop("gateway-http")
        if args.baseline_src:
            env = {"PYTHONPATH": str(args.baseline_src.resolve() / "src")}
            service, base = start_gateway(services, workdir, "baseline", upstream_url, env=env)
            targets.urls["baseline"] = f"{base}/mcp/http"
            targets.hop_pids["baseline"] = [service.process.pid]
            targets.upstream_pids["baseline"] = targets.upstream_pids["gateway"]
        results = anyio.run(measure, targets, plan)

    for concurrency, measures in results.items():
        reference = measures["gateway"]
        print(f"\nconcurrency {concurrency}")
        print(f"{'target':<14} {'calls':>6} {'calls/s':>8} {'p50 ms':>7} {'hop CPU ms/call':>16} {'rate / gateway':>15}"
              f" {'CPU / gateway':>14}")
        for name, m in measures.items():
            hop = m.cpu_ms_per_call(m.hop_cpu)
            print(f"{name:<14} {m.calls:6d} {m.rate:8.1f} {m.percentile_ms(0.5):7.2f} {hop:16.3f}"
                  f" {m.rate / reference.rate:15.2f} {hop / reference.cpu_ms_per_call(reference.hop_cpu):14.2f}")
        forwarder = measures["raw-forwarder"]
        print(f"gateway / raw forwarder calls/s: {reference.rate / forwarder.rate:.2f} (at least 0.8);"
              f" p50 difference {reference.percentile_ms(0.5) - forwarder.percentile_ms(0.5):+.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
