"""``python -m benchmarks.render``: /metrics rendering at N agents x M operations, side by
side: the reference collector through prometheus_client (the baseline) and the exporter's
cached renderer, in the same process and run. Prints milliseconds (median and p99 of
repeated renders) and their ratio; asserts nothing.

``--case data-times``: every agent's acq a running process with a data time (tasks idle but
task1, done), as with sessions on; between two scrapes (gzip, OpenMetrics, as Prometheus
asks) a share of the data times move, as every status of a running process asked again
moves it, and nothing else changes."""

from __future__ import annotations

import argparse
import gzip
import random
import statistics
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from benchmarks.loadgen import op_session
from exporter.http.web import MetricsPage
from exporter.render.collector import ExporterCollector
from exporter.render.exposition import AgentExposition
from exporter.state import AgentState
from testbed import ocs_heartbeat
from testbed.feedflood import feed_payload
from testbed.reference import AgentCollector


def heartbeat(i: int, ops: int, code: int = 1) -> list:
    op_codes = {"acq": 3, **{f"task{k}": code for k in range(1, ops)}}
    return ocs_heartbeat(f"observatory.bench-{i}", op_codes, "1.0", "BenchAgent")


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float, int]:
    """Median and p99 wall ms, median CPU ms (steadier on a shared machine), size."""
    times, cpu, size = [], [], 0
    for _ in range(repeat):
        start, used = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - used)
        size = len(out)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return statistics.median(times) * 1000, p99 * 1000, statistics.median(cpu) * 1000, size


def data_times(agents: int, ops: int, repeat: int, feeds: int = 0) -> None:
    """Scrapes while only data times move (see the module's docstring); with ``feeds``, each
    agent's feeds too, every feed heard between two scrapes."""
    state = AgentState("observatory", timeout=1e9)
    addresses = [f"observatory.bench-{i}" for i in range(agents)]
    # As the benchmark load's, in the agents' heartbeat session: one recorded feed declaring
    # a fresh time, the others not.
    messages = [
        feed_payload(
            address,
            f"feed{n}",
            {},
            n == 0,
            {"fresh_time": 60.0} if n == 0 else {},
            "1.0",
            "BenchAgent",
        )
        for address in addresses
        for n in range(feeds)
    ]
    now = 1_800_000_000.0
    for i, address in enumerate(addresses):
        state.ingest(heartbeat(i, ops, code=5))
        for op in ("acq", "task1")[: min(ops, 2)]:
            state.set_session(
                address, "1.0", op, [0, "Session active.", op_session(op, now, now - 3600.0)]
            )
    for message in messages:
        state.ingest_feed(message)
    own = CollectorRegistry()
    own.register(ExporterCollector(state, lambda: True))
    page = MetricsPage(own, AgentExposition(state))
    page.body(True, True)  # fill the cache, as the first scrape does
    rng = random.Random(1)
    running = op_session(
        "acq", now, now - 3600.0
    )  # the same session asked again: only its data moves
    print(
        f"{agents} agents x {ops} operations, each acq running with a data time; {feeds} feeds each"
    )
    for share in (0.0, 0.5, 1.0):
        moved = int(agents * share)
        answer_times, render_times, render_cpu = [], [], []
        for _ in range(repeat):
            now += 15.0  # a scrape interval
            start = time.perf_counter()
            for i in rng.sample(range(agents), moved):
                session = {**running, "data": {**running["data"], "timestamp": now}}
                state.set_session(addresses[i], "1.0", "acq", [0, "Session active.", session])
            for message in messages:
                state.ingest_feed(message)
            answer_times.append(time.perf_counter() - start)
            start, used = time.perf_counter(), time.process_time()
            page.body(True, True)
            render_times.append(time.perf_counter() - start)
            render_cpu.append(time.process_time() - used)
        render_times.sort()
        p99 = render_times[min(repeat - 1, int(repeat * 0.99))]
        print(
            f"  {share:4.0%} data times moved: scrape median "
            f"{statistics.median(render_times) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
            f"CPU {statistics.median(render_cpu) * 1000:7.1f} ms; "
            f"answers {statistics.median(answer_times) * 1000:7.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=10000)
    parser.add_argument("--ops", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--case", choices=("churn", "data-times"), default="churn")
    parser.add_argument("--changed", type=int, default=100, help="agents changed between renders")
    parser.add_argument(
        "--feeds", type=int, default=0, help="data-times: data feeds per agent, all heard"
    )
    parser.add_argument(
        "--churn",
        choices=("random", "consecutive"),
        default="random",
        help="which agents change: scattered over the blocks (the worst case) or neighbours",
    )
    args = parser.parse_args()
    if args.case == "data-times":
        data_times(args.agents, args.ops, args.repeat, args.feeds)
        return
    # Agents stay up between renders as they do under heartbeats; liveness is not measured.
    state = AgentState("observatory", timeout=1e9)
    for i in range(args.agents):
        state.ingest(heartbeat(i, args.ops))
    reference = CollectorRegistry()
    reference.register(AgentCollector(state))
    reference.register(ExporterCollector(state, lambda: True))
    own = CollectorRegistry()
    own.register(ExporterCollector(state, lambda: True))
    page = MetricsPage(own, AgentExposition(state))
    page.body(False, False)  # fill the cache, as the first scrape does
    tick = [0]
    rng = random.Random(1)

    def churn() -> None:
        """Between renders, some agents' op codes change, as tasks start and end."""
        tick[0] += 1
        if args.churn == "random":
            changed = rng.sample(range(args.agents), args.changed)
        else:
            changed = [(tick[0] * args.changed + i) % args.agents for i in range(args.changed)]
        for i in changed:
            state.ingest(heartbeat(i, args.ops, tick[0] % 2 + 1))

    rows = [
        ("baseline: collector + generate_latest", lambda: (churn(), generate_latest(reference))[1]),
        ("cached renderer, text", lambda: (churn(), page.body(False, False))[1]),
        ("cached renderer, OpenMetrics", lambda: (churn(), page.body(True, False))[1]),
        ("cached renderer, text, gzip", lambda: (churn(), page.body(False, True))[1]),
        ("cached renderer, OpenMetrics, gzip", lambda: (churn(), page.body(True, True))[1]),
        ("cached renderer, text, unchanged, gzip", lambda: page.body(False, True)),
        (
            "baseline text, gzip level 9 (prometheus_client's)",
            lambda: gzip.compress(generate_latest(reference)),
        ),
    ]
    print(
        f"{args.agents} agents x {args.ops} operations, {args.changed} agents changed per "
        f"render ({args.churn})"
    )
    results = {}
    for name, fn in rows:
        repeat = args.repeat if "baseline" not in name else max(3, args.repeat // 4)
        median, p99, cpu, size = timed(fn, repeat)
        results[name] = median
        print(
            f"  {name:52s} median {median:8.1f} ms  p99 {p99:8.1f} ms  CPU {cpu:8.1f} ms  "
            f"{size / 1e6:6.2f} MB"
        )
    base = results["baseline: collector + generate_latest"]
    fast = results["cached renderer, text"]
    print(f"  ratio cached/baseline (text): {fast / base:.3f} ({base / fast:.0f}x faster)")
    zipped = results["cached renderer, text, gzip"]
    base_gzip = results["baseline text, gzip level 9 (prometheus_client's)"]
    print(
        f"  ratio cached/baseline (gzip): {zipped / base_gzip:.4f} "
        f"({base_gzip / zipped:.0f}x faster)"
    )


if __name__ == "__main__":
    main()
