"""The fast agent renderer against the reference collector, and the metrics page body."""

from __future__ import annotations

import gzip
import random
import subprocess

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.collector import AgentCollector, ExporterCollector
from exporter.exposition import AgentExposition, MetricsPage
from exporter.state import AgentState
from tests.fakes import FakeClock, heartbeat


def samples(text: str, parse=parse_text) -> set[tuple]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in parse(text)
        for s in family.samples
    }


def reference(state: AgentState) -> str:
    registry = CollectorRegistry()
    registry.register(AgentCollector(state))
    return generate_latest(registry).decode()


def make_state(clock: FakeClock, n: int = 50) -> AgentState:
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, forget_after=100)
    rng = random.Random(7)
    for i in range(n):
        ops = {f"op{j}": rng.randint(1, 8) for j in range(rng.randint(0, 5))}
        state.ingest(heartbeat(f"agent-{i}", ops, agent_class=rng.choice(["A", 'Q"uote\\', "B"])))
        clock.advance(0.1)
    return state


def test_same_samples_as_the_reference_collector_while_agents_change():
    clock = FakeClock()
    state = make_state(clock)
    exposition = AgentExposition(state)
    for step in range(6):
        assert samples(exposition.render().decode()) == samples(reference(state)), step
        clock.advance(2)  # some agents expire on the way
        state.ingest(heartbeat(f"agent-{step}", {"new": 6}, session_id=f"s{step}"))
        state.ingest(heartbeat(f"extra-{step}", {"acq": 3}))


def test_forgotten_agents_leave_the_output_and_the_cache():
    clock = FakeClock()
    state = make_state(clock, 5)
    exposition = AgentExposition(state)
    assert b'instance_id="agent-0"' in exposition.render()
    clock.advance(99)
    state.ingest(heartbeat("agent-0"))
    clock.advance(2)
    text = exposition.render().decode()
    assert 'instance_id="agent-0"' in text and 'instance_id="agent-1"' not in text
    assert len(exposition._cache) == 1


def test_unchanged_agents_reuse_their_lines():
    clock = FakeClock()
    state = make_state(clock, 3)
    exposition = AgentExposition(state)
    exposition.render()
    before = dict(exposition._cache)
    state.ingest(heartbeat("agent-1", {"x": 3}))  # changes
    same = state.snapshot().agents[2]
    state.ingest(heartbeat("agent-2", dict(same.op_codes), agent_class=same.agent_class))
    exposition.render()
    assert exposition._cache["observatory.agent-0"] is before["observatory.agent-0"]
    assert exposition._cache["observatory.agent-2"] is before["observatory.agent-2"]
    assert exposition._cache["observatory.agent-1"] is not before["observatory.agent-1"]


def page(clock: FakeClock) -> MetricsPage:
    state = make_state(clock, 20)
    registry = CollectorRegistry()
    registry.register(ExporterCollector(state, lambda: True))
    return MetricsPage(registry, AgentExposition(state))


def test_text_body_passes_promtool():
    body = page(FakeClock()).body(openmetrics=False, compress=False)
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    names = {f.name for f in parse_text(body.decode())}
    assert {"ocs_agent_up", "ocs_op_code", "ocs_exporter_heartbeats"} <= names


def test_openmetrics_body_is_valid_and_ends_once_with_eof():
    body = page(FakeClock()).body(openmetrics=True, compress=False).decode()
    assert body.endswith("# EOF\n") and body.count("# EOF") == 1
    text_samples = samples(page(FakeClock()).body(openmetrics=False, compress=False).decode())
    om_samples = samples(body, parse_om)
    agent_names = ("ocs_agent_up", "ocs_op_code", "ocs_agent_last_heartbeat_timestamp_seconds")
    assert {s for s in om_samples if s[0] in agent_names} == {
        s for s in text_samples if s[0] in agent_names
    }


def test_gzip_body():
    clock = FakeClock()
    metrics = page(clock)
    plain = metrics.body(openmetrics=False, compress=False)
    assert gzip.decompress(metrics.body(openmetrics=False, compress=True)) == plain
