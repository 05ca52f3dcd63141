"""``python -m benchmarks.memory``: what the agent state and the render cache hold per
operation, in process (no router): N agents x 4 operations heard, with sessions on each
agent's ``acq`` running with a data time and ``task1`` done, as the benchmark load's
agents answer; then two scrapes (gzip, OpenMetrics) fill the render cache. Prints the RSS
growth of each step per operation; ``--trace`` also the lines that hold the most
(tracemalloc, which slows it down and adds its own memory to the RSS). ``--feeds N``: each
agent also has N data feeds, each heard a few times; the cost per feed is the growth over
the same run without feeds, run first in a process of its own (one process per measure: memory
freed by one would be reused by the next).

Run it with the image's allocator settings (``MALLOC_MMAP_THRESHOLD_=1048576``, as the
Dockerfile's ENV sets them), or glibc keeps freed buffers and the numbers mean less.
Asserts nothing."""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tracemalloc

from prometheus_client import CollectorRegistry

from benchmarks.loadgen import op_session
from benchmarks.render import heartbeat
from exporter.http.web import MetricsPage
from exporter.render.collector import ExporterCollector
from exporter.render.exposition import AgentExposition
from exporter.state import AgentState
from testbed.feedflood import feed_payload

OPS = 4  # operations per agent: acq and task1 to task3
NOW = 1_800_000_000.0


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def fill(state: AgentState, agents: int, sessions: bool, feeds: int = 0) -> None:
    for i in range(agents):
        state.ingest(heartbeat(i, OPS, code=5))
        for n in range(feeds):
            # As the benchmark load's agents publish: one recorded feed declaring a fresh
            # time, the others not; each heard a few times (counts and times moved).
            params = {"fresh_time": 60.0} if n == 0 else {}
            address = f"observatory.bench-{i}"
            payload = feed_payload(address, f"feed{n}", {}, n == 0, params, "1.0", "BenchAgent")
            for _ in range(3):
                state.ingest_feed(payload)
        if sessions:
            # Each agent's own start time, as real agents' differ (equal floats would be
            # one object here, never on the wire).
            start = NOW - 3600.0 - i
            for op in ("acq", "task1"):
                answer = [0, "Session active.", op_session(op, NOW, start)]
                state.set_session(f"observatory.bench-{i}", "1.0", op, answer)


def measure(agents: int, sessions: bool, feeds: int) -> tuple[int, int]:
    """The RSS growth (bytes) of filling a state, then of filling its render cache."""
    gc.collect()
    start = rss()
    state = AgentState("observatory", timeout=1e9)
    fill(state, agents, sessions, feeds)
    gc.collect()
    filled = rss()
    own = CollectorRegistry()
    own.register(ExporterCollector(state, lambda: True))
    page = MetricsPage(own, AgentExposition(state))
    page.body(True, True)  # the first scrape fills the cache
    page.body(True, True)
    gc.collect()
    cached = rss()
    return filled - start, cached - filled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", choices=("on", "off"), default="on")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--feeds", type=int, default=0, help="data feeds per agent")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help="print the top allocating lines")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.trace:
        tracemalloc.start(1)
    operations = args.agents * OPS
    sessions = args.sessions == "on"
    if args.json:  # a baseline for a run with feeds
        print(json.dumps(measure(args.agents, sessions, 0)))
        return
    if args.feeds:
        command = [sys.executable, "-m", "benchmarks.memory", "--json"]
        command += ["--agents", str(args.agents), "--sessions", args.sessions]
        kept, made = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
    else:
        kept, made = measure(args.agents, sessions, 0)
    print(
        f"{args.agents} agents x {OPS} operations, sessions {args.sessions}: state "
        f"{kept / operations:.0f} B/op, render cache {made / operations:.0f} B/op, both "
        f"{(kept + made) / operations:.0f} B/op"
    )
    if args.feeds:
        feeds = args.agents * args.feeds
        with_state, with_cache = measure(args.agents, sessions, args.feeds)
        state, cache = (with_state - kept) / feeds, (with_cache - made) / feeds
        print(
            f"  and {args.feeds} feeds per agent: state {state:.0f} B/feed, render cache "
            f"{cache:.0f} B/feed, both {state + cache:.0f} B/feed"
        )
    if args.trace:
        for line in tracemalloc.take_snapshot().statistics("lineno")[: args.top]:
            print(f"  {line}")


if __name__ == "__main__":
    main()
