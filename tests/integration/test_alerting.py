"""The monitoring bundle end to end: real agents, exporter, Prometheus and Alertmanager."""

from __future__ import annotations

import time

import pytest
import yaml

import testbed
from tests.support.bed import EXPORTER_FLAGS
from tests.support.dashboards import (
    ALL_VARIABLES,
    dashboard_queries,
    hostmanager_stand_in,
    substitute,
)
from tests.support.monitoring import alerting, prometheus_config, rules_with_hold_times
from tests.support.timing import Settings, timing
from tests.support.webhook import WebhookReceiver

HOLDS = {"OcsAgentDown": "2s", "OcsOperationFailed": "1s"}


def monitoring_rules(dest):
    """The shipped rules with HOLDS, plus series of a HostManager managing mon1 (no
    HostManager runs here: its panels need data too)."""
    rules = rules_with_hold_times(HOLDS, dest)
    data = yaml.safe_load(rules.read_text())
    data["groups"].append(hostmanager_stand_in("mon1"))
    rules.write_text(yaml.safe_dump(data, sort_keys=False))
    return rules


# What the bound leaves out: the HTTP hops (scrape, Prometheus to Alertmanager, Alertmanager
# to the webhook) and the time the processes wait for a core on a busy shared test machine.
ALLOWANCE = 2.0


@pytest.fixture(scope="module")
def stack(bed, tmp_path_factory):
    """Agents 'mon1' (acq running, delay_task FAILED) and 'mon2' (heartbeat toggled by tests),
    one exporter, Prometheus with the shipped rules, Alertmanager with the shipped routing."""
    workdir = tmp_path_factory.mktemp("monitoring")
    bed.start_agent("mon1", "--mode", "acq", "--sample-rate", "1")
    bed.start_agent("mon2")
    exporter = bed.start_exporter()
    rules = monitoring_rules(workdir / "ocs-rules.yml")
    with (
        WebhookReceiver() as webhook,
        alerting(workdir, exporter.port, rules, webhook.url) as (
            prom,
            am,
        ),
    ):
        yield exporter, prom, am, webhook


@pytest.fixture(scope="module")
def replicas(bed, stack, tmp_path_factory):
    """A second exporter on the same router, and a second Prometheus scraping both replicas
    (same job, two targets) with the shipped rules; it sends no alerts."""
    exporter, _, _, _ = stack
    workdir = tmp_path_factory.mktemp("replicas")
    replica = bed.start_exporter()
    rules = monitoring_rules(workdir / "ocs-rules.yml")
    config = prometheus_config(
        [f"127.0.0.1:{exporter.port}", f"127.0.0.1:{replica.port}"], "127.0.0.1:1", rules
    )
    del config["alerting"]
    prom = testbed.Prometheus(workdir / "prom", config)
    try:
        prom.start()
        testbed.wait_for(prom.targets_up, 30, "both replicas scraped")
        yield prom
    finally:
        prom.stop()


def failed_op_in(prom) -> None:
    """Wait until Prometheus has mon1's delay_task FAILED and enough samples for rates."""
    testbed.wait_for(
        lambda: (
            prom.query('ocs_op_code{instance_id="mon1", operation="delay_task"} == 6')
            and prom.query("rate(ocs_exporter_heartbeats_total[15s]) > 0")
        ),
        60,
        "mon1's FAILED delay_task and heartbeat rates in Prometheus",
    )


DASHBOARD_VARIABLES = {
    **ALL_VARIABLES,
    "agent_class": "FakeDataAgent",
    "agent": "mon1",
    "__rate_interval": "15s",
}


def test_every_dashboard_query_returns_data(bed, stack):
    _, prom, _, _ = stack
    bed.client("mon1").delay_task(delay=0, succeed=False)
    failed_op_in(prom)
    queries = dashboard_queries()
    assert len(queries) > 20
    empty = [
        (uid, title, substitute(expr, DASHBOARD_VARIABLES))
        for uid, title, expr in queries
        if not prom.query(substitute(expr, DASHBOARD_VARIABLES))
    ]
    assert not empty, "queries without data:\n" + "\n".join(map(str, empty))


def _without_instance(result: list[dict], values: bool) -> list:
    rows = []
    for sample in result:
        labels = tuple(sorted((k, v) for k, v in sample["metric"].items() if k != "instance"))
        rows.append((labels, sample["value"][1] if values else None))
    return sorted(rows)


def test_two_replicas_change_no_agent_panel_and_double_no_alert(bed, stack, replicas):
    _, single, _, _ = stack
    bed.client("mon1").delay_task(delay=0, succeed=False)
    failed_op_in(single)
    failed_op_in(replicas)
    # Panels only: variable queries go through label_values(), which drops duplicates.
    agent_queries = [
        q
        for q in dashboard_queries()
        if q[0] in ("ocs-overview", "ocs-agent") and not q[1].startswith("variable ")
    ]
    assert len(agent_queries) > 10
    for uid, title, expr in agent_queries:
        query = substitute(expr, DASHBOARD_VARIABLES)
        # "seconds since" values differ with scrape timing, and so do feed message counts,
        # which grow between any two scrapes; their series must still match.
        values = "time()" not in query and "ocs_feed_messages_total" not in query

        def same(query=query, values=values) -> bool:
            one = _without_instance(single.query(query), values)
            two = _without_instance(replicas.query(query), values)
            return one == two and one

        testbed.wait_for(same, 30, f"{uid} / {title}: same result with one and two replicas")

    def failed_alerts(prom) -> list[dict]:
        return [
            a
            for a in prom.alerts()
            if a["labels"]["alertname"] == "OcsOperationFailed"
            and a["labels"]["instance_id"] == "mon1"
            and a["state"] == "firing"
        ]

    for prom in (single, replicas):
        (alert,) = testbed.wait_for(lambda p=prom: failed_alerts(p), 30, "OcsOperationFailed")
        assert alert["labels"]["operation"] == "delay_task"
        assert "instance" not in alert["labels"]


def test_agent_down_alert_reaches_the_webhook_and_resolves(bed, stack, record_property):
    _, prom, am, webhook = stack
    # The bound worked out as docs/alerts.md's table is, from this stack's own settings.
    settings = Settings.of(prom.config, am.config, EXPORTER_FLAGS, prom.config_path.parent)
    bound = timing("OcsAgentDown", settings).bound
    testbed.wait_for(
        lambda: prom.query('ocs_agent_up{instance_id="mon2"} == 1'), 60, "mon2 up in Prometheus"
    )
    client = bed.client("mon2")
    client.set_heartbeat(heartbeat=False)
    # The task has run when the call returns: the last heartbeat was sent before this.
    stopped = time.monotonic()
    try:
        arrived, alert = webhook.wait_for_arrival(
            "firing", 60, alertname="OcsAgentDown", instance_id="mon2"
        )
    finally:
        client.set_heartbeat(heartbeat=True)
    delay = arrived - stopped
    record_property(
        "summary",
        f"OcsAgentDown notified {delay:.1f} s after mon2's heartbeat stopped; bound "
        f"{bound:g} s (+ {ALLOWANCE:g} s allowance) for this test's settings",
    )
    assert delay <= bound + ALLOWANCE
    labels = alert["labels"]
    assert labels["agent_address"] == "observatory.mon2"
    assert labels["agent_class"] == "FakeDataAgent"
    assert labels["severity"] == "critical"
    assert alert["annotations"]["summary"]
    assert "mon2" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("#ocsagentdown")
    webhook.wait_for_alert("resolved", 60, alertname="OcsAgentDown", instance_id="mon2")
    # The agent that kept heartbeating never alerted.
    assert not [
        a
        for a in webhook.alerts()
        if a["labels"].get("instance_id") == "mon1" and a["labels"]["alertname"] == "OcsAgentDown"
    ]
