"""``python -m benchmarks.sessions``: what asking operation sessions costs the exporter.

Two steps on one real crossbar router, with simulated agents that answer ``get_api`` and
``status`` as OCS agents do (:mod:`benchmarks.loadgen`):

1. **CPU, side by side.** N agents (default 1,000) x M operations at 1 Hz; two exporters at
   once, one with sessions (the default interval) and one with ``--no-collector.sessions``;
   the CPU each used over the same window, per heartbeat, and their ratio.
2. **Scrapes and memory at scale.** 10,000 agents every 10 s (a rate the router carries),
   the same two exporters side by side: ``/metrics`` scraped in turn as Prometheus scrapes
   (gzip, OpenMetrics preferred), median and p99; RSS idle and under load, per operation.

Prints the numbers and writes them to ``--out``; it never judges them (shared machines).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import testbed
from benchmarks import harness, procstat, scrape
from benchmarks.processes import Load, deployed_env, snapshot_exporter
from benchmarks.step import percentile

SCHEMA = "ocs-exporter-sessions-benchmark/1"
_SESSION_QUERIES = re.compile(
    r'^ocs_exporter_session_queries_total\{result="([^"]*)"\} (\S+)$', re.MULTILINE
)
NO_SESSIONS = ["--no-collector.sessions"]
_HEARTBEATS = re.compile(r"^ocs_exporter_heartbeats_total (\S+)$", re.MULTILINE)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = harness.new_parser("python -m benchmarks.sessions", __doc__)
    harness.add_common_arguments(parser, "benchmarks/sessions.json")
    parser.add_argument("--agents", type=int, default=1000, help="N of the CPU step")
    parser.add_argument("--scale-agents", type=int, default=10000, help="N of the scrape step")
    parser.add_argument("--scale-period", type=float, default=10.0, help="its heartbeat period")
    parser.add_argument("--ops", type=int, default=4, help="operations per agent")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of CPU window")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before it")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes of the scale step")
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=15.0,
        help="seconds between them (grafana/examples/prometheus.yml's): what changes between "
        "two scrapes, and so what a scrape re-renders, grows with it",
    )
    parser.add_argument("--agents-per-generator", type=int, default=2500)
    parser.add_argument("--skip-scale", action="store_true", help="only the side-by-side CPU step")
    return parser.parse_args(argv)


def queries(text: str) -> dict[str, float]:
    return {result: float(value) for result, value in _SESSION_QUERIES.findall(text)}


def heartbeats(text: str) -> float:
    match = _HEARTBEATS.search(text)
    return float(match.group(1)) if match else 0.0


def start_exporters(
    args: argparse.Namespace, site_file: Path, workdir: Path, timeout: float, **variants: list
) -> dict[str, testbed.Exporter]:
    """One exporter per variant (name -> extra flags), all started and joined."""
    exporters = {
        name: testbed.Exporter(
            site_file,
            workdir,
            "--agent-timeout",
            str(timeout),
            "--wamp.serializers",
            args.serializer,
            *flags,
            python=args.exporter_python,
            source=args.snapshot,
            log_path=workdir / f"exporter-{name}.log",
            env=deployed_env(),
        )
        for name, flags in variants.items()
    }
    for exporter in exporters.values():
        exporter.start(wait=False)
    testbed.wait_for(
        lambda: all(e.ready() for e in exporters.values()), 90, "the exporters to join"
    )
    return exporters


def start_load(
    args: argparse.Namespace, router: testbed.Router, workdir: Path, n: int, period: float
) -> Load:
    load = Load(
        router.load_url,
        workdir,
        n,
        args.ops,
        args.serializer,
        args.agents_per_generator,
        300,
        period,
    ).start()
    testbed.wait_for(load.ready, 60, "the load generators to join")
    load.go(time.time() + 0.5)
    return load


def settle(exporter: testbed.Exporter, wanted: float, limit: float) -> float:
    """Wait until ``exporter`` has had ``wanted`` session answers, or ``limit`` seconds;
    returns how long it took. Operations never run (NONE) are not asked, so at the start
    one answer per simulated agent (its running ``acq``) is the settled state."""
    started = time.time()
    while time.time() - started < limit:
        got = sum(queries(scrape.scrape(exporter.metrics_url).text).values())
        if got >= wanted:
            break
        time.sleep(1.0)
    return round(time.time() - started, 1)


def cpu_step(args: argparse.Namespace, router: testbed.Router, site_file: Path) -> dict:
    workdir = args.workdir / f"cpu-n{args.agents}"
    workdir.mkdir(parents=True, exist_ok=True)
    exporters, load = {}, None
    try:
        exporters = start_exporters(
            args, site_file, workdir, 5.0, sessions=[], baseline=NO_SESSIONS
        )
        load = start_load(args, router, workdir, args.agents, 1.0)
        settled = settle(exporters["sessions"], args.agents, 120.0)
        time.sleep(args.warmup)
        before = {n: procstat.cpu_seconds(e.pid) or 0.0 for n, e in exporters.items()}
        beats = {n: heartbeats(scrape.scrape(e.metrics_url).text) for n, e in exporters.items()}
        time.sleep(args.duration)
        after = {n: procstat.cpu_seconds(e.pid) or 0.0 for n, e in exporters.items()}
        texts = {n: scrape.scrape(e.metrics_url).text for n, e in exporters.items()}
        result: dict[str, Any] = {"agents": args.agents, "ops": args.ops, "settled_s": settled}
        for name in exporters:
            cpu = after[name] - before[name]
            received = heartbeats(texts[name]) - beats[name]
            result[name] = {
                "cpu_s": round(cpu, 3),
                "cpu_share": round(cpu / args.duration, 4),
                "heartbeats": received,
                "us_per_heartbeat": round(cpu / received * 1e6, 1) if received else None,
                "session_queries": queries(texts[name]),
                "rss_bytes": procstat.memory(exporters[name].pid).get("rss"),
            }
        base = result["baseline"]["cpu_s"]
        result["cpu_ratio"] = round(result["sessions"]["cpu_s"] / base, 3) if base else None
        return result
    finally:
        testbed.stop_processes([*(load or []), *exporters.values()])


OPENMETRICS = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def scrape_in_turn(
    exporters: dict[str, testbed.Exporter], scrapes: int, interval: float
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Scrape each exporter in turn, ``scrapes`` times ``interval`` s apart, as Prometheus
    does (gzip, OpenMetrics preferred): latencies and wire sizes by exporter."""
    latencies: dict[str, list[float]] = {name: [] for name in exporters}
    sizes: dict[str, list[int]] = {name: [] for name in exporters}
    for _ in range(scrapes):
        started = time.time()
        for name, exporter in exporters.items():
            s = scrape.scrape(exporter.metrics_url, timeout=scrape.TIMEOUT, accept=OPENMETRICS)
            latencies[name].append(s.latency)
            sizes[name].append(s.wire_bytes)
        scrape.sleep_until(started + interval)
    return latencies, sizes


def scale_step(args: argparse.Namespace, router: testbed.Router, site_file: Path) -> dict:
    """Both exporters again, side by side, at ``--scale-agents``: scraped in turn as
    Prometheus scrapes, so both see the same moments of load."""
    n, period = args.scale_agents, args.scale_period
    workdir = args.workdir / f"scale-n{n}"
    workdir.mkdir(parents=True, exist_ok=True)
    exporters, load = {}, None
    try:
        exporters = start_exporters(
            args, site_file, workdir, period * 3, sessions=[], baseline=NO_SESSIONS
        )
        idle = {name: procstat.memory(e.pid).get("rss") for name, e in exporters.items()}
        load = start_load(args, router, workdir, n, period)
        settled = settle(exporters["sessions"], n, 300.0)
        time.sleep(args.warmup)
        latencies, sizes = scrape_in_turn(exporters, args.scrapes, args.scrape_interval)
        operations = n * args.ops
        result: dict[str, Any] = {
            "agents": n,
            "ops": args.ops,
            "period_s": period,
            "settled_s": settled,
        }
        for name, exporter in exporters.items():
            text = scrape.scrape(exporter.metrics_url, timeout=scrape.TIMEOUT).text
            rss = procstat.memory(exporter.pid).get("rss") or 0
            result[name] = {
                "scrape_ms_p50": round(percentile(latencies[name], 50) * 1e3, 1),
                "scrape_ms_p99": round(percentile(latencies[name], 99) * 1e3, 1),
                "scrape_wire_bytes": max(sizes[name]),
                "session_queries": queries(text),
                "rss_idle_bytes": idle[name],
                "rss_bytes": rss,
                "rss_bytes_per_operation": round(rss / operations),
            }
        base, on = result["baseline"], result["sessions"]
        result["p99_ratio"] = round(on["scrape_ms_p99"] / base["scrape_ms_p99"], 3)
        result["rss_ratio"] = round(on["rss_bytes"] / base["rss_bytes"], 3)
        return result
    finally:
        testbed.stop_processes([*(load or []), *exporters.values()])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    harness.prepare(args, "ocs-bench-sessions-")
    source = snapshot_exporter(args.workdir / "exporter-snapshot")
    args.snapshot = Path(source["path"])
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "host": procstat.host_info(),
        "exporter_source": source,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    router = testbed.Router(args.crossbar, args.workdir, rawsocket=True)
    try:
        router.start()
        site_file = testbed.write_site_file(args.workdir / "site.yaml", router.port)
        results["cpu"] = cpu_step(args, router, site_file)
        print_cpu(results["cpu"])
        if not args.skip_scale:
            results["scale"] = scale_step(args, router, site_file)
            print_scale(results["scale"])
    finally:
        router.stop()
        harness.write(args.out, results)
    print(f"numbers written to {args.out}")
    return results


def print_cpu(cpu: dict) -> None:
    print(
        f"{cpu['agents']} agents x {cpu['ops']} operations at 1 Hz, side by side "
        f"(sessions answered after {cpu['settled_s']} s):"
    )
    for name in ("sessions", "baseline"):
        row = cpu[name]
        print(
            f"  {name:9} CPU {row['cpu_s']:.2f} s ({row['cpu_share']:.1%} of a core), "
            f"{row['us_per_heartbeat']} us/heartbeat, session queries {row['session_queries']}"
        )
    print(f"  ratio sessions/baseline: {cpu['cpu_ratio']}")


def print_scale(scale: dict) -> None:
    print(
        f"{scale['agents']} agents x {scale['ops']} operations every {scale['period_s']:g} s, "
        "side by side, scraped in turn (gzip, OpenMetrics):"
    )
    for name in ("sessions", "baseline"):
        row = scale[name]
        print(
            f"  {name:9} /metrics p50 {row['scrape_ms_p50']} ms, p99 {row['scrape_ms_p99']} ms "
            f"({row['scrape_wire_bytes']} B); RSS {row['rss_bytes'] / 2**20:.1f} MiB (idle "
            f"{row['rss_idle_bytes'] / 2**20:.1f} MiB), {row['rss_bytes_per_operation']} B "
            "per operation"
        )
    print(f"  ratios sessions/baseline: p99 {scale['p99_ratio']}, RSS {scale['rss_ratio']}")


if __name__ == "__main__":
    harness.run(main)
