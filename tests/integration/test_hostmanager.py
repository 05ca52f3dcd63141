"""A real HostManager (the ``ocs`` package's) running real FakeDataAgents as its children on
the session router, and the exporter reading it.

The rig: the HostManager's ``manager`` session lists its children with the targets of its
site file; a child with target up runs (its own process, in the HostManager's group) and
heartbeats; one with target down does not run; stopping the HostManager leaves no child.
"""

from __future__ import annotations

import os

import pytest

import testbed
from tests.support.agents import child_states, start_hostmanager

MANAGER = "hm16"
UP, DOWN, FLIP = "hm16-up", "hm16-down", "hm16-flip"
CHILDREN = {UP: "up", DOWN: "down", FLIP: "up"}
INTERVAL = 2  # s: --collector.sessions.interval, the exporter asks `manager` this often


@pytest.fixture(scope="module")
def live(bed):
    """The HostManager with its three children, and one exporter on the bed's site file
    (which lists none of them: what it expects of them comes from the HostManager)."""
    started: list[testbed.Process] = []
    try:
        manager = start_hostmanager(bed, MANAGER, CHILDREN)
        started.append(manager)
        exporter = bed.start_exporter("--collector.sessions.interval", f"{INTERVAL}s")
        started.append(exporter)
        for child in (UP, FLIP):
            wait_child(bed, child, "up")
        yield bed, manager, exporter
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


def running(manager, child: str) -> list[int]:
    """The pids of ``child``'s processes."""
    return [
        pid for pid, cmd in manager.child_pids().items() if f"--instance-id {child} " in cmd + " "
    ]


def test_the_manager_session_lists_its_children_with_their_site_file_targets(live):
    bed, _, _ = live
    states = child_states(bed, MANAGER)
    assert set(states) == set(CHILDREN)
    for child, target in CHILDREN.items():
        assert states[child]["target_state"] == target
        assert states[child]["agent_class"] == "FakeDataAgent"
        assert states[child]["stability"] == 1.0


def test_a_child_with_target_up_runs_and_heartbeats(live):
    _, manager, exporter = live
    (pid,) = running(manager, UP)
    assert pid in manager.child_pids()
    exporter.wait_metric("ocs_agent_up", 1, instance_id=UP)
    assert "ocs: starting" in manager.child_log(UP)


def test_a_child_with_target_down_does_not_run(live):
    bed, manager, exporter = live
    assert wait_child(bed, DOWN, "down")["target_state"] == "down"
    assert running(manager, DOWN) == []
    metrics = exporter.wait_metric("ocs_agent_up", 1, instance_id=UP)
    assert metrics.get("ocs_agent_up", instance_id=DOWN) in (None, 0)


def test_stopping_the_hostmanager_stops_its_children(bed):
    manager = start_hostmanager(bed, "hm16-stop", {"hm16-stop-a": "up"})
    try:
        testbed.wait_for(lambda: running(manager, "hm16-stop-a"), 30, "hm16-stop-a to start")
        (pid,) = running(manager, "hm16-stop-a")
        assert os.getpgid(pid) == manager.pid  # in the HostManager's group
    finally:
        manager.stop()
    assert not manager.alive()
    assert pid not in manager.child_pids() and manager.child_pids() == {}
