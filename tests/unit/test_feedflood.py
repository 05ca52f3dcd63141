"""testbed.feedflood: the flood holds every reason the exporter refuses a feed message for."""

from __future__ import annotations

from collections import Counter

from exporter.feeds import FEED_REASONS, InvalidFeed, parse_feed
from testbed import feedflood

PREFIX = "observatory."


def refusals(events):
    """Why parse_feed refuses each event's payload (None where it accepts it)."""
    reasons = []
    for event in events:
        try:
            parse_feed(event.payload(), PREFIX)
            reasons.append(None)
        except InvalidFeed as exc:
            reasons.append(exc.reason)
    return reasons


def test_every_event_is_refused_for_the_reason_it_is_filed_under():
    kinds = feedflood.malformed("observatory", "real1")
    assert tuple(kinds) == FEED_REASONS
    for reason, events in kinds.items():
        assert events
        assert set(refusals(events)) == {reason}, reason


def test_the_flood_claims_the_victim_and_is_heard_by_the_feeds_wildcard():
    kinds = feedflood.malformed("observatory", "real1")
    for events in kinds.values():
        for event in events:
            root, instance, feeds, name = event.topic.split(".")  # as <root>..feeds. matches
            assert (root, instance, feeds) == ("observatory", "real1", "feeds")
            assert name and name != "heartbeat"
    claimed = {
        e.args[0][1].get("agent_address")
        for e in kinds["bad_field"]
        if isinstance(e.args[0][1], dict)
    }
    assert claimed == {"observatory.real1"}


def test_it_holds_oversize_and_odd_events():
    kinds = feedflood.malformed()
    events = [e for events in kinds.values() for e in events]
    assert any(len(repr(e.args)) > 50_000 for e in events)  # oversize
    assert any(len(e.args) != 1 or e.kwargs for e in events)  # not one positional argument
    assert sum(1 for e in events if type(e.payload()) is not list) >= 5  # not even a list


def test_strangers_are_well_formed_feeds_of_unknown_agents_or_sessions():
    events = feedflood.strangers("observatory", 3, "real1")
    parsed = [parse_feed(e.payload(), PREFIX) for e in events]
    assert [p.agent_address for p in parsed] == [
        "observatory.real1-stranger0",
        "observatory.real1-stranger1",
        "observatory.real1-stranger2",
        "observatory.real1",
    ]
    assert parsed[-1].session_id == "1.0"


def test_feed_payload_is_what_parse_feed_reads():
    payload = feedflood.feed_payload("observatory.f1", "readings", [1], True, {"fresh_time": 5})
    parsed = parse_feed(payload, PREFIX)
    assert (parsed.feed_name, parsed.record, parsed.fresh_time) == ("readings", True, 5.0)


class Recorder:
    def __init__(self):
        self.published = []

    def publish(self, topic, *args, **kwargs):
        self.published.append((topic, args, kwargs))


def test_publish_sends_every_event_repeat_times_and_counts_them_by_kind():
    kinds = feedflood.malformed()
    session = Recorder()
    sent = feedflood.publish(session, kinds, repeat=3)
    assert sent == {reason: 3 * len(events) for reason, events in kinds.items()}
    assert len(session.published) == sum(sent.values())
    assert Counter(t.rpartition(".")[2] for t, _, _ in session.published) == sent


def test_every_event_goes_through_msgpack_which_the_tool_publishes_with():
    import msgpack  # what autobahn's msgpack serializer packs with

    events = [e for events in feedflood.malformed().values() for e in events]
    for event in [*events, *feedflood.strangers()]:
        packed = msgpack.packb([event.topic, list(event.args), event.kwargs], use_bin_type=True)
        assert msgpack.unpackb(packed, raw=False)[0] == event.topic
