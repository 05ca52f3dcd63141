"""``python -m benchmarks.run``: the exporter, the RegistryAgent and a bare subscriber
side by side on one crossbar router, under N simulated OCS agents heartbeating at 1 Hz.

Prints a table per N and writes every number to a JSON file (``--out``). It never judges
the numbers: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import testbed
from benchmarks import harness, procstat, report
from benchmarks.processes import registry_entry, snapshot_exporter
from benchmarks.step import Step

SCHEMA = "ocs-exporter-benchmark/1"


def agent_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if not counts or min(counts) < 2:
        raise argparse.ArgumentTypeError("every N must be at least 2")
    return counts


def subject_names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(names) - {"exporter", "registry", "bare"}
    if unknown or "exporter" not in names:
        raise argparse.ArgumentTypeError("a list of exporter, registry, bare; with exporter")
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = harness.new_parser("python -m benchmarks.run", __doc__)
    harness.add_common_arguments(parser, "benchmarks/results.json")
    parser.add_argument(
        "--agents", type=agent_counts, default="100,1000,5000,10000", help="the N to run"
    )
    parser.add_argument(
        "--subjects",
        type=subject_names,
        default="exporter,registry,bare",
        help="what to measure side by side (the exporter always)",
    )
    parser.add_argument("--ops", type=int, default=4, help="operations per agent (M)")
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of the CPU window, per N"
    )
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before it")
    parser.add_argument(
        "--agents-per-generator", type=int, default=2500, help="agents per load generator"
    )
    parser.add_argument(
        "--load-transport",
        choices=("websocket", "rawsocket"),
        default="rawsocket",
        help="how the load generators (the simulated agents only) reach the router: "
        "RawSocket costs the router and the generators less per publish than WebSocket; "
        "the subjects always use its WebSocket path, as real deployments do",
    )
    parser.add_argument(
        "--registry-nice",
        type=int,
        default=19,
        help="run the RegistryAgent (process and scheduler autogroup) at this lower "
        "priority, so that when it saturates a core it takes less of the router's CPU; its "
        "CPU per heartbeat is still measured (0: same priority as everything else)",
    )
    parser.add_argument(
        "--agent-timeout", type=float, default=5.0, help="the exporter's --agent-timeout"
    )
    parser.add_argument("--detect", type=int, default=10, help="agents stopped for detection")
    parser.add_argument("--scrapes", type=int, default=10, help="scrapes 1 s apart, under load")
    parser.add_argument("--burst", type=int, default=10, help="back-to-back scrapes after them")
    parser.add_argument(
        "--change-every",
        type=int,
        default=300,
        help="heartbeat periods between two runs of an agent's task1, which changes its op "
        "codes on 2 heartbeats (0: op codes never change)",
    )
    parser.add_argument(
        "--period",
        type=float,
        default=1.0,
        help="seconds between an agent's heartbeats (OCS agents: 1); with a longer one, N "
        "agents cost the router N / period publishes a second (raise --agent-timeout too)",
    )
    parser.add_argument(
        "--report", type=Path, metavar="JSON", help="only print the tables of an earlier run"
    )
    args = parser.parse_args(argv)
    if args.report:
        return args
    if isinstance(args.agents, str):
        args.agents = agent_counts(args.agents)
    if isinstance(args.subjects, str):
        args.subjects = subject_names(args.subjects)
    if args.ops < 1 or args.duration <= 0 or args.agents_per_generator < 1 or args.period <= 0:
        parser.error("--ops, --duration, --agents-per-generator and --period must be positive")
    if args.agent_timeout <= args.period:
        parser.error("--agent-timeout must be longer than --period")
    if not Path(args.crossbar).exists():
        parser.error(f"--crossbar {args.crossbar}: not found (`make test` installs it)")
    return args


def describe_run(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": procstat.host_info(),
        "config": {
            "agents": args.agents,
            "subjects": args.subjects,
            "ops": args.ops,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "serializer": args.serializer,
            "agents_per_generator": args.agents_per_generator,
            "load_transport": args.load_transport,
            "registry_nice": args.registry_nice,
            "agent_timeout_s": args.agent_timeout,
            "detect": args.detect,
            "scrapes": args.scrapes,
            "burst": args.burst,
            "change_every": args.change_every,
            "period_s": args.period,
            "crossbar": args.crossbar,
            "exporter_python": args.exporter_python,
            "workdir": str(args.workdir),
        },
        "notes": [report.FOOTNOTE.replace("\n  ", " ").lstrip("* ")],
        "steps": [],
    }


def print_tables(results: dict[str, Any]) -> None:
    for step in results["steps"]:
        print(report.step_table(step, results["config"]["serializer"]))
        print()
    print(report.summary_table(results["steps"]))
    print(report.FOOTNOTE)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.report:
        results = json.loads(args.report.read_text())
        print_tables(results)
        return results
    harness.prepare(args, "ocs-bench-")
    results = describe_run(args)
    results["exporter_source"] = snapshot_exporter(args.workdir / "exporter-snapshot")
    args.snapshot = Path(results["exporter_source"]["path"])
    print(
        f"benchmark: N={args.agents}, M={args.ops}, {args.duration:g} s window per N, "
        f"{args.serializer}; logs in {args.workdir}",
        flush=True,
    )
    source = results["exporter_source"]
    print(
        f"exporter: a copy of exporter/ as of now (sha256 {source['sha256'][:12]}, git "
        f"{(source['git_head'] or '?')[:10]}, {len(source['uncommitted_changes'])} files "
        "changed since), the same for every N",
        flush=True,
    )
    router = testbed.Router(
        args.crossbar, args.workdir, rawsocket=args.load_transport == "rawsocket"
    )
    try:
        router.start()
        results["router"] = {
            "pid": router.pid,
            "port": router.port,
            "rawsocket_port": router.rawsocket_port,
            "load_url": router.load_url,
        }
        site_file = testbed.write_site_file(
            args.workdir / "site.yaml", router.port, [registry_entry()]
        )
        for n in args.agents:
            print(f"-- N = {n}: running ...", flush=True)
            started = time.time()
            step = Step(args, router, site_file, n).run()
            step["ratios"] = report.ratios(step)
            step["elapsed_s"] = round(time.time() - started, 1)
            results["steps"].append(step)
            harness.write(args.out, results)
            print(report.step_table(step, args.serializer), flush=True)
            print(flush=True)
            router.check_alive()
    finally:
        router.stop()
        results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        harness.write(args.out, results)
    print(report.summary_table(results["steps"]))
    print(report.FOOTNOTE)
    print(f"numbers written to {args.out}; tables again: python -m benchmarks.run --report FILE")
    return results


if __name__ == "__main__":
    harness.run(main)
