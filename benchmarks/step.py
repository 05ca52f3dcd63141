"""One benchmark step: N simulated agents against fresh subjects on a running router.

Phases, in order (times are wall clock, all processes on the same router):

1. start the exporter, the RegistryAgent (through its launcher) and the bare subscriber;
   wait until each is joined and subscribed; note the exporter's RSS before the load;
2. start the load generators, start the schedule, warm up;
3. CPU window: /proc utime+stime of every process and every counter, at both ends of
   ``duration`` seconds and once a second in between, with no scrape inside it (the
   exporter's heartbeat count is read by one scrape just before and one just after, and
   pro-rated to the window);
4. scrapes under load: one per second, then a back-to-back burst, as Prometheus asks
   (gzip); latency, size, and the exporter's CPU per scrape (an estimate);
5. detection: stop the heartbeats of a few agents; poll ``/metrics`` every ~50 ms until
   each shows ``ocs_agent_up 0``; latency from each agent's last heartbeat actually sent;
6. stop the load, let the router drain, compare total received with total sent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import testbed
from benchmarks import detection, procstat, report, scrape, shm
from benchmarks.processes import Bare, Counted, Load, Registry, exporter

DRAIN_TIMEOUT = 15.0
OP_TYPES_SETTLE_TIMEOUT = 60.0  # seconds after the warm-up, at most
SCRAPE_PHASE_GRACE = 30.0  # seconds past `--scrapes` before the rest are skipped


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def harness_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Step:
    """Runs the phases for one N and collects every number in ``self.result``."""

    def __init__(
        self, args: argparse.Namespace, router: testbed.Router, site_file: Path, n_agents: int
    ) -> None:
        self.args = args
        self.router = router
        self.site_file = site_file
        self.n = n_agents
        self.workdir = Path(args.workdir) / f"n{n_agents}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.exporter: testbed.Exporter | None = None
        self.subscribers: dict[str, Counted] = {}  # "registry", "bare"
        self.load: Load | None = None
        self.window = 0.0
        self.connected_samples: list[bool] = []
        self.false_down: set[str] = set()
        self.result: dict[str, Any] = {
            "agents": n_agents,
            "ops": args.ops,
            "operations_tracked": n_agents * args.ops,
            "workdir": str(self.workdir),
            "errors": [],
            "warnings": [],
            "subjects": {},
            "exporter": {},
        }

    def subjects(self) -> dict[str, testbed.Process]:
        found: dict[str, Any] = {"exporter": self.exporter} if self.exporter else {}
        return {**found, **self.subscribers}

    # -- the whole step ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        try:
            self.start_subjects()
            self.start_load()
            self.measure_window()
            self.measure_scrapes()
            detection.measure(self)
            self.drain_and_count()
        except Exception as exc:
            self.result["errors"].append(f"{type(exc).__name__}: {exc}")
        finally:
            try:
                self.finish()
            finally:
                self.stop()
        return self.result

    def stop(self) -> None:
        testbed.stop_processes([*(self.load or []), *self.subjects().values()])

    # -- phases -----------------------------------------------------------------------------

    def start_subjects(self) -> None:
        args = self.args
        self.exporter = exporter(
            self.site_file,
            self.workdir,
            args.serializer,
            args.agent_timeout,
            args.snapshot,
            args.exporter_python,
        )
        if "registry" in args.subjects:
            self.subscribers["registry"] = Registry(
                self.site_file, self.workdir, args.registry_nice
            )
        if "bare" in args.subjects:
            self.subscribers["bare"] = Bare(self.router.url, self.workdir, args.serializer)
        children = list(self.subjects().values())
        for child in children:
            child.start(wait=False)
        testbed.wait_for(
            lambda: all([c.ready() for c in children]), 90, "the subjects to join and subscribe"
        )
        self.result["exporter"]["rss_idle_bytes"] = procstat.memory(self.exporter.pid).get("rss")
        self.result["serializers"] = {
            "generators": args.serializer,
            "exporter": args.serializer,
            **{name: sub.serializer() for name, sub in self.subscribers.items()},
        }

    def start_load(self) -> None:
        args = self.args
        self.load = Load(
            self.router.load_url,
            self.workdir,
            self.n,
            args.ops,
            args.serializer,
            args.agents_per_generator,
            args.change_every,
            args.period,
        ).start()
        testbed.wait_for(self.load.ready, 60, "the load generators to join")
        go = time.time() + 0.5
        self.load.go(go)
        scrape.sleep_until(go + args.warmup)
        self.settle_op_types()

    def settle_op_types(self) -> None:
        """Wait until the exporter has asked every agent its operation types (get_api, once
        per agent and session, 16 at a time): a one-time cost of each new agent, which at
        10,000 agents outlasts the warm-up and would be billed to the heartbeats. Not for
        longer than they can be answered in OP_TYPES_SETTLE_TIMEOUT at the rate seen over
        the last 5 s: through a saturated router they crawl, and waiting longer would only
        keep every subject under the overload before the window."""
        started = time.time()
        deadline = started + OP_TYPES_SETTLE_TIMEOUT
        seen: list[tuple[float, float]] = []
        while True:
            asked = scrape.scrape(self.exporter.metrics_url, timeout=scrape.TIMEOUT)
            count, now = asked.op_type_queries(), time.time()
            seen.append((now, count))
            if count >= self.n or now >= deadline:
                break
            earlier = [sample for sample in seen if now - sample[0] >= 5.0]
            if earlier:
                then, before = earlier[-1]
                if (count - before) / (now - then) * (deadline - now) < self.n - count:
                    break
            scrape.sleep_until(asked.finished + 1.0)
        self.result["op_types_settled_after_s"] = round(time.time() - started, 3)
        if count < self.n:
            self.result["warnings"].append(
                f"the exporter had asked only {count:.0f} of {self.n} agents their operation "
                "types when the window started (at the rate they were answered, the rest would "
                f"have taken more than {OP_TYPES_SETTLE_TIMEOUT:.0f} s): the window includes "
                "that one-time cost"
            )

    def _counter_scrape(self) -> scrape.Scrape:
        """An uncompressed scrape for the exporter's heartbeat count at a window boundary."""
        s = scrape.scrape(self.exporter.metrics_url, compressed=False, timeout=scrape.TIMEOUT)
        self.connected_samples.append(s.connected())
        return s

    def _sample(self) -> dict[str, Any]:
        """Every counter and CPU time that can be read without asking a process."""
        cpu = {
            name: procstat.cpu_seconds(child.pid) or 0.0 for name, child in self.subjects().items()
        }
        cpu["crossbar"] = procstat.group_cpu_seconds(self.router.pid)
        cpu["generators"] = self.load.cpu_seconds()
        return {
            "t": time.time(),
            "cpu": cpu,
            "received": {name: sub.received for name, sub in self.subscribers.items()},
            "sent": self.load.sent,
            "skipped": self.load.total(shm.SKIPPED),
            "machine": procstat.machine_times(),
            "harness": harness_cpu(),
        }

    def measure_window(self) -> None:
        load = self.load
        first = self._counter_scrape()
        seen = [k for k in first.agents_up() if k.startswith("bench-")]
        self.result["agents_seen_at_window_start"] = len(seen)
        load.reset_max_lag()
        samples = [self._sample()]
        end = samples[0]["t"] + self.args.duration
        while time.time() < end:
            time.sleep(min(1.0, max(end - time.time(), 0.0)))
            samples.append(self._sample())
        max_lag = load.max_lag()
        last = self._counter_scrape()
        s0, s1 = samples[0], samples[-1]
        window = self.window = s1["t"] - s0["t"]

        # The exporter's count is read by the scrapes around the window: pro-rate its rate.
        span = (last.started + last.finished) / 2 - (first.started + first.finished) / 2
        ex_rate = (last.heartbeats_total() - first.heartbeats_total()) / span
        received = {"exporter": ex_rate * window}
        for name in self.subscribers:
            received[name] = s1["received"][name] - s0["received"][name]
        sent = s1["sent"] - s0["sent"]
        expected = self.n / self.args.period * window
        self.result["window_s"] = round(window, 3)
        self.result["cpu_tick_s"] = 1 / procstat.TICKS
        self.result["load"] = {
            "generators": len(load.generators),
            "pids": [g.pid for g in load.generators],
            "expected_per_s": self.n / self.args.period,
            "sent_in_window": sent,
            "sent_per_s": sent / window,
            "sent_fraction_of_expected": sent / expected if expected else None,
            "max_lag_s": max_lag,
            "skipped_in_window": s1["skipped"] - s0["skipped"],
            "behind": sent < 0.98 * expected,
        }
        counting = {
            "exporter": "ocs_exporter_heartbeats_total from a scrape just before and just "
            "after the window, pro-rated to the window",
            "registry": "benchmarks/registry_launcher.py wraps Registry._register_heartbeat "
            "with a counter",
            "bare": "its handler's counter",
        }
        for name, child in self.subjects().items():
            cpu = s1["cpu"][name] - s0["cpu"][name]
            got = received[name]
            self.result["subjects"][name] = {
                "pid": child.pid,
                "cpu_s": cpu,
                "cpu_cores": cpu / window,
                "received_in_window": round(got),
                "received_fraction_of_sent": got / sent if sent else None,
                "cpu_s_per_1k_heartbeats": cpu / got * 1000 if got > 0 else None,
                "us_per_heartbeat": cpu / got * 1e6 if got > 0 else None,
                "counting": counting[name],
            }
        machine = [b - a for a, b in zip(s0["machine"], s1["machine"], strict=True)]
        self.result["others"] = {
            "crossbar": {
                "cpu_s": s1["cpu"]["crossbar"] - s0["cpu"]["crossbar"],
                "cpu_cores": (s1["cpu"]["crossbar"] - s0["cpu"]["crossbar"]) / window,
                "processes": len(procstat.group_pids(self.router.pid)),
            },
            "generators": {
                "cpu_s": s1["cpu"]["generators"] - s0["cpu"]["generators"],
                "cpu_cores": (s1["cpu"]["generators"] - s0["cpu"]["generators"]) / window,
            },
            "harness": {
                "cpu_s": s1["harness"] - s0["harness"],
                "cpu_cores": (s1["harness"] - s0["harness"]) / window,
            },
            "machine_busy_fraction": machine[0] / max(machine[1], 1e-9),
            "machine_cores": os.cpu_count(),
        }
        ours = sum(s1["cpu"][k] - s0["cpu"][k] for k in s1["cpu"]) + s1["harness"] - s0["harness"]
        # Busy cores not used by any process of this run: someone else's load on the machine.
        self.result["others"]["unaccounted_cores"] = (machine[0] - ours) / window
        self.result["timeline"] = report.timeline(samples)
        ex_mem = procstat.memory(self.exporter.pid)
        ops = self.n * self.args.ops
        rss, idle = ex_mem.get("rss"), self.result["exporter"]["rss_idle_bytes"] or 0
        self.result["exporter"].update(
            {
                "rss_bytes": rss,
                "rss_per_operation_bytes": rss / ops if rss else None,
                "rss_growth_per_operation_bytes": (rss - idle) / ops if rss else None,
            }
        )

    def measure_scrapes(self) -> None:
        args, ex = self.args, self.exporter
        latencies: list[float] = []
        burst: list[float] = []
        cpu0, t0 = procstat.cpu_seconds(ex.pid), time.time()
        deadline = t0 + args.scrapes + args.burst + SCRAPE_PHASE_GRACE
        last = None
        for k in range(args.scrapes + args.burst):
            if time.time() > deadline:
                self.result["warnings"].append(
                    f"scrapes took too long: {args.scrapes + args.burst - k} of them skipped"
                )
                break
            if k < args.scrapes:
                scrape.sleep_until(t0 + k)
            last = scrape.scrape(ex.metrics_url, timeout=scrape.TIMEOUT)
            (latencies if k < args.scrapes else burst).append(last.latency)
            self.connected_samples.append(last.connected())
        cpu1, t1 = procstat.cpu_seconds(ex.pid), time.time()
        every = latencies + burst
        info: dict[str, Any] = {
            "count": len(every),
            "latencies_s": [round(v, 5) for v in latencies],
            "burst_latencies_s": [round(v, 5) for v in burst],
            "median_s": statistics.median(every) if every else None,
            "p99_s": percentile(every, 99),
            "max_s": max(every, default=None),
            "compressed": True,
        }
        if last is not None:
            info["bytes_gzip"] = last.wire_bytes
            info["bytes_text"] = last.text_bytes
            info["series"] = last.series()
        # What the scrapes cost the exporter: its CPU in this phase less what heartbeats cost.
        exporter = self.result["subjects"]["exporter"]
        if every and exporter["us_per_heartbeat"] is not None:
            rate = exporter["received_in_window"] / self.window
            spent = (cpu1 - cpu0) - exporter["us_per_heartbeat"] * 1e-6 * rate * (t1 - t0)
            # A difference of two noisy numbers: can come out below 0 when scrapes are cheap.
            info["cpu_s_per_scrape_estimate"] = max(spent / len(every), 0.0)
        self.result["exporter"]["scrape"] = info
        mem = procstat.memory(ex.pid)
        self.result["exporter"]["rss_after_scrapes_bytes"] = mem.get("rss")
        self.result["exporter"]["rss_peak_bytes"] = mem.get("peak_rss")

    def drain_and_count(self) -> None:
        load, ex = self.load, self.exporter
        load.quit()
        quit_at = time.time()
        time.sleep(0.3)  # a tick in progress finishes
        sent = load.sent

        def counts() -> tuple[float, ...]:
            metrics = scrape.scrape(ex.metrics_url, compressed=False, timeout=scrape.TIMEOUT)
            subscribed = (sub.received for sub in self.subscribers.values())
            return (metrics.heartbeats_total() or 0.0, *subscribed)

        previous, changed_at = counts(), time.time()
        while time.time() < quit_at + DRAIN_TIMEOUT and time.time() - changed_at < 1.0:
            time.sleep(0.25)
            now = counts()
            if now != previous:
                previous, changed_at = now, time.time()
        received = dict(zip(["exporter", *self.subscribers], previous, strict=True))
        self.result["load"].update(
            {
                "sent_total": sent,
                "skipped_total": load.total(shm.SKIPPED),
                "publish_errors": load.total(shm.PUBLISH_ERRORS),
                "generator_session_losses": load.total(shm.GEN_LOSSES),
                "drain_s": changed_at - quit_at,
                "drain_timed_out": time.time() - changed_at < 1.0,
            }
        )
        for name, got in received.items():
            self.result["subjects"][name].update(
                {
                    "sent_total": sent,
                    "received_total": int(got),
                    "received_fraction_of_sent_total": got / sent if sent else None,
                }
            )

    # -- connection state, warnings ---------------------------------------------------------

    def finish(self) -> None:
        """Connection state of the subjects (before they are stopped) and warnings."""
        subjects = self.result["subjects"]
        if self.exporter is not None:
            losses = self.exporter.lost_router()
            subjects.setdefault("exporter", {}).update(
                {
                    "alive": self.exporter.alive(),
                    "exit_code": self.exporter.exit_code(),
                    "session_losses": losses,
                    "stayed_connected": self.exporter.alive()
                    and losses == 0
                    and all(self.connected_samples),
                }
            )
            self.result["exporter"]["false_down_agents"] = sorted(self.false_down)
        for name, sub in self.subscribers.items():
            subjects.setdefault(name, {}).update(
                {
                    "alive": sub.alive(),
                    "exit_code": sub.exit_code(),
                    "joins": sub.joins,
                    "session_losses": sub.losses,
                    "stayed_connected": sub.alive() and sub.losses == 0 and sub.joins == 1,
                }
            )
        self.result["warnings"].extend(report.warnings(self.result))
