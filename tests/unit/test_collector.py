import contextlib

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter import __version__
from exporter.heartbeat import REASONS, InvalidHeartbeat
from exporter.render.collector import ExporterCollector
from exporter.state import AgentState
from tests.support.fakes import FakeClock, heartbeat
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
