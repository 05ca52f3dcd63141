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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import testbed
from benchmarks import procstat, scrape, shm
from benchmarks.processes import Generator, Load, add_exporter_python, snapshot_exporter
from testbed import ROOT

SCHEMA = "ocs-exporter-soak/1"
SAMPLE_EVERY = 10.0  # seconds between samples
SLOPE_AFTER = 60.0  # RSS slope over the samples from this many seconds on
AGENTS_PER_GENERATOR = 2500
CHANGE_EVERY = 300  # an agent's task1 runs once every this many seconds (as benchmarks.run)
SCRAPE_TIMEOUT = 10.0
REJOIN_POLL = 0.05  # seconds between checks while waiting for the exporter to rejoin
REJOIN_TIMEOUT = 60.0
DRAIN_TIMEOUT = 15.0
ERROR_LINE = re.compile(r"level=error|Traceback")


def metric_sum(text: str, name: str) -> float | None:
    """The sum of every sample of ``name`` in an exposition (None if it has none)."""
    values = re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    return sum(float(v) for v in values) if values else None


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 3:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600


def restart_group(n_agents: int, fraction: float) -> tuple[int, int]:
    """(shard, shards) of the restarting agents: indices ``shard, shard + shards, ...``."""
    shards = max(2, min(n_agents, round(1 / fraction)))
    return shards - 1, shards


class RestartGroup:
    """The agents ``range(shard, N, shards)``, one generator process at a time; replacing it
    restarts them all (new session ids, new WAMP session). Counts survive the processes."""

    def __init__(self, args: argparse.Namespace, router_url: str, workdir: Path) -> None:
        self.args = args
        self.router_url = router_url
        self.workdir = workdir
        self.shard, self.shards = restart_group(args.agents, args.churn_fraction)
        self.indices = range(self.shard, args.agents, self.shards)
        self.generation = 0
        self.pids: list[int] = []  # of every generation
        self.current: Generator | None = None
        self.retired = dict.fromkeys((shm.SENT, shm.SKIPPED, shm.PUBLISH_ERRORS, shm.GEN_LOSSES), 0)

    def start(self, go: float | None = None) -> None:
        self.generation += 1
        args = self.args
        self.current = Generator(
            self.router_url,
            self.workdir,
            args.agents,
            self.shard,
            self.shards,
            args.ops,
            args.serializer,
            CHANGE_EVERY,
            name=f"restart-group-{self.generation}",
        ).start(wait=False)
        self.pids.append(self.current.pid)
        if go is not None:
            self.current.go(go)

    def restart(self, go: float) -> None:
        """Stop publishing, let a tick finish, stop the process; start the next one on the
        same schedule (its first second a whole number of seconds after ``go``)."""
        self.stop()
        self.start(go + math.ceil(time.time() - go) + 1)

    def stop(self) -> None:
        if self.current is None:
            return
        self.current.block.ints[shm.QUIT] = 1
        time.sleep(0.3)
        self.current.stop()
        for slot in self.retired:
            self.retired[slot] += self.current.block.ints[slot]
        self.current = None

    def total(self, slot: int) -> int:
        live = self.current.block.ints[slot] if self.current else 0
        return self.retired[slot] + live


class Soak:
    """Starts everything, runs the schedule, collects ``self.result``; ``stop()`` always."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir: Path = args.workdir
        self.router = testbed.Router(args.crossbar, self.workdir)
        self.exporter: testbed.Exporter | None = None
        self.load: Load | None = None
        self.group: RestartGroup | None = None
        self.random = random.Random(args.seed)
        self.go = 0.0
        self.paused: list[int] = []
        self.events: list[str] = []  # since the last sample
        self.rejoin: dict[str, Any] | None = None  # the router restart being watched
        self.last: dict[str, Any] | None = None  # the previous sample
        self.last_machine = (0.0, 0.0)  # machine CPU times at the previous sample
        self.result: dict[str, Any] = describe(args)

    # -- start and stop ---------------------------------------------------------------------

    def start(self) -> None:
        args = self.args
        source = snapshot_exporter(self.workdir / "exporter-snapshot")
        self.result["exporter_source"] = source
        self.router.start()
        site_file = testbed.write_site_file(self.workdir / "site.yaml", self.router.port)
        self.exporter = testbed.Exporter(
            site_file,
            self.workdir,
            *("--log.level", "info", "--wamp.serializers", args.serializer),
            python=args.exporter_python,
            source=Path(source["path"]),
            log_path=self.workdir / "exporter.log",
        ).start(wait=False)
        self.load = Load(
            self.router.url,
            self.workdir,
            args.agents,
            args.ops,
            args.serializer,
            AGENTS_PER_GENERATOR,
            CHANGE_EVERY,
        ).start()
        self.group = RestartGroup(args, self.router.url, self.workdir)
        self.load.pause(self.group.indices)  # simulated by the restart group instead
        self.group.start()
        self.exporter.wait_ready(60)
        testbed.wait_for(
            lambda: self.load.ready() and self.group.current.ready(), 60, "the generators"
        )
        self.go = time.time() + 0.5
        self.load.go(self.go)
        self.group.current.go(self.go)
        self.result["router"] = {"port": self.router.port, "pids": [self.router.pid]}
        self.result["router"]["restarts"] = []
        self.result["exporter"] = {
            "pid": self.exporter.pid,
            "port": self.exporter.port,
            "log": str(self.exporter.log_path),
        }
        self.result["load"] = {
            "generator_pids": [g.pid for g in self.load],
            "restart_group": {
                "shard": self.group.shard,
                "shards": self.group.shards,
                "agents": list(self.group.indices),
                "pids": self.group.pids,  # every generation's
            },
        }
        self.result["churn"] = {
            "paused_per_period": self.pause_count(),
            "restart_group_agents": len(self.group.indices),
            "periods": 0,
            "restart_group_generations": 1,
        }

    def pause_count(self) -> int:
        eligible = self.args.agents - len(self.group.indices)
        return min(eligible // 2, max(1, round(self.args.agents * self.args.churn_fraction)))

    def stop(self) -> None:
        """Stop every process started, all at once, then the router."""
        current = self.group.current if self.group is not None else None
        try:
            testbed.stop_processes([*(self.load or []), current, self.exporter])
        finally:
            self.router.stop()

    # -- the schedule -----------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        end = self.go + args.duration
        due = {"sample": self.go, "churn": self.go + args.churn_every}
        if args.router_restart_every > 0:
            due["restart"] = self.go + args.router_restart_every
        if args.churn_every <= 0:
            del due["churn"]
        while True:
            if self.rejoin is not None:
                self.watch_rejoin()
            now = time.time()
            if now >= end:
                break
            if now >= due["sample"]:
                self.sample()
                due["sample"] += SAMPLE_EVERY
                if not self.exporter.alive():
                    self.result["errors"].append(
                        f"the exporter exited with {self.exporter.exit_code()}: soak ended early"
                    )
                    return
            if "churn" in due and now >= due["churn"]:
                self.churn()
                due["churn"] += args.churn_every
            if "restart" in due and now >= due["restart"] and self.rejoin is None:
                self.restart_router()
                due["restart"] += args.router_restart_every
            if self.rejoin is not None:
                time.sleep(REJOIN_POLL)
            else:
                time.sleep(max(min([*due.values(), end]) - time.time(), 0.0))
        while self.rejoin is not None:  # a restart near the end: see it through
            self.watch_rejoin()
            time.sleep(REJOIN_POLL)
        self.sample()  # at the end of the duration, before the load stops

    def churn(self) -> None:
        load, group = self.load, self.group
        load.pause(self.paused, paused=False)
        resumed = len(self.paused)
        excluded = set(group.indices) | set(self.paused)
        eligible = [i for i in range(self.args.agents) if i not in excluded]
        self.paused = sorted(self.random.sample(eligible, min(self.pause_count(), len(eligible))))
        load.pause(self.paused)
        group.restart(self.go)
        churn = self.result["churn"]
        churn["periods"] += 1
        churn["restart_group_generations"] = group.generation
        self.events.append(
            f"churn: {resumed} resumed, {len(self.paused)} paused, {len(group.indices)} restarted"
        )

    def sent(self) -> int:
        return self.load.sent + self.group.total(shm.SENT)

    def rejoined_lines(self) -> int:
        return self.exporter.log().count("rejoined realm")

    def restart_router(self) -> None:
        """Stop crossbar, start it on the same port; then watch (without blocking the
        schedule) for the exporter's rejoin and the generators' first heartbeat."""
        rejoined, sent, t0 = self.rejoined_lines(), self.sent(), time.time()
        self.router.stop()
        stopped = time.time()
        self.router.start()
        up = time.time()
        self.result["router"]["pids"].append(self.router.pid)
        sent_up = self.sent()
        record = {
            "at_s": round(t0 - self.go, 2),
            "stop_s": round(stopped - t0, 3),
            "router_down_s": round(up - t0, 3),
            "sent_while_router_down": sent_up - sent,
            "exporter_rejoined_after_s": None,
            "sent_before_exporter_rejoined": None,
            "sent_before_exporter_rejoined_uncertainty": None,
            "generators_publishing_after_s": None,
        }
        self.result["router"]["restarts"].append(record)
        self.rejoin = {
            "record": record,
            "t0": t0,
            "sent0": sent,
            "sent_up": sent_up,
            "rejoined": rejoined,
            "sent_before_poll": sent_up,
        }

    def watch_rejoin(self) -> None:
        watch, now = self.rejoin, time.time()
        record, t0 = watch["record"], watch["t0"]
        sent = self.sent()
        if record["generators_publishing_after_s"] is None and sent > watch["sent_up"]:
            record["generators_publishing_after_s"] = round(now - t0, 3)
        if record["exporter_rejoined_after_s"] is None:
            if self.rejoined_lines() > watch["rejoined"]:
                # It rejoined after the previous poll (which read `sent` before the log) and
                # before this read of the log: what was sent meanwhile may have reached it.
                after = self.sent()
                record["exporter_rejoined_after_s"] = round(now - t0, 3)
                record["sent_before_exporter_rejoined"] = after - watch["sent0"]
                record["sent_before_exporter_rejoined_uncertainty"] = (
                    after - watch["sent_before_poll"]
                )
            else:
                watch["sent_before_poll"] = sent
        done = record["exporter_rejoined_after_s"] is not None and (
            record["generators_publishing_after_s"] is not None
        )
        if done or now - t0 > REJOIN_TIMEOUT:
            if not done:
                self.result["errors"].append(
                    f"router restart at {record['at_s']} s: no exporter rejoin and generator "
                    f"heartbeat within {REJOIN_TIMEOUT:.0f} s"
                )
            self.events.append(
                f"router restart: down {record['router_down_s']:.1f} s, exporter back after "
                f"{fmt(record['exporter_rejoined_after_s'], '.1f')} s"
            )
            self.rejoin = None

    # -- samples ----------------------------------------------------------------------------

    def sample(self) -> None:
        now = time.time()
        ex = self.exporter
        mem = procstat.memory(ex.pid)
        entry: dict[str, Any] = {
            "t_s": round(now - self.go, 2),
            "rss_bytes": mem.get("rss"),
            "peak_rss_bytes": mem.get("peak_rss"),
            "cpu_s": procstat.cpu_seconds(ex.pid),
            "sent": self.sent(),
            "skipped": self.load.total(shm.SKIPPED) + self.group.total(shm.SKIPPED),
            "paused": len(self.paused),
        }
        machine = procstat.machine_times()
        try:
            s = scrape.scrape(ex.metrics_url, timeout=SCRAPE_TIMEOUT)
        except Exception as exc:
            entry.update({"scrape_error": f"{type(exc).__name__}: {exc}", "received": None})
        else:
            up = [v for k, v in s.agents_up().items() if k.startswith("bench-")]
            entry.update(
                {
                    "scrape_s": round(s.latency, 4),
                    "scrape_bytes": s.wire_bytes,
                    "received": s.heartbeats_total(),
                    "connected": s.connected(),
                    "agents_up": sum(1 for v in up if v == 1.0),
                    "agents_down": sum(1 for v in up if v == 0.0),
                }
            )
        last = self.last
        if last is not None:
            dt = now - (last["t_s"] + self.go)
            entry["cpu_cores"] = rate(entry["cpu_s"], last["cpu_s"], dt, 3)
            entry["sent_per_s"] = rate(entry["sent"], last["sent"], dt)
            entry["received_per_s"] = rate(entry["received"], last.get("received"), dt)
            busy, total = (b - a for a, b in zip(self.last_machine, machine, strict=True))
            entry["machine_busy"] = round(busy / total, 3) if total > 0 else None
        entry["events"], self.events = self.events, []
        self.result["samples"].append(entry)
        self.last, self.last_machine = entry, machine
        print(table_row(entry), flush=True)

    # -- the end ----------------------------------------------------------------------------

    def finish(self) -> None:
        """Stop the load, wait for the router to drain, count; the exporter's log."""
        ex, result = self.exporter, self.result
        self.load.quit()
        self.group.stop()
        quit_at = time.time()
        time.sleep(0.3)
        sent = self.sent()
        text, received, changed_at = "", None, time.time()
        while time.time() < quit_at + DRAIN_TIMEOUT and time.time() - changed_at < 1.0:
            try:
                text = scrape.scrape(ex.metrics_url, compressed=False, timeout=SCRAPE_TIMEOUT).text
            except Exception as exc:
                result["errors"].append(f"final scrape: {type(exc).__name__}: {exc}")
                break
            now = metric_sum(text, "ocs_exporter_heartbeats_total")
            if now != received:
                received, changed_at = now, time.time()
            time.sleep(0.25)
        log = ex.log()
        errors = [line for line in log.splitlines() if ERROR_LINE.search(line)]
        result["final"] = {
            "sent": sent,
            "received": None if received is None else int(received),
            "skipped": self.load.total(shm.SKIPPED) + self.group.total(shm.SKIPPED),
            "publish_errors": self.load.total(shm.PUBLISH_ERRORS)
            + self.group.total(shm.PUBLISH_ERRORS),
            # The main generators' only: restart-group processes also lose theirs when stopped.
            "generator_session_losses": self.load.total(shm.GEN_LOSSES),
            "drain_s": round(changed_at - quit_at, 2),
            "invalid_heartbeats": metric_sum(text, "ocs_exporter_heartbeats_invalid_total"),
            "agents_tracked": metric_sum(text, "ocs_exporter_agents"),
            "agent_restarts_seen": metric_sum(text, "ocs_agent_restarts_total"),
            "exporter_alive": ex.alive(),
            "exporter_exit_code": ex.exit_code(),
            "rejoined_lines": log.count("rejoined realm"),
            "lost_router_lines": log.count("lost router"),
            "warning_lines": log.count("level=warn"),
            "error_lines": len(errors),
            "error_examples": errors[:10],
            "log_bytes": len(log.encode()),
        }


def rate(new: float | None, old: float | None, dt: float, digits: int = 1) -> float | None:
    if new is None or old is None or dt <= 0:
        return None
    return round((new - old) / dt, digits)


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else f"{value:{spec}}"


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


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of the report, from the samples, the restarts and the final counts."""
    samples, final = result["samples"], result.get("final", {})
    rss = [s["rss_bytes"] for s in samples if s.get("rss_bytes")]
    late = [
        (s["t_s"], s["rss_bytes"] / 2**20)
        for s in samples
        if s["t_s"] >= SLOPE_AFTER and s.get("rss_bytes")
    ]
    steady = [int(v * 2**20) for _, v in late]
    latencies = [s["scrape_s"] for s in samples if "scrape_s" in s]
    restarts = result.get("router", {}).get("restarts", [])
    by_design = [r["sent_before_exporter_rejoined"] for r in restarts]
    sent, received = final.get("sent"), final.get("received")
    lost = sent - received if sent is not None and received is not None else None
    outage = sum(v for v in by_design if v is not None)
    cpu = [s for s in samples if s.get("cpu_s") is not None]
    span = cpu[-1]["t_s"] - cpu[0]["t_s"] if len(cpu) > 1 else 0
    return {
        "duration_s": samples[-1]["t_s"] if samples else 0,
        "samples": len(samples),
        "rss": {
            "min_bytes": min(rss, default=None),
            "median_bytes": statistics.median(rss) if rss else None,
            "max_bytes": max(rss, default=None),
            "first_bytes": rss[0] if rss else None,
            "last_bytes": rss[-1] if rss else None,
            "slope_mib_per_hour": slope_per_hour(late),
            "slope_from_s": SLOPE_AFTER,
            "slope_samples": len(late),
            # From SLOPE_AFTER on: the first samples include the exporter before the load.
            "steady_min_bytes": min(steady, default=None),
            "steady_median_bytes": statistics.median(steady) if steady else None,
            "steady_max_bytes": max(steady, default=None),
        },
        "exporter_cpu_cores_mean": (cpu[-1]["cpu_s"] - cpu[0]["cpu_s"]) / span if span else None,
        "heartbeats": {
            "sent": sent,
            "received": received,
            "lost": lost,
            "lost_fraction": lost / sent if lost is not None and sent else None,
            "sent_while_router_down": sum(r["sent_while_router_down"] for r in restarts),
            "sent_before_exporter_rejoined": outage,
            "sent_before_exporter_rejoined_uncertainty": sum(
                r["sent_before_exporter_rejoined_uncertainty"] or 0 for r in restarts
            ),
            "lost_outside_outages": lost - outage if lost is not None else None,
            "skipped": final.get("skipped"),
            "publish_errors": final.get("publish_errors"),
        },
        "router_restarts": len(restarts),
        "exporter_rejoins_missed": sum(r["exporter_rejoined_after_s"] is None for r in restarts),
        "reconnects_seen": final.get("rejoined_lines"),
        "error_lines": final.get("error_lines"),
        "exporter_alive": final.get("exporter_alive"),
        "scrapes": {
            "count": len(samples),
            "failed": sum("scrape_error" in s for s in samples),
            "disconnected": sum(s.get("connected") is False for s in samples),
            "median_s": statistics.median(latencies) if latencies else None,
            "max_s": max(latencies, default=None),
        },
    }


ALIVE = {True: "alive", False: "NOT ALIVE", None: "not checked"}
HEADER = (
    f"{'t s':>6} {'RSS MiB':>8} {'cores':>6} {'sent/s':>7} {'recv/s':>7} {'received':>10} "
    f"{'conn':>4} {'up':>5} {'down':>5} {'paused':>6} {'scrape ms':>9}  events"
)


def table_row(s: dict[str, Any]) -> str:
    rss = s["rss_bytes"] / 2**20 if s.get("rss_bytes") else None
    conn = {True: "1", False: "0"}.get(s.get("connected"), "-")
    scrape_ms = s["scrape_s"] * 1000 if "scrape_s" in s else None
    events = "; ".join(s.get("events", []))
    if "scrape_error" in s:
        events = f"SCRAPE FAILED ({s['scrape_error']}) {events}"
    return (
        f"{s['t_s']:>6.0f} {fmt(rss):>8} {fmt(s.get('cpu_cores'), '.3f'):>6} "
        f"{fmt(s.get('sent_per_s'), '.0f'):>7} {fmt(s.get('received_per_s'), '.0f'):>7} "
        f"{fmt(s.get('received'), '.0f'):>10} {conn:>4} {fmt(s.get('agents_up'), 'd'):>5} "
        f"{fmt(s.get('agents_down'), 'd'):>5} {s['paused']:>6} {fmt(scrape_ms, '.0f'):>9}  "
        f"{events}"
    ).rstrip()


def summary_text(result: dict[str, Any]) -> str:
    c, s = result["config"], result["summary"]
    r, hb, sc = s["rss"], s["heartbeats"], s["scrapes"]
    churn = result.get("churn", {})
    mib = 2**20

    def m(v: float | None) -> str:
        return fmt(None if v is None else v / mib)

    def n(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    lines = [
        f"== soak: {c['agents']} agents x {c['ops']} ops, {s['duration_s']:.0f} s, "
        f"{c['serializer']}; router restarted every {c['router_restart_every_s']:g} s "
        f"({s['router_restarts']} times); churn every {c['churn_every_s']:g} s "
        f"({churn.get('periods', 0)} times: {churn.get('paused_per_period', 0)} paused, "
        f"{churn.get('restart_group_agents', 0)} restarted) ==",
        f"exporter RSS: min {m(r['min_bytes'])} MiB, median {m(r['median_bytes'])}, max "
        f"{m(r['max_bytes'])} (first {m(r['first_bytes'])}, before the load; last "
        f"{m(r['last_bytes'])})",
        f"  from {r['slope_from_s']:.0f} s on ({r['slope_samples']} samples): min "
        f"{m(r['steady_min_bytes'])} MiB, median {m(r['steady_median_bytes'])}, max "
        f"{m(r['steady_max_bytes'])}; slope {fmt(r['slope_mib_per_hour'], '+.2f')} MiB/h "
        "(least squares)",
        f"exporter CPU: {fmt(s['exporter_cpu_cores_mean'], '.3f')} cores on average",
        f"heartbeats: sent {n(hb['sent'])}, received {n(hb['received'])}, lost {n(hb['lost'])}"
        f" ({fmt(None if hb['lost_fraction'] is None else hb['lost_fraction'] * 100, '.2f')}%)",
        f"  sent between a router stop and the exporter's rejoin (lost by design): "
        f"{n(hb['sent_before_exporter_rejoined'])} "
        f"(+-{n(hb['sent_before_exporter_rejoined_uncertainty'])}); of them while the router "
        f"was down: {n(hb['sent_while_router_down'])}",
        f"  lost otherwise: {n(hb['lost_outside_outages'])} (the windows' ends are known to "
        f"+-{n(hb['sent_before_exporter_rejoined_uncertainty'])}); not sent (generator "
        f"without a router, or > 2 s late): {n(hb['skipped'])}",
        f"reconnects: {n(s['reconnects_seen'])} 'rejoined realm' lines for "
        f"{s['router_restarts']} router restarts ({s['exporter_rejoins_missed']} not seen)",
        f"errors: {n(s['error_lines'])} ERROR/Traceback lines in the exporter log; exporter "
        f"{ALIVE[s['exporter_alive']]} at the end",
        f"scrapes: {sc['count']}, {sc['failed']} failed, {sc['disconnected']} showed "
        f"crossbar_connected 0; median {fmt(_ms(sc['median_s']), '.0f')} ms, max "
        f"{fmt(_ms(sc['max_s']), '.0f')} ms",
    ]
    for restart in result.get("router", {}).get("restarts", []):
        lines.append(
            f"  router restart at {restart['at_s']:.0f} s: down {restart['router_down_s']:.1f} s,"
            f" generators back after {fmt(restart['generators_publishing_after_s'])} s, "
            f"exporter after {fmt(restart['exporter_rejoined_after_s'])} s, "
            f"{n(restart['sent_before_exporter_rejoined'])} heartbeats sent meanwhile"
        )
    lines.extend(f"ERROR: {e}" for e in result["errors"])
    return "\n".join(lines)


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def write(out: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
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
    parser.add_argument("--serializer", choices=("msgpack", "json", "cbor"), default="msgpack")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/soak.json"))
    parser.add_argument(
        "--crossbar", default=str(ROOT / ".venv-crossbar" / "bin" / "crossbar"), help="router"
    )
    add_exporter_python(parser)
    parser.add_argument("--workdir", type=Path, help="logs and counters (default: a temp dir)")
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
    if not Path(args.crossbar).exists():
        parser.error(f"--crossbar {args.crossbar}: not found (`make test` installs it)")
    return args


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def print_report(result: dict[str, Any]) -> None:
    print(HEADER)
    for entry in result["samples"]:
        print(table_row(entry))
    print(summary_text(result))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.report:
        result = json.loads(args.report.read_text())
        print_report(result)
        return result
    if args.workdir is None:
        args.workdir = Path(tempfile.mkdtemp(prefix="ocs-soak-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminate)
    soak = Soak(args)
    result = soak.result
    print(
        f"soak: {args.agents} agents x {args.ops} ops for {args.duration:g} s, router restart "
        f"every {args.router_restart_every:g} s, churn every {args.churn_every:g} s, "
        f"{args.serializer}; logs in {args.workdir}",
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
            write(args.out, result)
            print(f"numbers written to {args.out}; again: python -m benchmarks.soak --report FILE")
    return result


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
