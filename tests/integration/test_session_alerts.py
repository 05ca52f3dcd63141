"""The session alerts end to end, on real runs: real OCS agents, the exporter, Prometheus
with the shipped rules and Alertmanager with the shipped routing, to a webhook.

A real task that raises fires OcsTaskCrashed; one called badly (outcome error) does not. A
real FakeDataAgent's acq sampling every 20 s keeps RUNNING while its data timestamp stands
still between samples (stamped at the start of its 20 s window, so always 20 s old or more):
with OcsProcessStale's threshold rewritten to 15 s and the exporter reading running
sessions every 2 s, it fires, while the same agent's count (a timestamp every second) and an
acq that never writes a timestamp do not.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

import testbed
from tests.support.agents import start_crashy
from tests.support.bed import EXPORTER_FLAGS
from tests.support.monitoring import RULES, alerting
from tests.support.timing import Settings, timing
from tests.support.webhook import WebhookReceiver

STALE_AFTER = 15  # s: above the sessions interval plus a scrape (the timing check refuses less)
SESSION_FLAGS = ("--collector.sessions.interval", "2s")
# What the bound leaves out: the HTTP hops (scrape, Prometheus to Alertmanager, Alertmanager
# to the webhook), the status call, and waiting for a core on a busy shared test machine.
ALLOWANCE = 2.0


def rules_with_stale_threshold(seconds: int, dest: Path) -> Path:
    """The shipped rule file with OcsProcessStale's threshold (its `> 600`) set to
    ``seconds``; nothing else."""
    data = yaml.safe_load(RULES.read_text())
    (rule,) = [r for g in data["groups"] for r in g["rules"] if r.get("alert") == "OcsProcessStale"]
    expr = rule["expr"].replace("> 600", f"> {seconds}")
    assert expr.count(f"> {seconds}") == 1, f"no `> 600` threshold in {rule['expr']!r}"
    rule["expr"] = expr
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


@pytest.fixture(scope="module")
def stack(bed, tmp_path_factory):
    """Agents crash1 (CrashyAgent), slow1 (acq sampling every 20 s, count) and nodata1 (acq
    that never samples, count); one exporter asking running sessions every 2 s; Prometheus
    with the shipped rules but a 15 s stale threshold; Alertmanager with the shipped
    routing, to a webhook. All stopped after the module (the bed would stop the agents and
    the exporter only at the end of the session)."""
    workdir = tmp_path_factory.mktemp("session-alerts")
    started: list[testbed.Process] = []
    try:
        started.append(start_crashy(bed, "crash1"))
        started.append(bed.start_agent("slow1", "--mode", "acq", "--sample-rate", "0.05"))
        started.append(bed.start_agent("nodata1", "--mode", "acq", "--sample-rate", "0.000001"))
        exporter = bed.start_exporter(*SESSION_FLAGS)
        started.append(exporter)
        rules = rules_with_stale_threshold(STALE_AFTER, workdir / "ocs-rules.yml")
        with (
            WebhookReceiver() as webhook,
            alerting(workdir, exporter.port, rules, webhook.url) as (prom, am),
        ):
            yield prom, am, webhook
    finally:
        testbed.stop_processes(started)


def settings(prom, am) -> Settings:
    """What the bound depends on in this stack: its configs, rules and exporter flags."""
    flags = (*EXPORTER_FLAGS, *SESSION_FLAGS)
    return Settings.of(prom.config, am.config, flags, prom.config_path.parent)


def firing(prom, alertname: str, instance_id: str) -> list[dict]:
    return [
        a
        for a in prom.alerts()
        if a["labels"]["alertname"] == alertname
        and a["labels"].get("instance_id") == instance_id
        and a["state"] == "firing"
    ]


def test_a_crashed_task_fires_and_a_task_called_badly_does_not(bed, stack, record_property):
    prom, am, webhook = stack
    bound = timing("OcsTaskCrashed", settings(prom, am)).bound
    client = bed.client("crash1")
    client.bad_param()
    testbed.wait_for(
        lambda: prom.query(
            'ocs_op_runs_total{instance_id="crash1", operation="bad_param", outcome="error"} == 1'
        ),
        60,
        "crash1's bad_param counted as an error run in Prometheus",
    )
    # The task raises at once: its first session the exporter sees is the crash.
    client.crash()
    ended = time.monotonic()
    arrived, alert = webhook.wait_for_arrival(
        "firing", 60, alertname="OcsTaskCrashed", instance_id="crash1"
    )
    delay = arrived - ended
    record_property(
        "summary",
        f"OcsTaskCrashed notified {delay:.1f} s after crash1's crash task ended; bound "
        f"{bound:g} s (+ {ALLOWANCE:g} s allowance) for this test's settings",
    )
    assert delay <= bound + ALLOWANCE
    labels = alert["labels"]
    assert (labels["operation"], labels["agent_class"]) == ("crash", "CrashyAgent")
    assert (labels["severity"], labels["scope"]) == ("warning", "agent")
    assert "outcome" not in labels and "instance" not in labels
    assert "raised an exception in 1 run(s)" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("#ocstaskcrashed")
    # The error run was in Prometheus before the crash, so the evaluation that fired the
    # crash saw it too: no alert for it, nor for anything else of crash1.
    (crashed,) = firing(prom, "OcsTaskCrashed", "crash1")
    assert crashed["labels"]["operation"] == "crash"
    assert {
        a["labels"]["operation"]
        for a in webhook.alerts()
        if a["labels"]["alertname"] == "OcsTaskCrashed"
    } == {"crash"}


def test_a_process_whose_data_stands_still_fires_and_fresh_ones_do_not(stack):
    prom, am, webhook = stack
    assert timing("OcsProcessStale", settings(prom, am)).other == (("data age", STALE_AFTER),)
    alert = webhook.wait_for_alert("firing", 90, alertname="OcsProcessStale", instance_id="slow1")
    labels = alert["labels"]
    assert (labels["operation"], labels["agent_class"]) == ("acq", "FakeDataAgent")
    assert (labels["severity"], labels["scope"]) == ("warning", "agent")
    assert "is RUNNING, but the newest timestamp" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("#ocsprocessstale")
    # Their data was read, and is fresh (count) or absent (acq never sampled).
    fresh = prom.query('time() - ocs_op_data_timestamp_seconds{operation="count"} < 15')
    assert {s["metric"]["instance_id"] for s in fresh} >= {"slow1", "nodata1"}
    assert not prom.query('ocs_op_data_timestamp_seconds{instance_id="nodata1", operation="acq"}')
    (stale,) = firing(prom, "OcsProcessStale", "slow1")
    assert stale["labels"]["operation"] == "acq"
    assert not firing(prom, "OcsProcessStale", "nodata1")
    stale_alerts = [
        a["labels"] for a in webhook.alerts() if a["labels"]["alertname"] == "OcsProcessStale"
    ]
    assert {(a["instance_id"], a["operation"]) for a in stale_alerts} == {("slow1", "acq")}
