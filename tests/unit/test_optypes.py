"""get_api through the call queue, driven with a fake WAMP session and twisted's Clock."""

from __future__ import annotations

import logging

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from exporter.state import AgentState
from exporter.wamp.calls import CALL_TIMEOUT, CALLS_IN_FLIGHT, CallQueue
from exporter.wamp.optypes import OpTypeQueries
from exporter.wamp.throttle import LogThrottle
from tests.support.fakes import FakeClock, heartbeat

API = {"tasks": [["delay_task", {}, {}]], "processes": [["acq", {}, {}]]}


class Session:
    """Records get_api calls; the test answers them through their Deferreds."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Deferred]] = []

    def call(self, address: str, procedure: str) -> Deferred:
        assert procedure == "get_api"
        d: Deferred = Deferred()
        self.calls.append((address, d))
        return d

    def addresses(self) -> list[str]:
        return [address for address, _ in self.calls]


def make(in_flight: int = CALLS_IN_FLIGHT):
    clock = Clock()
    fake = FakeClock()
    state = AgentState("observatory", 5.0, fake.monotonic, fake.time)
    calls = CallQueue(clock, in_flight=in_flight)
    queries = OpTypeQueries(state, calls, LogThrottle(60.0, clock.seconds))
    return state, queries, clock


def heard(state: AgentState, name: str, session_id: str = "1") -> tuple[str, str]:
    state.ingest(heartbeat(name, {"acq": 3, "delay_task": 1}, session_id=session_id))
    return f"observatory.{name}", session_id


def op_types(state: AgentState) -> dict:
    return {agent.instance_id: agent.op_types for agent in state.snapshot().agents}


def test_an_answer_sets_the_agents_operation_types():
    state, queries, _ = make()
    session = Session()
    queries.calls.joined(session)
    queries.ask(*heard(state, "a"))
    assert session.addresses() == ["observatory.a"]
    session.calls[0][1].callback(API)
    assert op_types(state) == {"a": {"delay_task": "task", "acq": "process"}}
    assert state.snapshot_counters().op_type_queries == {"ok": 1, "failed": 0}


def test_at_most_in_flight_calls_at_a_time_the_rest_in_order():
    state, queries, _ = make(in_flight=2)
    session = Session()
    queries.calls.joined(session)
    for name in "abcde":
        queries.ask(*heard(state, name))
    assert session.addresses() == ["observatory.a", "observatory.b"]
    session.calls[1][1].callback(API)
    assert session.addresses()[2:] == ["observatory.c"]
    session.calls[0][1].errback(RuntimeError("no"))
    assert session.addresses()[3:] == ["observatory.d"]
    for _, d in session.calls[2:]:
        d.callback(API)
    assert session.addresses()[4:] == ["observatory.e"]


def test_no_answer_within_the_timeout_is_a_failure_logged_once(caplog):
    state, queries, clock = make()
    session = Session()
    queries.calls.joined(session)
    for name in ("a", "b"):
        queries.ask(*heard(state, name))
    with caplog.at_level(logging.INFO, logger="exporter.wamp.optypes"):
        clock.advance(CALL_TIMEOUT - 0.1)
        assert state.snapshot_counters().op_type_queries == {"ok": 0, "failed": 0}
        clock.advance(0.1)
    assert state.snapshot_counters().op_type_queries == {"ok": 0, "failed": 2}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "get_api of observatory.a failed" in messages[0]
    assert op_types(state) == {"a": None, "b": None}


def test_an_answer_without_tasks_and_processes_is_a_failure():
    state, queries, _ = make()
    session = Session()
    queries.calls.joined(session)
    queries.ask(*heard(state, "a"))
    session.calls[0][1].callback({"agent_class": "X"})
    assert state.snapshot_counters().op_type_queries == {"ok": 0, "failed": 1}
    assert op_types(state) == {"a": None}


def test_nothing_is_asked_without_a_session_and_the_queue_waits_for_the_next_join():
    state, queries, _ = make(in_flight=1)
    queries.ask(*heard(state, "early"))  # before any join: not asked at all
    first = Session()
    queries.calls.joined(first)
    for name in ("a", "b"):
        queries.ask(*heard(state, name))
    queries.calls.lost()
    first.calls[0][1].errback(RuntimeError("connection lost"))  # b stays queued
    assert first.addresses() == ["observatory.a"]
    second = Session()
    queries.calls.joined(second)
    assert second.addresses() == ["observatory.b"]


def test_the_latest_session_of_an_agent_wins_and_stale_ones_are_skipped():
    state, queries, _ = make(in_flight=1)
    session = Session()
    queries.calls.joined(session)
    queries.ask(*heard(state, "busy"))  # takes the one call in flight
    queries.ask(*heard(state, "a", "1"))
    queries.ask(*heard(state, "a", "2"))  # restarted before its turn: asked once, as 2
    queries.ask(*heard(state, "b", "1"))
    heard(state, "b", "2")  # restarted meanwhile, not asked yet: its session 1 is stale
    session.calls[0][1].callback(API)
    assert session.addresses() == ["observatory.busy", "observatory.a"]
    session.calls[1][1].callback(API)
    assert session.addresses() == ["observatory.busy", "observatory.a"]  # b skipped
    assert op_types(state)["a"] == {"delay_task": "task", "acq": "process"}


def test_the_host_name_of_the_get_api_answer_is_kept_a_bad_one_not():
    state, queries, _ = make()
    session = Session()
    queries.calls.joined(session)
    queries.ask(*heard(state, "a"))
    queries.ask(*heard(state, "b"))
    session.calls[0][1].callback({**API, "instance_hostname": "daq-1"})
    session.calls[1][1].callback({**API, "instance_hostname": "bad\nname"})
    hostnames = {agent.instance_id: agent.hostname for agent in state.snapshot().agents}
    assert hostnames == {"a": "daq-1", "b": ""}
