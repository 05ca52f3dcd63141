import contextlib

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter import __version__
from exporter.feeds import FEED_REASONS, InvalidFeed
from exporter.heartbeat import REASONS, InvalidHeartbeat
from exporter.render.collector import ExporterCollector
from exporter.sessions import INVALID_REASONS, OUTCOMES
from exporter.state import AgentState
from testbed.feedflood import feed_payload
from testbed.reference import AgentCollector
from tests.support.fakes import FakeClock, heartbeat, session_answer
from tests.support.metrics import make

LABELS = {
    "agent_address": "observatory.fake1",
    "instance_id": "fake1",
    "agent_class": "FakeDataAgent",
}


def test_agent_series():
    clock, state, registry = make()
    state.ingest(heartbeat("fake1", {"acq": 3, "delay_task": 6}))
    assert registry.get_sample_value("ocs_agent_up", LABELS) == 1
    assert registry.get_sample_value("ocs_agent_last_heartbeat_timestamp_seconds", LABELS) == (
        clock.wall
    )
    assert registry.get_sample_value("ocs_op_code", {**LABELS, "operation": "acq"}) == 3
    assert registry.get_sample_value("ocs_op_code", {**LABELS, "operation": "delay_task"}) == 6


def test_expired_agent_series():
    clock, state, registry = make()
    state.ingest(heartbeat("fake1", {"acq": 3}))
    wall = clock.wall
    clock.advance(10)
    assert registry.get_sample_value("ocs_agent_up", LABELS) == 0
    assert registry.get_sample_value("ocs_op_code", {**LABELS, "operation": "acq"}) == 7
    assert registry.get_sample_value("ocs_agent_last_heartbeat_timestamp_seconds", LABELS) == wall


def test_removed_operation_disappears_after_restart():
    _, state, registry = make()
    state.ingest(heartbeat("fake1", {"acq": 3, "gone": 1}, session_id="1"))
    state.ingest(heartbeat("fake1", {"acq": 3}, session_id="2"))
    assert registry.get_sample_value("ocs_op_code", {**LABELS, "operation": "gone"}) is None


def test_exporter_series():
    _, state, registry = make(connected=False)
    state.ingest(heartbeat())
    for bad in (None, [0, heartbeat()[1]]):
        with contextlib.suppress(InvalidHeartbeat):
            state.ingest(bad)
    assert registry.get_sample_value("ocs_exporter_crossbar_connected") == 0
    assert registry.get_sample_value("ocs_exporter_heartbeats_total") == 3
    for reason in REASONS:
        expected = 1 if reason in ("malformed", "legacy") else 0
        value = registry.get_sample_value(
            "ocs_exporter_heartbeats_invalid_total", {"reason": reason}
        )
        assert value == expected, reason
    assert registry.get_sample_value("ocs_exporter_build_info", {"version": __version__}) == 1


def test_openmetrics_output_parses():
    _, state, registry = make()
    state.ingest(heartbeat("fake1"))
    text = generate_openmetrics(registry).decode()
    assert text.endswith("# EOF\n")
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"ocs_agent_up", "ocs_op_code", "ocs_exporter_heartbeats"} <= names


def test_tracking_series():
    clock = FakeClock()
    state = AgentState(
        "observatory", 5.0, clock.monotonic, clock.time, forget_after=60, max_agents=2
    )
    registry = CollectorRegistry()
    registry.register(ExporterCollector(state, lambda: True))
    for name in ("a", "b", "c"):
        with contextlib.suppress(Exception):
            state.ingest(heartbeat(name))
    assert registry.get_sample_value("ocs_exporter_agents") == 2
    assert registry.get_sample_value("ocs_exporter_heartbeats_refused_total") == 1
    clock.advance(61)
    state.snapshot()
    assert registry.get_sample_value("ocs_exporter_agents") == 0
    assert registry.get_sample_value("ocs_exporter_agents_forgotten_total") == 2


def test_session_series_and_query_counters():
    _, state, registry = make()
    state.ingest(heartbeat("fake1", {"acq": 3, "delay_task": 6}))
    sid = state.session_of("observatory.fake1")
    running = session_answer("acq", 0, data={"fields": {"timestamp": 1_800_000_004.0}})
    state.set_session("observatory.fake1", sid, "acq", running)
    failed = session_answer("delay_task", 1, "done", False, "Delay task failed on purpose.")
    state.set_session("observatory.fake1", sid, "delay_task", failed)
    state.set_session("observatory.fake1", sid, "delay_task", [-1, "No task", {}])
    state.session_query_failed("timeout")
    acq, task = {**LABELS, "operation": "acq"}, {**LABELS, "operation": "delay_task"}
    get = registry.get_sample_value
    assert get("ocs_op_session_start_timestamp_seconds", acq) == 1_800_000_000.0
    assert get("ocs_op_session_end_timestamp_seconds", acq) is None  # still running
    assert get("ocs_op_session_end_timestamp_seconds", task) == 1_800_000_001.0
    assert get("ocs_op_session_last_message_timestamp_seconds", task) == 1_800_000_001.0
    assert get("ocs_op_data_timestamp_seconds", acq) == 1_800_000_004.0
    assert get("ocs_op_data_timestamp_seconds", task) is None
    for outcome in OUTCOMES:
        assert get("ocs_op_runs_total", {**acq, "outcome": outcome}) == 0
        assert get("ocs_op_runs_total", {**task, "outcome": outcome}) == (outcome == "failed")
    assert get("ocs_op_session_duration_seconds_count", task) is None  # durations are off
    for result, count in {"ok": 2, "invalid": 1, "timeout": 1, "error": 0}.items():
        assert get("ocs_exporter_session_queries_total", {"result": result}) == count
    for reason in INVALID_REASONS:
        count = get("ocs_exporter_session_answers_invalid_total", {"reason": reason})
        assert count == (reason == "unknown_operation"), reason


def test_session_duration_histogram_when_kept():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, durations=(1.0, 60.0))
    registry = CollectorRegistry()
    registry.register(AgentCollector(state))
    state.ingest(heartbeat("fake1", {"delay_task": 6}))
    sid = state.session_of("observatory.fake1")
    done = session_answer("delay_task", 1, "done", True, end_time=1_800_000_030.0)
    state.set_session("observatory.fake1", sid, "delay_task", done)
    task = {**LABELS, "operation": "delay_task"}
    get = registry.get_sample_value
    buckets = [get("ocs_op_session_duration_seconds_bucket", {**task, "le": le}) for le in LE]
    assert buckets == [0, 1, 1]
    assert get("ocs_op_session_duration_seconds_count", task) == 1
    assert get("ocs_op_session_duration_seconds_sum", task) == 30.0


LE = ("1.0", "60.0", "+Inf")


def test_feed_series_and_counters():
    clock, state, registry = make()
    state.ingest(heartbeat("fake1", {"acq": 3}))
    session = state.session_of("observatory.fake1")

    def message(name, agent="observatory.fake1", **kwargs):
        return feed_payload(agent, name, {}, session_id=session, **kwargs)

    state.ingest_feed(message("readings", record=True, agg_params={"fresh_time": 60}))
    clock.advance(2)
    state.ingest_feed(message("readings", record=True, agg_params={"fresh_time": 60}))
    state.ingest_feed(message("chatter"))
    state.ingest_feed(message("readings", agent="observatory.nobody"))
    for bad in (None, message("bad name"), message("x", record="yes")):
        with contextlib.suppress(InvalidFeed):
            state.ingest_feed(bad)
    readings, chatter = {**LABELS, "feed": "readings"}, {**LABELS, "feed": "chatter"}
    get = registry.get_sample_value
    assert get("ocs_feed_info", {**readings, "record": "true"}) == 1
    assert get("ocs_feed_info", {**chatter, "record": "false"}) == 1
    assert get("ocs_feed_fresh_time_seconds", readings) == 60.0
    assert get("ocs_feed_fresh_time_seconds", chatter) is None
    assert get("ocs_feed_messages_total", readings) == 2
    assert get("ocs_feed_messages_total", chatter) == 1
    assert get("ocs_feed_last_message_timestamp_seconds", readings) == clock.wall
    assert get("ocs_exporter_feed_messages_total") == 7
    assert get("ocs_exporter_heartbeats_total") == 1  # the heartbeat feed is not among them
    for reason in FEED_REASONS:
        count = get("ocs_exporter_feed_messages_invalid_total", {"reason": reason})
        assert count == {"malformed": 1, "bad_feed_name": 1, "bad_field": 1}.get(reason, 0)
    for reason, count in {"unknown_agent": 1, "too_many_feeds": 0}.items():
        assert get("ocs_exporter_feed_messages_ignored_total", {"reason": reason}) == count


def test_hostmanager_series_and_invalid_data_counter():
    _, state, registry = make()
    state.ingest(heartbeat("fake1", {"acq": 3}))
    hm = {"agent_address": "observatory.hm1", "instance_id": "hm1", "agent_class": "HostManager"}
    state.ingest(heartbeat("hm1", {"manager": 3}, "1795518400.5", agent_class="HostManager"))
    answer = session_answer("manager", 1, data={})
    answer[2]["data"] = {
        "child_states": [
            {
                "instance_id": "fake1",
                "agent_class": "FakeDataAgent",
                "target_state": "down",
                "next_action": "up",
                "stability": 0.4,
            }
        ],
        "config_parse_status": {"[SCF]": [False, 1_800_000_001.5, "syntax error"]},
        "orphans": {"30027f37e0ef4b": {}},
    }
    state.set_session("observatory.hm1", "1795518400.5", "manager", answer)
    bad = session_answer("manager", 1, data={"orphans": []})
    state.set_session("observatory.hm1", "1795518400.5", "manager", bad)
    get = registry.get_sample_value
    managed = {**LABELS, "manager": "hm1"}
    assert get("ocs_agent_target_up", managed) == 0.0
    assert get("ocs_agent_stability", managed) == 0.4
    assert get("ocs_agent_managers", LABELS) == 1.0
    assert get("ocs_agent_managers", hm) is None
    info = {**LABELS, "host": "", "expected": "false", "hostname": ""}
    assert get("ocs_agent_info", info) == 1.0
    assert get("ocs_hostmanager_config_parse_success", {**hm, "file": "[SCF]"}) == 0.0
    assert get("ocs_hostmanager_config_parse_timestamp_seconds", {**hm, "file": "[SCF]"}) == (
        1_800_000_001.5
    )
    assert get("ocs_hostmanager_orphans", hm) == 1.0
    assert get("ocs_exporter_manager_data_invalid_total", {"reason": "bad_orphans"}) == 1.0
    assert get("ocs_exporter_manager_data_invalid_total", {"reason": "bad_child"}) == 0.0
