"""Reading what the exporter renders: samples, the reference output, a metrics page."""

from __future__ import annotations

import random
import zlib

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.http.web import MetricsPage
from exporter.render.collector import ExporterCollector
from exporter.render.exposition import AgentExposition
from exporter.state import AgentState
from testbed.reference import AgentCollector
from tests.support.fakes import FakeClock, heartbeat


def one_member(body: bytes) -> bytes:
    """Decompress, checking that ``body`` is exactly one gzip member (CRC and size are
    verified by zlib)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    text = inflater.decompress(body) + inflater.flush()
    assert inflater.eof and inflater.unused_data == b""
    return text


def samples(text: str, parse=parse_text) -> set[tuple]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in parse(text)
        for s in family.samples
    }


def reference(state: AgentState, op_state: bool = False) -> str:
    registry = CollectorRegistry()
    registry.register(AgentCollector(state, op_state=op_state))
    return generate_latest(registry).decode()


def make_state(clock: FakeClock, n: int = 50) -> AgentState:
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, forget_after=100)
    rng = random.Random(7)
    for i in range(n):
        ops = {f"op{j}": rng.randint(1, 8) for j in range(rng.randint(0, 5))}
        state.ingest(heartbeat(f"agent-{i}", ops, agent_class=rng.choice(["A", 'Q"uote\\', "B"])))
        clock.advance(0.1)
    return state


def page(clock: FakeClock) -> MetricsPage:
    state = make_state(clock, 20)
    registry = CollectorRegistry()
    registry.register(ExporterCollector(state, lambda: True))
    return MetricsPage(registry, AgentExposition(state))


def make(connected=True):
    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    registry = CollectorRegistry()
    registry.register(AgentCollector(state))
    registry.register(ExporterCollector(state, lambda: connected))
    return clock, state, registry


KEYS = {"expired", "time_expired", "last_updated", "op_codes", "agent_class", "agent_address"}
