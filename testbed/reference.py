"""The reference for the fast renderer: every agent family built afresh with
prometheus_client's metric families. Tests and benchmarks compare the two; the exporter
does not use it."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from exporter.render.families import (
    AGENT_FAMILIES,
    AGENT_LABELS,
    OP_LABELS,
    OP_STATE_FAMILY,
    expected_label,
)
from exporter.state import OPCODES, AgentState


class AgentCollector(Collector):
    """Everything about agents, built afresh from a snapshot: the reference that
    :mod:`exporter.render.exposition` renders faster. E.g.

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
