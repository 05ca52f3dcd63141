"""The soak's schedule: one exporter under N simulated agents, sampled every
``SAMPLE_EVERY`` seconds, with agent churn and router restarts (see :mod:`benchmarks.soak`).
"""

from __future__ import annotations

import argparse
import math
import random
import re
import time
from pathlib import Path
from typing import Any

import testbed
from benchmarks import procstat, scrape, shm
from benchmarks.feeds_load import FeedLoad
from benchmarks.processes import Generator, Load, deployed_env, snapshot_exporter
from benchmarks.report import fmt
from benchmarks.soak_report import table_row

SAMPLE_EVERY = 10.0  # seconds between samples
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


def metric_by(text: str, name: str, label: str) -> dict[str, float]:
    """``{label value: sample}`` of every sample of ``name`` with that one label."""
    found = re.findall(rf'^{name}\{{{label}="([^"]*)"\}} (\S+)$', text, re.MULTILINE)
    return {value: float(sample) for value, sample in found}


def collector_counts(text: str) -> dict[str, Any]:
    """What the sessions, feeds and HostManager collectors counted, from one scrape: status
    calls by result, feed messages (and those refused or ignored by reason), HostManager data
    refused by reason, and the agents a HostManager lists (``ocs_agent_managers`` series)."""
    return {
        "session_queries": metric_by(text, "ocs_exporter_session_queries_total", "result"),
        "feed_messages": metric_sum(text, "ocs_exporter_feed_messages_total"),
        "feed_invalid": metric_by(text, "ocs_exporter_feed_messages_invalid_total", "reason"),
        "feed_ignored": metric_by(text, "ocs_exporter_feed_messages_ignored_total", "reason"),
        "manager_data_invalid": metric_by(
            text, "ocs_exporter_manager_data_invalid_total", "reason"
        ),
        "managed_agents": len(re.findall(r"^ocs_agent_managers\{", text, re.MULTILINE)),
        "hostmanagers_parsed": len(
            re.findall(r"^ocs_hostmanager_config_parse_success\{", text, re.MULTILINE)
        ),
    }


class HostManagers(Generator):
    """``benchmarks.loadgen --hostmanagers H``: H simulated HostManagers on one process,
    each listing its share of the N bench agents (target up)."""

    def __init__(
        self, router_url: str, workdir: Path, n_hm: int, n_agents: int, serializer: str
    ) -> None:
        super().__init__(router_url, workdir, n_hm, 0, 1, 1, serializer, 0, name="hostmanagers")
        self.arguments[self.arguments.index("--agents") + 1] = str(n_agents)
        self.arguments += ["--hostmanagers", str(n_hm)]


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

    def __init__(self, args: argparse.Namespace, result: dict[str, Any]) -> None:
        self.args = args
        self.workdir: Path = args.workdir
        self.router = testbed.Router(args.crossbar, self.workdir)
        self.exporter: testbed.Exporter | None = None
        self.load: Load | None = None
        self.group: RestartGroup | None = None
        self.hostmanagers: HostManagers | None = None
        self.random = random.Random(args.seed)
        self.go = 0.0
        self.paused: list[int] = []
        self.events: list[str] = []  # since the last sample
        self.rejoin: dict[str, Any] | None = None  # the router restart being watched
        self.last: dict[str, Any] | None = None  # the previous sample
        self.last_machine = (0.0, 0.0)  # machine CPU times at the previous sample
        self.result = result  # describes the run; the schedule adds what it sees

    # -- start and stop ---------------------------------------------------------------------

    def start(self) -> None:
        args = self.args
        source = snapshot_exporter(self.workdir / "exporter-snapshot")
        self.result["exporter_source"] = source
        self.router.start()
        site_file = testbed.write_site_file(self.workdir / "site.yaml", self.router.port)
        collectors = [
            f"--{'' if on else 'no-'}collector.{name}"
            for name, on in (("sessions", args.sessions), ("feeds", args.feeds))
        ]
        self.exporter = testbed.Exporter(
            site_file,
            self.workdir,
            *("--log.level", "info", "--wamp.serializers", args.serializer),
            *collectors,
            python=args.exporter_python,
            source=Path(source["path"]),
            log_path=self.workdir / "exporter.log",
            env=deployed_env(),
        ).start(wait=False)
        self.load = self.make_load().start()
        self.group = RestartGroup(args, self.router.url, self.workdir)
        self.pause(self.group.indices)  # simulated by the restart group instead
        self.group.start()
        if args.hostmanagers:
            self.hostmanagers = HostManagers(
                self.router.url, self.workdir, args.hostmanagers, args.agents, args.serializer
            ).start(wait=False)
        self.exporter.wait_ready(60)
        testbed.wait_for(
            lambda: (
                self.load.ready()
                and self.group.current.ready()
                and (self.hostmanagers is None or self.hostmanagers.ready())
            ),
            60,
            "the generators",
        )
        self.go = time.time() + 0.5
        self.load.go(self.go)
        self.group.current.go(self.go)
        if self.hostmanagers is not None:
            self.hostmanagers.go(self.go)
        self.result["router"] = {"port": self.router.port, "pids": [self.router.pid]}
        self.result["router"]["restarts"] = []
        self.result["exporter"] = {
            "pid": self.exporter.pid,
            "port": self.exporter.port,
            "log": str(self.exporter.log_path),
        }
        self.result["load"] = {
            "generator_pids": [g.pid for g in self.load],
            "hostmanager_pids": [self.hostmanagers.pid] if self.hostmanagers else [],
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

    def make_load(self) -> Load:
        """The main generators: heartbeats only, or with feeds (``benchmarks.feedgen``)."""
        args = self.args
        if not args.feeds:
            return Load(
                self.router.url,
                self.workdir,
                args.agents,
                args.ops,
                args.serializer,
                AGENTS_PER_GENERATOR,
                CHANGE_EVERY,
            )
        shards = max(1, -(-args.agents // AGENTS_PER_GENERATOR))
        return FeedLoad(
            self.router.url,
            self.workdir,
            args.agents,
            args.ops,
            args.serializer,
            shards,
            1.0,
            args.feeds_per_agent,
            args.feed_period,
        )

    def pause(self, agents: list[int] | range, paused: bool = True) -> None:
        """Stop (or resume) these agents' heartbeats and, with feeds, their feeds: a paused
        agent is one cut off from the router."""
        self.load.pause(agents, paused)
        if not isinstance(self.load, FeedLoad):
            return
        per_agent = self.args.feeds_per_agent
        for i in agents:
            g = self.load.generator(i)
            j = g.indices.index(i)
            for k in range(per_agent):
                g.feed_block.flags[j * per_agent + k] = int(paused)

    def feeds_sent(self) -> int | None:
        return self.load.feeds_sent if isinstance(self.load, FeedLoad) else None

    def pause_count(self) -> int:
        eligible = self.args.agents - len(self.group.indices)
        return min(eligible // 2, max(1, round(self.args.agents * self.args.churn_fraction)))

    def stop(self) -> None:
        """Stop every process started, all at once, then the router."""
        current = self.group.current if self.group is not None else None
        try:
            testbed.stop_processes([*(self.load or []), current, self.hostmanagers, self.exporter])
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
        group = self.group
        self.pause(self.paused, paused=False)
        resumed = len(self.paused)
        excluded = set(group.indices) | set(self.paused)
        eligible = [i for i in range(self.args.agents) if i not in excluded]
        self.paused = sorted(self.random.sample(eligible, min(self.pause_count(), len(eligible))))
        self.pause(self.paused)
        group.restart(self.go)
        churn = self.result["churn"]
        churn["periods"] += 1
        churn["restart_group_generations"] = group.generation
        self.events.append(
            f"churn: {resumed} resumed, {len(self.paused)} paused, {len(group.indices)} restarted"
        )

    def sent(self) -> int:
        return self.load.sent + self.group.total(shm.SENT) + self.hostmanager_total(shm.SENT)

    def hostmanager_total(self, slot: int) -> int:
        return self.hostmanagers.block.ints[slot] if self.hostmanagers is not None else 0

    def skipped(self) -> int:
        return (
            self.load.total(shm.SKIPPED)
            + self.group.total(shm.SKIPPED)
            + self.hostmanager_total(shm.SKIPPED)
        )

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
            "skipped": self.skipped(),
            "paused": len(self.paused),
            "feeds_sent": self.feeds_sent(),
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
                    "collectors": collector_counts(s.text),
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
        if self.hostmanagers is not None:
            self.hostmanagers.block.ints[shm.QUIT] = 1
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
            "skipped": self.skipped(),
            "publish_errors": self.load.total(shm.PUBLISH_ERRORS)
            + self.group.total(shm.PUBLISH_ERRORS)
            + self.hostmanager_total(shm.PUBLISH_ERRORS),
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
            "feeds_sent": self.feeds_sent(),
            "collectors": collector_counts(text),
        }


def rate(new: float | None, old: float | None, dt: float, digits: int = 1) -> float | None:
    if new is None or old is None or dt <= 0:
        return None
    return round((new - old) / dt, digits)
