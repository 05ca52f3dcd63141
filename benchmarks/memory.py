"""``python -m benchmarks.memory``: what the agent state and the render cache hold per
operation, in process (no router): N agents x 4 operations heard, with sessions on each
agent's ``acq`` running with a data time and ``task1`` done, as the benchmark load's
agents answer; then two scrapes (gzip, OpenMetrics) fill the render cache. Prints the RSS
growth of each step per operation; ``--trace`` also the lines that hold the most
(tracemalloc, which slows it down and adds its own memory to the RSS).

Run it with the image's allocator settings (``MALLOC_MMAP_THRESHOLD_=1048576``, as the
Dockerfile's ENV sets them), or glibc keeps freed buffers and the numbers mean less.
Asserts nothing."""

from __future__ import annotations

import argparse
import gc
import tracemalloc

from prometheus_client import CollectorRegistry

from benchmarks.loadgen import op_session
from benchmarks.render import heartbeat
from exporter.http.web import MetricsPage
from exporter.render.collector import ExporterCollector
from exporter.render.exposition import AgentExposition
from exporter.state import AgentState

OPS = 4  # operations per agent: acq and task1 to task3
NOW = 1_800_000_000.0


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def fill(state: AgentState, agents: int, sessions: bool) -> None:
    for i in range(agents):
        state.ingest(heartbeat(i, OPS, code=5))
        if sessions:
            # Each agent's own start time, as real agents' differ (equal floats would be
            # one object here, never on the wire).
            start = NOW - 3600.0 - i
            for op in ("acq", "task1"):
                answer = [0, "Session active.", op_session(op, NOW, start)]
                state.set_session(f"observatory.bench-{i}", "1.0", op, answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", choices=("on", "off"), default="on")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--trace", action="store_true", help="print the top allocating lines")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.trace:
        tracemalloc.start(1)
    operations = args.agents * OPS
    gc.collect()
    start = rss()
    state = AgentState("observatory", timeout=1e9)
    fill(state, args.agents, args.sessions == "on")
    gc.collect()
    filled = rss()
    own = CollectorRegistry()
    own.register(ExporterCollector(state, lambda: True))
    page = MetricsPage(own, AgentExposition(state))
    page.body(True, True)  # the first scrape fills the cache
    page.body(True, True)
    gc.collect()
    cached = rss()
    kept, made = (filled - start) / operations, (cached - filled) / operations
    print(
        f"{args.agents} agents x {OPS} operations, sessions {args.sessions}: state "
        f"{kept:.0f} B/op, render cache {made:.0f} B/op, both {kept + made:.0f} B/op"
    )
    if args.trace:
        for line in tracemalloc.take_snapshot().statistics("lineno")[: args.top]:
            print(f"  {line}")


if __name__ == "__main__":
    main()
