"""Prometheus metric families built fresh from an :class:`AgentState` snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.state import AgentState

AGENT_LABELS = ["agent_address", "instance_id", "agent_class"]
AGENT_HELP = {
    "ocs_agent_up": "1 if the agent heartbeated within the agent timeout, else 0.",
    "ocs_agent_last_heartbeat_timestamp_seconds": "Unix time the agent's last heartbeat was "
    "received.",
    "ocs_op_code": "OpCode of the operation: 1 NONE, 2 STARTING, 3 RUNNING, 4 STOPPING, "
    "5 SUCCEEDED, 6 FAILED, 7 EXPIRED (agent down), 8 DEGRADED.",
}


class AgentCollector(Collector):
    """Agent liveness and operation states, built afresh from a snapshot: the reference
    that :mod:`exporter.exposition` renders faster. E.g.

    ocs_op_code{agent_address="observatory.fake1",instance_id="fake1",
                agent_class="FakeDataAgent",operation="acq"} 3.0
    """

    def __init__(self, state: AgentState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        snap = self.state.snapshot()
        up, last, op_code = (
            GaugeMetricFamily(name, AGENT_HELP[name], labels=labels)
            for name, labels in (
                ("ocs_agent_up", AGENT_LABELS),
                ("ocs_agent_last_heartbeat_timestamp_seconds", AGENT_LABELS),
                ("ocs_op_code", [*AGENT_LABELS, "operation"]),
            )
        )
        for agent in snap.agents:
            labels = [agent.address, agent.instance_id, agent.agent_class]
            up.add_metric(labels, 1.0 if agent.up else 0.0)
            last.add_metric(labels, agent.last_heartbeat)
            for operation, code in agent.op_codes.items():
                op_code.add_metric([*labels, operation], code)
        yield up
        yield last
        yield op_code


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
