"""Data feeds on the session router: FakeDataAgent's false_temperatures and testbed.feeder's
feeds as the exporter exports them, a live flood of malformed feed messages, the bound on
feeds per agent, and --no-collector.feeds. One exporter per variant, shared by the module."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import testbed
from testbed import feedflood
from tests.support.agents import start_feeder

ACQ = "feedacq1"  # a FakeDataAgent running acq: false_temperatures, about once a second
FEEDER = "feeder2"  # readings (recorded, fresh time 7.5 s) and chatter (not recorded)
TEMPS = {"instance_id": ACQ, "feed": "false_temperatures"}
READINGS = {"instance_id": FEEDER, "feed": "readings"}
CHATTER = {"instance_id": FEEDER, "feed": "chatter"}


@pytest.fixture(scope="module")
def agents(bed):
    acq = bed.start_agent(ACQ, "--mode", "acq")
    feeder = start_feeder(bed, FEEDER, "--fresh-time", "7.5", "--rate", "2", "--startup")
    try:
        yield bed
    finally:
        testbed.stop_processes([acq, feeder])


@pytest.fixture(scope="module")
def exporter(agents):
    exporter = agents.start_exporter()
    yield exporter
    exporter.stop()


def feed_samples(metrics, instance_id: str | None = None) -> list:
    """The samples of the ocs_feed_* families (of one agent's feeds)."""
    return [
        s
        for s in metrics.samples
        if s.name.startswith("ocs_feed_")
        and (instance_id is None or s.labels.get("instance_id") == instance_id)
    ]


def scrape_when(exporter, check, what: str):
    """The first scrape for which ``check(metrics)`` holds (within 30 s)."""

    def scraped():
        metrics = exporter.metrics()
        return metrics if check(metrics) else None

    return testbed.wait_for(scraped, 30, what)


def flowing(exporter, labels: dict, more: int = 2):
    """The scrape once the feed of ``labels`` has counted ``more`` messages after now."""
    start = exporter.metrics().get("ocs_feed_messages_total", **labels) or 0
    return scrape_when(
        exporter,
        lambda m: (m.get("ocs_feed_messages_total", **labels) or 0) >= start + more,
        f"{more} more messages of {labels}",
    )


def test_false_temperatures_is_counted_and_its_time_follows(exporter):
    first = flowing(exporter, TEMPS)
    then = flowing(exporter, TEMPS)
    assert then.get("ocs_feed_messages_total", **TEMPS) > first.get(
        "ocs_feed_messages_total", **TEMPS
    )
    last = then.get("ocs_feed_last_message_timestamp_seconds", **TEMPS)
    assert last > first.get("ocs_feed_last_message_timestamp_seconds", **TEMPS)
    assert abs(time.time() - last) < 10
    assert then.get("ocs_feed_info", record="true", **TEMPS) == 1
    assert then.get("ocs_feed_fresh_time_seconds", **TEMPS) is None  # it declares none
    # The heartbeat feed keeps its own metrics and is not repeated among the feeds.
    assert not [s for s in feed_samples(then) if s.labels.get("feed") == "heartbeat"]
    assert then.get("ocs_agent_up", instance_id=ACQ) == 1


def test_a_declared_fresh_time_is_exported_and_an_unrecorded_feed_says_so(exporter):
    metrics = flowing(exporter, CHATTER)
    assert metrics.get("ocs_feed_fresh_time_seconds", **READINGS) == 7.5
    assert metrics.get("ocs_feed_info", record="true", **READINGS) == 1
    assert metrics.get("ocs_feed_info", record="false", **CHATTER) == 1
    assert metrics.get("ocs_feed_fresh_time_seconds", **CHATTER) is None
    assert {s.labels["feed"] for s in feed_samples(metrics, FEEDER)} == {"readings", "chatter"}


def counters(metrics, family: str, reasons) -> dict[str, float]:
    return {reason: metrics.get(family, reason=reason) or 0 for reason in reasons}


def test_a_flood_of_malformed_feed_messages_is_counted_and_harmless(agents, exporter):
    repeat = 20
    kinds = feedflood.malformed(victim=ACQ)
    reasons = list(kinds)
    before = exporter.metrics()
    invalid = "ocs_exporter_feed_messages_invalid_total"
    ignored = "ocs_exporter_feed_messages_ignored_total"
    invalid_before = counters(before, invalid, reasons)
    ignored_before = counters(before, ignored, ["unknown_agent"])
    start = before.get("ocs_agent_start_timestamp_seconds", instance_id=ACQ)
    command = [sys.executable, "-m", "testbed.feedflood", "--url", agents.router.url]
    command += ["--realm", testbed.REALM, "--victim", ACQ, "--strangers", "3"]
    command += ["--repeat", str(repeat)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    sent = json.loads(result.stdout.splitlines()[-1])
    assert sent == {**{k: len(v) * repeat for k, v in kinds.items()}, "unknown_agent": 4 * repeat}

    def counted():
        metrics = exporter.metrics()
        now_invalid = counters(metrics, invalid, reasons)
        done = {r: now_invalid[r] - invalid_before[r] for r in reasons}
        strangers = counters(metrics, ignored, ["unknown_agent"])["unknown_agent"]
        done["unknown_agent"] = strangers - ignored_before["unknown_agent"]
        return metrics if done == sent else None

    after = testbed.wait_for(counted, 30, f"every flood message counted by reason: {sent}")
    # The real agents' state is intact: the victim keeps its one feed, its session and its
    # heartbeats, and every real feed keeps counting.
    assert {s.labels["feed"] for s in feed_samples(after, ACQ)} == {"false_temperatures"}
    assert after.get("ocs_agent_start_timestamp_seconds", instance_id=ACQ) == start
    assert after.get("ocs_agent_restarts_total", instance_id=ACQ) == before.get(
        "ocs_agent_restarts_total", instance_id=ACQ
    )
    assert counters(after, "ocs_exporter_heartbeats_invalid_total", ["malformed"]) == counters(
        before, "ocs_exporter_heartbeats_invalid_total", ["malformed"]
    )
    for labels in (TEMPS, READINGS, CHATTER):
        flowing(exporter, labels)
    assert exporter.metrics().get("ocs_agent_up", instance_id=ACQ) == 1
    assert exporter.proc.poll() is None
    rejected = [line for line in exporter.log().splitlines() if "rejected feed message" in line]
    # Logged once a minute per agent named, and once for those naming none.
    assert len(rejected) == 2, rejected
    assert sum(f"from observatory.{ACQ} (" in line for line in rejected) == 1, rejected
    assert sum("from an unknown agent (" in line for line in rejected) == 1, rejected


def test_feeds_beyond_the_bound_are_refused_and_counted(agents):
    exporter = agents.start_exporter("--max-feeds-per-agent", "1")
    try:
        ignored = "ocs_exporter_feed_messages_ignored_total"
        metrics = scrape_when(
            exporter,
            lambda m: m.get(ignored, reason="too_many_feeds"),
            "a second feed of the feeder refused",
        )
        assert len({s.labels["feed"] for s in feed_samples(metrics, FEEDER)}) == 1
        flowing(exporter, TEMPS)  # an agent with one feed is not touched by the bound
    finally:
        exporter.stop()


def test_without_feeds_only_heartbeats_are_exported(agents):
    exporter = agents.start_exporter("--no-collector.feeds")
    try:
        metrics = exporter.wait_metric("ocs_agent_up", 1, instance_id=FEEDER)
        metrics = exporter.wait_metric("ocs_agent_up", 1, instance_id=ACQ)
        assert metrics.get("ocs_op_code", instance_id=ACQ, operation="acq") == 3
        beat = "ocs_agent_last_heartbeat_timestamp_seconds"
        before = metrics.get(beat, instance_id=FEEDER)
        after = scrape_when(
            exporter,
            lambda m: m.get(beat, instance_id=FEEDER) > before,
            "another heartbeat of the feeder",
        )
        assert feed_samples(after) == []
        assert not after.get("ocs_exporter_feed_messages_total")
        assert "subscribed to observatory..feeds.heartbeat" in exporter.log()
    finally:
        exporter.stop()


def settled_count(exporter, labels: dict) -> float:
    """The feed's message count once two scrapes agree between which its agent heartbeated
    for at least 3 s: the feed has stopped."""
    beat = {"instance_id": labels["instance_id"]}
    seen = [exporter.metrics()]

    def agree():
        metrics = exporter.metrics()
        first = seen[0]
        waited = metrics.get("ocs_agent_last_heartbeat_timestamp_seconds", **beat) - first.get(
            "ocs_agent_last_heartbeat_timestamp_seconds", **beat
        )
        if waited < 3:
            return None
        count = metrics.get("ocs_feed_messages_total", **labels)
        if count == first.get("ocs_feed_messages_total", **labels):
            return metrics
        seen[0] = metrics  # still moving: start again from here
        return None

    return testbed.wait_for(agree, 30, f"{labels} to stand still").get(
        "ocs_feed_messages_total", **labels
    )


def test_stopping_acq_stops_its_feed(agents, exporter):
    """Last: it leaves acq stopped."""
    flowing(exporter, TEMPS)
    client = agents.client(ACQ)
    client.acq.stop()
    assert client.acq.wait(timeout=20).session["status"] == "done"
    count = settled_count(exporter, TEMPS)
    metrics = exporter.metrics()
    last = metrics.get("ocs_feed_last_message_timestamp_seconds", **TEMPS)
    assert metrics.get("ocs_feed_messages_total", **TEMPS) == count
    assert time.time() - last >= 3
    assert metrics.get("ocs_agent_up", instance_id=ACQ) == 1
    assert metrics.get("ocs_feed_info", record="true", **TEMPS) == 1  # the feed stays known
