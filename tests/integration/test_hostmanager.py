"""A real HostManager (the ``ocs`` package's) running real FakeDataAgents as its children on
the session router, and the exporter reading it, with Prometheus running the shipped rules.

The rig: the HostManager's ``manager`` session lists its children with the targets of its
site file; a child with target up runs (its own process, in the HostManager's group) and
heartbeats; one with target down does not run; stopping the HostManager leaves no child.

The exporter reads the bed's site file, which lists none of the children: whatever it
expects of them comes from the HostManager. A child of a class no plugin provides (the
ghost) has target up and never runs: OcsAgentMissing fires for it, and not for the child
with target down, which has been listed as long.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

import testbed
from exporter.hostmanager import MANAGER_REASONS
from tests.support.agents import child_states, start_hostmanager
from tests.support.monitoring import alerting, rules_with_hold_times
from tests.support.webhook import WebhookReceiver

MANAGER = "hm16"
UP, DOWN, FLIP, GHOST = "hm16-up", "hm16-down", "hm16-flip", "hm16-ghost"
CHILDREN = {UP: "up", DOWN: "down", FLIP: "up", GHOST: "up"}
CLASSES = {GHOST: "NoSuchAgent"}  # no OCS plugin: the HostManager lists it, cannot run it
INTERVAL = 3  # s: --collector.sessions.interval, the exporter asks `manager` this often
HOLD = 2  # s: the `for:` of OcsAgentMissing, OcsAgentDown (5m, 1m in the rules) and
# OcsHostManagerConfigError (5m)
# What "within one sessions interval" allows on top of it: the HostManager's loop, which
# puts a new target in its session data up to 1 s after `update`, the call and a scrape;
# less than another interval.
MARGIN = 2


@pytest.fixture(scope="module")
def live(bed, tmp_path_factory):
    """The HostManager with its four children, one exporter on the bed's site file, and
    Prometheus with Alertmanager running the shipped rules (holds shortened)."""
    workdir = tmp_path_factory.mktemp("hostmanager")
    started: list[testbed.Process] = []
    try:
        manager = start_hostmanager(bed, MANAGER, CHILDREN, CLASSES)
        started.append(manager)
        exporter = bed.start_exporter("--collector.sessions.interval", f"{INTERVAL}s")
        started.append(exporter)
        alerts = ("OcsAgentMissing", "OcsAgentDown", "OcsHostManagerConfigError")
        holds = dict.fromkeys(alerts, f"{HOLD}s")
        rules = rules_with_hold_times(holds, workdir / "ocs-rules.yml")
        for child in (UP, FLIP):
            wait_child(bed, child, "up")
        with (
            WebhookReceiver() as webhook,
            alerting(workdir, exporter.port, rules, webhook.url) as (prom, _),
        ):
            yield bed, manager, exporter, prom
    finally:
        for process in reversed(started):
            process.stop()


def wait_child(bed, child: str, action: str, timeout: float = 30) -> dict:
    """Wait until the HostManager says ``child``'s next_action is ``action``."""
    return testbed.wait_for(
        lambda: (
            (state := child_states(bed, MANAGER).get(child))
            and state["next_action"] == action
            and state
        ),
        timeout,
        f"{child} {action} by the HostManager",
    )


def expected(metrics: testbed.Metrics, child: str) -> str | None:
    """The ``expected`` label of the child's ocs_agent_info."""
    found = [
        s.labels["expected"]
        for s in metrics.samples
        if s.name == "ocs_agent_info" and s.labels.get("instance_id") == child
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


def wait_managed(exporter, child: str, target_up: int, timeout: float = 30) -> testbed.Metrics:
    """Scrape until the exporter says the HostManager's target for ``child`` is
    ``target_up`` and its ocs_agent_info agrees."""
    want = {1: "true", 0: "false"}[target_up]

    def check() -> testbed.Metrics | None:
        metrics = exporter.metrics()
        up = metrics.get("ocs_agent_target_up", instance_id=child, manager=MANAGER)
        return metrics if up == target_up and expected(metrics, child) == want else None

    return testbed.wait_for(check, timeout, f"{child} target_up {target_up}, expected {want}")


def alerts_of(prom, alertname: str, child: str) -> list[dict]:
    """``alertname`` alerts of ``child``, pending or firing."""
    return [
        a
        for a in prom.alerts()
        if a["labels"]["alertname"] == alertname and a["labels"].get("instance_id") == child
    ]


def update(bed, *requests: tuple[str, str], reload_config: bool = False) -> None:
    """Call the HostManager's ``update`` task and wait for it to succeed."""
    reply = bed.client(MANAGER).update(requests=list(requests), reload_config=reload_config)
    assert reply.session["success"] is True, reply.session["messages"]


# -- the rig ------------------------------------------------------------------------------


def test_the_manager_session_lists_its_children_with_their_site_file_targets(live):
    bed = live[0]
    states = child_states(bed, MANAGER)
    assert set(states) == set(CHILDREN)
    for child, target in CHILDREN.items():
        assert states[child]["target_state"] == target
        assert states[child]["agent_class"] == CLASSES.get(child, "FakeDataAgent")
    assert states[GHOST]["operable"] is False and states[UP]["stability"] == 1.0


def test_a_child_with_target_up_runs_and_heartbeats(live):
    _, manager, exporter, _ = live
    (pid,) = manager.running(UP)
    assert os.getpgid(pid) == manager.pid  # launched by the HostManager, in its group
    exporter.wait_metric("ocs_agent_up", 1, instance_id=UP)
    assert "ocs: starting" in manager.child_log(UP)


def test_a_child_with_target_down_does_not_run(live):
    bed, manager, exporter, _ = live
    assert wait_child(bed, DOWN, "down")["target_state"] == "down"
    assert manager.running(DOWN) == []
    metrics = exporter.wait_metric("ocs_agent_up", 1, instance_id=UP)
    assert metrics.get("ocs_agent_up", instance_id=DOWN) in (None, 0)


def test_stopping_the_hostmanager_stops_its_children(bed):
    manager = start_hostmanager(bed, "hm16-stop", {"hm16-stop-a": "up"})
    try:
        testbed.wait_for(lambda: manager.running("hm16-stop-a"), 30, "hm16-stop-a to start")
        (pid,) = manager.running("hm16-stop-a")
    finally:
        manager.stop()
    assert not manager.alive()
    assert pid not in manager.child_pids() and manager.child_pids() == {}


# -- the exporter's view ------------------------------------------------------------------


def test_a_child_with_target_up_is_expected_as_its_manager_says(live):
    _, _, exporter, _ = live
    metrics = wait_managed(exporter, UP, 1)
    assert metrics.get("ocs_agent_up", instance_id=UP) == 1
    assert metrics.get("ocs_agent_managers", instance_id=UP) == 1
    assert metrics.get("ocs_agent_stability", instance_id=UP, manager=MANAGER) == 1
    hostname = socket.gethostname()  # what the child's get_api says
    testbed.wait_for(
        lambda: exporter.metrics().get("ocs_agent_info", instance_id=UP, hostname=hostname),
        30,
        f"{UP}'s hostname {hostname}",
    )
    for reason in MANAGER_REASONS:  # a real HostManager's data is all valid
        invalid = metrics.get("ocs_exporter_manager_data_invalid_total", reason=reason)
        assert invalid in (None, 0), reason


def test_a_child_with_target_down_is_not_expected_and_raises_no_alert(live):
    _, manager, exporter, prom = live
    metrics = wait_managed(exporter, DOWN, 0)
    assert metrics.get("ocs_agent_up", instance_id=DOWN) in (None, 0)
    assert manager.running(DOWN) == []
    # The ghost has target up and never came: the same rule fires for it, so it would have
    # fired for the down child, listed since the same moment, if its target did not count.
    wait_managed(exporter, GHOST, 1)
    testbed.wait_for(
        lambda: any(a["state"] == "firing" for a in alerts_of(prom, "OcsAgentMissing", GHOST)),
        60,
        f"OcsAgentMissing firing for {GHOST}",
    )
    assert prom.query(f'ocs:agent_info:max{{instance_id="{DOWN}", expected="false"}}')
    for alertname in ("OcsAgentMissing", "OcsAgentDown"):
        assert alerts_of(prom, alertname, DOWN) == []


def test_update_flips_a_target_and_the_exporter_follows_within_one_interval(live, record_property):
    bed, manager, exporter, prom = live
    wait_managed(exporter, FLIP, 1)
    exporter.wait_metric("ocs_agent_up", 1, instance_id=FLIP)
    try:
        update(bed, (FLIP, "down"))
        asked = time.monotonic()
        wait_managed(exporter, FLIP, 0, timeout=30)
        delay = time.monotonic() - asked
        record_property("summary", f"target down seen {delay:.1f} s after update")
        assert delay <= INTERVAL + MARGIN, delay
        # The HostManager stops the child; down on purpose, it is no OcsAgentDown (Prometheus
        # has seen it down past the hold).
        wait_child(bed, FLIP, "down")
        exporter.wait_metric("ocs_agent_up", 0, instance_id=FLIP)
        quiet = f'max_over_time(ocs:agent_up:max{{instance_id="{FLIP}"}}[{HOLD + 2}s]) == 0'
        testbed.wait_for(lambda: prom.query(quiet), 30, f"{FLIP} down past the hold")
        assert alerts_of(prom, "OcsAgentDown", FLIP) == []
        assert manager.running(FLIP) == []
    finally:
        update(bed, (FLIP, "up"))
    wait_managed(exporter, FLIP, 1)
    exporter.wait_metric("ocs_agent_up", 1, instance_id=FLIP)  # joined: it read its site file


def test_a_site_file_the_hostmanager_cannot_parse_is_a_parse_failure(live):
    bed, manager, exporter, prom = live
    labels = {"instance_id": MANAGER, "file": "[SCF]"}
    exporter.wait_metric("ocs_hostmanager_config_parse_success", 1, **labels)
    before = time.time()
    manager.write_site_file("hub: [\n  not: yaml")
    try:
        update(bed, reload_config=True)  # the installed HostManager reports it, lives on
        metrics = exporter.wait_metric("ocs_hostmanager_config_parse_success", 0, **labels)
        stamp = metrics.get("ocs_hostmanager_config_parse_timestamp_seconds", **labels)
        assert before <= stamp <= time.time()
        assert manager.alive()
        assert metrics.get("ocs_agent_up", instance_id=MANAGER) == 1
        assert metrics.get("ocs_agent_target_up", instance_id=UP, manager=MANAGER) == 1
        testbed.wait_for(
            lambda: [
                a
                for a in alerts_of(prom, "OcsHostManagerConfigError", MANAGER)
                if a["state"] == "firing" and a["labels"]["file"] == "[SCF]"
            ],
            30,
            "OcsHostManagerConfigError firing",
        )
    finally:
        manager.write_site_file()
        update(bed, reload_config=True)
    exporter.wait_metric("ocs_hostmanager_config_parse_success", 1, **labels)
