"""The reference for the fast renderer: every agent family of the table in
:mod:`exporter.render.families` built afresh with prometheus_client's metric families.
Tests and benchmarks compare the two; the exporter does not use it."""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.render.families import AGENT_LABELS, MOVING_DIGITS, Family, families
from exporter.state import AgentState

KINDS = {
    "gauge": GaugeMetricFamily,
    "counter": CounterMetricFamily,
    "histogram": HistogramMetricFamily,
}


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
        agents = self.state.snapshot().agents
        for family in families(self.op_state, self.state.durations is not None):
            metric = _metric(family)
            for agent in agents:
                labels = [agent.address, agent.instance_id, agent.agent_class]
                if family.value is not None:
                    value = family.value(agent)
                    if value is None:
                        continue
                    if family.moving:  # to the microsecond, as the fast renderer
                        value = round(value, MOVING_DIGITS)
                    metric.add_metric(labels, value)
                    continue
                for values, value in family.samples(agent):  # type: ignore[misc]
                    extra = [values] if isinstance(values, str) else list(values)
                    if family.states is not None:
                        states = {name: number == value for number, name in family.states.items()}
                        metric.add_metric([*labels, *extra], states)
                    elif family.kind == "histogram":
                        bounds, counts, total = value
                        les = [floatToGoString(b) for b in (*bounds, math.inf)]
                        metric.add_metric(
                            [*labels, *extra], list(zip(les, counts, strict=True)), total
                        )
                    else:
                        metric.add_metric([*labels, *extra], value)
            yield metric


def _metric(family: Family) -> Metric:
    labels = [*AGENT_LABELS, *family.labels]
    if family.kind == "stateset":
        return StateSetMetricFamily(family.name, family.help, labels=labels)
    return KINDS[family.kind](family.name, family.help, labels=labels)
