"""Expected agents, restarts, transitions, heartbeat gaps and operation types (unit)."""

from __future__ import annotations

import math

import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.config import ConfigError, expected_agents, settings_from_args
from exporter.heartbeat import start_time
from exporter.render.exposition import AgentExposition
from exporter.state import AgentState, ExpectedAgent
from exporter.wamp.optypes import op_types_of
from testbed.reference import AgentCollector
from tests.support.fakes import FakeClock, heartbeat
from tests.support.metrics import samples

LABELS = {
    "agent_address": "observatory.fake1",
    "instance_id": "fake1",
    "agent_class": "FakeDataAgent",
}


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def state(clock):
    return AgentState("observatory", 5.0, clock.monotonic, clock.time, forget_after=60)


def registry(state, op_state=False):
    reg = CollectorRegistry()
    reg.register(AgentCollector(state, op_state=op_state))
    return reg


def value(reg, name, **labels):
    return reg.get_sample_value(name, {**LABELS, **labels})


SITE = {
    "hub": {"wamp_server": "ws://h:1/ws", "wamp_realm": "r", "address_root": "observatory"},
    "hosts": {
        "host-a": {
            "agent-instances": [
                {"agent-class": "FakeDataAgent", "instance-id": "fake1"},
                {"agent-class": "FakeDataAgent", "instance-id": "off", "manage": "docker/down"},
                {"agent-class": "FakeDataAgent", "instance-id": "skip", "manage": "ignore"},
            ]
        },
        "host-b": {"agent-instances": [{"agent-class": "Aggregator", "instance-id": "agg"}]},
        "empty-host": None,
    },
}


def test_expected_agents_from_the_site_config():
    agents = {a.instance_id: a for a in expected_agents(SITE, None, None)}
    assert agents["fake1"] == ExpectedAgent("fake1", "FakeDataAgent", "host-a", True)
    assert not agents["off"].expected and not agents["skip"].expected
    assert agents["agg"].host == "host-b" and agents["agg"].expected
    only_b = expected_agents(SITE, None, "host-b")
    assert [a.instance_id for a in only_b] == ["agg"]
    with pytest.raises(ConfigError, match="no such host"):
        expected_agents(SITE, None, "nowhere")


@pytest.mark.parametrize(
    "hosts, message",
    [
        (["h"], "'hosts' is not a mapping"),
        ({"h": {"agent-instances": "x"}}, "agent-instances is not a list"),
        ({"h": {"agent-instances": [{"agent-class": "A"}]}}, "missing 'instance-id'"),
        ({"h": {"agent-instances": ["x"]}}, "is not a mapping"),
    ],
)
def test_bad_host_entries_are_config_errors(tmp_path, hosts, message):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({**SITE, "hosts": hosts}))
    with pytest.raises(ConfigError) as raised:
        settings_from_args(["--site-file", str(path)])
    assert message in str(raised.value)


def test_settings_carry_expected_agents_and_collector_flags(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE))
    s = settings_from_args(["--site-file", str(path), "--site-host", "host-a"])
    assert [a.instance_id for a in s.expected_agents] == ["fake1", "off", "skip"]
    assert s.op_types is True and s.op_state is False
    s = settings_from_args(
        ["--site-file", str(path), "--collector.op-state", "--no-collector.op-types"]
    )
    assert s.op_state is True and s.op_types is False
    with pytest.raises(ConfigError, match=r"--collector\.op-state"):
        settings_from_args(["--site-file", str(path), "--collector.op-state", "maybe"])


def test_configured_agents_are_exported_down_before_any_heartbeat(state):
    state.set_expected(list(expected_agents(SITE, None, None)))
    reg = registry(state)
    labels = {"agent_address": "observatory.agg", "instance_id": "agg", "agent_class": "Aggregator"}
    assert reg.get_sample_value("ocs_agent_up", labels) == 0
    assert (
        reg.get_sample_value(
            "ocs_agent_info", {**labels, "host": "host-b", "expected": "true", "hostname": ""}
        )
        == 1
    )
    assert reg.get_sample_value("ocs_agent_last_heartbeat_timestamp_seconds", labels) is None
    off = {"agent_address": "observatory.off", "instance_id": "off", "agent_class": "FakeDataAgent"}
    assert (
        reg.get_sample_value(
            "ocs_agent_info", {**off, "host": "host-a", "expected": "false", "hostname": ""}
        )
        == 1
    )


def test_heard_agents_not_in_the_site_config_are_unknown_and_configured_ones_never_forgotten(
    state, clock
):
    state.set_expected([ExpectedAgent("fake1", "FakeDataAgent", "h", True)])
    state.ingest(heartbeat("fake1"))
    state.ingest(heartbeat("stray"))
    reg = registry(state)
    stray = {
        "agent_address": "observatory.stray",
        "instance_id": "stray",
        "agent_class": "FakeDataAgent",
    }
    assert (
        reg.get_sample_value(
            "ocs_agent_info", {**stray, "host": "", "expected": "unknown", "hostname": ""}
        )
        == 1
    )
    assert value(reg, "ocs_agent_info", host="h", expected="true", hostname="") == 1
    clock.advance(120)
    assert {a.instance_id for a in state.snapshot().agents} == {"fake1"}


def test_reload_replaces_the_list_and_keeps_heard_agents(state):
    state.set_expected(
        [ExpectedAgent("fake1", "FakeDataAgent", "h", True), ExpectedAgent("gone", "X", "h", True)]
    )
    state.ingest(heartbeat("fake1"))
    state.set_expected([ExpectedAgent("new", "Y", "h2", False)])
    agents = {a.instance_id: a for a in state.snapshot().agents}
    assert set(agents) == {"fake1", "new"}  # 'gone' was never heard
    assert agents["fake1"].expected is None and agents["fake1"].host == ""
    assert agents["new"].expected is False


def test_restarts_and_start_time(state, clock):
    reg = registry(state)
    state.ingest(heartbeat("fake1", session_id="1795518440.5"))
    assert value(reg, "ocs_agent_start_timestamp_seconds") == 1795518440.5
    assert value(reg, "ocs_agent_restarts_total") == 0
    state.ingest(heartbeat("fake1", session_id="1795518440.5"))
    state.ingest(heartbeat("fake1", session_id="1795519000.25"))
    assert value(reg, "ocs_agent_restarts_total") == 1
    assert value(reg, "ocs_agent_start_timestamp_seconds") == 1795519000.25
    state.ingest(heartbeat("fake1", session_id="not-a-time"))
    assert value(reg, "ocs_agent_start_timestamp_seconds") is None
    assert value(reg, "ocs_agent_restarts_total") == 2


@pytest.mark.parametrize(
    "session_id, expected",
    [
        ("1795518440.6412797", 1795518440.6412797),
        ("x", None),
        (None, None),
        ("nan", None),
        ("-1", None),
    ],
)
def test_start_time(session_id, expected):
    assert start_time(session_id) == expected


def test_transitions_count_every_entry_even_between_scrapes(state, clock):
    reg = registry(state)
    state.ingest(heartbeat("fake1", {"delay_task": 1}))
    first = clock.wall
    for code in (2, 3, 6, 2, 3, 5):  # ran, FAILED, ran again, SUCCEEDED: no scrape between
        clock.advance(1)
        state.ingest(heartbeat("fake1", {"delay_task": code}))
    assert value(reg, "ocs_op_transitions_total", operation="delay_task", to="FAILED") == 1
    assert value(reg, "ocs_op_transitions_total", operation="delay_task", to="RUNNING") == 2
    assert value(reg, "ocs_op_transitions_total", operation="delay_task", to="NONE") == 1
    assert value(reg, "ocs_op_transitions_total", operation="delay_task", to="DEGRADED") is None
    assert value(reg, "ocs_op_last_change_timestamp_seconds", operation="delay_task") == first + 6
    clock.advance(1)
    state.ingest(heartbeat("fake1", {"delay_task": 5}))  # unchanged
    assert value(reg, "ocs_op_last_change_timestamp_seconds", operation="delay_task") == first + 6


def test_removed_operations_lose_their_transitions(state):
    reg = registry(state)
    state.ingest(heartbeat("fake1", {"a": 3, "b": 6}, session_id="1"))
    state.ingest(heartbeat("fake1", {"a": 3}, session_id="2"))
    assert value(reg, "ocs_op_transitions_total", operation="b", to="FAILED") is None
    assert value(reg, "ocs_op_transitions_total", operation="a", to="RUNNING") == 1


def test_heartbeat_gap_is_the_longest_recent_gap(state, clock):
    reg = registry(state)
    state.ingest(heartbeat("fake1"))
    for gap in (1, 1, 3.5, 1, 1):
        clock.advance(gap)
        state.ingest(heartbeat("fake1"))
    assert value(reg, "ocs_agent_heartbeat_gap_seconds") == 3.5
    clock.advance(4.2)  # an open gap counts too: a stall in progress
    assert value(reg, "ocs_agent_heartbeat_gap_seconds") == pytest.approx(4.2)
    state.ingest(heartbeat("fake1"))
    for _ in range(31):  # a steady second for 31 s: the old gaps have left the window
        clock.advance(1)
        state.ingest(heartbeat("fake1"))
    assert value(reg, "ocs_agent_heartbeat_gap_seconds") == 1


def test_operation_types(state):
    reg = registry(state)
    state.ingest(heartbeat("fake1", {"acq": 3, "delay_task": 1}, session_id="1"))
    state.set_op_types("observatory.fake1", "1", {"acq": "process", "delay_task": "task"})
    assert value(reg, "ocs_op_info", operation="acq", op_type="process") == 1
    assert value(reg, "ocs_op_info", operation="delay_task", op_type="task") == 1
    state.set_op_types("observatory.fake1", "old-session", {"acq": "task"})  # stale: ignored
    assert value(reg, "ocs_op_info", operation="acq", op_type="process") == 1
    state.ingest(heartbeat("fake1", {"acq": 1}, session_id="2"))  # restarted: ask again
    assert value(reg, "ocs_op_info", operation="acq", op_type="process") is None
    state.op_types_failed()
    assert state.snapshot_counters().op_type_queries == {"ok": 2, "failed": 1}


def test_op_types_of_a_get_api_answer():
    api = {
        "agent_class": "FakeDataAgent",
        "tasks": [["set_heartbeat", {}, {}], ["delay_task", {}, {}]],
        "processes": [["acq", {"status": "running"}, {"op_type": "process"}], ["count", {}, {}]],
    }
    assert op_types_of(api) == {
        "set_heartbeat": "task",
        "delay_task": "task",
        "acq": "process",
        "count": "process",
    }
    assert op_types_of({"tasks": []}) is None
    assert op_types_of("nope") is None


def test_ingest_says_when_op_types_are_needed(state):
    assert state.ingest(heartbeat("fake1", session_id="1")).new_session is True
    assert state.ingest(heartbeat("fake1", session_id="1")) is None
    assert state.ingest(heartbeat("fake1", {"x": 3}, session_id="1")).new_session is False
    assert state.ingest(heartbeat("fake1", session_id="2")).new_session is True


def test_op_state_stateset(state):
    reg = registry(state, op_state=True)
    state.ingest(heartbeat("fake1", {"acq": 3}))
    states = {
        name: reg.get_sample_value(
            "ocs_op_state", {**LABELS, "operation": "acq", "ocs_op_state": name}
        )
        for name in ("NONE", "RUNNING", "FAILED", "EXPIRED")
    }
    assert states == {"NONE": 0, "RUNNING": 1, "FAILED": 0, "EXPIRED": 0}
    assert (
        registry(state).get_sample_value(
            "ocs_op_state", {**LABELS, "operation": "acq", "ocs_op_state": "RUNNING"}
        )
        is None
    )


def test_fast_renderer_matches_the_reference_on_everything(state, clock):
    state.set_expected(list(expected_agents(SITE, None, None)))
    for op_state in (False, True):
        exposition = AgentExposition(state, op_state=op_state)
        for step in range(5):
            state.ingest(
                heartbeat("fake1", {"acq": 3, "t": 1 + step % 8}, session_id=str(step // 2 + 1))
            )
            state.set_op_types("observatory.fake1", str(step // 2 + 1), {"acq": "process"})
            clock.advance(3)
            reference = registry(state, op_state=op_state)
            from prometheus_client import generate_latest

            assert samples(exposition.render().decode()) == samples(
                generate_latest(reference).decode()
            )
    assert math.isfinite(clock.wall)
