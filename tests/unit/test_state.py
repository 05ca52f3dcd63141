import math

import pytest

from exporter.heartbeat import EXPIRED, MAX_NAME_LENGTH, MAX_OPERATIONS, REASONS, InvalidHeartbeat
from exporter.sessions import INVALID_REASONS, MAX_MESSAGES, OUTCOMES
from exporter.state import AgentRefused, AgentState, ExpectedAgent, Heard
from exporter.view import NO_DURATIONS, NO_RUNS, NO_SESSIONS, Durations, data_ops
from tests.support.fakes import NO_SESSION, FakeClock, heartbeat, session_answer


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def state(clock):
    return AgentState("observatory", timeout=5.0, monotonic=clock.monotonic, wall=clock.time)


def agents(state):
    """The snapshot's view of every agent, by instance id."""
    return {a.instance_id: a for a in state.snapshot().agents}


def test_first_heartbeat_records_the_agent(state, clock):
    state.ingest(heartbeat("fake1"))
    (agent,) = state.snapshot().agents
    assert agent.address == "observatory.fake1"
    assert agent.instance_id == "fake1"
    assert agent.agent_class == "FakeDataAgent"
    assert agent.session_id == "1795518440.6412797"
    assert agent.up
    assert agent.last_heartbeat == clock.wall
    assert agent.expired_at is None
    assert agent.op_codes == {"acq": 3, "count": 3, "set_heartbeat": 1, "delay_task": 1}


def test_up_until_exactly_the_timeout(state, clock):
    state.ingest(heartbeat())
    clock.advance(4.999)
    assert agents(state)["fake1"].up
    clock.advance(0.001)  # exactly 5.0 s since the heartbeat: no longer "less than"
    assert not agents(state)["fake1"].up


def test_expired_agent_reports_every_op_code_expired(state, clock):
    state.ingest(heartbeat(op_codes={"acq": 3, "delay_task": 6}))
    clock.advance(6)
    agent = agents(state)["fake1"]
    assert not agent.up
    assert agent.op_codes == {"acq": EXPIRED, "delay_task": EXPIRED}


def test_expiry_time_is_when_the_timeout_elapsed_and_stays_fixed(state, clock):
    state.ingest(heartbeat())
    last = clock.wall
    clock.advance(6)
    first = agents(state)["fake1"].expired_at
    clock.advance(60)
    assert agents(state)["fake1"].expired_at == first == last + 5.0


def test_heartbeat_after_expiry_brings_the_agent_back(state, clock):
    state.ingest(heartbeat(op_codes={"acq": 3}))
    clock.advance(30)
    state.ingest(heartbeat(op_codes={"acq": 3}))
    agent = agents(state)["fake1"]
    assert agent.up and agent.expired_at is None and agent.op_codes == {"acq": 3}


def test_wall_clock_jumps_never_mark_agents_down(state, clock):
    state.ingest(heartbeat())
    clock.wall += 3600  # NTP step forward
    assert agents(state)["fake1"].up
    clock.wall -= 7200  # and back
    clock.mono += 1
    assert agents(state)["fake1"].up


def test_restart_replaces_op_codes(state, clock):
    state.ingest(heartbeat(op_codes={"acq": 3, "old_task": 5}, session_id="1.0"))
    clock.advance(1)
    state.ingest(heartbeat(op_codes={"acq": 1}, session_id="2.0"))
    agent = agents(state)["fake1"]
    assert agent.op_codes == {"acq": 1}
    assert agent.session_id == "2.0"


def test_op_code_changes_within_a_session_are_recorded(state, clock):
    state.ingest(heartbeat(op_codes={"delay_task": 2}))
    clock.advance(1)
    state.ingest(heartbeat(op_codes={"delay_task": 6}))
    assert agents(state)["fake1"].op_codes == {"delay_task": 6}


def test_unchanged_heartbeat_moves_only_the_time(state, clock):
    state.ingest(heartbeat())
    clock.advance(4)
    state.ingest(heartbeat())
    clock.advance(4)
    agent = agents(state)["fake1"]
    assert agent.up
    assert agent.last_heartbeat == clock.wall - 4


def test_heartbeats_are_counted(state):
    for _ in range(3):
        state.ingest(heartbeat())
    with pytest.raises(InvalidHeartbeat):
        state.ingest(None)
    counters = state.snapshot_counters()
    assert counters.heartbeats == 4
    assert counters.invalid["malformed"] == 1
    assert sum(counters.invalid.values()) == 1


def _with_feed(**changes):
    payload = heartbeat("bad")
    payload[1].update(changes)
    for key, value in list(changes.items()):
        if value is KeyError:
            del payload[1][key]
    return payload


BAD_PAYLOADS = {
    "not a list": ({"acq": 3}, "malformed"),
    "None": (None, "malformed"),
    "one element": ([{"acq": 3}], "malformed"),
    "three elements": ([{}, {}, {}], "malformed"),
    "string": ("[{}, {}]", "malformed"),
    "feed not a mapping": ([{"acq": 3}, "observatory.bad"], "malformed"),
    "legacy bare 0": ([0, heartbeat("bad")[1]], "legacy"),
    "op codes a list": ([[3, 3], heartbeat("bad")[1]], "bad_op_codes"),
    "op codes a string": (["acq", heartbeat("bad")[1]], "bad_op_codes"),
    "op codes false": ([False, heartbeat("bad")[1]], "bad_op_codes"),
    "too many operations": (
        heartbeat("bad", {f"op{i}": 1 for i in range(MAX_OPERATIONS + 1)}),
        "bad_op_codes",
    ),
    "code 0": (heartbeat("bad", {"acq": 0}), "bad_op_code"),
    "code 9": (heartbeat("bad", {"acq": 9}), "bad_op_code"),
    "code a string": (heartbeat("bad", {"acq": "3"}), "bad_op_code"),
    "code a float": (heartbeat("bad", {"acq": 3.0}), "bad_op_code"),
    "code a bool": (heartbeat("bad", {"acq": True}), "bad_op_code"),
    "code None": (heartbeat("bad", {"acq": None}), "bad_op_code"),
    "name a number": (heartbeat("bad", {3: 3}), "bad_op_name"),
    "name empty": (heartbeat("bad", {"": 3}), "bad_op_name"),
    "name with a newline": (heartbeat("bad", {"a\nb": 3}), "bad_op_name"),
    "name too long": (heartbeat("bad", {"a" * (MAX_NAME_LENGTH + 1): 3}), "bad_op_name"),
    "no agent_address": (_with_feed(agent_address=KeyError), "bad_agent_address"),
    "agent_address a number": (_with_feed(agent_address=7), "bad_agent_address"),
    "agent_address outside the root": (
        _with_feed(agent_address="elsewhere.x"),
        "bad_agent_address",
    ),
    "agent_address the bare root": (_with_feed(agent_address="observatory."), "bad_agent_address"),
    "agent_address with a control char": (
        _with_feed(agent_address="observatory.a\x00b"),
        "bad_agent_address",
    ),
    "agent_class a list": (_with_feed(agent_class=["x"]), "bad_field"),
    "session_id a float": (_with_feed(session_id=1.5), "bad_field"),
}


def test_reasons_cover_every_bad_payload():
    assert {reason for _, reason in BAD_PAYLOADS.values()} == set(REASONS)


@pytest.mark.parametrize("payload, reason", BAD_PAYLOADS.values(), ids=BAD_PAYLOADS.keys())
def test_bad_payload_is_rejected_counted_and_harmless(state, clock, payload, reason):
    state.ingest(heartbeat("good", {"acq": 3}))
    before = state.snapshot()
    with pytest.raises(InvalidHeartbeat) as raised:
        state.ingest(payload)
    assert raised.value.reason == reason
    assert state.snapshot() == before  # no agent added, none touched
    assert state.snapshot_counters().invalid[reason] == 1


def test_bad_payload_from_a_known_agent_keeps_its_state(state, clock):
    state.ingest(heartbeat("fake1", {"acq": 3}))
    with pytest.raises(InvalidHeartbeat):
        state.ingest(heartbeat("fake1", {"acq": 42}))
    agent = agents(state)["fake1"]
    assert agent.op_codes == {"acq": 3}


def test_rejection_names_the_agent_when_it_can(state):
    with pytest.raises(InvalidHeartbeat) as raised:
        state.ingest(heartbeat("fake1", {"acq": 42}))
    assert raised.value.agent_address == "observatory.fake1"


def test_missing_session_id_and_class_are_tolerated(state):
    payload = heartbeat("old")
    del payload[1]["session_id"], payload[1]["agent_class"]
    state.ingest(payload)
    agent = agents(state)["old"]
    assert agent.session_id is None and agent.agent_class == ""


def test_grace_after_rejoin_for_agents_up_when_the_router_was_lost(state, clock):
    state.ingest(heartbeat("alive", {"acq": 3}))
    state.ingest(heartbeat("dead", {"acq": 3}))
    clock.advance(20)  # 'dead' stopped long before the outage
    state.ingest(heartbeat("alive", {"acq": 3}))
    clock.advance(1)
    state.connection_lost()
    clock.advance(30)  # the outage: no heartbeat can arrive
    assert not agents(state)["alive"].up  # unknown during the outage, as the registry says
    state.connection_restored()
    clock.advance(4.9)
    view = agents(state)
    assert view["alive"].up and view["alive"].op_codes == {"acq": 3}
    assert not view["dead"].up  # it was down before the outage: no grace
    clock.advance(0.1)  # one timeout after the rejoin, still silent: down
    assert not agents(state)["alive"].up


def test_grace_expiry_time_is_one_timeout_after_the_rejoin(state, clock):
    state.ingest(heartbeat("a"))
    last = clock.wall
    state.connection_lost()
    clock.advance(10)
    state.connection_restored()
    clock.advance(6)
    assert agents(state)["a"].expired_at == last + 10 + 5.0


def test_heartbeat_during_grace_counts_as_usual(state, clock):
    state.ingest(heartbeat("a"))
    state.connection_lost()
    clock.advance(10)
    state.connection_restored()
    clock.advance(2)
    state.ingest(heartbeat("a"))
    clock.advance(4.9)
    assert agents(state)["a"].up
    clock.advance(0.2)
    assert not agents(state)["a"].up


def test_no_grace_without_an_outage(state, clock):
    state.connection_restored()  # the first join
    state.ingest(heartbeat("a"))
    clock.advance(5)
    assert not agents(state)["a"].up


def test_silent_agents_are_forgotten(clock):
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, forget_after=60)
    state.ingest(heartbeat("old"))
    clock.advance(30)
    state.ingest(heartbeat("new"))
    clock.advance(29.9)
    assert set(agents(state)) == {"old", "new"}
    clock.advance(0.1)
    assert set(agents(state)) == {"new"}
    counters = state.snapshot_counters()
    assert counters.forgotten == 1 and counters.agents == 1
    state.ingest(heartbeat("old"))  # heard again: back
    assert set(agents(state)) == {"old", "new"}


def test_max_agents_refuses_new_agents_and_counts(clock):
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, max_agents=2)
    state.ingest(heartbeat("a"))
    state.ingest(heartbeat("b"))
    with pytest.raises(AgentRefused):
        state.ingest(heartbeat("c"))
    state.ingest(heartbeat("a", {"acq": 6}))  # known agents still update
    assert agents(state)["a"].op_codes == {"acq": 6}
    counters = state.snapshot_counters()
    assert counters.refused == 1 and counters.agents == 2 and counters.heartbeats == 4


def test_max_agents_makes_room_by_forgetting_first(clock):
    state = AgentState(
        "observatory", 5.0, clock.monotonic, clock.time, forget_after=60, max_agents=1
    )
    state.ingest(heartbeat("a"))
    clock.advance(61)
    state.ingest(heartbeat("b"))
    assert set(agents(state)) == {"b"}


def test_agents_share_their_transition_keys():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    for i in range(3):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
        state.ingest(heartbeat(f"agent-{i}", {"acq": 6}))
    keys = [list(state._agents[f"observatory.agent-{i}"].record.transitions) for i in range(3)]
    assert keys[0] == [("acq", 3), ("acq", 6)]
    assert all(a is b for other in keys[1:] for a, b in zip(keys[0], other, strict=True))


def test_agents_alike_share_their_op_codes_and_early_counts_dicts():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    for i in range(3):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3, "count": 5}))
        done = session_answer("count", 1, "done", True, start_time=1_800_000_000.0 + i)
        state.set_session(
            f"observatory.agent-{i}", state.session_of(f"observatory.agent-{i}"), "count", done
        )
    state.ingest(heartbeat("agent-2", {"acq": 6, "count": 5}))  # agent-2's history parts
    records = [state._agents[f"observatory.agent-{i}"].record for i in range(3)]
    assert records[0].op_codes is records[1].op_codes is not records[2].op_codes
    # Counts are shared while none passed 1 (then a table of them would keep every
    # superseded dict).
    assert records[0].transitions is records[1].transitions
    assert records[2].transitions == {("acq", 3): 1, ("count", 5): 1, ("acq", 6): 1}
    assert records[0].runs is records[1].runs is records[2].runs
    assert records[0].runs == {"count": (1, 0, 0, 0)}
    state.ingest(heartbeat("agent-0", {"acq": 6, "count": 5}))
    state.ingest(heartbeat("agent-0", {"acq": 3, "count": 5}))
    state.ingest(heartbeat("agent-1", {"acq": 6, "count": 5}))
    state.ingest(heartbeat("agent-1", {"acq": 3, "count": 5}))
    records = [state._agents[f"observatory.agent-{i}"].record for i in range(2)]
    assert records[0].transitions == records[1].transitions
    assert records[0].transitions[("acq", 3)] == 2
    assert records[0].transitions is not records[1].transitions
    assert records[0].sessions["count"].start_time != records[1].sessions["count"].start_time


def test_a_heartbeat_that_moves_no_op_code_keeps_the_records_dicts(state):
    state.ingest(heartbeat("a", {"acq": 3}, session_id="1.0"))
    before = state._agents["observatory.a"].record
    state.ingest(heartbeat("a", {"acq": 3}, session_id="2.0"))  # a restart, same op codes
    after = state._agents["observatory.a"].record
    assert after is not before and after.restarts == 1
    assert after.op_codes is before.op_codes and after.changed is before.changed
    assert after.transitions is before.transitions


def test_agents_with_the_same_operation_types_share_one_dict():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    types = {"acq": "process", "count": "task"}
    for i, answer in enumerate([types, dict(reversed(types.items())), {"acq": "task"}]):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}, session_id=f"s{i}"))
        state.set_op_types(f"observatory.agent-{i}", f"s{i}", answer)
    kept = [state._agents[f"observatory.agent-{i}"].record.op_types for i in range(3)]
    assert kept[0] == types and kept[0] is kept[1]  # the same types, whatever their order
    assert list(kept[1]) == list(types)  # in the first answer's order
    assert kept[2] == {"acq": "task"} and kept[2] is not kept[0]
    assert state.snapshot().agents[1].op_types == types


def test_a_snapshot_is_kept_as_taken_while_the_state_moves_on(state, clock):
    state.ingest(heartbeat("a", {"acq": 3}, session_id="1"))
    (before,) = state.snapshot().agents
    clock.advance(1)
    state.ingest(heartbeat("a", {"acq": 6, "new": 1}, session_id="2"))
    state.set_op_types("observatory.a", "2", {"acq": "process"})
    state.set_expected([ExpectedAgent("a", "X", "host-a", True)])
    (after,) = state.snapshot().agents
    assert before.op_codes == {"acq": 3} and before.session_id == "1"
    assert before.restarts == 0 and before.op_types is None and before.host == ""
    assert before.last_heartbeat == after.last_heartbeat - 1
    assert after.op_codes == {"acq": 6, "new": 1} and after.restarts == 1
    assert after.op_types == {"acq": "process"} and after.host == "host-a"


def test_records_are_shared_until_something_changes(state, clock):
    state.ingest(heartbeat("a", {"acq": 3}))
    (first,) = state.snapshot().agents
    clock.advance(1)
    state.ingest(heartbeat("a", {"acq": 3}))  # only the time moves
    (second,) = state.snapshot().agents
    assert second.record is first.record and second.last_heartbeat > first.last_heartbeat
    assert second != first  # a view is its record and its liveness and times
    state.ingest(heartbeat("a", {"acq": 6}))
    (third,) = state.snapshot().agents
    assert third.record is not second.record and third.record != second.record


def test_a_view_reads_its_record_and_liveness():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    state.set_expected([ExpectedAgent("listed", "Listed", "host-b", False)])
    state.ingest(heartbeat("a", {"acq": 3}, session_id="1795518440.5", agent_class="C"))
    views = {v.instance_id: v for v in state.snapshot().agents}
    a, listed = views["a"], views["listed"]
    assert (a.address, a.agent_class, a.session_id, a.start_time) == (
        "observatory.a",
        "C",
        "1795518440.5",
        1795518440.5,
    )
    assert a.heard and a.up and a.heartbeat_gap == 0.0 and a.expected is None
    assert a.changed == {"acq": clock.wall} and a.transitions == {("acq", 3): 1}
    assert not listed.heard and not listed.up and listed.expired_at is None
    assert (listed.host, listed.expected, listed.agent_class) == ("host-b", False, "Listed")
    assert listed.last_heartbeat is None and listed.heartbeat_gap is None


# -- operation sessions ---------------------------------------------------------------------

FAKE = "observatory.fake1"
SID = "1795518440.6412797"  # the heartbeat's default session id


def record(state, instance_id="fake1"):
    return agents(state)[instance_id].record


def runs(state, op="delay_task"):
    counts = record(state).runs.get(op)
    return {} if counts is None else dict(zip(OUTCOMES, counts, strict=True))


def test_ingest_says_what_to_ask_and_nothing_when_only_the_time_moved(state, clock):
    ops = ("acq", "count", "set_heartbeat", "delay_task")
    assert state.ingest(heartbeat()) == Heard(True, ops)  # new: ask everything
    assert state.ingest(heartbeat()) is None
    assert state.ingest(heartbeat(agent_class="Other")) is None  # nothing to ask
    codes = {"acq": 3, "count": 3, "set_heartbeat": 1, "delay_task": 6}
    assert state.ingest(heartbeat(op_codes=codes)) == Heard(False, ("delay_task",))
    assert state.ingest(heartbeat(op_codes=codes, session_id="2")) == Heard(True, ops)
    clock.advance(60)  # down, then back with the same codes: nothing changed
    assert state.ingest(heartbeat(op_codes=codes, session_id="2")) is None


def test_a_session_is_kept_as_the_operations_latest_and_counted(state):
    state.ingest(heartbeat())
    state.set_session(FAKE, SID, "acq", session_answer("acq", 3, data={"timestamp": 5.0}))
    state.set_session(FAKE, SID, "count", NO_SESSION)
    session = record(state).sessions["acq"]
    assert (session.session_id, session.status, session.data_time) == (3, "running", 5.0)
    assert list(record(state).sessions) == ["acq"]  # no session is not a session
    assert agents(state)["fake1"].sessions == record(state).sessions
    assert runs(state, "acq") == dict.fromkeys(OUTCOMES, 0)  # all four, before any run ends
    assert runs(state, "count") == {}
    counters = state.snapshot_counters()
    assert counters.session_queries == {"ok": 2, "invalid": 0, "timeout": 0, "error": 0}
    assert counters.invalid_sessions == dict.fromkeys(INVALID_REASONS, 0)


def test_bad_answers_are_counted_by_reason_and_dropped(state):
    state.ingest(heartbeat())
    state.set_session(FAKE, SID, "acq", session_answer("acq", 1))
    kept = record(state)
    for bad in (None, [0, "x", []], [-1, "No task or process called", {}], [0, "", {"a": 1}]):
        state.set_session(FAKE, SID, "acq", bad)
    assert record(state) is kept
    counters = state.snapshot_counters()
    assert counters.session_queries["invalid"] == 4 and counters.session_queries["ok"] == 1
    assert counters.invalid_sessions == {
        **dict.fromkeys(INVALID_REASONS, 0),
        "not_a_status": 2,
        "unknown_operation": 1,
        "bad_field": 1,
    }


def test_a_trimmed_answer_is_kept_and_counted(state):
    state.ingest(heartbeat())
    flood = session_answer("acq", 1)
    flood[2]["messages"] = [[1.0 + i, "x"] for i in range(20_000)]
    state.set_session(FAKE, SID, "acq", flood)
    assert len(record(state).sessions["acq"].messages) == MAX_MESSAGES
    counters = state.snapshot_counters()
    assert counters.session_queries["ok"] == 1 and counters.invalid_sessions["trimmed"] == 1


def test_stale_answers_are_not_kept(state):
    state.ingest(heartbeat(op_codes={"acq": 3}))
    state.set_session(FAKE, "another run", "acq", session_answer("acq", 1))
    state.set_session(FAKE, SID, "gone", session_answer("gone", 1))
    state.set_session("observatory.nobody", SID, "acq", session_answer("acq", 1))
    assert record(state).sessions == {}
    assert state.snapshot_counters().session_queries["ok"] == 3


def test_each_finished_run_is_counted_once_and_older_answers_are_ignored(state):
    state.ingest(heartbeat())
    crashed = session_answer("delay_task", 4, "done", False, "CRASH: boom")
    for _ in range(3):  # asked at its change and again: one run
        state.set_session(FAKE, SID, "delay_task", crashed)
    assert runs(state) == {**dict.fromkeys(OUTCOMES, 0), "crashed": 1}
    state.set_session(FAKE, SID, "delay_task", session_answer("delay_task", 6, "running"))
    state.set_session(FAKE, SID, "delay_task", crashed)  # late: an older run
    state.set_session(FAKE, SID, "delay_task", session_answer("delay_task", 6, "starting"))
    assert record(state).sessions["delay_task"].status == "running"
    state.set_session(FAKE, SID, "delay_task", session_answer("delay_task", 6, "done", True))
    state.set_session(FAKE, SID, "delay_task", session_answer("delay_task", 9, "done", False))
    assert runs(state) == {"succeeded": 1, "failed": 1, "crashed": 1, "error": 0}


def test_an_unchanged_session_leaves_the_record_as_it_is(state):
    state.ingest(heartbeat())
    state.set_session(FAKE, SID, "acq", session_answer("acq", 1, data={"timestamp": 5.0}))
    kept = record(state)
    state.set_session(FAKE, SID, "acq", session_answer("acq", 1, data={"timestamp": 5.0}))
    assert record(state) is kept  # the renderer keeps its lines
    state.set_session(FAKE, SID, "acq", session_answer("acq", 1, data={"timestamp": 6.0}))
    assert record(state) is kept  # only the data time moved: see the tests below
    assert agents(state)["fake1"].sessions["acq"].data_time == 6.0


def data_time(state, op, name="fake1"):
    view = agents(state)[name]
    return dict(zip(data_ops(view.record.sessions), view.data_times, strict=True)).get(op)


def test_a_running_process_asked_again_moves_its_data_time_and_keeps_the_record(state):
    """Every interval a running process is asked again: its data time moves in the view,
    the record (and what the renderer made of it) stays the same object; the other
    operations' data times stay in their place."""
    state.ingest(heartbeat())
    count = session_answer("count", 2, data={"counter": 1, "last_update": 3.0})
    state.set_session(FAKE, SID, "count", count)
    state.set_session(FAKE, SID, "acq", session_answer("acq", 1, data={"timestamp": 5.0}))
    kept = record(state)
    before = agents(state)["fake1"]
    for t in (6.0, 7.5, 7.0):  # a clock stepped back is shown as read
        acq = session_answer("acq", 1, data={"fields": {"timestamp": t}})
        state.set_session(FAKE, SID, "acq", acq)
        assert record(state) is kept
        assert (data_time(state, "acq"), data_time(state, "count")) == (t, 3.0)
    view = agents(state)["fake1"]
    assert view.data_times == (3.0, 7.0) and before.data_times == (3.0, 5.0)  # views kept
    assert view.sessions["acq"] == kept.sessions["acq"]._replace(data_time=7.0)
    assert view.sessions["count"] is kept.sessions["count"]
    assert kept.sessions["acq"].data_time == 5.0  # as read when the record was made
    assert state.snapshot_counters().session_queries["ok"] == 5


def test_a_real_session_change_still_makes_a_new_record(state):
    state.ingest(heartbeat())
    state.set_session(FAKE, SID, "acq", session_answer("acq", 1, data={"timestamp": 5.0}))
    state.set_session(FAKE, SID, "acq", session_answer("acq", 1, data={"timestamp": 6.0}))
    changes = [
        session_answer("acq", 1, data={"timestamp": 7.0}, degraded=True),  # op code
        session_answer("acq", 1, "stopping", data={"timestamp": 8.0}),
        session_answer("acq", 1, "stopping", data={}),  # the data time is gone
        session_answer("acq", 1, "stopping", data={"timestamp": 9.0}),  # and back
        session_answer("acq", 1, "done", True, data={"timestamp": 10.0}),
        session_answer("acq", 2, data={"timestamp": 11.0}),  # another run
    ]
    for answer in changes:
        before = record(state)
        state.set_session(FAKE, SID, "acq", answer)
        session = record(state).sessions["acq"]
        assert record(state) is not before and session == agents(state)["fake1"].sessions["acq"]
        assert data_time(state, "acq") == session.data_time
    moved = session_answer("acq", 2, data={"timestamp": 11.0})
    moved[2]["messages"].append([1_800_000_001.0, "Taking data."])  # a new message
    state.set_session(FAKE, SID, "acq", moved)
    assert record(state).sessions["acq"].last_message_time == 1_800_000_001.0
    assert runs(state, "acq")["succeeded"] == 1


def test_a_moved_data_time_outlives_other_changes_of_the_record(state, clock):
    """A heartbeat, the operation types or another operation's session make a new record:
    the moved data time is kept while its session is the same, dropped with its operation
    or the agent's run."""
    state.ingest(heartbeat(op_codes={"acq": 3, "count": 3, "delay_task": 1}))
    state.set_session(FAKE, SID, "acq", session_answer("acq", 1, data={"timestamp": 5.0}))
    state.set_session(FAKE, SID, "count", session_answer("count", 1, data={"last_update": 1.0}))
    state.set_session(FAKE, SID, "acq", session_answer("acq", 1, data={"timestamp": 6.0}))
    state.ingest(heartbeat(op_codes={"acq": 3, "count": 3, "delay_task": 2}))
    state.set_op_types(FAKE, SID, {"acq": "process"})
    state.set_session(FAKE, SID, "delay_task", session_answer("delay_task", 0))
    state.set_expected([ExpectedAgent("fake1", "FakeDataAgent", "host-a", True)])
    assert record(state).sessions["acq"].data_time == 5.0
    assert agents(state)["fake1"].data_times == (6.0, 1.0)
    state.ingest(heartbeat(op_codes={"count": 3, "delay_task": 2}))  # acq is gone
    assert agents(state)["fake1"].data_times == (1.0,)
    state.set_session(FAKE, SID, "count", session_answer("count", 1, data={"last_update": 2.0}))
    assert data_time(state, "count") == 2.0
    clock.advance(1)
    state.ingest(heartbeat(op_codes={"count": 3}, session_id="2"))  # a restart
    assert agents(state)["fake1"].data_times == () and record(state).sessions == {}


def test_a_restart_drops_the_sessions_and_keeps_the_runs(state, clock):
    state.ingest(heartbeat(op_codes={"delay_task": 6}, session_id="1"))
    state.set_session(FAKE, "1", "delay_task", session_answer("delay_task", 0, "done", False))
    clock.advance(1)
    state.ingest(heartbeat(op_codes={"delay_task": 6}, session_id="2"))
    assert record(state).sessions == {}
    assert runs(state)["failed"] == 1
    # OCS's session ids start again at 0 with the agent: the new run 0 is another run.
    state.set_session(FAKE, "2", "delay_task", session_answer("delay_task", 0, "done", False))
    assert runs(state)["failed"] == 2


def test_an_operation_that_disappears_takes_its_session_runs_and_durations_along(clock):
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, durations=(1.0, 60.0))
    state.ingest(heartbeat(op_codes={"acq": 3, "delay_task": 6}))
    for op in ("acq", "delay_task"):
        state.set_session(FAKE, SID, op, session_answer(op, 1, "done", True))
    state.ingest(heartbeat(op_codes={"acq": 3}))
    kept = record(state)
    assert list(kept.sessions) == ["acq"] and list(kept.durations) == ["acq"]
    assert list(kept.runs) == ["acq"]


def test_durations_are_observed_once_per_finished_run(clock):
    state = AgentState(
        "observatory", 5.0, clock.monotonic, clock.time, durations=(60.0, 1.0, math.inf, 10.0)
    )
    assert state.durations == (1.0, 10.0, 60.0)  # sorted, +Inf is always there
    state.ingest(heartbeat())
    state.set_session(FAKE, SID, "delay_task", session_answer("delay_task", 1, "running"))
    assert record(state).durations["delay_task"] == Durations((1.0, 10.0, 60.0), (0, 0, 0, 0), 0.0)
    done = session_answer("delay_task", 1, "done", True, end_time=1_800_000_010.0)
    state.set_session(FAKE, SID, "delay_task", done)
    state.set_session(FAKE, SID, "delay_task", done)
    assert record(state).durations["delay_task"] == Durations((1.0, 10.0, 60.0), (0, 1, 1, 1), 10.0)
    long = session_answer("delay_task", 2, "done", False, end_time=1_800_003_600.0)
    state.set_session(FAKE, SID, "delay_task", long)
    assert record(state).durations["delay_task"].counts == (0, 1, 1, 2)
    assert record(state).durations["delay_task"].sum == 3610.0


def test_without_durations_no_histogram_is_kept(state):
    state.ingest(heartbeat())
    state.set_session(FAKE, SID, "delay_task", session_answer("delay_task", 1, "done", True))
    assert state.durations is None and record(state).durations == {}


def test_agents_without_sessions_share_empty_dicts(state):
    state.ingest(heartbeat("a"))
    state.ingest(heartbeat("b", {"acq": 6}))
    state.set_expected([ExpectedAgent("listed", "Listed", "host-b", True)])
    for view in state.snapshot().agents:
        record = view.record
        assert record.sessions is NO_SESSIONS and record.runs is NO_RUNS
        assert record.durations is NO_DURATIONS
    assert NO_SESSIONS == NO_RUNS == NO_DURATIONS == {}


def test_running_operations_are_those_of_up_agents(state, clock):
    state.ingest(heartbeat("a", {"acq": 3, "degraded": 8, "task": 5, "stopping": 4}))
    state.ingest(heartbeat("b", {"acq": 3}, session_id="b1"))
    state.set_expected([ExpectedAgent("listed", "Listed", "host-b", True)])
    assert sorted(state.running_operations()) == [
        ("observatory.a", SID, "acq"),
        ("observatory.a", SID, "degraded"),
        ("observatory.b", "b1", "acq"),
    ]
    clock.advance(3)
    state.ingest(heartbeat("b", {"acq": 3}, session_id="b1"))
    clock.advance(3)  # a is down now
    assert state.running_operations() == [("observatory.b", "b1", "acq")]


def test_failed_queries_are_counted_by_result(state):
    state.session_query_failed("timeout")
    state.session_query_failed("timeout")
    state.session_query_failed("error")
    queries = state.snapshot_counters().session_queries
    assert queries == {"ok": 0, "invalid": 0, "timeout": 2, "error": 1}


def test_operations_with_the_same_counts_share_them(clock):
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, durations=(1.0, 60.0))
    for name in ("a", "b"):
        state.ingest(heartbeat(name, {"delay_task": 6}))
        done = session_answer("delay_task", 7, "done", True)
        state.set_session(f"observatory.{name}", SID, "delay_task", done)
    a, b = (record(state, name) for name in ("a", "b"))
    assert a.runs["delay_task"] == (1, 0, 0, 0) and a.runs["delay_task"] is b.runs["delay_task"]
    assert a.durations["delay_task"].counts is b.durations["delay_task"].counts
    assert a.sessions["delay_task"].log[1] is b.sessions["delay_task"].log[1]  # texts too
