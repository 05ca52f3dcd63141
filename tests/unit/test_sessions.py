"""Reading an agent's answer to ``status``: exporter.sessions, examples and properties."""

from __future__ import annotations

import copy
import math
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.sessions import (
    DATA_KEYS,
    INVALID_REASONS,
    MAX_MESSAGES,
    MESSAGE_CHARS,
    OUTCOMES,
    STATUSES,
    InvalidSession,
    OpSession,
    data_time,
    parse_status,
    read_status,
)
from tests.support.fakes import NO_SESSION, session_answer
from tests.support.strategies import json_like, scalars


def test_a_running_session_keeps_its_times_and_last_messages():
    answer = session_answer("acq", 4, "running", data={"timestamp": 1_800_000_005.5})
    session = parse_status(answer)
    assert session == OpSession(
        session_id=4,
        status="running",
        op_code=3,
        success=None,
        start_time=1_800_000_000.0,
        end_time=None,
        outcome=None,
        data_time=1_800_000_005.5,
        log=(
            1_800_000_000.0,
            'Status is now "starting".',
            1_800_000_000.25,
            'Status is now "running".',
        ),
    )
    assert session.messages == (
        (1_800_000_000.0, 'Status is now "starting".'),
        (1_800_000_000.25, 'Status is now "running".'),
    )
    assert session.last_message_time == 1_800_000_000.25 and not session.done
    assert session.messages[0][0] is session.start_time  # the same float, held once


def test_sessions_share_what_few_values_share_and_replace_as_a_named_tuple():
    first = parse_status(session_answer("acq", 4, "running", data={"timestamp": 5.0}))
    other = parse_status(
        session_answer("acq", 4, "running", data={"timestamp": 6.0}, start_time=1_800_000_001.0)
    )
    assert first[0] is other[0]  # session id, status, op code, success, outcome: one tuple
    moved = first._replace(data_time=6.0)
    assert moved.data_time == 6.0 and moved.log == first.log and moved != first
    assert moved._replace(data_time=5.0) == first
    ended = first._replace(status="done", end_time=1_800_000_002.0, outcome="succeeded")
    assert (ended.status, ended.end_time, ended.outcome, ended.session_id) == (
        "done",
        1_800_000_002.0,
        "succeeded",
        4,
    )
    assert ended.done and not first.done
    assert repr(first).startswith("OpSession(session_id=4, status='running', op_code=3,")
    assert first._asdict()["log"] == first.log and len(first.messages) == 2


def test_no_session_yet_is_none_and_an_unknown_operation_is_invalid():
    assert parse_status(NO_SESSION) is None
    assert read_status(NO_SESSION) == (None, False)
    with pytest.raises(InvalidSession) as caught:
        parse_status([-1, 'No task or process called "nope"', {}])
    assert caught.value.reason == "unknown_operation"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("success", "message", "outcome"),
    [
        (True, "Acquisition exited cleanly.", "succeeded"),
        (True, "", "succeeded"),
        (False, "CRASH: [Failure instance: Traceback: <class 'ValueError'>: boom", "crashed"),
        (False, "ERROR: Param 'delay'=two_seconds is not of required type", "error"),
        (False, "Delay task failed on purpose.", "failed"),
        (False, "", "failed"),  # no message of its own
        (None, "CRASH: done without success set", "crashed"),  # OCS's op code: FAILED too
    ],
)
def test_a_finished_run_is_told_by_its_own_message_before_the_last_status_change(
    success, message, outcome
):
    session = parse_status(session_answer(status="done", success=success, message=message))
    assert session.done and session.outcome == outcome
    assert session.end_time == 1_800_000_001.0
    assert session.messages[-1][1] == 'Status is now "done".'


def test_only_the_runs_last_message_tells_how_it_ended():
    answer = session_answer(status="done", success=False, message="gave up")
    answer[2]["messages"].insert(1, [1_800_000_000.1, "ERROR: a retry said so, then recovered"])
    assert parse_status(answer).outcome == "failed"
    answer = session_answer(status="done", success=False, message="CRASH: boom")
    answer[2]["messages"].insert(1, [1_800_000_000.1, "ERROR: earlier"])
    assert parse_status(answer).outcome == "crashed"


def test_the_data_timestamp_is_the_newest_of_the_keys_at_top_level_or_one_down():
    data = {
        "timestamp": 10.0,
        "fields": {"timestamp": 30, "other": {"timestamp": 99.0}},  # two levels: not looked at
        "counter": 4,
        "last_update": 20.0,
        "last_updated": "yesterday",  # not a number
    }
    assert data_time(data) == 30.0
    assert data_time({"fields": {"timestamp": float("nan")}, "timestamp": math.inf}) is None
    assert data_time({"timestamp": True, "last_update": None, "x": [1, 2]}) is None
    assert data_time({"timestamp": 10**400}) is None  # no float holds it
    assert data_time({"t": 5.0, "timestamp": 1.0}, ("t",)) == 5.0
    assert data_time({}) is None
    answer = session_answer(data={"last_update": 12.5, "counter": 3})  # FakeDataAgent's count
    assert parse_status(answer).data_time == 12.5
    assert parse_status(answer, ("nothing",)).data_time is None
    assert DATA_KEYS == ("timestamp", "last_updated", "last_update")


def _session(**changes):
    answer = session_answer(status="done", success=False, message="x")
    answer[2].update(changes)
    return answer


def _without(key):
    answer = session_answer()
    del answer[2][key]
    return answer


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (None, "not_a_status"),
        ("Session active.", "not_a_status"),
        ([0, "Session active."], "not_a_status"),
        ([0, "Session active.", []], "not_a_status"),
        ([True, "Session active.", session_answer()[2]], "not_a_status"),
        ([1, "timeout", {}], "not_a_status"),
        ([-1, "No task or process called x", {}], "unknown_operation"),
        (_without("session_id"), "bad_field"),
        (_without("status"), "bad_field"),
        (_without("data"), "bad_field"),
        (_without("messages"), "bad_field"),
        (_without("start_time"), "bad_timestamp"),
        (_session(session_id=True), "bad_field"),
        (_session(session_id=-1), "bad_field"),
        (_session(session_id="3"), "bad_field"),
        (_session(status="crashed"), "bad_field"),
        (_session(op_code=9), "bad_field"),
        (_session(op_code=5.0), "bad_field"),
        (_session(success="no"), "bad_field"),
        (_session(data=[1, 2]), "bad_field"),
        (_session(messages={"0": "x"}), "bad_field"),
        (_session(messages=[[1.0]]), "bad_field"),
        (_session(messages=[[1.0, 2.0]]), "bad_field"),
        (_session(messages=[["now", "x"]]), "bad_timestamp"),
        (_session(messages=[[math.nan, "x"]]), "bad_timestamp"),
        (_session(start_time="2026-01-01"), "bad_timestamp"),
        (_session(start_time=math.nan), "bad_timestamp"),
        (_session(start_time=-math.inf), "bad_timestamp"),
        (_session(start_time=10**400), "bad_timestamp"),
        (_session(end_time=None), "bad_timestamp"),  # done without an end
        (_session(end_time=False), "bad_timestamp"),
    ],
)
def test_answers_that_are_not_a_status_are_refused_by_reason(answer, reason):
    with pytest.raises(InvalidSession) as caught:
        parse_status(answer)
    assert caught.value.reason == reason
    assert reason in INVALID_REASONS


def test_a_flood_of_messages_is_trimmed_to_the_last_few():
    answer = session_answer(status="running")
    answer[2]["messages"] = [[1_800_000_000.0 + i, f"line {i}"] for i in range(100_000)]
    session, trimmed = read_status(answer)
    assert trimmed
    assert [text for _, text in session.messages] == [f"line {i}" for i in range(99_995, 100_000)]
    assert len(session.messages) == MAX_MESSAGES
    assert session.last_message_time == 1_800_099_999.0
    normal = session_answer(status="running")
    normal[2]["messages"] *= 20  # more than kept, but no more than OCS sends: not counted
    assert read_status(normal)[1] is False


def test_a_huge_message_is_cut_and_a_huge_data_is_not_kept():
    blob = "x" * 10_000_000
    data = {"blob": blob, "fields": {"timestamp": 1_800_000_003.0, "rows": list(range(100_000))}}
    answer = session_answer(status="done", success=False, message="CRASH: " + "y" * 1_000_000)
    answer[2]["data"] = data
    references = sys.getrefcount(blob)
    session, trimmed = read_status(answer)
    assert trimmed and session.outcome == "crashed" and session.data_time == 1_800_000_003.0
    texts = [text for _, text in session.messages]
    assert max(map(len, texts)) == MESSAGE_CHARS and texts[-2].startswith("CRASH: yyy")
    assert sys.getrefcount(blob) == references  # nothing of the data is held
    assert _size(session) < 4_000


def _size(value: object) -> int:
    """Bytes of ``value`` and everything in it (tuples, strings, numbers)."""
    if isinstance(value, tuple):
        return sys.getsizeof(value) + sum(_size(item) for item in value)
    return sys.getsizeof(value)


def test_message_texts_and_statuses_are_shared_between_sessions():
    first, second = (parse_status(session_answer(session_id=n)) for n in (1, 2))
    assert first.messages[1][1] is second.messages[1][1]
    wire = session_answer()
    wire[2]["status"] = "".join(["run", "ning"])  # a string of its own, as off the wire
    assert parse_status(wire).status is STATUSES[1]


# -- properties -------------------------------------------------------------------------

times = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70), scalars
)
messages = st.one_of(
    json_like, st.lists(st.one_of(st.tuples(times, st.text(max_size=30)), json_like), max_size=8)
)
# Sessions shaped like OCS's with anything in any field, so every check is reached.
sessions = st.fixed_dictionaries(
    {},
    optional={
        "session_id": st.one_of(st.integers(-3, 2**64), scalars),
        "status": st.one_of(st.sampled_from(STATUSES), scalars),
        "op_code": st.one_of(st.integers(0, 9), scalars),
        "success": st.one_of(st.none(), st.booleans(), scalars),
        "start_time": times,
        "end_time": times,
        "data": st.one_of(
            json_like, st.dictionaries(st.sampled_from([*DATA_KEYS, "fields"]), json_like)
        ),
        "messages": messages,
    },
)


def _spoilt(made: dict, changes: dict, dropped: list) -> list:
    """A session_answer(**made) with some fields replaced and some removed."""
    answer = session_answer(**made)
    answer[2].update(changes)
    for key in dropped:
        answer[2].pop(key, None)
    return answer


fields = st.sampled_from(["session_id", "status", "op_code", "success", "data", "messages"])
spoilt = st.builds(
    _spoilt,
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(STATUSES),
            "success": st.one_of(st.none(), st.booleans()),
            "message": st.text(max_size=20),
            "data": st.dictionaries(st.sampled_from([*DATA_KEYS, "fields"]), json_like),
        },
    ),
    st.dictionaries(
        st.one_of(fields, st.sampled_from(["start_time", "end_time"])),
        st.one_of(times, st.sampled_from(STATUSES), st.integers(0, 9), st.booleans()),
        max_size=2,
    ),
    st.lists(fields, max_size=1),
)
answers = st.one_of(
    json_like,
    st.tuples(
        st.one_of(st.sampled_from([0, -1]), scalars), scalars, st.one_of(sessions, json_like)
    ),
    spoilt,
    spoilt,  # twice as likely: most of its answers are close to a real one
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers)
def test_any_answer_parses_or_is_refused_with_a_reason(answer):
    before = copy.deepcopy(answer)
    try:
        session, trimmed = read_status(answer)
    except InvalidSession as exc:
        assert exc.reason in INVALID_REASONS and exc.reason != "trimmed"
        return
    finally:
        assert repr(answer) == repr(before)  # the answer itself is never changed
    assert isinstance(trimmed, bool)
    if session is None:
        return
    assert session.status in STATUSES and 1 <= session.op_code <= 8
    assert (session.outcome in OUTCOMES) == session.done and (
        session.outcome is None
    ) != session.done
    assert math.isfinite(session.start_time)
    assert (session.end_time is not None) == session.done
    assert len(session.messages) <= MAX_MESSAGES
    for when, text in session.messages:
        assert math.isfinite(when) and isinstance(text, str) and len(text) <= MESSAGE_CHARS
    assert session.data_time is None or math.isfinite(session.data_time)
