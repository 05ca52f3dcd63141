"""Property-based: arbitrary JSON-like payloads through the path a heartbeat takes."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from exporter.state import AgentState
from exporter.wamp.listener import HeartbeatListener
from tests.support.fakes import FakeClock, heartbeat
from tests.support.strategies import json_like, scalars

# Payloads shaped like heartbeats but with anything inside, so deep checks are reached too.
op_codes = st.one_of(
    json_like,
    st.dictionaries(
        st.one_of(st.text(max_size=20), st.integers()),
        st.one_of(st.integers(-3, 12), scalars),
        max_size=6,
    ),
)
feeds = st.one_of(
    json_like,
    st.fixed_dictionaries(
        {"agent_address": st.one_of(st.just("observatory.good"), st.text(max_size=30), scalars)},
        optional={"session_id": json_like, "agent_class": json_like},
    ),
    st.fixed_dictionaries(
        {
            "agent_address": st.builds(lambda s: "observatory." + s, st.text(max_size=30)),
            "session_id": st.text(max_size=10),
            "agent_class": st.text(max_size=10),
        }
    ),
)
payloads = st.one_of(json_like, st.lists(st.one_of(op_codes, feeds), min_size=2, max_size=2))
calls = st.tuples(st.lists(payloads, max_size=3), st.dictionaries(st.text(max_size=5), scalars))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(calls, min_size=1, max_size=20))
def test_arbitrary_events_never_raise_count_up_and_spare_valid_agents(events):
    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    listener = HeartbeatListener(state, "ws://127.0.0.1:1/ws", "r", "observatory", reactor=Clock())
    listener._on_heartbeat(heartbeat("good", {"acq": 3, "delay_task": 6}))
    good_before = next(a for a in state.snapshot().agents if a.instance_id == "good")
    for args, kwargs in events:
        listener._on_heartbeat(*copy.deepcopy(args), **kwargs)  # never raises
    counters = state.snapshot_counters()
    assert counters.heartbeats == 1 + len(events)
    assert all(n >= 0 for n in counters.invalid.values())
    accepted = counters.heartbeats - sum(counters.invalid.values()) - counters.refused
    assert accepted >= 1
    snapshot = {a.address: a for a in state.snapshot().agents}
    good_after = snapshot["observatory.good"]
    # Only a valid heartbeat from 'good' itself may change it.
    if (
        good_after.op_codes != good_before.op_codes
        or good_after.session_id != good_before.session_id
    ):
        assert any(
            len(args) == 1
            and not kwargs
            and isinstance(args[0], list)
            and isinstance(args[0][1], dict)
            and args[0][1].get("agent_address") == "observatory.good"
            for args, kwargs in events
        )
    for agent in snapshot.values():
        assert agent.address.startswith("observatory.") and agent.instance_id
        assert all(
            isinstance(k, str) and type(v) is int and 1 <= v <= 8 for k, v in agent.op_codes.items()
        )
    assert len(snapshot) <= accepted  # every tracked agent came from an accepted heartbeat
