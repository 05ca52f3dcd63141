"""The call queue shared by get_api and status, with a fake WAMP session and twisted's Clock."""

from __future__ import annotations

from twisted.internet.defer import Deferred, TimeoutError, fail
from twisted.internet.task import Clock

from exporter.wamp.calls import Call, CallQueue


class Session:
    """Records calls; the test answers them through their Deferreds."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Deferred]] = []

    def call(self, procedure: str) -> Deferred:
        d: Deferred = Deferred()
        self.calls.append((procedure, d))
        return d

    def procedures(self) -> list[str]:
        return [procedure for procedure, _ in self.calls]


class Outcomes:
    """What became of each call: ("answered", key, result) or ("failed", key, exception)."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def call(self, key: str) -> Call:
        """A call of procedure ``key``; one whose key starts with "stale" is no longer wanted."""

        def send(session: Session) -> Deferred | None:
            return None if key.startswith("stale") else session.call(key)

        return Call(
            send,
            lambda result: self.seen.append(("answered", key, result)),
            lambda failure: self.seen.append(("failed", key, failure.value)),
        )


def make(in_flight: int = 2, timeout: float = 10.0, per_second: int = 500):
    clock = Clock()
    queue = CallQueue(clock, in_flight=in_flight, timeout=timeout, per_second=per_second)
    session = Session()
    queue.joined(session)
    return clock, queue, session, Outcomes()


def test_at_most_in_flight_calls_at_a_time_the_rest_in_order():
    _, queue, session, outcomes = make(in_flight=2)
    for key in "abcde":
        queue.put(key, outcomes.call(key))
    assert session.procedures() == ["a", "b"] and len(queue) == 3
    session.calls[1][1].callback("B")
    assert session.procedures()[2:] == ["c"]
    session.calls[0][1].errback(RuntimeError("no"))
    assert session.procedures()[3:] == ["d"]
    assert queue.in_flight == 2
    for _, d in session.calls[2:]:
        d.callback("x")
    assert session.procedures()[4:] == ["e"]
    assert outcomes.seen[0] == ("answered", "b", "B")
    assert outcomes.seen[1][:2] == ("failed", "a")


def test_a_key_waits_once_with_its_latest_call_in_its_first_place():
    _, queue, session, outcomes = make(in_flight=1)
    queue.put("busy", outcomes.call("busy"))
    queue.put("a", outcomes.call("a"))
    queue.put("b", outcomes.call("b"))
    queue.put("a", outcomes.call("a-again"))  # replaces a's waiting call, ahead of b
    assert len(queue) == 2
    session.calls[0][1].callback(None)
    assert session.procedures() == ["busy", "a-again"]


def test_a_key_has_one_call_out_and_its_latest_call_waits_for_its_end():
    _, queue, session, outcomes = make(in_flight=3)
    queue.put("a", outcomes.call("a"))
    queue.put("a", outcomes.call("a-2"))
    queue.put("b", outcomes.call("b"))  # a free slot: b does not wait behind a
    queue.put("a", outcomes.call("a-3"))  # replaces a-2, still waiting for a's end
    assert session.procedures() == ["a", "b"] and len(queue) == 1
    session.calls[0][1].callback(None)
    assert session.procedures() == ["a", "b", "a-3"] and len(queue) == 0


def test_no_answer_within_the_timeout_fails_and_frees_its_slot():
    clock, queue, session, outcomes = make(in_flight=1, timeout=10.0)
    queue.put("mute", outcomes.call("mute"))
    queue.put("next", outcomes.call("next"))
    clock.advance(9.9)
    assert outcomes.seen == [] and session.procedures() == ["mute"]
    clock.advance(0.1)
    [(what, key, exc)] = outcomes.seen
    assert (what, key) == ("failed", "mute") and isinstance(exc, TimeoutError)
    assert session.procedures() == ["mute", "next"] and queue.in_flight == 1


def test_a_timeout_ends_the_call_even_when_cancelling_it_fails():
    # autobahn's canceller writes a CANCEL on the transport, None once the session is lost.
    clock, queue, session, outcomes = make(in_flight=1, timeout=10.0)

    def canceller(_: Deferred) -> None:
        raise AttributeError("'NoneType' object has no attribute 'send'")

    session.call = lambda procedure: (
        session.calls.append((procedure, Deferred(canceller))) or (session.calls[-1][1])
    )
    queue.put("lost", outcomes.call("lost"))
    queue.put("next", outcomes.call("next"))
    clock.advance(10.0)  # raises if the canceller's error escapes to the reactor
    [(what, key, exc)] = outcomes.seen
    assert (what, key) == ("failed", "lost") and isinstance(exc, TimeoutError)
    assert session.procedures() == ["lost", "next"] and queue.in_flight == 1


def test_an_answer_after_the_timeout_is_ignored():
    clock, queue, session, outcomes = make(in_flight=1, timeout=1.0)
    queue.put("slow", outcomes.call("slow"))
    clock.advance(1.0)
    session.calls[0][1].callback("late")
    assert [o[:2] for o in outcomes.seen] == [("failed", "slow")]
    assert clock.getDelayedCalls() == [] and queue.in_flight == 0


def test_an_answer_the_owner_cannot_use_is_a_failure():
    _, queue, session, _ = make()
    failures = []

    def answered(result):
        raise ValueError(f"bad answer {result!r}")

    queue.put("a", Call(lambda s: s.call("a"), answered, failures.append))
    session.calls[0][1].callback({"nonsense": 1})
    assert [f.value.args[0] for f in failures] == ["bad answer {'nonsense': 1}"]
    assert queue.in_flight == 0


def test_calls_no_longer_wanted_are_skipped_and_take_no_slot():
    _, queue, session, outcomes = make(in_flight=1)
    queue.put("busy", outcomes.call("busy"))
    queue.put("stale-a", outcomes.call("stale-a"))
    queue.put("b", outcomes.call("b"))
    session.calls[0][1].callback(None)
    assert session.procedures() == ["busy", "b"] and len(queue) == 0


def test_a_call_that_cannot_be_sent_is_a_failure_and_the_queue_goes_on():
    _, queue, session, outcomes = make(in_flight=1)

    def transport_gone(_):
        raise ConnectionError("transport lost")

    failures = []
    queue.put("a", Call(transport_gone, lambda _: None, failures.append))
    queue.put("b", outcomes.call("b"))
    assert [str(f.value) for f in failures] == ["transport lost"]
    assert session.procedures() == ["b"]


def test_nothing_is_queued_without_a_session_and_waiting_calls_go_after_the_next_join():
    queue = CallQueue(Clock(), in_flight=1)
    outcomes = Outcomes()
    queue.put("early", outcomes.call("early"))  # before any join: dropped
    assert len(queue) == 0
    first = Session()
    queue.joined(first)
    queue.put("a", outcomes.call("a"))
    queue.put("b", outcomes.call("b"))
    queue.lost()
    queue.put("during", outcomes.call("during"))  # no session: dropped
    first.calls[0][1].errback(ConnectionError("connection lost"))  # b keeps waiting
    assert first.procedures() == ["a"] and len(queue) == 1
    second = Session()
    queue.joined(second)
    assert second.procedures() == ["b"]


class Refusing(Session):
    """Answers every call at once with an error, as the router does for an agent that
    registers no such procedure."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.started: list[float] = []

    def call(self, procedure: str) -> Deferred:
        self.started.append(self.clock.seconds())
        return fail(RuntimeError("wamp.error.no_such_procedure"))


def refused(calls: int, in_flight: int, per_second: int):
    """A queue on a session that refuses every call at once, given ``calls`` calls."""
    clock = Clock()
    queue = CallQueue(clock, in_flight=in_flight, per_second=per_second)
    session = Refusing(clock)
    queue.joined(session)
    outcomes = Outcomes()
    for i in range(calls):
        queue.put(i, outcomes.call(f"agent{i}"))
    return clock, queue, session, outcomes


def test_at_most_per_second_calls_start_in_any_second_even_when_answered_at_once():
    clock, queue, session, outcomes = refused(350, in_flight=16, per_second=100)
    assert len(session.started) == 100 and len(queue) == 250
    # Resumed by one timer when the oldest start is a second old, not by polling.
    [resume] = clock.getDelayedCalls()
    assert resume.getTime() == 1.0
    clock.advance(0.999)
    assert len(session.started) == 100
    clock.advance(0.001)
    assert len(session.started) == 200
    clock.pump([0.25] * 12)
    assert len(session.started) == 350 and len(queue) == 0  # none lost
    assert [what for what, _, _ in outcomes.seen] == ["failed"] * 350
    for t in session.started:
        assert sum(t <= u < t + 1.0 for u in session.started) <= 100
    assert clock.getDelayedCalls() == []


def test_calls_waiting_for_the_rate_keep_latest_put_wins_and_skipped_ones_cost_nothing():
    clock = Clock()
    queue = CallQueue(clock, in_flight=16, per_second=1)
    session = Session()
    queue.joined(session)
    outcomes = Outcomes()
    queue.put("busy", outcomes.call("busy"))
    queue.put("stale-x", outcomes.call("stale-x"))
    queue.put("a", outcomes.call("a"))
    queue.put("b", outcomes.call("b"))
    queue.put("a", outcomes.call("a-again"))  # replaces a's waiting call, ahead of b
    assert session.procedures() == ["busy"] and len(queue) == 3
    clock.advance(1.0)  # the stale call is skipped without taking the second's start
    assert session.procedures() == ["busy", "a-again"]
    clock.advance(1.0)
    assert session.procedures() == ["busy", "a-again", "b"] and len(queue) == 0


def test_no_rate_limit_with_zero_per_second():
    clock, _, session, _ = refused(2000, in_flight=5000, per_second=0)
    assert len(session.started) == 2000 and clock.getDelayedCalls() == []


def test_a_backlog_of_calls_failing_as_they_are_made_is_worked_through_in_a_loop():
    clock, queue, first, outcomes = make(in_flight=1, per_second=0)
    queue.put("busy", outcomes.call("busy"))
    for i in range(3000):
        queue.put(i, outcomes.call(f"agent{i}"))
    queue.joined(Refusing(clock))  # the router is back; the backlog goes out on it
    first.calls[0][1].callback(None)  # the slot frees: each call now ends as it is made
    assert len(queue) == 0 and len(outcomes.seen) == 3001
    assert {str(exc) for _, _, exc in outcomes.seen[1:]} == {"wamp.error.no_such_procedure"}
