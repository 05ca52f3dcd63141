"""Detection, a phase of a benchmark step: how soon the exporter shows stopped agents down."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

from benchmarks import scrape

if TYPE_CHECKING:
    from benchmarks.step import Step

POLL_INTERVAL = 0.05  # seconds between detection polls
DETECTION_GRACE = 20.0  # seconds past the agent timeout before giving up


def detect_targets(n_agents: int, count: int, shards: int) -> list[int]:
    """``count`` agent indices spread evenly over 0..n_agents-1 and over the generators."""
    count = max(0, min(count, n_agents // 2))
    return sorted({min(n_agents - 1, (k * n_agents) // count + k % shards) for k in range(count)})


def measure(step: Step) -> None:
    """Stop the heartbeats of a few agents; poll ``/metrics`` until each shows
    ``ocs_agent_up 0``; latency from each agent's last heartbeat actually sent."""
    args, ex, load = step.args, step.exporter, step.load
    targets = detect_targets(step.n, args.detect, len(load.generators))
    names = {i: f"bench-{i}" for i in targets}
    target_names = set(names.values())
    stopped_at = time.time()
    load.pause(targets)
    # None can be down before its timeout has run from its last heartbeat, which was up to
    # one --period before the stop (a heartbeat racing the stop only makes this earlier).
    earliest = min([load.last_sent(i) for i in targets], default=stopped_at)
    scrape.sleep_until(max(earliest, stopped_at - args.period) + args.agent_timeout - 1.5)
    found: dict[int, tuple[float, float]] = {}
    deadline = stopped_at + args.agent_timeout + DETECTION_GRACE
    polls = disconnected = 0
    false_down: set[str] = set()
    while len(found) < len(targets) and time.time() < deadline:
        s = scrape.scrape(ex.metrics_url, timeout=scrape.TIMEOUT, until=scrape.AFTER_UP)
        polls += 1
        disconnected += not s.connected()
        step.connected_samples.append(s.connected())
        up = s.agents_up()
        for i in targets:
            if i not in found and up.get(names[i]) == 0.0:
                found[i] = (s.started, s.finished)
        false_down.update(
            k
            for k, v in up.items()
            if v == 0.0 and k.startswith("bench-") and k not in target_names
        )
        scrape.sleep_until(s.started + POLL_INTERVAL)
    step.false_down |= false_down
    # Simulated agents that still heartbeat seen down (agents the exporter knows from the
    # site file, such as the registry, do not count), or no router: "down" says nothing.
    invalid = []
    if false_down:
        invalid.append(f"{len(false_down)} heartbeating agents were down too")
    if disconnected:
        invalid.append(f"the exporter was disconnected in {disconnected} of {polls} polls")
    agents = []
    for i in targets:
        last_sent = load.last_sent(i)
        entry: dict[str, Any] = {"instance_id": names[i], "last_sent": last_sent}
        if i in found and last_sent > 0:
            started, finished = found[i]
            entry["detected_after_s"] = finished - last_sent
            entry["scrape_started_after_s"] = started - last_sent
        agents.append(entry)
    latencies = [a["detected_after_s"] for a in agents if "detected_after_s" in a]
    step.result["exporter"]["detection"] = {
        "agent_timeout_s": args.agent_timeout,
        "stopped": len(targets),
        "detected": len(latencies),
        "polls": polls,
        "valid": not invalid,
        "invalid_because": "; ".join(invalid) or None,
        # Heartbeats reached the exporter late: detection includes the router's backlog.
        "includes_delivery_backlog": step.result["subjects"]["exporter"][
            "received_fraction_of_sent"
        ]
        < 0.98,
        "gave_up_after_s": None if len(found) == len(targets) else deadline - stopped_at,
        "median_s": statistics.median(latencies) if latencies else None,
        "min_s": min(latencies, default=None),
        "max_s": max(latencies, default=None),
        "agents": agents,
    }
