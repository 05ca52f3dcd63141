"""Asking operations' status: on op code changes, every interval for running operations,
through the call queue; and the guard: the exporter sends ``status`` and nothing else on
an agent's ``.ops`` procedure. A fake WAMP session and twisted's Clock, no router."""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

import exporter
from exporter.config import settings_from_args
from exporter.service import ExporterService
from exporter.state import AgentState
from exporter.wamp.calls import CALL_TIMEOUT, CallQueue
from exporter.wamp.listener import HeartbeatListener
from exporter.wamp.sessions import SessionQueries
from exporter.wamp.throttle import LogThrottle
from tests.support.fakes import FakeClock, heartbeat, session_answer

OPS = ("acq", "count", "delay_task", "set_heartbeat")


class Session:
    """Records every call as (procedure, args, kwargs); answers go through the Deferreds."""

    def __init__(self, log: list | None = None) -> None:
        self.log = [] if log is None else log
        self.pending: list[tuple[str, tuple, Deferred]] = []

    def call(self, procedure: str, *args, **kwargs) -> Deferred:
        d: Deferred = Deferred()
        self.log.append((procedure, args, kwargs))
        self.pending.append((procedure, args, d))
        return d

    def subscribe(self, handler, topic, options):
        return succeed(None)

    def asked(self) -> list[tuple[str, tuple]]:
        return [(procedure, args) for procedure, args, _ in self.pending]


def make(interval: float = 30.0):
    clock, fake = Clock(), FakeClock()
    state = AgentState("observatory", 5.0, fake.monotonic, fake.time)
    calls = CallQueue(clock)
    queries = SessionQueries(state, calls, clock, LogThrottle(60.0, clock.seconds), interval)
    session = Session()
    calls.joined(session)
    return state, queries, session, clock, fake


def heard(state: AgentState, queries: SessionQueries, name: str, op_codes: dict, sid: str = "1"):
    """A heartbeat into the state, and its changes to the queries as the listener passes them."""
    payload = heartbeat(name, op_codes, session_id=sid)
    result = state.ingest(payload)
    if result is not None:
        queries.changed(f"observatory.{name}", sid, result.changed, payload[0])
    return result


def sessions(state: AgentState, name: str) -> dict:
    [agent] = [a for a in state.snapshot().agents if a.instance_id == name]
    return agent.record.sessions


def test_changed_operations_are_asked_their_status_except_those_never_run():
    state, queries, session, _, _ = make()
    heard(state, queries, "a", {"acq": 3, "count": 1, "delay_task": 6})
    assert session.asked() == [
        ("observatory.a.ops", ("status", "acq")),
        ("observatory.a.ops", ("status", "delay_task")),
    ]
    session.pending[0][2].callback(session_answer("acq", status="running"))
    assert sessions(state, "a")["acq"].status == "running"
    heard(state, queries, "a", {"acq": 3, "count": 1, "delay_task": 6})  # nothing moved
    heard(state, queries, "a", {"acq": 4, "count": 1, "delay_task": 6})
    assert session.asked()[2:] == [("observatory.a.ops", ("status", "acq"))]
    assert state.snapshot_counters().session_queries["ok"] == 1


def test_running_operations_are_asked_again_every_interval_while_the_service_runs():
    state, queries, session, clock, fake = make(interval=30.0)
    queries.startService()
    heard(state, queries, "a", {"acq": 1, "count": 8, "delay_task": 5})
    heard(state, queries, "b", {"acq": 1})
    heard(state, queries, "gone", {"acq": 1})
    session.pending.clear()
    heard(state, queries, "b", {"acq": 3})  # a change: asked now, and again with the loop
    state.ingest(heartbeat("gone", {"acq": 3}))  # RUNNING, but down by the next refresh
    fake.advance(4.0)
    heard(state, queries, "a", {"acq": 3, "count": 8, "delay_task": 5})
    heard(state, queries, "b", {"acq": 3})
    fake.advance(2.0)
    clock.advance(29.9)
    asked = session.asked()
    assert asked == [
        ("observatory.b.ops", ("status", "acq")),
        ("observatory.a.ops", ("status", "acq")),
    ]
    for _, _, d in session.pending:
        d.callback(session_answer("acq"))
    session.pending.clear()
    clock.advance(0.1)  # listed now, and asked one a second (3 over 30 ticks)
    assert len(session.asked()) == 1
    clock.advance(1.0)
    assert len(session.asked()) == 2
    clock.advance(28.8)  # the interval's last tick
    assert sorted(session.asked()) == [
        ("observatory.a.ops", ("status", "acq")),
        ("observatory.a.ops", ("status", "count")),  # DEGRADED runs too
        ("observatory.b.ops", ("status", "acq")),
    ]
    queries.stopService()
    session.pending.clear()
    clock.advance(60.0)
    assert session.asked() == []


def test_running_operations_are_asked_spread_over_the_interval_each_once():
    state, queries, session, clock, _ = make(interval=30.0)
    queries.startService()
    names = [f"agent{i}" for i in range(300)]
    for name in names:
        state.ingest(heartbeat(name, {"acq": 3}))
    per_second, asked = [], []
    for _ in range(61):
        clock.advance(1.0)
        per_second.append(len(session.pending))
        asked.append([procedure for procedure, _ in session.asked()])
        for _, _, d in session.pending:
            d.callback(session_answer("acq"))
        session.pending.clear()
    # Listed at 30 s, then 10 a second (300 over 30 ticks), listed again at 60 s.
    assert per_second == [0] * 29 + [10] * 32
    first_round = sorted(p for second in asked[29:59] for p in second)
    assert first_round == sorted(f"observatory.{name}.ops" for name in names)
    queries.stopService()


def test_operations_that_changed_or_restarted_since_they_were_listed_are_skipped():
    state, queries, session, clock, _ = make(interval=30.0)
    queries.startService()
    for name in ("a", "b", "c"):
        state.ingest(heartbeat(name, {"acq": 3, "count": 3}, session_id="1"))
    clock.advance(30.0)  # listed: six, one a second
    assert session.asked() == [("observatory.a.ops", ("status", "acq"))]
    heard(state, queries, "c", {"acq": 5, "count": 3})  # acq ended: asked once, for its end
    heard(state, queries, "b", {"acq": 3}, sid="2")  # restarted without count
    clock.advance(29.0)
    assert session.asked()[1:] == [
        ("observatory.c.ops", ("status", "acq")),
        ("observatory.b.ops", ("status", "acq")),  # of run 2, on its change
        ("observatory.a.ops", ("status", "count")),
        ("observatory.c.ops", ("status", "count")),
    ]
    assert len(queries.calls) == 0


def test_a_reactor_held_up_for_ticks_deals_their_slices_at_once():
    state, queries, session, clock, _ = make(interval=10.0)
    queries.startService()
    for i in range(20):
        state.ingest(heartbeat(f"agent{i}", {"acq": 3}))
    clock.advance(10.0)
    assert len(session.pending) == 2
    clock.advance(5.0)  # one wake-up for five ticks
    assert len(session.pending) == 12


def test_no_session_no_calls_and_no_work():
    state, queries, session, clock, _ = make()
    queries.calls.lost()
    queries.startService()
    heard(state, queries, "a", {"acq": 3})
    clock.advance(30.0)
    assert session.asked() == [] and len(queries.calls) == 0


def test_an_agent_restarted_before_its_turn_is_not_asked_for_its_old_session():
    state, queries, session, _, _ = make()
    queries.calls.max_in_flight = 1
    heard(state, queries, "busy", {"acq": 3})
    heard(state, queries, "a", {"acq": 3}, sid="1")
    heard(state, queries, "a", {"count": 3}, sid="2")  # restarted: acq of run 1 is stale
    session.pending[0][2].callback(session_answer("acq"))
    assert session.asked()[1:] == [("observatory.a.ops", ("status", "count"))]


def test_failures_are_counted_as_timeout_or_error_and_logged_once_a_minute(caplog):
    state, queries, session, clock, _ = make()
    with caplog.at_level(logging.INFO, logger="exporter.wamp.sessions"):
        heard(state, queries, "mute", {"acq": 3})
        heard(state, queries, "old", {"acq": 3})
        session.pending[1][2].errback(
            ApplicationError("wamp.error.no_such_procedure", "no callee registered")
        )
        clock.advance(CALL_TIMEOUT)
    queries_total = state.snapshot_counters().session_queries
    assert queries_total == {"ok": 0, "invalid": 0, "timeout": 1, "error": 1}
    [line] = [r.getMessage() for r in caplog.records]
    assert "status of acq on observatory.old failed" in line and "no_such_procedure" in line
    caplog.clear()
    clock.advance(61.0)
    with caplog.at_level(logging.INFO, logger="exporter.wamp.sessions"):
        heard(state, queries, "mute", {"acq": 4})
        clock.advance(CALL_TIMEOUT)
    [line] = [r.getMessage() for r in caplog.records]
    assert "observatory.mute failed: no answer within 10 s" in line


def test_a_refusal_by_the_router_names_the_role_and_the_switch(caplog):
    state, queries, session, _, _ = make()
    with caplog.at_level(logging.INFO, logger="exporter.wamp.sessions"):
        heard(state, queries, "a", {"acq": 3})
        session.pending[0][2].errback(
            ApplicationError("wamp.error.not_authorized", "session is not authorized to call")
        )
    [line] = [r.getMessage() for r in caplog.records]
    assert "exporter-role-sessions.json" in line and "--no-collector.sessions" in line


def test_a_bad_answer_is_counted_invalid_not_failed():
    state, queries, session, _, _ = make()
    heard(state, queries, "a", {"acq": 3})
    session.pending[0][2].callback([-1, 'No task or process called "acq"', {}])
    counts = state.snapshot_counters().session_queries
    assert (counts["invalid"], counts["error"]) == (1, 0)


def listener(interval: float | None, clock: Clock, fake: FakeClock) -> HeartbeatListener:
    state = AgentState("observatory", 5.0, fake.monotonic, fake.time)
    return HeartbeatListener(
        state, "ws://127.0.0.1:1/ws", "r", "observatory", reactor=clock, sessions_interval=interval
    )


def test_the_listener_asks_get_api_of_new_agents_and_status_of_changed_operations():
    clock, fake = Clock(), FakeClock()
    on, off = listener(5.0, clock, fake), listener(None, clock, fake)
    assert off.session_queries is None
    for each in (on, off):
        session = Session()
        each._on_join(session, None)
        each._on_heartbeat(heartbeat("a", {"acq": 3, "count": 1}, session_id="1"))
        each._on_heartbeat(heartbeat("a", {"acq": 3, "count": 1}, session_id="1"))
        each._on_heartbeat(heartbeat("a", {"acq": 5, "count": 1}, session_id="1"))
        each.session = session
    assert on.session.asked() == [
        ("observatory.a", ("get_api",)),
        ("observatory.a.ops", ("status", "acq")),
    ]
    on.session.pending[1][2].callback(session_answer("acq"))  # asked again once answered
    assert on.session.asked()[2:] == [("observatory.a.ops", ("status", "acq"))]
    assert off.session.asked() == [("observatory.a", ("get_api",))]


def test_the_service_runs_the_session_queries_only_when_sessions_are_on():
    hub = ["--site-hub", "ws://h:1/ws", "--site-realm", "r", "--address-root", "observatory"]
    on = ExporterService(settings_from_args([*hub, "--collector.sessions.interval", "7s"]), Clock())
    off = ExporterService(settings_from_args([*hub, "--no-collector.sessions"]), Clock())
    assert on.listener.session_queries in list(on)
    assert on.listener.session_queries.interval == 7.0
    assert off.listener.session_queries is None
    assert not any(isinstance(child, SessionQueries) for child in off)


def answer_one(rng: random.Random, session: Session) -> None:
    """Answer a call that is out, or fail it."""
    procedure, args, d = session.pending.pop(rng.randrange(len(session.pending)))
    if rng.random() < 0.2:
        d.errback(ApplicationError("wamp.error.canceled", "gone"))
    elif procedure.endswith(".ops"):
        d.callback(session_answer(args[1], status=rng.choice(["running", "done"])))
    else:
        d.callback({"tasks": [], "processes": [[op, {}, {}] for op in OPS]})


def churn(rng: random.Random, sent: list) -> None:
    """Eight agents starting, restarting, changing op codes and operations; answers,
    errors and timeouts; router losses and rejoins; the interval's refreshes."""
    clock, fake = Clock(), FakeClock()
    churning = listener(3.0, clock, fake)
    churning.session_queries.startService()
    session = Session(sent)
    churning._on_join(session, None)
    runs = {f"agent{i}": 0 for i in range(8)}
    for _ in range(600):
        step = rng.random()
        name = rng.choice(sorted(runs))
        if step < 0.5:
            codes = {op: rng.randint(1, 8) for op in rng.sample(OPS, rng.randint(1, len(OPS)))}
            churning._on_heartbeat(heartbeat(name, codes, session_id=str(runs[name])))
        elif step < 0.55:
            runs[name] += 1  # a restart
        elif step < 0.8 and session.pending:
            answer_one(rng, session)
        elif step < 0.97:
            clock.advance(rng.uniform(0, 4))
            fake.advance(rng.uniform(0, 4))
        else:
            churning._on_disconnect(None, was_clean=False)
            session = Session(sent)
            churning._on_join(session, None)
    churning.session_queries.stopService()


def test_only_status_is_ever_sent_on_ops_through_churn():
    """Every call the listener makes on an ``.ops`` procedure, whatever happens, is
    ``status`` of one of the agent's operations, nothing else."""
    sent: list[tuple[str, tuple, dict]] = []
    for seed in range(5):
        churn(random.Random(seed), sent)
    asked_ops = set()
    for procedure, args, kwargs in sent:
        assert kwargs == {}
        if procedure.endswith(".ops"):
            assert re.fullmatch(r"observatory\.agent\d\.ops", procedure)
            assert len(args) == 2 and args[0] == "status" and args[1] in OPS, args
            asked_ops.add(args[1])
        else:
            assert re.fullmatch(r"observatory\.agent\d", procedure) and args == ("get_api",)
    assert asked_ops == set(OPS)
    assert sum(p.endswith(".ops") for p, _, _ in sent) > 500


def test_no_other_code_names_an_ops_procedure():
    """Beside status_call, ``.ops`` appears only where the registry drop-in registers its
    own: no other code path can build a call to an agent's ``.ops``."""
    package = Path(exporter.__file__).parent
    naming = sorted(
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if re.search(r"""["']\.ops["']|\.ops\b["']""", path.read_text())
    )
    assert naming == ["wamp/registry_compat.py", "wamp/sessions.py"]
    text = (package / "wamp" / "sessions.py").read_text()
    assert text.count('".ops"') == 1 and 'agent_address + ".ops", "status", op_name' in text


def test_the_calls_per_second_flag_reaches_the_call_queue():
    hub = ["--site-hub", "ws://h:1/ws", "--site-realm", "r", "--address-root", "observatory"]
    default = ExporterService(settings_from_args(hub), Clock())
    paced = ExporterService(
        settings_from_args([*hub, "--wamp.max-calls-per-second", "40"]), Clock()
    )
    assert default.listener.calls.starts.per_second == 500
    assert paced.listener.calls.starts.per_second == 40
