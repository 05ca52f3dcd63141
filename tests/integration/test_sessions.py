"""Operation sessions from real OCS agents on a real router: how runs end (failed, crashed,
error, succeeded), a running process's data timestamp, that the exporter only ever asks
``status`` (the agent's own log and sessions tell), and that an agent that never answers
costs timed-out calls and holds up no heartbeat."""

from __future__ import annotations

import math
import time

import pytest

import testbed
from exporter.wamp.calls import CALL_TIMEOUT
from tests.support.agents import actions, start_crashy, start_mute, start_watched

INTERVAL = 1.0  # --collector.sessions.interval: short, so that refreshes come quickly
OUTCOMES = ("succeeded", "failed", "crashed", "error")


@pytest.fixture(scope="module")
def live(bed):
    """A FakeDataAgent, a CrashyAgent and one exporter with sessions and durations on."""
    started = [bed.start_agent("sess-fake"), start_crashy(bed, "sess-crashy")]
    exporter = bed.start_exporter(
        *("--collector.sessions.interval", f"{INTERVAL:g}s", "--collector.sessions.durations")
    )
    started.append(exporter)
    try:
        for agent in ("sess-fake", "sess-crashy"):
            exporter.wait_metric("ocs_agent_up", 1, instance_id=agent)
        yield bed, exporter
    finally:
        testbed.stop_processes(started)


def wait_sample(exporter, name: str, check, what: str, timeout: float = 30, **labels: str):
    """Scrape until ``check(value)`` holds for ``name{labels}``; return that scrape."""

    def scraped():
        metrics = exporter.metrics()
        value = metrics.get(name, **labels)
        return metrics if value is not None and check(value) else None

    return testbed.wait_for(scraped, timeout, f"{name}{labels} {what}")


def runs(metrics, agent: str, op: str) -> dict[str, float | None]:
    return {
        outcome: metrics.get("ocs_op_runs_total", instance_id=agent, operation=op, outcome=outcome)
        for outcome in OUTCOMES
    }


def test_a_task_returning_false_is_a_failed_run_with_its_start_and_end(live):
    bed, exporter = live
    before = time.time()
    reply = bed.client("sess-fake").delay_task(delay=0.5, succeed=False)
    assert reply.session["success"] is False
    labels = {"instance_id": "sess-fake", "operation": "delay_task"}
    metrics = wait_sample(
        exporter, "ocs_op_runs_total", lambda v: v == 1, "== 1", outcome="failed", **labels
    )
    assert runs(metrics, "sess-fake", "delay_task") == dict.fromkeys(OUTCOMES, 0) | {"failed": 1}
    start = metrics.get("ocs_op_session_start_timestamp_seconds", **labels)
    end = metrics.get("ocs_op_session_end_timestamp_seconds", **labels)
    assert before - 1 < start < end < time.time() and end - start >= 0.5
    assert math.isclose(start, reply.session["start_time"], abs_tol=1e-3)
    assert metrics.get("ocs_op_session_duration_seconds_count", **labels) == 1
    assert metrics.get("ocs_op_session_last_message_timestamp_seconds", **labels) >= end


def test_a_running_process_data_timestamp_moves_and_a_stop_ends_it_succeeded(live):
    bed, exporter = live
    client = bed.client("sess-fake")
    labels = {"instance_id": "sess-fake", "operation": "acq"}
    assert client.acq.start().status == 0
    first = wait_sample(exporter, "ocs_op_data_timestamp_seconds", bool, "present", **labels)
    stamp = first.get("ocs_op_data_timestamp_seconds", **labels)
    assert first.get("ocs_op_session_end_timestamp_seconds", **labels) is None  # running
    # The op code stays RUNNING: only the interval's refreshes can move the timestamp.
    wait_sample(exporter, "ocs_op_data_timestamp_seconds", lambda v: v > stamp, "moved", **labels)
    assert abs(stamp - time.time()) < 30
    client.acq.stop()
    assert client.acq.wait(timeout=20).session["status"] == "done"
    metrics = wait_sample(
        exporter, "ocs_op_runs_total", lambda v: v == 1, "== 1", outcome="succeeded", **labels
    )
    assert runs(metrics, "sess-fake", "acq") == dict.fromkeys(OUTCOMES, 0) | {"succeeded": 1}
    end = metrics.get("ocs_op_session_end_timestamp_seconds", **labels)
    assert end > metrics.get("ocs_op_session_start_timestamp_seconds", **labels)


def test_the_count_process_last_update_is_its_data_timestamp(live):
    bed, exporter = live
    client = bed.client("sess-fake")
    assert client.count.start().status == 0
    try:
        labels = {"instance_id": "sess-fake", "operation": "count"}
        metrics = wait_sample(exporter, "ocs_op_data_timestamp_seconds", bool, "present", **labels)
        session = client.count.status().session
        assert "last_update" in session["data"] and "timestamp" not in session["data"]
        stamp = metrics.get("ocs_op_data_timestamp_seconds", **labels)
        assert abs(stamp - time.time()) < 10
    finally:
        client.count.stop()


def test_a_crash_and_a_bad_parameter_are_crashed_and_error_runs(live):
    bed, exporter = live
    client = bed.client("sess-crashy")
    crashed, bad = client.crash(), client.bad_param()
    assert crashed.session["messages"][-2][1].startswith("CRASH:")
    assert bad.session["messages"][-2][1].startswith("ERROR:")
    for op, outcome in (("crash", "crashed"), ("bad_param", "error")):
        labels = {"instance_id": "sess-crashy", "operation": op}
        metrics = wait_sample(
            exporter, "ocs_op_runs_total", lambda v: v == 1, "== 1", outcome=outcome, **labels
        )
        assert runs(metrics, "sess-crashy", op) == dict.fromkeys(OUTCOMES, 0) | {outcome: 1}
        assert metrics.get("ocs_op_session_end_timestamp_seconds", **labels) is not None


def test_the_exporter_never_starts_or_stops_anything(live):
    """The agent's own behaviour: after many status refreshes of a running process and
    changes of another operation, the only starts and stops it saw are the test's, its
    process runs on in the same session, and the operations nobody started have none."""
    bed, exporter = live
    agent = start_watched(bed, "sess-guard")
    try:
        exporter.wait_metric("ocs_agent_up", 1, instance_id="sess-guard")
        client = bed.client("sess-guard")
        started = client.acq.start().session
        client.delay_task(delay=0, succeed=True)
        labels = {"instance_id": "sess-guard", "operation": "acq"}
        stamps = set()

        def refreshed(times: int) -> bool:
            stamps.add(exporter.metrics().get("ocs_op_data_timestamp_seconds", **labels))
            return len(stamps - {None}) > times

        # acq's data timestamp moves with every answer the interval's refreshes get.
        testbed.wait_for(lambda: refreshed(5), 30, "five refreshes of acq", interval=0.2)
        assert actions(agent) == ["start called for acq", "start called for delay_task"]
        now = client.acq.status().session
        assert (now["session_id"], now["status"]) == (started["session_id"], "running")
        for op in (client.count, client.set_heartbeat):
            assert op.status().session == {}  # never run: no session
        codes = exporter.metrics()
        assert codes.get("ocs_op_code", instance_id="sess-guard", operation="acq") == 3
        assert codes.get("ocs_op_code", instance_id="sess-guard", operation="count") == 1
    finally:
        testbed.stop_process(agent)


def test_an_agent_that_never_answers_costs_timed_out_calls_and_delays_no_heartbeat(live):
    bed, exporter = live
    before = exporter.metrics().get("ocs_exporter_session_queries_total", result="timeout")
    mute = start_mute(bed, "sess-mute", {"acq": 3})
    began = time.monotonic()
    try:
        exporter.wait_metric("ocs_agent_up", 1, instance_id="sess-mute")
        fake = {"instance_id": "sess-fake"}
        first = exporter.metrics().get("ocs_agent_last_heartbeat_timestamp_seconds", **fake)
        watched = time.monotonic()
        # Two call timeouts long, the other agent is up and heard every second throughout.
        while time.monotonic() - began < 2 * CALL_TIMEOUT + 2:
            metrics = exporter.metrics()
            assert metrics.get("ocs_agent_up", **fake) == 1
            assert metrics.get("ocs_agent_heartbeat_gap_seconds", **fake) < 2.5
            time.sleep(0.5)  # a scrape every half second, as a fast Prometheus would
        elapsed = time.monotonic() - began
        last = exporter.metrics().get("ocs_agent_last_heartbeat_timestamp_seconds", **fake)
        assert last - first > time.monotonic() - watched - 3
        timeouts = exporter.metrics().get("ocs_exporter_session_queries_total", result="timeout")
        # Every exporter on the shared router asks it (the other modules' exporters run on
        # too), and none sends anything but status.
        calls = mute.calls()
        assert calls and all(call == [["status", "acq"], {}] for call in calls), calls
        # This exporter: one call out at a time for the operation, each ended by the
        # timeout; at most one per interval, and here one per timeout, since the interval
        # is shorter. The other agents of this module answer, so its timeouts are the mute
        # agent's calls (but the one still out).
        assert 1 <= timeouts - before <= elapsed / CALL_TIMEOUT + 1
    finally:
        testbed.stop_process(mute)
