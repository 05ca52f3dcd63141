"""OcsFeedStale end to end, on real feeds: real OCS agents, the exporter, Prometheus with the
shipped rules (its hold and the default fresh time shortened) and Alertmanager with the
shipped routing, to a webhook.

testbed.feeder's publish keeps RUNNING while stalled: its recorded feed ``readings``
(fresh time 3 s, declared) stops, and fires; its unrecorded ``chatter`` stops too, and does
not. A FakeDataAgent whose acq was stopped on purpose (its count still running) has a
recorded false_temperatures that stopped with it: it does not fire.
"""

from __future__ import annotations

import pytest
import yaml

import testbed
from tests.support.agents import start_feeder
from tests.support.monitoring import alerting, rules_with_hold_times
from tests.support.webhook import WebhookReceiver

HOLD = 5  # s: OcsFeedStale's `for:`, 2m in the shipped rules
DEFAULT_FRESH = 4  # s: the fresh time of a feed that declares none, 180 s in the rules
STALLED, STOPPED = "stall1", "stopped1"


def rules_with_default_fresh_time(seconds: int, dest) -> None:
    """``dest`` (a copy of the shipped rules) with the default fresh time, the `+ 180` of
    ocs:feed_fresh_time_seconds, set to ``seconds``; nothing else."""
    data = yaml.safe_load(dest.read_text())
    (rule,) = [
        r
        for g in data["groups"]
        for r in g["rules"]
        if r.get("record") == "ocs:feed_fresh_time_seconds"
    ]
    assert rule["expr"].count("+ 180") == 1, rule["expr"]
    rule["expr"] = rule["expr"].replace("+ 180", f"+ {seconds}")
    dest.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def stack(bed, tmp_path_factory):
    """stall1 (a feeder publishing from the start, fresh time 3 s), stopped1 (a FakeDataAgent
    running acq and count); one exporter; Prometheus and Alertmanager with the shipped
    bundle, OcsFeedStale's hold and default fresh time shortened. All stopped after the
    module."""
    workdir = tmp_path_factory.mktemp("feed-alerts")
    started: list[testbed.Process] = []
    try:
        started.append(start_feeder(bed, STALLED, "--fresh-time", "3", "--rate", "2", "--startup"))
        started.append(bed.start_agent(STOPPED, "--mode", "acq"))
        exporter = bed.start_exporter()
        started.append(exporter)
        rules = rules_with_hold_times({"OcsFeedStale": f"{HOLD}s"}, workdir / "ocs-rules.yml")
        rules_with_default_fresh_time(DEFAULT_FRESH, rules)
        with (
            WebhookReceiver() as webhook,
            alerting(workdir, exporter.port, rules, webhook.url) as (prom, _),
        ):
            yield prom, webhook
    finally:
        testbed.stop_processes(started)


def alerts_of(prom, instance_id: str) -> list[dict]:
    """OcsFeedStale alerts of the agent, pending or firing."""
    return [
        a
        for a in prom.alerts()
        if a["labels"]["alertname"] == "OcsFeedStale"
        and a["labels"].get("instance_id") == instance_id
    ]


def test_a_stalled_feed_fires_and_one_stopped_with_its_process_does_not(bed, stack):
    prom, webhook = stack
    flowing = ((STALLED, "readings"), (STALLED, "chatter"), (STOPPED, "false_temperatures"))
    for instance_id, feed in flowing:
        query = (
            f'time() - ocs_feed_last_message_timestamp_seconds{{instance_id="{instance_id}", '
            f'feed="{feed}"}} < 3'
        )
        testbed.wait_for(lambda q=query: prom.query(q), 60, f"{feed} of {instance_id} flowing")
    assert not alerts_of(prom, STALLED) and not alerts_of(prom, STOPPED)
    stopped = bed.client(STOPPED)
    stopped.acq.stop()
    assert stopped.acq.wait(timeout=20).session["status"] == "done"
    assert bed.client(STALLED).stall().status == 0

    alert = webhook.wait_for_alert("firing", 60, alertname="OcsFeedStale", instance_id=STALLED)
    labels = alert["labels"]
    assert (labels["feed"], labels["agent_class"]) == ("readings", "FeederAgent")
    assert (labels["severity"], labels["scope"]) == ("warning", "agent")
    assert "instance" not in labels
    assert alert["annotations"]["runbook_url"].endswith("#ocsfeedstale")
    # The stopped feed has been silent past its (default) fresh time and the hold: it would
    # have fired by now if its stopped process did not silence it.
    silent = DEFAULT_FRESH + HOLD + 3
    query = (
        f'time() - ocs_feed_last_message_timestamp_seconds{{instance_id="{STOPPED}", '
        f'feed="false_temperatures"}} > {silent}'
    )
    testbed.wait_for(lambda: prom.query(query), 60, f"false_temperatures silent for {silent} s")
    assert prom.query(f'ocs_op_code{{instance_id="{STOPPED}", operation="count"}} == 3')
    assert not alerts_of(prom, STOPPED)
    assert {a["labels"]["feed"] for a in alerts_of(prom, STALLED)} == {"readings"}
    stale = [a["labels"] for a in webhook.alerts() if a["labels"]["alertname"] == "OcsFeedStale"]
    assert {(a["instance_id"], a["feed"]) for a in stale} == {(STALLED, "readings")}
