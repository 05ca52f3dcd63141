"""``python -m benchmarks.soak``: one exporter for a long while under N simulated agents,
with router restarts and agent churn; its memory, CPU, heartbeats and errors over time.

A soak, not a test: it prints numbers and writes them to ``--out``, and never judges them.

Churn, every ``--churn-every`` seconds:

- **pause**: the agents paused in the previous period heartbeat again (same session, as after
  a network blip) and another ``--churn-fraction`` of the agents stop heartbeating;
- **restart**: a fixed group of ``--churn-fraction`` of the agents is simulated by a second,
  small load generator (``benchmarks.loadgen`` as a shard of the same N, the main generator
  leaving those agents out); it is stopped and a new one started, so its agents come back
  with a new ``session_id`` on a new WAMP session: OCS agent restarts.

Router restarts: every ``--router-restart-every`` seconds crossbar is stopped and started
again on the same port; the exporter and the generators reconnect by themselves. Heartbeats
published between the stop and the exporter's ``rejoined realm`` are lost by design.

Collectors, each on by default (``--no-sessions --no-feeds --hostmanagers 0``: the
heartbeat-only soak of before):

- **sessions**: the exporter asks ``status`` of operations (the simulated agents answer it);
- **feeds**: the main generators' agents (not the restart group's) also publish
  ``--feeds-per-agent`` data feeds, one message each every ``--feed-period`` seconds
  (:mod:`benchmarks.feedgen`), and the exporter listens to feeds;
- **HostManagers**: ``--hostmanagers`` simulated HostManager agents (``benchmarks.loadgen
  --hostmanagers``) whose ``manager`` sessions list half of the agents, target up; read
  through the sessions collector.

Every sample records the collectors' counters (``collectors``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import harness, procstat
from benchmarks.soak_report import HEADER, print_report, summarize, summary_text
from benchmarks.soak_schedule import SAMPLE_EVERY, Soak

SCHEMA = "ocs-exporter-soak/1"


def describe(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": procstat.host_info(),
        "config": {
            "agents": args.agents,
            "ops": args.ops,
            "duration_s": args.duration,
            "router_restart_every_s": args.router_restart_every,
            "churn_every_s": args.churn_every,
            "churn_fraction": args.churn_fraction,
            "serializer": args.serializer,
            "sessions": args.sessions,
            "feeds": args.feeds,
            "feeds_per_agent": args.feeds_per_agent if args.feeds else 0,
            "feed_period_s": args.feed_period,
            "hostmanagers": args.hostmanagers,
            "sample_every_s": SAMPLE_EVERY,
            "agent_timeout_s": 5.0,  # the exporter's default
            "crossbar": args.crossbar,
            "exporter_python": args.exporter_python,
            "workdir": str(args.workdir),
            "seed": args.seed,
        },
        "samples": [],
        "errors": [],
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = harness.new_parser("python -m benchmarks.soak", __doc__)
    harness.add_common_arguments(parser, "benchmarks/soak.json")
    parser.add_argument("--agents", type=int, default=1000, help="simulated agents, 1 Hz each")
    parser.add_argument("--ops", type=int, default=4, help="operations per agent")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument(
        "--router-restart-every", type=float, default=120.0, help="seconds (0: never)"
    )
    parser.add_argument("--churn-every", type=float, default=30.0, help="seconds (0: never)")
    parser.add_argument(
        "--churn-fraction",
        type=float,
        default=0.02,
        help="share of the agents paused each churn period, and of those that restart",
    )
    parser.add_argument(
        "--sessions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the exporter asks operations' sessions (its --collector.sessions)",
    )
    parser.add_argument(
        "--feeds",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="agents publish data feeds and the exporter listens (--collector.feeds)",
    )
    parser.add_argument("--feeds-per-agent", type=int, default=2, help="with --feeds")
    parser.add_argument(
        "--feed-period", type=float, default=5.0, help="seconds between a feed's messages"
    )
    parser.add_argument(
        "--hostmanagers",
        type=int,
        default=5,
        help="simulated HostManagers listing half of the agents (0: none; needs --sessions)",
    )
    parser.add_argument("--seed", type=int, default=1, help="of the choice of paused agents")
    parser.add_argument(
        "--report", type=Path, metavar="JSON", help="only print the report of an earlier run"
    )
    args = parser.parse_args(argv)
    if args.report:
        return args
    if args.agents < 4 or args.ops < 1 or args.duration <= 0:
        parser.error("--agents must be at least 4, --ops and --duration positive")
    if not 0 < args.churn_fraction <= 0.25:
        parser.error("--churn-fraction must be in (0, 0.25]")
    if args.hostmanagers < 0 or (args.hostmanagers and not args.sessions):
        parser.error("--hostmanagers must be 0 or more, and 0 with --no-sessions")
    if args.feeds and (args.feeds_per_agent < 1 or args.feed_period <= 0):
        parser.error("--feeds-per-agent and --feed-period must be positive")
    if not Path(args.crossbar).exists():
        parser.error(f"--crossbar {args.crossbar}: not found (`make test` installs it)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.report:
        result = json.loads(args.report.read_text())
        if result["samples"]:
            result["summary"] = summarize(result)  # with this version's report
        print_report(result)
        return result
    harness.prepare(args, "ocs-soak-")
    result = describe(args)
    soak = Soak(args, result)
    feeds = f"{args.feeds_per_agent} per agent every {args.feed_period:g} s"
    feeds = feeds if args.feeds else "off"
    print(
        f"soak: {args.agents} agents x {args.ops} ops for {args.duration:g} s, router restart "
        f"every {args.router_restart_every:g} s, churn every {args.churn_every:g} s, "
        f"{args.serializer}; sessions {'on' if args.sessions else 'off'}, feeds {feeds}, "
        f"{args.hostmanagers} HostManagers; logs in {args.workdir}",
        flush=True,
    )
    try:
        soak.start()
        print(HEADER, flush=True)
        soak.run()
        soak.finish()
    except KeyboardInterrupt as exc:
        result["errors"].append(f"interrupted ({exc or 'Ctrl-C'}): the soak ended early")
        raise
    except Exception as exc:
        result["errors"].append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        try:
            soak.stop()
        finally:
            result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            result["host"]["load_average_at_end"] = list(os.getloadavg())
            if result["samples"]:
                result["summary"] = summarize(result)
                print(summary_text(result))
            harness.write(args.out, result)
            print(f"numbers written to {args.out}; again: python -m benchmarks.soak --report FILE")
    return result


if __name__ == "__main__":
    harness.run(main)
