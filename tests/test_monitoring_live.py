"""The monitoring bundle end to end: real agents, exporter, Prometheus and Alertmanager."""

from __future__ import annotations

import pytest

from exporter import testbed
from tests.monitoring import alertmanager_config, prometheus_config, rules_with_hold_times
from tests.webhook import WebhookReceiver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(bed, tmp_path_factory):
    """Agents 'mon1' (acq running, delay_task FAILED) and 'mon2' (heartbeat toggled by tests),
    one exporter, Prometheus with the shipped rules, Alertmanager with the shipped routing."""
    workdir = tmp_path_factory.mktemp("monitoring")
    bed.start_agent("mon1", "--mode", "acq", "--sample-rate", "1")
    bed.start_agent("mon2")
    exporter = bed.start_exporter()
    with WebhookReceiver() as webhook:
        am = testbed.Alertmanager(workdir / "am", alertmanager_config(webhook.url))
        rules = rules_with_hold_times({"OcsAgentDown": "2s"}, workdir / "ocs-rules.yml")
        prom = testbed.Prometheus(
            workdir / "prom",
            prometheus_config([f"127.0.0.1:{exporter.port}"], f"127.0.0.1:{am.port}", rules),
        )
        try:
            am.start()
            prom.start()
            yield exporter, prom, am, webhook
        finally:
            prom.stop()
            am.stop()


def test_agent_down_alert_reaches_the_webhook_and_resolves(bed, stack):
    _, prom, _, webhook = stack
    testbed.wait_for(
        lambda: prom.query('ocs_agent_up{instance_id="mon2"} == 1'), 60, "mon2 up in Prometheus"
    )
    client = bed.client("mon2")
    client.set_heartbeat(heartbeat=False)
    try:
        alert = webhook.wait_for_alert("firing", 60, alertname="OcsAgentDown", instance_id="mon2")
    finally:
        client.set_heartbeat(heartbeat=True)
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
