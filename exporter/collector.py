"""Prometheus metric families built fresh from an :class:`AgentState` snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.state import OPCODES, AgentState

AGENT_LABELS = ["agent_address", "instance_id", "agent_class"]
OP_LABELS = [*AGENT_LABELS, "operation"]

# The agent families, in exposition order: (name, type, extra labels, help). Counters are
# named without _total, as in OpenMetrics.
AGENT_FAMILIES = (
    (
        "ocs_agent_info",
        "gauge",
        ["host", "expected"],
        "Always 1 for every known agent, configured or heard; host from the site config, "
        "expected true (listed, should run), false (listed with manage ignore or .../down) "
        "or unknown (heard, not listed).",
    ),
    ("ocs_agent_up", "gauge", [], "1 if the agent heartbeated within the agent timeout, else 0."),
    (
        "ocs_agent_last_heartbeat_timestamp_seconds",
        "gauge",
        [],
        "Unix time the agent's last heartbeat was received.",
    ),
    (
        "ocs_agent_heartbeat_gap_seconds",
        "gauge",
        [],
        "Longest gap between consecutive heartbeats over the last 15 to 30 s, including the "
        "one still open.",
    ),
    (
        "ocs_agent_start_timestamp_seconds",
        "gauge",
        [],
        "Unix time the agent's process started, from its heartbeat's session id.",
    ),
    (
        "ocs_agent_restarts",
        "counter",
        [],
        "Agent restarts seen (a new session id in its heartbeat).",
    ),
    (
        "ocs_op_code",
        "gauge",
        ["operation"],
        "OpCode of the operation: 1 NONE, 2 STARTING, 3 RUNNING, 4 STOPPING, 5 SUCCEEDED, "
        "6 FAILED, 7 EXPIRED (agent down), 8 DEGRADED.",
    ),
    (
        "ocs_op_last_change_timestamp_seconds",
        "gauge",
        ["operation"],
        "Unix time the operation's op code last changed (or was first seen).",
    ),
    (
        "ocs_op_transitions",
        "counter",
        ["operation", "to"],
        "Entries of the operation into each OpCode, named in 'to'.",
    ),
    (
        "ocs_op_info",
        "gauge",
        ["operation", "op_type"],
        "Always 1; op_type is task or process, as the agent's get_api tells.",
    ),
)
OP_STATE_FAMILY = (
    "ocs_op_state",
    "stateset",
    ["operation"],
    "The operation's state as an OpenMetrics StateSet: one series per OpCode, one true.",
)
AGENT_HELP = {name: help for name, _, _, help in (*AGENT_FAMILIES, OP_STATE_FAMILY)}


def expected_label(expected: bool | None) -> str:
    return "unknown" if expected is None else ("true" if expected else "false")


class AgentCollector(Collector):
    """Everything about agents, built afresh from a snapshot: the reference that
    :mod:`exporter.exposition` renders faster. E.g.

    ocs_op_code{agent_address="observatory.fake1",instance_id="fake1",
                agent_class="FakeDataAgent",operation="acq"} 3.0
    """

    def __init__(self, state: AgentState, op_state: bool = False) -> None:
        self.state = state
        self.op_state = op_state

    def collect(self) -> Iterator[Metric]:
        snap = self.state.snapshot()
        kinds = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily}
        families = {
            name: kinds[kind](name, help, labels=[*AGENT_LABELS, *extra])
            for name, kind, extra, help in AGENT_FAMILIES
        }
        state_set = StateSetMetricFamily(OP_STATE_FAMILY[0], OP_STATE_FAMILY[3], labels=OP_LABELS)
        for agent in snap.agents:
            labels = [agent.address, agent.instance_id, agent.agent_class]

            def add(name: str, value: float, *extra: str, labels: list[str] = labels) -> None:
                families[name].add_metric([*labels, *extra], value)

            add("ocs_agent_info", 1.0, agent.host, expected_label(agent.expected))
            add("ocs_agent_up", 1.0 if agent.up else 0.0)
            if agent.heard:
                # Microseconds, as the fast renderer formats them (see exposition.py).
                add("ocs_agent_last_heartbeat_timestamp_seconds", round(agent.last_heartbeat, 6))
                add("ocs_agent_heartbeat_gap_seconds", round(agent.heartbeat_gap, 6))
                add("ocs_agent_restarts", agent.restarts)
            if agent.start_time is not None:
                add("ocs_agent_start_timestamp_seconds", agent.start_time)
            for operation, code in agent.op_codes.items():
                add("ocs_op_code", code, operation)
                if self.op_state:
                    states = {name: number == code for number, name in OPCODES.items()}
                    state_set.add_metric([*labels, operation], states)
            for operation, when in agent.changed.items():
                add("ocs_op_last_change_timestamp_seconds", when, operation)
            for (operation, code), count in agent.transitions.items():
                add("ocs_op_transitions", count, operation, OPCODES[code])
            for operation, op_type in (agent.op_types or {}).items():
                if operation in agent.op_codes:
                    add("ocs_op_info", 1.0, operation, op_type)
        yield from families.values()
        if self.op_state:
            yield state_set


class ExporterCollector(Collector):
    """The exporter's own health, e.g.

    ocs_exporter_heartbeats_invalid_total{reason="malformed"} 0.0
    """

    def __init__(self, state: AgentState, connected: Callable[[], bool]) -> None:
        self.state = state
        self.connected = connected

    def collect(self) -> Iterator[Metric]:
        snap = self.state.snapshot_counters()
        yield GaugeMetricFamily(
            "ocs_exporter_crossbar_connected",
            "1 while joined to the crossbar realm and subscribed to heartbeats, else 0.",
            value=1.0 if self.connected() else 0.0,
        )
        yield CounterMetricFamily(
            "ocs_exporter_heartbeats",
            "Heartbeat events received, valid or not.",
            value=snap.heartbeats,
        )
        invalid = CounterMetricFamily(
            "ocs_exporter_heartbeats_invalid",
            "Heartbeat events rejected, by reason.",
            labels=["reason"],
        )
        for reason, count in snap.invalid.items():
            invalid.add_metric([reason], count)
        yield invalid
        queries = CounterMetricFamily(
            "ocs_exporter_op_type_queries",
            "get_api calls made to learn agents' operation types, by result (ok, failed).",
            labels=["result"],
        )
        for result, count in snap.op_type_queries.items():
            queries.add_metric([result], count)
        yield queries
        yield CounterMetricFamily(
            "ocs_exporter_heartbeats_refused",
            "Valid heartbeats from new agents not tracked because --max-agents agents are.",
            value=snap.refused,
        )
        yield GaugeMetricFamily(
            "ocs_exporter_agents", "Agents tracked, up or down.", value=snap.agents
        )
        yield CounterMetricFamily(
            "ocs_exporter_agents_forgotten",
            "Agents no longer exported after --forget-after seconds without a heartbeat.",
            value=snap.forgotten,
        )
        info = GaugeMetricFamily(
            "ocs_exporter_build_info",
            "Always 1; the exporter's version as a label.",
            labels=["version"],
        )
        info.add_metric([__version__], 1.0)
        yield info
