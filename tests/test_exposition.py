"""The fast agent renderer against the reference collector, and the metrics page body."""

from __future__ import annotations

import gzip
import random
import subprocess

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.collector import AgentCollector, ExporterCollector
from exporter.exposition import BLOCK_SIZE, INDEX, AgentExposition, MetricsPage
from exporter.state import AgentState
from tests.fakes import FakeClock, heartbeat
from tests.test_deflate import one_member


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


def test_forgotten_agents_leave_the_output_and_their_block():
    clock = FakeClock()
    state = make_state(clock, 5)
    exposition = AgentExposition(state)
    assert b'instance_id="agent-0"' in exposition.render()
    clock.advance(99)
    state.ingest(heartbeat("agent-0"))
    clock.advance(2)
    text = exposition.render().decode()
    assert 'instance_id="agent-0"' in text and 'instance_id="agent-1"' not in text
    assert list(exposition._block_of) == ["observatory.agent-0"]
    assert sum(block.size for block in exposition._blocks) == 1


def pieces_by_block(exposition: AgentExposition) -> list[dict]:
    return [dict(block.pieces) for block in exposition._blocks]


def test_only_the_block_of_a_changed_agent_is_made_again():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    n = 3 * BLOCK_SIZE
    for i in range(n):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    exposition = AgentExposition(state)
    exposition.render()
    assert len(exposition._blocks) == 3
    before = pieces_by_block(exposition)
    for i in range(n):  # heartbeats that change nothing but the time
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    state.ingest(heartbeat(f"agent-{BLOCK_SIZE + 1}", {"acq": 6}))  # block 1 changes
    exposition.render()
    after = pieces_by_block(exposition)
    for index in (0, 2):
        assert all(after[index][f] is before[index][f] for f in before[index])
    assert all(after[1][f] is not before[1][f] for f in before[1])
    assert samples(exposition.render().decode()) == samples(reference(state))


def test_an_agent_going_down_remakes_its_block_only():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    for i in range(2 * BLOCK_SIZE):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    exposition = AgentExposition(state)
    exposition.render()
    before = pieces_by_block(exposition)
    clock.advance(4)
    for i in range(1, 2 * BLOCK_SIZE):  # all but agent-0 keep heartbeating
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    clock.advance(2)
    text = exposition.render().decode()
    assert 'ocs_op_code{agent_address="observatory.agent-0",instance_id="agent-0",' in text
    assert samples(text) == samples(reference(state))
    after = pieces_by_block(exposition)
    assert after[0][INDEX["ocs_agent_up"]] is not before[0][INDEX["ocs_agent_up"]]
    assert all(after[1][f] is before[1][f] for f in before[1])


def test_freed_room_in_blocks_is_reused():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, forget_after=10)
    for i in range(2 * BLOCK_SIZE):
        state.ingest(heartbeat(f"old-{i}"))
    exposition = AgentExposition(state)
    exposition.render()
    clock.advance(11)  # every old agent is forgotten
    for i in range(2 * BLOCK_SIZE):
        state.ingest(heartbeat(f"new-{i}"))
    assert samples(exposition.render().decode()) == samples(reference(state))
    assert len(exposition._blocks) == 2  # the freed room, not new blocks
    assert sorted(block.size for block in exposition._blocks) == [BLOCK_SIZE, BLOCK_SIZE]


def test_many_agents_with_churn_match_the_reference():
    clock = FakeClock()
    state = make_state(clock, 5 * BLOCK_SIZE + 3)
    exposition = AgentExposition(state, op_state=True)
    rng = random.Random(3)
    for step in range(8):
        for _ in range(10):
            i = rng.randrange(6 * BLOCK_SIZE)
            state.ingest(heartbeat(f"agent-{i}", {"op1": rng.randint(1, 8)}, session_id=f"s{step}"))
        clock.advance(rng.choice([0.5, 3, 40]))  # expiry and forgetting on the way
        registry = CollectorRegistry()
        registry.register(AgentCollector(state, op_state=True))
        want = samples(generate_latest(registry).decode())
        assert samples(exposition.render().decode()) == want, step
        om = exposition.render(openmetrics=True).decode() + "# EOF\n"
        assert samples(om, parse_om) >= {s for s in want if not s[0].startswith("ocs_op_state")}


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


def test_gzip_body_is_one_member_of_the_same_text_in_both_formats():
    clock = FakeClock()
    metrics = page(clock)
    for openmetrics in (False, True):
        plain = metrics.body(openmetrics=openmetrics, compress=False)
        body = metrics.body(openmetrics=openmetrics, compress=True)
        assert one_member(body) == plain
        assert gzip.decompress(body) == plain
