"""The exporter's own metrics, built fresh from the state's counters on every scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.state import AgentState


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
        yield _by_label(
            "ocs_exporter_heartbeats_invalid",
            "Heartbeat events rejected, by reason.",
            "reason",
            snap.invalid,
        )
        yield _by_label(
            "ocs_exporter_op_type_queries",
            "get_api calls made to learn agents' operation types, by result (ok, failed).",
            "result",
            snap.op_type_queries,
        )
        yield _by_label(
            "ocs_exporter_session_queries",
            "status calls made to learn operations' sessions, by result (ok, invalid, timeout, "
            "error).",
            "result",
            snap.session_queries,
        )
        yield _by_label(
            "ocs_exporter_session_answers_invalid",
            "Answers to status refused, by reason; trimmed ones were kept, cut.",
            "reason",
            snap.invalid_sessions,
        )
        yield CounterMetricFamily(
            "ocs_exporter_feed_messages",
            "Feed messages received (the heartbeat feed's aside), valid or not.",
            value=snap.feed_messages,
        )
        yield _by_label(
            "ocs_exporter_feed_messages_invalid",
            "Feed messages rejected, by reason.",
            "reason",
            snap.invalid_feeds,
        )
        yield _by_label(
            "ocs_exporter_feed_messages_ignored",
            "Valid feed messages not counted in ocs_feed_messages_total, by reason: "
            "unknown_agent (not heard in the feed's session), too_many_feeds "
            "(--max-feeds-per-agent).",
            "reason",
            snap.ignored_feeds,
        )
        yield _by_label(
            "ocs_exporter_manager_data_invalid",
            "HostManager manager session data refused (the previous kept), by reason.",
            "reason",
            snap.invalid_manager_data,
        )
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


def _by_label(name: str, documentation: str, label: str, counts: dict[str, int]) -> Metric:
    """A counter family with one series per value of ``label``."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in counts.items():
        family.add_metric([value], count)
    return family
