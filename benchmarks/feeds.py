"""``python -m benchmarks.feeds``: what listening to every data feed costs the exporter.

Two steps on one real crossbar router, under simulated agents that heartbeat and publish
data feeds as OCS agents do (:mod:`benchmarks.feedgen`):

1. **CPU per message, side by side.** N agents (default 1,000) heartbeating every second,
   each with F data feeds (default 2) whose messages carry blocks of 10 to 50 fields, at
   ``--rate`` messages a second in all (default 5,000). Three subjects at once: the exporter
   (feeds on), the exporter with ``--no-collector.feeds`` (heartbeats only) and the bare
   autobahn subscriber on ``<root>..feeds.``, same serializer; the CPU of each per message
   received, the messages each received, and the router's and the generators' CPU beside.
2. **Scrapes and memory at scale.** 10,000 agents heartbeating every 10 s (a rate the router
   carries) with F feeds each at a modest rate, the two exporters side by side: ``/metrics``
   scraped in turn as Prometheus scrapes (gzip, OpenMetrics preferred), p50 and p99; RSS of
   each once every feed is tracked, and the difference per feed.

Prints the numbers and writes them to ``--out``; it never judges them (shared machines).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import testbed
from benchmarks import feeds_report, harness, procstat, scrape
from benchmarks.feeds_load import FeedBare, FeedLoad, exporter_counts
from benchmarks.processes import snapshot_exporter
from benchmarks.sessions import scrape_in_turn, start_exporters
from benchmarks.step import percentile

SCHEMA = "ocs-exporter-feeds-benchmark/1"
# The two exporters of every step: as deployed, and with the feed collector off.
VARIANTS = {"feeds": [], "heartbeats_only": ["--no-collector.feeds"]}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = harness.new_parser("python -m benchmarks.feeds", __doc__)
    harness.add_common_arguments(parser, "benchmarks/feeds.json")
    parser.add_argument("--agents", type=int, default=1000, help="N of the CPU step")
    parser.add_argument("--feeds", type=int, default=2, help="data feeds per agent (F)")
    parser.add_argument(
        "--rate",
        type=float,
        default=5000.0,
        help="messages a second of the CPU step, heartbeats and feeds together (the feeds "
        "publish what the heartbeats leave of it)",
    )
    parser.add_argument("--ops", type=int, default=4, help="operations per agent")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of CPU window")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before it")
    parser.add_argument("--scale-agents", type=int, default=10000, help="N of the scrape step")
    parser.add_argument("--scale-period", type=float, default=10.0, help="its heartbeat period")
    parser.add_argument(
        "--scale-feed-period", type=float, default=60.0, help="its seconds between two messages"
    )
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes of the scale step")
    parser.add_argument(
        "--scrape-interval", type=float, default=15.0, help="seconds between them, as Prometheus"
    )
    parser.add_argument("--agents-per-generator", type=int, default=2500)
    parser.add_argument("--messages-per-generator", type=float, default=2500.0)
    parser.add_argument("--skip-scale", action="store_true", help="only the CPU step")
    parser.add_argument("--report", type=Path, metavar="JSON", help="print an earlier run again")
    args = parser.parse_args(argv)
    if not args.report and args.rate <= args.agents:
        parser.error("--rate must exceed --agents (the heartbeats' share at 1 Hz)")
    return args


def feed_period(args: argparse.Namespace) -> float:
    """Seconds between two messages of one feed in the CPU step, for ``--rate`` in all."""
    return args.agents * args.feeds / (args.rate - args.agents)


def start_load(
    args: argparse.Namespace,
    router: testbed.Router,
    workdir: Path,
    n: int,
    period: float,
    every: float,
) -> FeedLoad:
    """The generators of ``n`` agents heartbeating every ``period`` s with feeds publishing
    every ``every`` s, started: they join while the subjects start, and publish nothing
    before :func:`go`."""
    rate = n / period + n * args.feeds / every
    shards = max(-(-n // args.agents_per_generator), int(-(-rate // args.messages_per_generator)))
    return FeedLoad(
        router.load_url, workdir, n, args.ops, args.serializer, shards, period, args.feeds, every
    ).start()


def go(load: FeedLoad, *subjects: testbed.Process) -> None:
    """Once the subjects and the generators are ready: start the schedule."""
    ready = [load, *subjects]
    testbed.wait_for(lambda: all(p.ready() for p in ready), 60, "the generators and subjects")
    load.go(time.time() + 0.2)


def settle(
    exporters: dict[str, testbed.Exporter], n: int, feeds: int, limit: float, every: float
) -> dict[str, Any]:
    """Scrape every ``every`` s until every exporter has asked every agent its operation
    types and the feed collector tracks every feed (each is heard once its agent's
    heartbeat was), or for ``limit`` s: whether it did, and how long it took."""
    started = time.time()
    done = False
    while not done and time.time() - started < limit:
        polled = time.time()
        scrapes = {name: scrape.scrape(e.metrics_url) for name, e in exporters.items()}
        asked = all(s.op_type_queries() >= n for s in scrapes.values())
        done = asked and exporter_counts(scrapes["feeds"].text)["feeds_tracked"] >= n * feeds
        if not done:
            scrape.sleep_until(polled + every)
    return {"settled": done, "after_s": round(time.time() - started, 1)}


def received_fraction(counts: dict[str, Any], name: str) -> float | None:
    """What exporter ``name`` received of what was sent to it since the load started:
    everything with feeds on, the heartbeats with them off."""
    sent, got = counts["sent"], counts[name]
    kinds = ("heartbeats", "feeds") if name == "feeds" else ("heartbeats",)
    expected = sum(sent[kind] for kind in kinds)
    return round(sum(got[kind] for kind in kinds) / expected, 4) if expected else None


def quiet(router: testbed.Router, limit: float = 60.0) -> float:
    """Wait until the router uses less than a tenth of a core (what a step before left it
    to deliver is delivered), ``limit`` s at most; returns how long it took."""
    started = time.time()
    while time.time() - started < limit:
        before = procstat.group_cpu_seconds(router.pid)
        time.sleep(1.0)
        if procstat.group_cpu_seconds(router.pid) - before < 0.1:
            break
    return round(time.time() - started, 1)


def read(exporters: dict[str, testbed.Exporter], bare: FeedBare | None, load: FeedLoad) -> dict:
    """Every count at one moment: what each subject received, what the load sent."""
    counts: dict[str, Any] = {
        name: exporter_counts(scrape.scrape(e.metrics_url).text) for name, e in exporters.items()
    }
    if bare is not None:
        counts["bare"] = bare.received
    counts["sent"] = {"heartbeats": load.sent, "feeds": load.feeds_sent}
    return counts


def cpu(pids: dict[str, int], router: testbed.Router, load: FeedLoad) -> dict[str, float]:
    """CPU seconds of every process at one moment, and the machine's."""
    used = {name: procstat.cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
    used["crossbar"] = procstat.group_cpu_seconds(router.pid)
    used["generators"] = load.cpu_seconds()
    used["machine_busy"], used["machine_total"] = procstat.machine_times()
    used["time"] = time.time()
    return used


def drain(exporters: dict[str, testbed.Exporter], bare: FeedBare | None, load: FeedLoad) -> dict:
    """Stop the load; read the counts until they have not moved for a second (15 s at most)."""
    load.quit()
    started, last, same_since = time.time(), None, time.time()
    while time.time() - started < 15:
        now = read(exporters, bare, load)
        if now != last:
            last, same_since = now, time.time()
        elif time.time() - same_since >= 1.0:
            break
        time.sleep(0.25)
    assert last is not None
    last["drain_s"] = round(time.time() - started, 1)
    return last


def subject(cpu_s: float, window: float, received: float, sent: float) -> dict[str, Any]:
    return {
        "cpu_s": round(cpu_s, 3),
        "cpu_cores": round(cpu_s / window, 4),
        "received": received,
        "sent": sent,
        "received_fraction_of_sent": round(received / sent, 4) if sent else None,
        "us_per_message": round(cpu_s / received * 1e6, 1) if received else None,
    }


def cpu_results(before: dict, after: dict, first: dict, last: dict) -> dict[str, Any]:
    """The CPU step's rows from two readings of CPU (``before``, ``after``) and of counts."""
    window = after["time"] - before["time"]
    spent = {name: after[name] - before[name] for name in after}
    sent = {kind: last["sent"][kind] - first["sent"][kind] for kind in ("heartbeats", "feeds")}
    total_sent = sent["heartbeats"] + sent["feeds"]

    def got(name: str, kind: str) -> float:
        return last[name][kind] - first[name][kind]

    on = got("feeds", "heartbeats") + got("feeds", "feeds")
    rows = {
        "feeds": subject(spent["feeds"], window, on, total_sent),
        "heartbeats_only": subject(
            spent["heartbeats_only"],
            window,
            got("heartbeats_only", "heartbeats"),
            sent["heartbeats"],
        ),
        "bare": subject(spent["bare"], window, last["bare"] - first["bare"], total_sent),
    }
    rows["feeds"]["feed_messages"] = got("feeds", "feeds")
    feed_messages = got("feeds", "feeds")
    extra = spent["feeds"] - spent["heartbeats_only"]
    busy = (after["machine_busy"] - before["machine_busy"]) / window
    result: dict[str, Any] = {
        "window_s": round(window, 2),
        "sent": {**sent, "per_s": round(total_sent / window, 1)},
        "subjects": rows,
        "others": {
            name: {"cpu_s": round(spent[name], 3), "cpu_cores": round(spent[name] / window, 3)}
            for name in ("crossbar", "generators")
        },
        "machine_busy_cores": round(busy, 3),
        "feed_message_extra_us": round(extra / feed_messages * 1e6, 1) if feed_messages else None,
    }
    bare_us = rows["bare"]["us_per_message"]
    feeds_us = rows["feeds"]["us_per_message"]
    result["exporter_over_bare"] = round(feeds_us / bare_us, 3) if bare_us and feeds_us else None
    return result


def totals(final: dict) -> dict[str, Any]:
    """After the drain: what each subject received in all, and what was sent."""
    names = ("sent", "feeds", "heartbeats_only", "bare", "drain_s")
    return {name: final[name] for name in names}


def cpu_step(args: argparse.Namespace, router: testbed.Router, site_file: Path) -> dict:
    n = args.agents
    workdir = args.workdir / f"cpu-n{n}"
    workdir.mkdir(parents=True, exist_ok=True)
    exporters: dict[str, testbed.Exporter] = {}
    bare = load = None
    try:
        load = start_load(args, router, workdir, n, 1.0, feed_period(args))
        bare = FeedBare(router.url, workdir, args.serializer).start(wait=False)
        exporters = start_exporters(args, site_file, workdir, 5.0, **VARIANTS)
        go(load, bare)
        settled = settle(exporters, n, args.feeds, 120.0, 1.0)
        time.sleep(args.warmup)
        pids = {**{name: e.pid for name, e in exporters.items()}, "bare": bare.pid}
        first = read(exporters, bare, load)
        before = cpu(pids, router, load)
        time.sleep(args.duration)
        after = cpu(pids, router, load)
        last = read(exporters, bare, load)
        result = {
            "agents": n,
            "feeds_per_agent": args.feeds,
            "ops": args.ops,
            "feed_period_s": round(feed_period(args), 4),
            "expected_per_s": args.rate,
            "generators": len(load.generators),
            "pids": {**pids, "generators": [g.pid for g in load]},
            "settle": settled,
            **cpu_results(before, after, first, last),
        }
        for name, exporter in exporters.items():
            row = result["subjects"][name]
            row["rss_bytes"] = procstat.memory(exporter.pid).get("rss")
            row["counts"] = last[name]
            row["lost_router"] = exporter.lost_router()
        result["subjects"]["bare"]["session_losses"] = bare.losses
        result["totals"] = totals(drain(exporters, bare, load))
        return result
    finally:
        testbed.stop_processes([*(load or []), *exporters.values(), bare])


def scale_step(args: argparse.Namespace, router: testbed.Router, site_file: Path) -> dict:
    """Both exporters again, side by side, at ``--scale-agents``: once every feed is
    tracked, scraped in turn as Prometheus scrapes; then their RSS."""
    n, period, every = args.scale_agents, args.scale_period, args.scale_feed_period
    workdir = args.workdir / f"scale-n{n}"
    workdir.mkdir(parents=True, exist_ok=True)
    exporters: dict[str, testbed.Exporter] = {}
    load = None
    try:
        load = start_load(args, router, workdir, n, period, every)
        exporters = start_exporters(args, site_file, workdir, period * 3, **VARIANTS)
        idle = {name: procstat.memory(e.pid).get("rss") for name, e in exporters.items()}
        go(load)
        # Polled less often the more agents: a scrape of every agent is itself a load.
        poll = min(max(n / 2000, 1.0), 5.0)
        settled = settle(exporters, n, args.feeds, 2 * every + 3 * period + 120, poll)
        time.sleep(args.warmup)
        latencies, sizes = scrape_in_turn(exporters, args.scrapes, args.scrape_interval)
        rss = {name: procstat.memory(e.pid).get("rss") or 0 for name, e in exporters.items()}
        final = drain(exporters, None, load)
        result: dict[str, Any] = {
            "agents": n,
            "feeds_per_agent": args.feeds,
            "ops": args.ops,
            "period_s": period,
            "feed_period_s": every,
            "expected_per_s": round(n / period + n * args.feeds / every, 1),
            "settle": settled,
            "pids": {
                **{name: e.pid for name, e in exporters.items()},
                "generators": [g.pid for g in load],
            },
            "sent": final["sent"],
            "drain_s": final["drain_s"],
        }
        for name, exporter in exporters.items():
            result[name] = {
                "scrape_ms_p50": round(percentile(latencies[name], 50) * 1e3, 1),
                "scrape_ms_p99": round(percentile(latencies[name], 99) * 1e3, 1),
                "scrape_wire_bytes": max(sizes[name]),
                "rss_idle_bytes": idle[name],
                "rss_bytes": rss[name],
                "counts": final[name],
                "received_fraction_of_sent": received_fraction(final, name),
                "lost_router": exporter.lost_router(),
            }
        on, off = result["feeds"], result["heartbeats_only"]
        tracked = on["counts"]["feeds_tracked"]
        result["p99_ratio"] = round(on["scrape_ms_p99"] / off["scrape_ms_p99"], 3)
        result["rss_difference_bytes"] = on["rss_bytes"] - off["rss_bytes"]
        per_feed = result["rss_difference_bytes"] / tracked if tracked else None
        result["rss_bytes_per_feed"] = round(per_feed) if per_feed is not None else None
        return result
    finally:
        testbed.stop_processes([*(load or []), *exporters.values()])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.report:
        results = json.loads(args.report.read_text())
        feeds_report.print_all(results)
        return results
    harness.prepare(args, "ocs-bench-feeds-")
    print(f"feeds benchmark; logs in {args.workdir}", flush=True)
    source = snapshot_exporter(args.workdir / "exporter-snapshot")
    args.snapshot = Path(source["path"])
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": procstat.host_info(),
        "exporter_source": source,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    router = testbed.Router(args.crossbar, args.workdir, rawsocket=True)
    try:
        router.start()
        results["router"] = {"pid": router.pid, "port": router.port, "load_url": router.load_url}
        site_file = testbed.write_site_file(args.workdir / "site.yaml", router.port)
        results["cpu"] = cpu_step(args, router, site_file)
        harness.write(args.out, results)
        feeds_report.print_cpu(results["cpu"])
        if not args.skip_scale:
            router.check_alive()
            waited = quiet(router)
            results["scale"] = scale_step(args, router, site_file)
            results["scale"]["router_quiet_after_s"] = waited
            feeds_report.print_scale(results["scale"])
    finally:
        router.stop()
        results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        results["notes"] = feeds_report.notes(results)
        harness.write(args.out, results)
    print(f"numbers written to {args.out}; again: python -m benchmarks.feeds --report FILE")
    return results


if __name__ == "__main__":
    harness.run(main)
