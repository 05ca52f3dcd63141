"""AgentState.ingest_feed: feed messages counted, their feeds kept per agent session."""

import pytest

import exporter.state
from exporter.feeds import FEED_REASONS, FeedInfo, InvalidFeed
from exporter.state import IGNORED_FEEDS, AgentState
from testbed.feedflood import feed_payload
from tests.support.fakes import FakeClock, heartbeat

SESSION = "1795518440.6412797"  # the session id of tests.support.fakes.heartbeat


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def state(clock):
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, max_feeds=3)
    state.ingest(heartbeat("fake1", agent_class="FeederAgent"))
    return state


def feed(name="readings", record=True, fresh_time=None, instance="fake1", **kwargs):
    params = {} if fresh_time is None else {"fresh_time": fresh_time}
    return feed_payload(f"observatory.{instance}", name, {"x": 1}, record, params, **kwargs)


def view(state, instance="fake1"):
    return {a.instance_id: a for a in state.snapshot().agents}[instance]


def test_a_known_feed_moves_its_count_and_time_without_a_new_record(state, clock, monkeypatch):
    state.ingest_feed(feed(fresh_time=5))
    first = view(state)
    assert first.feeds == {"readings": FeedInfo(True, 5.0)}
    assert first.feed_counts == (1,) and first.feed_times == (clock.wall,)
    # The fast path: no parse, no record; a message the full check would take as well.
    monkeypatch.setattr(exporter.state, "parse_feed", None)
    clock.advance(2)
    state.ingest_feed(feed(fresh_time=5.0))
    state.ingest_feed(feed(fresh_time=5))
    second = view(state)
    assert second.record is first.record
    assert second.feed_counts == (3,) and second.feed_times == (clock.wall,)
    assert first.feed_counts == (1,)  # a view taken before does not move
    assert state.snapshot_counters().feed_messages == 3


def test_feeds_keep_their_first_heard_order_and_counts(state, clock):
    for name in ("b", "a", "b", "c", "b"):
        clock.advance(1)
        state.ingest_feed(feed(name, record=name != "c"))
    agent = view(state)
    assert agent.feeds == {
        "b": FeedInfo(True, None),
        "a": FeedInfo(True, None),
        "c": FeedInfo(False, None),
    }
    assert agent.feed_counts == (3, 1, 1)
    assert agent.feed_times == (clock.wall, clock.wall - 3, clock.wall - 1)


def test_a_changed_declaration_makes_a_new_record_and_keeps_the_count(state, clock):
    state.ingest_feed(feed(fresh_time=5))
    before = view(state).record
    clock.advance(1)
    state.ingest_feed(feed(fresh_time=10))
    state.ingest_feed(feed(record=False, fresh_time=10))
    agent = view(state)
    assert agent.record is not before and before.feeds == {"readings": FeedInfo(True, 5.0)}
    assert agent.feeds == {"readings": FeedInfo(False, 10.0)}
    assert agent.feed_counts == (3,) and agent.feed_times == (clock.wall,)


def test_agents_with_the_same_feeds_share_their_dicts(state):
    state.ingest(heartbeat("fake2", agent_class="FeederAgent"))
    for instance in ("fake1", "fake2"):
        state.ingest_feed(feed("a", instance=instance, fresh_time=3))
        state.ingest_feed(feed("b", instance=instance))
    one, two = view(state, "fake1"), view(state, "fake2")
    assert one.feeds is two.feeds
    assert one.feeds["a"] is two.feeds["a"]


@pytest.mark.parametrize("reason", FEED_REASONS)
def test_an_invalid_message_is_counted_by_reason_and_changes_nothing(state, reason):
    state.ingest_feed(feed())
    before = view(state)
    bad = {
        "malformed": [feed()[1]],
        "bad_agent_address": feed(instance="bad agent"),
        "bad_feed_name": feed("bad name"),
        "bad_field": feed(fresh_time=-1),
    }[reason]
    with pytest.raises(InvalidFeed) as raised:
        state.ingest_feed(bad)
    assert raised.value.reason == reason
    counters = state.snapshot_counters()
    assert counters.invalid_feeds == {r: int(r == reason) for r in FEED_REASONS}
    assert counters.feed_messages == 2
    after = view(state)
    assert after.record is before.record and after.feed_counts == (1,)


def test_near_misses_of_the_fast_path_are_checked_in_full(state):
    state.ingest_feed(feed(fresh_time=5))
    spoilt = feed(fresh_time=5)
    spoilt[1]["address"] = "observatory.fake1.feeds.other"
    boolean = feed(fresh_time=5)
    boolean[1]["agg_params"]["fresh_time"] = True  # == 1, and still refused
    state.ingest_feed(feed(fresh_time=1.0))
    for bad in (spoilt, boolean):
        with pytest.raises(InvalidFeed):
            state.ingest_feed(bad)
    assert state.snapshot_counters().invalid_feeds["bad_feed_name"] == 1
    assert state.snapshot_counters().invalid_feeds["bad_field"] == 1
    assert view(state).feed_counts == (2,)


def test_messages_of_an_agent_not_heard_in_that_session_are_ignored(state, clock):
    state.ingest_feed(feed(instance="other"))  # never heard
    state.ingest_feed(feed(session_id="1795519999.0"))  # a session not heard yet
    state.set_expected([])
    counters = state.snapshot_counters()
    assert counters.ignored_feeds == {"unknown_agent": 2, "too_many_feeds": 0}
    assert counters.feed_messages == 2
    assert view(state).feeds == {}
    assert {a.instance_id for a in state.snapshot().agents} == {"fake1"}


def test_a_configured_agent_never_heard_takes_no_feed():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    state.set_expected([exporter.state.ExpectedAgent("fake1", "FeederAgent", "", True)])
    state.ingest_feed(feed(session_id=None))
    assert state.snapshot_counters().ignored_feeds["unknown_agent"] == 1
    assert view(state).feeds == {} and view(state).feed_counts == ()


def test_feeds_beyond_max_feeds_are_ignored_and_counted(state):
    for name in ("a", "b", "c", "d", "e", "a"):
        state.ingest_feed(feed(name))
    agent = view(state)
    assert list(agent.feeds) == ["a", "b", "c"] and agent.feed_counts == (2, 1, 1)
    assert state.snapshot_counters().ignored_feeds == {"unknown_agent": 0, "too_many_feeds": 2}


def test_a_restart_drops_the_feeds_of_the_old_session(state, clock):
    state.ingest_feed(feed("a"))
    state.ingest_feed(feed("b"))
    clock.advance(1)
    state.ingest(heartbeat("fake1", session_id="1795519999.0", agent_class="FeederAgent"))
    agent = view(state)
    assert agent.feeds == {} and agent.feed_counts == () and agent.feed_times == ()
    state.ingest_feed(feed("b"))  # the old session's, late
    state.ingest_feed(feed("b", session_id="1795519999.0"))
    agent = view(state)
    assert agent.feeds == {"b": FeedInfo(True, None)} and agent.feed_counts == (1,)
    assert state.snapshot_counters().ignored_feeds["unknown_agent"] == 1


def test_heartbeats_of_the_same_session_keep_the_feeds(state, clock):
    state.ingest_feed(feed())
    state.ingest(heartbeat("fake1", op_codes={"acq": 5}, agent_class="FeederAgent"))
    clock.advance(1)
    state.ingest(heartbeat("fake1", op_codes={"acq": 5}, agent_class="FeederAgent"))
    state.ingest_feed(feed())
    agent = view(state)
    assert agent.feeds == {"readings": FeedInfo(True, None)}
    assert agent.feed_counts == (2,) and agent.feed_times == (clock.wall,)


def test_a_forgotten_agent_takes_its_feeds(clock):
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, forget_after=60.0)
    state.ingest(heartbeat("fake1", agent_class="FeederAgent"))
    state.ingest_feed(feed())
    clock.advance(61)
    assert state.snapshot().agents == ()
    state.ingest_feed(feed())
    assert state.snapshot_counters().ignored_feeds["unknown_agent"] == 1
    state.ingest(heartbeat("fake1", agent_class="FeederAgent"))
    assert view(state).feeds == {}


def test_the_heartbeat_fast_path_is_unaffected(state, clock):
    state.ingest_feed(feed())
    record = view(state).record
    clock.advance(1)
    assert state.ingest(heartbeat("fake1", agent_class="FeederAgent")) is None
    agent = view(state)
    assert agent.record is record and agent.last_heartbeat == clock.wall
    assert state.snapshot_counters().heartbeats == 2


def test_counters_start_at_zero_for_every_reason():
    counters = AgentState("observatory").snapshot_counters()
    assert counters.feed_messages == 0
    assert counters.invalid_feeds == dict.fromkeys(FEED_REASONS, 0)
    assert counters.ignored_feeds == dict.fromkeys(IGNORED_FEEDS, 0)
