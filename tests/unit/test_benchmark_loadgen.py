"""The load generator's schedule: which simulated agents are due when (a unit test)."""

from __future__ import annotations

import math

import pytest

from benchmarks import loadgen, shm


class RecordingSession:
    def __init__(self) -> None:
        self.topics: list[str] = []

    def publish(self, topic: str, payload: list) -> None:
        self.topics.append(topic)


def schedule_at(tmp_path, monkeypatch, period: float, n: int = 10, **options):
    block = shm.SharedBlock.generator(tmp_path / "gen.counts", n)
    schedule = loadgen.Schedule(
        block, range(n), n, 2, "observatory", "BenchAgent", 0, period, **options
    )
    schedule.session = RecordingSession()
    block.floats[shm.GO_TIME] = 1000.0
    now = [1000.0]
    monkeypatch.setattr(loadgen.time, "time", lambda: now[0])

    def published_by(t: float) -> list[str]:
        while now[0] < 1000.0 + t:  # ticks every 10 ms, as the generator's LoopingCall
            now[0] = min(now[0] + 0.01, 1000.0 + t)
            schedule.tick()
        return list(schedule.session.topics)

    return published_by, block


@pytest.mark.parametrize("period", [1.0, 5.0])
def test_agents_are_spread_evenly_over_each_period(tmp_path, monkeypatch, period):
    published_by, block = schedule_at(tmp_path, monkeypatch, period)
    # Agent i is due at go + (i / 10 + k) * period.
    assert len(published_by(0.45 * period)) == 5  # agents 0..4 of the first period
    topics = published_by(1.0 * period)
    assert len(topics) == 11  # every agent once, and agent 0 again
    assert topics[-1] == topics[0] == "observatory.bench-0.feeds.heartbeat"
    assert len(published_by(1.95 * period)) == 20
    assert block.ints[shm.SENT] == 20 and block.ints[shm.SKIPPED] == 0


def test_a_heartbeat_due_long_ago_is_dropped_and_counted(tmp_path, monkeypatch):
    published_by, block = schedule_at(tmp_path, monkeypatch, 5.0)
    block.floats[shm.GO_TIME] = 1000.0 - 3.0  # agents 0, 1, 2 fell due 3, 2.5, 2.01 s ago
    topics = published_by(0.01)
    assert topics[0] == "observatory.bench-3.feeds.heartbeat"  # 1.51 s late: still sent
    assert block.ints[shm.SKIPPED] == 3 and block.ints[shm.SENT] == len(topics) == 4  # 3..6


def test_without_a_lag_limit_late_heartbeats_are_all_sent(tmp_path, monkeypatch):
    """The live tests' publisher: the whole schedule, however late."""
    published_by, block = schedule_at(tmp_path, monkeypatch, 5.0, max_lag=math.inf)
    block.floats[shm.GO_TIME] = 1000.0 - 3.0
    topics = published_by(0.01)
    assert topics[0] == "observatory.bench-0.feeds.heartbeat"
    assert block.ints[shm.SKIPPED] == 0 and block.ints[shm.SENT] == len(topics) == 7  # 0..6


def test_a_schedule_of_whole_periods_ends_after_the_last(tmp_path, monkeypatch):
    published_by, block = schedule_at(tmp_path, monkeypatch, 1.0, periods=2)
    assert len(published_by(1.95)) == 20
    assert len(published_by(2.5)) == 20  # agent 0's third heartbeat, due at 2.0, is not sent
    assert block.ints[shm.SENT] == 20


class RegisteringSession:
    def register(self, handler, prefix, options=None):
        self.handler, self.prefix = handler, prefix


def test_simulated_agents_answer_get_api_and_status_as_ocs_agents_do():
    from types import SimpleNamespace

    from autobahn.wamp.exception import ApplicationError

    session = RegisteringSession()
    loadgen.answer_get_api(session, "observatory", 3, "BenchAgent")

    def call(procedure: str, *args):
        return session.handler(*args, details=SimpleNamespace(procedure=procedure))

    api = call("observatory.bench-7", "get_api")
    assert [p[0] for p in api["processes"]] == ["acq"]
    assert [t[0] for t in api["tasks"]] == ["task1", "task2"]
    code, message, acq = call("observatory.bench-7.ops", "status", "acq")
    assert (code, message, acq["status"], acq["op_code"], acq["end_time"]) == (
        0,
        "Session active.",
        "running",
        3,
        None,
    )
    assert isinstance(acq["data"]["timestamp"], float)
    # Asked again, a running session differs only in its data timestamp, as a real one does.
    again = call("observatory.bench-7.ops", "status", "acq")[2]
    assert again["data"]["timestamp"] >= acq["data"]["timestamp"]
    assert {**again, "data": None} == {**acq, "data": None}
    done = call("observatory.bench-7.ops", "status", "task1")[2]
    assert (done["status"], done["success"], done["op_code"]) == ("done", True, 5)
    assert done["end_time"] >= done["start_time"]
    assert call("observatory.bench-7.ops", "status", "task2") == [0, "No session active.", {}]
    # Anything but status is refused, as the exporter never sends it.
    assert call("observatory.bench-7.ops", "start", "acq")[0] == -1
    assert call("observatory.bench-7.ops", "status", "nope")[0] == -1
    with pytest.raises(ApplicationError):
        call("observatory.bench-7.feeds", "get_api")
